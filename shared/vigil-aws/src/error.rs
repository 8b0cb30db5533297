//! The adapters' error type: what went wrong and whether trying again can help.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

/// An error from a port. [`StoreError::is_retryable`] tells the handler whether to ask for a
/// retry (throttling, outage) or to give up on the message (bad data).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The service throttled the request; back off and retry.
    #[error("{service} throttled the request ({code}); retry later")]
    Throttled {
        /// Which service.
        service: &'static str,
        /// The service's error code.
        code: String,
    },
    /// The service could not be reached or failed; retry later.
    #[error("{service} is unavailable: {detail}")]
    Unavailable {
        /// Which service.
        service: &'static str,
        /// What happened.
        detail: String,
    },
    /// A conditional write lost a race; re-read and try again.
    #[error("conditional write on {what} lost a race; re-read and retry")]
    Conflict {
        /// What was being written.
        what: String,
    },
    /// A stored item cannot be read back: a bug or manual tampering, not a transient failure.
    #[error("stored item {what} is corrupt: {detail}")]
    Corrupt {
        /// Which item.
        what: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The request was refused for a reason a retry will not fix (permissions, validation).
    #[error("{service} refused the request ({code}): {detail}")]
    Rejected {
        /// Which service.
        service: &'static str,
        /// The service's error code.
        code: String,
        /// Its message.
        detail: String,
    },
    /// The configuration is incomplete.
    #[error("configuration: {0}")]
    Config(String),
}

impl StoreError {
    /// Whether retrying the same operation later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Throttled { .. } | Self::Unavailable { .. } | Self::Conflict { .. }
        )
    }

    /// A short code for metrics and logs: `throttled`, `unavailable`, `conflict`, `corrupt`,
    /// `rejected` or `config`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Throttled { .. } => "throttled",
            Self::Unavailable { .. } => "unavailable",
            Self::Conflict { .. } => "conflict",
            Self::Corrupt { .. } => "corrupt",
            Self::Rejected { .. } => "rejected",
            Self::Config(_) => "config",
        }
    }

    /// A corrupt-item error.
    pub fn corrupt(what: impl Into<String>, detail: impl ToString) -> Self {
        Self::Corrupt {
            what: what.into(),
            detail: detail.to_string(),
        }
    }
}

const THROTTLE_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "ThrottledException",
    "RequestThrottled",
];

const CONFLICT_CODES: &[&str] = &[
    "ConditionalCheckFailedException",
    "TransactionCanceledException",
    "TransactionConflictException",
];

const UNAVAILABLE_CODES: &[&str] = &[
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "InternalError",
    // The IoT data plane's (the commander's) 503 and 500.
    "ServiceUnavailableException",
    "InternalFailureException",
];

/// Classifies an SDK error of any AWS service. `what` names the item for conflicts.
pub fn classify<E, R>(service: &'static str, what: &str, err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    match &err {
        SdkError::ServiceError(se) => {
            let e = se.err();
            let code = e.code().unwrap_or("Unknown").to_owned();
            let detail = e.message().unwrap_or_default().to_owned();
            if THROTTLE_CODES.contains(&code.as_str()) {
                StoreError::Throttled { service, code }
            } else if CONFLICT_CODES.contains(&code.as_str()) {
                StoreError::Conflict {
                    what: what.to_owned(),
                }
            } else if UNAVAILABLE_CODES.contains(&code.as_str()) {
                StoreError::Unavailable {
                    service,
                    detail: format!("{code}: {detail}"),
                }
            } else {
                StoreError::Rejected {
                    service,
                    code,
                    detail,
                }
            }
        }
        SdkError::ConstructionFailure(_) => {
            StoreError::Config(format!("{service}: request could not be built: {err:?}"))
        }
        // Timeouts, connection failures and unreadable responses are transient. The whole
        // chain, not just "dispatch failure": the cause (connection refused, timeout, DNS) is
        // what an operator needs.
        _ => StoreError::Unavailable {
            service,
            detail: chain(&err),
        },
    }
}

/// An error and its sources, `outer: inner: root`, each said once.
fn chain(err: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![err.to_string()];
    let mut source = err.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryability() {
        assert!(
            StoreError::Throttled {
                service: "dynamodb",
                code: "x".into()
            }
            .is_retryable()
        );
        assert!(StoreError::Conflict { what: "x".into() }.is_retryable());
        assert!(
            StoreError::Unavailable {
                service: "sqs",
                detail: "x".into()
            }
            .is_retryable()
        );
        assert!(!StoreError::corrupt("x", "y").is_retryable());
        assert!(
            !StoreError::Rejected {
                service: "sns",
                code: "AuthorizationError".into(),
                detail: String::new()
            }
            .is_retryable()
        );
        assert!(!StoreError::Config("x".into()).is_retryable());
    }
}
