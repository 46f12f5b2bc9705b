#!/usr/bin/env bash
# Runs the cargo-fuzz target for the RESP decoder for a bounded time (seconds, default 30).
# cargo fuzz needs nightly features: with a nightly toolchain we use it; otherwise the stable
# compiler with RUSTC_BOOTSTRAP=1 and no sanitizer. cargo-fuzz is installed if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"

if ! cargo fuzz --help >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi

cd fuzz
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    cargo +nightly fuzz run resp_decode -- -max_total_time="$seconds" -max_len=4096
else
    RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none resp_decode -- -max_total_time="$seconds" -max_len=4096
fi
