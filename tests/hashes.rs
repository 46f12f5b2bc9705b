//! Integration and differential tests of the hashes commands. Placeholder: filled in with the family.
