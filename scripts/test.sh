#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests, integration tests against the real
# binary (and Debian's redis-server as the oracle), and a bounded fuzz run of the RESP decoder.
#
# Tests that need a tool that is missing (redis-server, redis-cli, prlimit) skip locally;
# with SHOAL_REQUIRE_ALL=1 (as CI sets) they fail instead.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "build shoal-server"
cargo build -p shoal-server

step "cargo test (unit, integration, differential, concurrency)"
cargo test --workspace

step "fuzz the RESP decoder (${SHOAL_FUZZ_SECONDS:-30} s)"
scripts/fuzz.sh "${SHOAL_FUZZ_SECONDS:-30}"

echo
echo "All tests passed."
