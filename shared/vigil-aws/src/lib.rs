//! Vigil's ports and their adapters: what the Lambda handlers depend on, implemented on AWS
//! (DynamoDB, SQS, SNS) and in memory for unit tests.
//!
//! # Layout
//! - [`ports`]: the narrow traits handlers are generic over (ingest store, alert queue, alert
//!   store, audit log, notifier, metrics, admin store) and the records they exchange.
//! - [`config`]: the one configuration loader (stage, resource names, endpoint via
//!   `AWS_ENDPOINT_URL`, retries with backoff) and [`Aws`], the one place adapters are
//!   built from the environment.
//! - [`error`]: [`StoreError`], which says whether a retry can help, and SDK error
//!   classification.
//! - [`items`]: every DynamoDB item mapping, in one place.
//! - [`dynamo`]: the store ports on DynamoDB, one module per port.
//! - [`sqs`]: the alert queue on SQS (FIFO, grouped by order).
//! - [`sns`]: SMS and the operators' topic on SNS.
//! - [`iot`]: commands to devices through the IoT data plane (retained `Publish`).
//! - [`kms`]: the keyed hash of SMS destinations on KMS.
//! - [`evidence`]: anchors on S3 (Object Lock) and the evidence signing key on KMS.
//! - [`logs`]: how the Lambda functions log (JSON lines, level from `RUST_LOG`).
//! - [`metrics`]: CloudWatch Embedded Metric Format counters, and in-memory ones.
//! - [`counting`]: an SDK interceptor that counts requests by operation (cost per fix).
//! - [`memory`]: in-memory adapters of every port, with failure injection.

pub mod config;
pub mod counting;
pub mod dynamo;
pub mod error;
pub mod evidence;
pub mod iot;
pub mod items;
pub mod kms;
pub mod logs;
pub mod memory;
pub mod metrics;
pub mod ports;
pub mod sns;
pub mod sqs;

pub use config::{Aws, Config};
pub use dynamo::{DynamoStore, backoff};
pub use error::StoreError;
pub use evidence::{KmsEvidenceSigner, S3AnchorBucket};
pub use iot::IotCommander;
pub use kms::KmsDestinationMac;
pub use sns::SnsNotifier;
pub use sqs::SqsQueue;
