//! Who makes a change. The identity comes from the caller, never from a flag or a request
//! field: in AWS the IAM principal (the CLI asks STS) or the console's Cognito user (the
//! console API takes it from the request's JWT authorizer); against a local emulator, where
//! there is no real identity, `VIGIL_OPERATOR` or the local console's sign-in stands in for it
//! and the audit says so (`local:` prefix).

use crate::error::{AdminError, Result};

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operator {
    /// An AWS IAM principal (its ARN), from STS.
    Iam(String),
    /// A console user of the deployment's Cognito user pool (their username), as the API
    /// Gateway JWT authorizer verified it.
    Cognito(String),
    /// The local stand-in (`VIGIL_OPERATOR`, or the local console's sign-in), only against a
    /// local emulator.
    Local(String),
}

impl Operator {
    /// The local stand-in from the value of `VIGIL_OPERATOR`.
    ///
    /// Fails with [`AdminError::Invalid`] when it is unset or blank: a change must name
    /// someone.
    pub fn local(name: Option<&str>) -> Result<Operator> {
        match name.map(str::trim) {
            Some(n) if !n.is_empty() && n.len() <= 128 => Ok(Operator::Local(n.to_owned())),
            _ => Err(AdminError::Invalid(
                "VIGIL_OPERATOR is required against a local emulator: it stands in for the IAM \
                 identity that AWS gives every change (docs/CLI.md)"
                    .into(),
            )),
        }
    }

    /// How the audit records it: `iam:<arn>`, `cognito:<username>` or `local:<name>`.
    pub fn label(&self) -> String {
        match self {
            Operator::Iam(arn) => format!("iam:{arn}"),
            Operator::Cognito(name) => format!("cognito:{name}"),
            Operator::Local(name) => format!("local:{name}"),
        }
    }

    /// Whether it names nobody (an empty ARN or name).
    pub fn is_blank(&self) -> bool {
        match self {
            Operator::Iam(name) | Operator::Cognito(name) | Operator::Local(name) => {
                name.trim().is_empty()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_stand_in_must_name_someone() {
        assert!(Operator::local(None).is_err());
        assert!(Operator::local(Some("  ")).is_err());
        assert_eq!(Operator::local(Some("op-7")).unwrap().label(), "local:op-7");
        assert_eq!(
            Operator::Iam("arn:aws:iam::1:user/a".into()).label(),
            "iam:arn:aws:iam::1:user/a"
        );
    }
}
