//! `cargo fuzz run iot_sql`: see `vigil_fuzz::iot_sql`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vigil_fuzz::iot_sql(data));
