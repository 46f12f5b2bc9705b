//! Integration and differential tests of the lists commands. Placeholder: filled in with the family.
