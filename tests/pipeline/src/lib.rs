//! The tests of Vigil's AWS side against the emulator (`tests/*.rs`): each function alone
//! (`ingest_emulator`, `alert_emulator`), the DynamoDB store (`store_emulator`), and end to end
//! (`pipeline`). They use the local stack's [`vigil_stack::Functions`] (here `Pipeline`), so a
//! test wires the functions exactly as `vigil-stack up`, the simulator and the demo do.

pub use vigil_stack::{AlertPorts, Functions as Pipeline};
