//! A stable-Rust stand-in for the cargo-fuzz target `resp_decode`: the same checks
//! (`fuzz_support::check_decoder`) over seeded random and mutated inputs, bounded in count
//! and time so it fits in `cargo test`.
//!
//! `SHOAL_FUZZ_SMOKE_SECONDS` (default 2) and `SHOAL_FUZZ_SMOKE_SEED` (default fixed) make a
//! longer or different run: `SHOAL_FUZZ_SMOKE_SECONDS=300 cargo test -p shoal-resp --release
//! --test fuzz_smoke`. A failure prints the seed and the input.

use std::time::{Duration, Instant};

use shoal_resp::fuzz_support::check_decoder;

/// xorshift64*: deterministic, so a seed replays its inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

/// Fragments that steer the decoder into its branches.
const FRAGMENTS: &[&[u8]] = &[
    b"*1\r\n$4\r\nPING\r\n",
    b"*2\r\n$4\r\nECHO\r\n$3\r\nfoo\r\n",
    b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n",
    b"*0\r\n",
    b"*-1\r\n",
    b"*",
    b"$",
    b"\r\n",
    b"\r",
    b"\n",
    b"\0",
    b"PING\r\n",
    b"SET k \"a b\"\n",
    b"ECHO '\\''\r\n",
    b"\"\\x4",
    b"\"",
    b"'",
    b"\\",
    b" ",
    b"\x0b",
    b"-",
    b"99999999999999999999",
    b"2147483647",
    b"9223372036854775807",
    b"64",
    b"65",
    b"0",
    b"\xff",
];

fn generate(rng: &mut Rng) -> Vec<u8> {
    let mut input = vec![rng.next() as u8];
    match rng.below(3) {
        0 => input.extend((0..rng.below(256)).map(|_| rng.next() as u8)),
        _ => {
            for _ in 0..rng.below(24) {
                input.extend_from_slice(FRAGMENTS[rng.below(FRAGMENTS.len())]);
            }
            // Mutate a few bytes, insert a few, drop a tail.
            for _ in 0..rng.below(4) {
                if !input.is_empty() {
                    let at = rng.below(input.len());
                    input[at] = rng.next() as u8;
                }
            }
            for _ in 0..rng.below(3) {
                let at = rng.below(input.len() + 1);
                input.insert(at, FRAGMENTS[rng.below(FRAGMENTS.len())][0]);
            }
            if rng.below(4) == 0 {
                input.truncate(rng.below(input.len() + 1));
            }
        }
    }
    input
}

#[test]
fn decoder_survives_seeded_random_and_mutated_inputs() {
    let seconds = std::env::var("SHOAL_FUZZ_SMOKE_SECONDS").ok().and_then(|text| text.parse().ok()).unwrap_or(2);
    let seed = std::env::var("SHOAL_FUZZ_SMOKE_SEED").ok().and_then(|text| text.parse().ok()).unwrap_or(0x5eed_5a0a1);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut rng = Rng(seed | 1);
    let mut runs: u64 = 0;
    // Bounded by count as well as time, so a slow machine still finishes.
    while runs < 2_000_000 && Instant::now() < deadline {
        let input = generate(&mut rng);
        let outcome = std::panic::catch_unwind(|| check_decoder(&input));
        assert!(outcome.is_ok(), "seed {seed}, run {runs}: the decoder check failed on input {input:?}");
        runs += 1;
    }
    assert!(runs > 0, "at least one input ran");
}
