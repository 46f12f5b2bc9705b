//! Shared helpers for the integration tests in this folder (the tests themselves are the
//! `[[test]]` targets listed in Cargo.toml). Everything reusable lives in `shoal-testkit`.
