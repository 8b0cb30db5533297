//! The CLI's error type, its exit codes, and the hint printed when AWS or the emulator could
//! not be reached.

use vigil_admin::AdminError;
use vigil_admin::error::retry_hint;

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
/// Refused: the record is not of the caller's force, or the action is national
/// administrators' alone (nothing was shown or changed; docs/FORCES.md).
pub const EXIT_FORBIDDEN: i32 = 6;

/// Everything a command can fail with. [`CliError::exit_code`] maps it to the documented
/// exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// An operator action failed (vigil-admin): invalid input, not found, a conflict, or the
    /// store.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// A command line, a file or a CSR that cannot be used: the message says what was wrong
    /// and what to do.
    #[error("{0}")]
    Invalid(String),
    /// An IoT thing named does not exist.
    #[error("{0}")]
    NotFound(String),
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

impl CliError {
    /// The documented exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Admin(e) => match e {
                AdminError::Invalid(_) => EXIT_INVALID,
                AdminError::NotFound(_) => EXIT_NOT_FOUND,
                AdminError::Conflict(_) => EXIT_CONFLICT,
                AdminError::Forbidden(_) => EXIT_FORBIDDEN,
                AdminError::Store { .. } => EXIT_AWS,
            },
            CliError::Invalid(_) | CliError::Io { .. } => EXIT_INVALID,
            CliError::NotFound(_) => EXIT_NOT_FOUND,
            CliError::Aws { .. } => EXIT_AWS,
            CliError::Tampered(_) => EXIT_VERIFY,
            CliError::RolledBack { cause, .. } => cause.exit_code(),
        }
    }

    /// A short machine-readable kind for `--json` error output.
    pub fn kind(&self) -> &'static str {
        match self {
            CliError::Admin(e) => match e {
                AdminError::Invalid(_) => "invalid",
                AdminError::NotFound(_) => "not_found",
                AdminError::Conflict(_) => "conflict",
                AdminError::Forbidden(_) => "forbidden",
                AdminError::Store { .. } => "aws",
            },
            CliError::Invalid(_) => "invalid",
            CliError::NotFound(_) => "not_found",
            CliError::Aws { .. } => "aws",
            CliError::Io { .. } => "io",
            CliError::Tampered(_) => "verification_failed",
            CliError::RolledBack { cause, .. } => cause.kind(),
        }
    }

    /// Whether retrying the same command later can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            CliError::Admin(e) => e.is_retryable(),
            CliError::Aws { retryable, .. } => *retryable,
            CliError::RolledBack { cause, not_undone } => {
                not_undone.is_empty() && cause.is_retryable()
            }
            _ => false,
        }
    }

    /// An I/O error with what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> CliError {
        let context = context.into();
        move |source| CliError::Io { context, source }
    }

    /// For an AWS endpoint that could not be reached: which one was tried, and how to start
    /// the local one.
    pub fn unreachable_hint(&self) -> Option<String> {
        let text = self.to_string();
        let unreachable = self.is_retryable()
            && ["dispatch failure", "connect", "timed out", "timeout"]
                .iter()
                .any(|w| text.contains(w));
        if !unreachable {
            return None;
        }
        // DynamoDB has its own endpoint when the stack runs DynamoDB Local: name both.
        let dynamodb = std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
            .ok()
            .filter(|d| !d.is_empty() && std::env::var("AWS_ENDPOINT_URL").ok().as_ref() != Some(d))
            .map(|d| format!(" (DynamoDB: AWS_ENDPOINT_URL_DYNAMODB={d})"))
            .unwrap_or_default();
        Some(match std::env::var("AWS_ENDPOINT_URL") {
            Ok(url) if !url.is_empty() => format!(
                "vigil: nothing answered at AWS_ENDPOINT_URL={url}{dynamodb}. For the local stack, start the \
                 emulator (`cargo run -p vigil-local -- up`, or `vigil-stack up` for the whole \
                 pipeline) and load its environment: `set -a; . .local/emulator.env; set +a` \
                 (or `.local/mqtt.env`)."
            ),
            _ => format!(
                "vigil: AWS_ENDPOINT_URL is not set, so AWS itself was tried (region {}). For the \
                 local stack, start the emulator (`cargo run -p vigil-local -- up`) and load its \
                 environment: `set -a; . .local/emulator.env; set +a`.",
                std::env::var("AWS_REGION")
                    .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
                    .unwrap_or_else(|_| "not set".to_owned())
            ),
        })
    }
}

/// Result with [`CliError`].
pub type Result<T, E = CliError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_errors_keep_their_exit_codes_kinds_and_messages() {
        let cases = [
            (
                AdminError::Invalid("order_id: bad".into()),
                EXIT_INVALID,
                "invalid",
            ),
            (
                AdminError::NotFound("no order o-1".into()),
                EXIT_NOT_FOUND,
                "not_found",
            ),
            (
                AdminError::Conflict("order o-1 already has a zone home".into()),
                EXIT_CONFLICT,
                "conflict",
            ),
            (
                AdminError::Store {
                    context: "reading order o-1".into(),
                    source: vigil_aws::StoreError::Unavailable {
                        service: "DynamoDB",
                        detail: "dispatch failure".into(),
                    },
                },
                EXIT_AWS,
                "aws",
            ),
        ];
        for (admin, code, kind) in cases {
            let message = admin.to_string();
            let retryable = admin.is_retryable();
            let e = CliError::from(admin);
            assert_eq!((e.exit_code(), e.kind()), (code, kind), "{e}");
            assert_eq!(e.to_string(), message);
            assert_eq!(e.is_retryable(), retryable);
        }
        assert!(
            CliError::from(AdminError::Store {
                context: "reading order o-1".into(),
                source: vigil_aws::StoreError::Unavailable {
                    service: "DynamoDB",
                    detail: "dispatch failure".into(),
                },
            })
            .to_string()
            .ends_with("(transient: retry later)")
        );
    }
}
