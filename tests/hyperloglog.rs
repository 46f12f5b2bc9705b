//! Integration and differential tests of the hyperloglog commands. Placeholder: filled in with the family.
