//! Integration and differential tests of the geo commands. Placeholder: filled in with the family.
