//! Criterion benchmark of per-fix zone lookup; filled in with the benchmark work.
fn main() {}
