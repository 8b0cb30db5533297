//! `cargo fuzz run wire`: see `vigil_fuzz::wire`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vigil_fuzz::wire(data));
