//! Arbitrary bytes into `RequestDecoder`: the first byte picks small or default limits and
//! the chunk lengths, the rest arrives in those chunks. Checks that nothing panics, that
//! chunked feeding agrees with whole feeding, and that every decoded request round-trips
//! through the encoder (see `shoal_resp::fuzz_support`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    shoal_resp::fuzz_support::check_decoder(data);
});
