//! The CLI's error type and its exit codes.

use vigil_aws::StoreError;

/// Exit code: success.
pub const EXIT_OK: i32 = 0;
/// Exit code: bad usage or input that fails validation (nothing was changed).
pub const EXIT_INVALID: i32 = 1;
/// Exit code: the order, zone, tag or alert named does not exist.
pub const EXIT_NOT_FOUND: i32 = 2;
/// Exit code: AWS or the emulator failed; the message says whether a retry can help.
pub const EXIT_AWS: i32 = 3;
/// Exit code: an evidence bundle failed verification (altered, removed or reordered).
pub const EXIT_VERIFY: i32 = 4;
/// Exit code: the change would replace something that exists, and replacing was not asked
/// for (nothing was changed).
pub const EXIT_CONFLICT: i32 = 5;

/// Everything a command can fail with. [`CliError::exit_code`] maps it to the documented
/// exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Input that cannot be used: the message says what was wrong and what to do.
    #[error("{0}")]
    Invalid(String),
    /// Something named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The change would replace something that exists without being asked to.
    #[error("{0}")]
    Conflict(String),
    /// The store failed (DynamoDB).
    #[error("{}: {source} ({})", .context, retry_hint(.source.is_retryable()))]
    Store {
        /// What was being done.
        context: String,
        /// The adapter's error.
        #[source]
        source: StoreError,
    },
    /// An AWS IoT call failed.
    #[error("{operation}: {detail} ({})", retry_hint(*.retryable))]
    Aws {
        /// The API call and resource.
        operation: String,
        /// The service's message.
        detail: String,
        /// Whether a retry can help.
        retryable: bool,
    },
    /// A file could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An evidence bundle failed verification.
    #[error("bundle failed verification: {0}")]
    Tampered(String),
    /// A change of several steps failed part way and the steps done were undone, except those
    /// named in `not_undone`.
    #[error("{cause}; {}", rollback_summary(.not_undone))]
    RolledBack {
        /// The step that failed.
        cause: Box<CliError>,
        /// What could not be undone: each an undo step and its error.
        not_undone: Vec<String>,
    },
}

fn rollback_summary(not_undone: &[String]) -> String {
    if not_undone.is_empty() {
        "rolled back: nothing it made is left, so the same command can be run again".into()
    } else {
        format!(
            "rollback incomplete, undo these by hand before running it again: {}",
            not_undone.join("; ")
        )
    }
}

fn retry_hint(retryable: bool) -> &'static str {
    if retryable {
        "transient: retry later"
    } else {
        "not transient: retrying will not help"
    }
}

impl CliError {
    /// The documented exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Invalid(_) | CliError::Io { .. } => EXIT_INVALID,
            CliError::NotFound(_) => EXIT_NOT_FOUND,
            CliError::Conflict(_) => EXIT_CONFLICT,
            CliError::Store { .. } | CliError::Aws { .. } => EXIT_AWS,
            CliError::Tampered(_) => EXIT_VERIFY,
            CliError::RolledBack { cause, .. } => cause.exit_code(),
        }
    }

    /// A short machine-readable kind for `--json` error output.
    pub fn kind(&self) -> &'static str {
        match self {
            CliError::Invalid(_) => "invalid",
            CliError::NotFound(_) => "not_found",
            CliError::Conflict(_) => "conflict",
            CliError::Store { .. } | CliError::Aws { .. } => "aws",
            CliError::Io { .. } => "io",
            CliError::Tampered(_) => "verification_failed",
            CliError::RolledBack { cause, .. } => cause.kind(),
        }
    }

    /// Whether retrying the same command later can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            CliError::Store { source, .. } => source.is_retryable(),
            CliError::Aws { retryable, .. } => *retryable,
            CliError::RolledBack { cause, not_undone } => {
                not_undone.is_empty() && cause.is_retryable()
            }
            _ => false,
        }
    }

    /// A store error with what was being done.
    pub fn store(context: impl Into<String>) -> impl FnOnce(StoreError) -> CliError {
        let context = context.into();
        move |source| CliError::Store { context, source }
    }

    /// An I/O error with what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> CliError {
        let context = context.into();
        move |source| CliError::Io { context, source }
    }
}

/// Result with [`CliError`].
pub type Result<T, E = CliError> = std::result::Result<T, E>;
