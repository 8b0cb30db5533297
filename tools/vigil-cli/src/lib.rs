//! `vigil`, the operator CLI: protection orders, zones, tags, alerts and evidence, against AWS
//! or the local emulator with the same configuration as the functions (`VIGIL_STAGE`,
//! `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>`, the usual AWS region and credentials).
//!
//! Every command is a function here, generic over the ports ([`AdminStore`], [`AuditLog`],
//! [`TagRegistry`]), so unit tests run them on the in-memory adapters and tests, the pipeline
//! and the scenario runner provision through the very code operators use. `src/main.rs` only
//! parses arguments, wires the AWS adapters and renders results.
//!
//! # Layout
//! - [`error`]: [`CliError`] and the documented exit codes (0 ok, 1 invalid, 2 not found,
//!   3 AWS/emulator, 4 verification failed).
//! - [`input`]: order and zone files (JSON or YAML), GeoJSON polygons, dates, time zones and
//!   schedule flags, with errors that name the field.
//! - [`orders`]: create, show, list, end; assigning a tag.
//! - [`zones`]: add, list, remove, prune expired (the geohash index kept consistent by the
//!   store).
//! - [`tags`]: the [`TagRegistry`] port on AWS IoT and in memory; register from a CSR (only
//!   the certificate written, 0600; a failure part way rolled back) and deactivate.
//! - [`csr`]: a tag's certificate signing request, checked before IoT signs it; making a
//!   key and CSR for a simulated tag.
//! - [`alerts`]: open alerts and acknowledgements (audit records).
//! - [`changes`]: who the operator is (the caller's identity, never a flag) and the
//!   `admin_change` audit record every change leaves.
//! - [`evidence`]: export an order's audit trail as a bundle and verify one offline.
//! - [`owner_only`]: folders 0700 and files 0600 from the start, never overwritten
//!   (evidence bundles, tag certificates, simulated tags' keys).
//! - [`report`]: [`Report`], the human and `--json` forms of every result.
//!
//! [`AdminStore`]: vigil_aws::ports::AdminStore
//! [`AuditLog`]: vigil_aws::ports::AuditLog

pub mod alerts;
pub mod changes;
pub mod csr;
pub mod error;
pub mod evidence;
pub mod input;
pub mod orders;
pub mod owner_only;
pub mod report;
pub mod tags;
pub mod zones;

pub use error::{CliError, Result};
pub use input::OrderSpec;
pub use orders::create_order;
pub use report::Report;
pub use tags::{IotRegistry, MemoryRegistry, TagRegistry};

/// Logical name of the tags' IoT policy in `infra/resources.json` (physical
/// `vigil-<stage>-tag`).
pub const TAG_POLICY: &str = "tag";
