//! Integration and differential tests of the zsets commands. Placeholder: filled in with the family.
