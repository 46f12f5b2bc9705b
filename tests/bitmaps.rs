//! Integration and differential tests of the bitmaps commands. Placeholder: filled in with the family.
