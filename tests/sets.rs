//! Integration and differential tests of the sets commands. Placeholder: filled in with the family.
