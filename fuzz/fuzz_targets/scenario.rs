//! `cargo fuzz run scenario`: see `vigil_fuzz::scenario`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vigil_fuzz::scenario(data));
