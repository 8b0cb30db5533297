//! The AWS side of a command, built from the environment in one place: [`Ports::from_env`]
//! reads the configuration (`VIGIL_STAGE`, ...) and the SDK settings once, and hands out the
//! store, the SMS destination key, the IoT registry and the operator's identity. Commands that
//! need no AWS (`tags csr`, `evidence verify`) never build it.

use crate::TAG_POLICY;
use crate::error::{CliError, Result};
use crate::tags::IotRegistry;
use vigil_admin::{Caller, Operator, Scope};
use vigil_aws::{Aws, DynamoStore, KmsDestinationMac};
use vigil_core::forces::Forces;

/// Whether [`Ports::caller`] says on standard error whom a command acts for: yes for people,
/// no with `--json` (standard error then holds only a JSON error, for scripts).
pub static ANNOUNCE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// What a command works with, read from the environment once.
pub struct Ports {
    aws: Aws,
    /// The DynamoDB store: orders, zones, alerts, the audit log.
    pub store: DynamoStore,
    identity: Identity,
}

/// Where the operator's identity comes from.
enum Identity {
    /// AWS: the caller's IAM principal, from STS.
    Sts,
    /// A local emulator (`AWS_ENDPOINT_URL` set), where identities are not real: the values of
    /// `VIGIL_OPERATOR` and `VIGIL_FORCE`, which stand in for one.
    Local {
        operator: Option<String>,
        force: Option<String>,
    },
}

impl Ports {
    /// Reads the configuration, the SDK settings and where the operator's identity comes from.
    ///
    /// Fails with [`CliError::Invalid`] when the configuration is not valid (it names the
    /// variable).
    pub async fn from_env() -> Result<Ports> {
        let aws = Aws::from_env()
            .await
            .map_err(|e| CliError::Invalid(e.to_string()))?;
        let store = aws.store();
        let identity = match std::env::var_os("AWS_ENDPOINT_URL") {
            Some(_) => Identity::Local {
                operator: std::env::var("VIGIL_OPERATOR").ok(),
                force: std::env::var("VIGIL_FORCE").ok(),
            },
            None => Identity::Sts,
        };
        Ok(Ports {
            aws,
            store,
            identity,
        })
    }

    /// Who is acting, and for whom: in AWS the caller's IAM principal from STS, its scope from
    /// the role it assumed (`vigil-<stage>-operator-<force>` or `vigil-<stage>-national`);
    /// against a local emulator the `VIGIL_OPERATOR` and `VIGIL_FORCE` stand-ins. Printed on
    /// standard error (`acting for force met as local:op-7`).
    ///
    /// Fails with [`CliError::Admin`] (invalid) when there is no identity or no force: every
    /// change is recorded with one, so none is made without it.
    pub async fn caller(&self) -> Result<Caller> {
        let caller = match &self.identity {
            Identity::Local { operator, force } => {
                let operator = Operator::local(operator.as_deref())?;
                let scope = match force.as_deref().map(str::trim) {
                    Some(f) if !f.is_empty() => Scope::parse(f)?,
                    _ => {
                        return Err(CliError::Invalid(
                            "VIGIL_FORCE is required against a local emulator: the force you act \
                             for (e.g. met), or `national`; it stands in for the IAM role AWS \
                             gives every operator (docs/FORCES.md)"
                                .into(),
                        ));
                    }
                };
                Caller::new(operator, scope)
            }
            Identity::Sts => {
                let arn = self.caller_arn().await?;
                let scope = scope_of_role(&arn, &self.aws.config.stage)?;
                Caller::new(Operator::Iam(arn), scope)
            }
        };
        if ANNOUNCE.load(std::sync::atomic::Ordering::Relaxed) {
            eprintln!(
                "acting for {} as {}",
                caller.scope.describe(),
                caller.operator.label()
            );
        }
        Ok(caller)
    }

    async fn caller_arn(&self) -> Result<String> {
        let who = aws_sdk_sts::Client::new(&self.aws.sdk)
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| {
                CliError::Invalid(format!(
                    "could not tell who you are (sts:GetCallerIdentity): {}; every change is \
                     recorded with the caller's identity",
                    aws_sdk_sts::error::DisplayErrorContext(e)
                ))
            })?;
        who.arn()
            .map(str::to_owned)
            .ok_or_else(|| CliError::Invalid("sts:GetCallerIdentity returned no ARN".into()))
    }

    /// The anchors bucket (`VIGIL_ANCHOR_BUCKET`).
    pub fn anchors(&self) -> Result<vigil_aws::S3AnchorBucket> {
        self.aws
            .anchor_bucket()
            .map_err(|e| CliError::Invalid(e.to_string()))
    }

    /// The evidence signing key (`VIGIL_EVIDENCE_KEY`).
    pub fn evidence_signer(&self) -> Result<vigil_aws::KmsEvidenceSigner> {
        self.aws
            .evidence_signer()
            .map_err(|e| CliError::Invalid(e.to_string()))
    }

    /// The forces this deployment serves: the file `VIGIL_FORCES_FILE` names (the local stack
    /// sets it to `infra/forces.json`), else the parameter `VIGIL_FORCES_PARAMETER` (default
    /// `/vigil/<stage>/forces`, written by the CDK app).
    ///
    /// Fails with [`CliError::Invalid`] when it cannot be read or is not valid.
    pub async fn forces(&self) -> Result<Forces> {
        if let Some(path) = std::env::var_os("VIGIL_FORCES_FILE") {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                CliError::Invalid(format!(
                    "VIGIL_FORCES_FILE {}: {e}",
                    std::path::Path::new(&path).display()
                ))
            })?;
            Forces::parse(&text).map_err(|e| CliError::Invalid(e.to_string()))
        } else {
            let name = self
                .aws
                .config
                .forces_parameter
                .clone()
                .unwrap_or_else(|| format!("/vigil/{}/forces", self.aws.config.stage));
            self.aws
                .load_forces(&name)
                .await
                .map_err(|e| CliError::Invalid(e.to_string()))
        }
    }

    /// The keyed hash of SMS destinations (KMS).
    ///
    /// Fails with [`CliError::Invalid`] naming `VIGIL_DESTINATION_MAC_KEY` when it is not set.
    pub fn destination_mac(&self) -> Result<KmsDestinationMac> {
        self.aws
            .destination_mac()
            .map_err(|e| CliError::Invalid(e.to_string()))
    }

    /// The tags' registry on AWS IoT.
    pub fn tag_registry(&self) -> IotRegistry {
        IotRegistry::new(aws_sdk_iot::Client::new(&self.aws.sdk))
    }

    /// The dead-letter queues of the stage (`vigil dlq`).
    pub fn dead_letter_queues(&self) -> crate::dlq::Queues {
        crate::dlq::Queues::new(&self.aws)
    }

    /// The physical name of the tags' IoT policy, `vigil-<stage>-tag`.
    pub fn tag_policy(&self) -> String {
        self.aws.config.name(TAG_POLICY)
    }

    /// The physical name of victims' devices' IoT policy, `vigil-<stage>-victim-device`.
    pub fn device_policy(&self) -> String {
        self.aws.config.name("victim-device")
    }
}

/// The scope an assumed role gives: `arn:aws:sts::<account>:assumed-role/<role>/<session>` with
/// `<role>` `vigil-<stage>-operator-<force>` (that force) or `vigil-<stage>-national`.
///
/// Fails with [`CliError::Invalid`] for any other principal: the force is never taken from a
/// flag.
pub fn scope_of_role(arn: &str, stage: &str) -> Result<Scope> {
    let role = arn
        .split_once(":assumed-role/")
        .and_then(|(_, rest)| rest.split('/').next())
        .unwrap_or_default();
    let prefix = format!("vigil-{stage}-");
    let scope = match role.strip_prefix(&prefix) {
        Some("national") => Some(Scope::National),
        Some(rest) => rest
            .strip_prefix("operator-")
            .and_then(|f| Scope::parse(f).ok())
            .filter(|s| *s != Scope::National),
        None => None,
    };
    scope.ok_or_else(|| {
        CliError::Invalid(format!(
            "{arn} is not a Vigil operator: assume the role {prefix}operator-<force> of your \
             force, or {prefix}national (docs/FORCES.md)"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_force_comes_from_the_assumed_role() {
        let arn = |role: &str| format!("arn:aws:sts::123456789012:assumed-role/{role}/alice");
        assert_eq!(
            scope_of_role(&arn("vigil-prod-operator-met"), "prod").unwrap(),
            Scope::parse("met").unwrap()
        );
        assert_eq!(
            scope_of_role(&arn("vigil-prod-national"), "prod").unwrap(),
            Scope::National
        );
        for bad in [
            arn("vigil-dev-operator-met"),
            arn("vigil-prod-operator-national"),
            arn("Admin"),
            "arn:aws:iam::123456789012:user/alice".to_owned(),
        ] {
            assert!(scope_of_role(&bad, "prod").is_err(), "{bad}");
        }
    }
}
