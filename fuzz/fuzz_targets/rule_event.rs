//! `cargo fuzz run rule_event`: see `vigil_fuzz::rule_event`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vigil_fuzz::rule_event(data));
