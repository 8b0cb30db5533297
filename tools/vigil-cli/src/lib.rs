//! `vigil`, the operator CLI: protection orders, zones, tags, alerts and evidence, against AWS
//! or the local emulator with the same configuration as the functions (`VIGIL_STAGE`,
//! `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>`, the usual AWS region and credentials).
//!
//! The operator actions on orders, zones and alerts, and the checks of what operators write,
//! are vigil-admin's, shared with the console API: this crate reads the command line, files
//! and standard input, builds the AWS adapters, calls vigil-admin, and renders the results.
//! What only a terminal needs is here: tag registration with AWS IoT from a CSR, and evidence
//! bundles on disk. `src/main.rs` only parses arguments, runs the command and prints errors.
//!
//! # Layout
//! - [`args`]: the command line (clap): every command, flag and its help.
//! - [`commands`]: running a command: flags and files into vigil-admin's typed input, the
//!   admin action, the result rendered.
//! - [`input`]: order and zone files (JSON or YAML), the phone from a file or standard input,
//!   circle and schedule flags.
//! - [`ports`]: [`Ports`], the AWS side built from the environment once (store, SMS
//!   destination key, IoT registry, the operator's identity).
//! - [`error`]: [`CliError`] and the documented exit codes (0 ok, 1 invalid, 2 not found,
//!   3 AWS/emulator, 4 verification failed, 5 conflict).
//! - [`tags`]: the [`TagRegistry`] port on AWS IoT and in memory; register from a CSR (only
//!   the certificate written, 0600; a failure part way rolled back) and deactivate.
//! - [`csr`]: a tag's certificate signing request, checked before IoT signs it; making a
//!   key and CSR for a simulated tag.
//! - [`dlq`]: the dead-letter queues (`alerts-dlq`, `rule-errors`): list what is parked,
//!   redrive it (alert events back to the alerts queue, failed ingest events invoked again).
//! - [`evidence`]: export an order's audit trail as a bundle and verify one offline.
//! - [`owner_only`]: folders 0700 and files 0600 from the start, never overwritten
//!   (evidence bundles, tag certificates, simulated tags' keys).
//! - [`report`]: [`Report`], the human and `--json` forms of every result.

pub mod args;
pub mod commands;
pub mod csr;
pub mod dlq;
pub mod error;
pub mod evidence;
pub mod input;
pub mod owner_only;
pub mod ports;
pub mod report;
pub mod tags;

pub use error::{CliError, Result};
pub use ports::Ports;
pub use report::Report;
pub use tags::{IotRegistry, MemoryRegistry, TagRegistry};

/// Logical name of the tags' IoT policy in `infra/resources.json` (physical
/// `vigil-<stage>-tag`).
pub const TAG_POLICY: &str = "tag";
