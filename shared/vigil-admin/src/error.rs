//! The operator actions' error type: what was wrong and what to do, and whether a retry can
//! help. Each front end maps it to its own form (the CLI to exit codes).

use vigil_aws::StoreError;

/// Everything an operator action can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Input that cannot be used: the message names the field, what was wrong and what to do.
    /// Nothing was changed.
    #[error("{0}")]
    Invalid(String),
    /// The order, zone or open alert named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The record is not of the caller's force (docs/FORCES.md), or the action is national
    /// administrators' alone. Nothing was changed or shown.
    #[error("{0}")]
    Forbidden(String),
    /// The change would replace something that exists, and replacing was not asked for.
    /// Nothing was changed.
    #[error("{0}")]
    Conflict(String),
    /// The store failed (DynamoDB, KMS).
    #[error("{}: {source} ({})", .context, retry_hint(.source.is_retryable()))]
    Store {
        /// What was being done.
        context: String,
        /// The adapter's error.
        #[source]
        source: StoreError,
    },
}

/// How an error says whether retrying can help.
pub fn retry_hint(retryable: bool) -> &'static str {
    if retryable {
        "transient: retry later"
    } else {
        "not transient: retrying will not help"
    }
}

impl AdminError {
    /// Whether retrying the same action later can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            AdminError::Store { source, .. } => source.is_retryable(),
            _ => false,
        }
    }

    /// A store error with what was being done.
    pub fn store(context: impl Into<String>) -> impl FnOnce(StoreError) -> AdminError {
        let context = context.into();
        move |source| AdminError::Store { context, source }
    }
}

/// Result with [`AdminError`].
pub type Result<T, E = AdminError> = std::result::Result<T, E>;
