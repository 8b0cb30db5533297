//! Vigil's scenario runner: executes scenario files (orders, zones, timed fixes and tag
//! events, expected SMS and operator events) and reports where what happened differs from
//! what was expected. Scenarios are the project's acceptance tests and its demo.
//!
//! # Layout
//! - [`scenario`]: the JSON format (schema in `tests/scenarios/scenario.schema.json`), its
//!   checks, and the checked [`Scenario`]: vigil-core orders and zones, and the messages a tag
//!   publishes (wire payloads) in delivery order.
//! - [`executor`]: the [`ScenarioExecutor`] trait and the [`Run`] every executor records: per
//!   message, what became of it, the order levels, the SMS sent and the operator events.
//! - [`in_process`]: the first executor: the product's ingest and alert handlers over the
//!   in-memory ports, in this process (the product without I/O).
//! - [`local_stack`]: the second, which runs them through the whole local pipeline: MQTT with
//!   mutual TLS, the IoT rule bridge, the functions on the emulator, SMS read back.
//! - [`observe`]: how both executors turn what the stack recorded into a step record.
//! - [`mod@compare`]: expectations against a run, whatever executed it.
//! - [`names`]: how values are named in text (serde wire names, scenario offsets), for the
//!   report, the comparison, the demo and the SVG.
//! - [`report`]: the step table, verdict lines and the JSON report (phones always redacted).
//! - [`svg`]: a hand-written SVG picture of a run: zones, buffers, tracks, alert markers.
//! - [`demo`]: the built-in narrated scenario.
//! - [`runner`]: the `run` command: files in, report out, exit status.
//! - [`mod@bench`]: the `bench-local` command: latency and throughput of the whole local pipeline,
//!   and the emulator's own ceiling for the same requests.
//! - [`cost`]: the `cost` command: the requests and DynamoDB capacity units each kind of
//!   message consumes, counted on the emulator through the product's handlers, priced from
//!   `prices.json` into the cost per tag-month.
//! - [`load`]: the `load` command: a fleet of thousands of tags over MQTT through the whole
//!   local stack, on a compressed clock; throughput against the emulator's ceiling, latency,
//!   exactly-once alerts, CPU and memory per process.
//! - [`cold_start`]: the `cold-start` command: each function's zipped arm64 size, and the
//!   time from spawning its binary to its first request for an event.
//!
//! Operator event kinds are vigil-core's vocabulary (`vigil_core::operator`), so scenarios,
//! operators and the audit log name events the same way: `zone_warning`, `zone_breach`,
//! `zone_step_down`, `zone_clear`, `zone_out_of_force`, `late_fix`, `breach_persisting`,
//! `breach_repeated`, `tag_event:<kind>` and `fix_rejected:<reason>` (any rejected message,
//! with `vigil_core::FixError::reason`).

pub mod bench;
pub mod cold_start;
pub mod compare;
pub mod cost;
pub mod demo;
pub mod executor;
pub mod in_process;
pub mod load;
pub mod local_stack;
pub mod names;
pub mod observe;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod svg;

pub use compare::{Failure, Verdict, compare};
pub use executor::{Run, ScenarioExecutor};
pub use in_process::InProcessExecutor;
pub use local_stack::LocalStackExecutor;
pub use scenario::Scenario;
