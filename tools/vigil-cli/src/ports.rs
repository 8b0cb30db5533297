//! The AWS side of a command, built from the environment in one place: [`Ports::from_env`]
//! reads the configuration (`VIGIL_STAGE`, ...) and the SDK settings once, and hands out the
//! store, the SMS destination key, the IoT registry and the operator's identity. Commands that
//! need no AWS (`tags csr`, `evidence verify`) never build it.

use crate::TAG_POLICY;
use crate::error::{CliError, Result};
use crate::tags::IotRegistry;
use vigil_admin::Operator;
use vigil_aws::{Aws, DynamoStore, KmsDestinationMac};

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
    /// A local emulator (`AWS_ENDPOINT_URL` set), where identities are not real: the value of
    /// `VIGIL_OPERATOR`, which stands in for one.
    Local(Option<String>),
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
            Some(_) => Identity::Local(std::env::var("VIGIL_OPERATOR").ok()),
            None => Identity::Sts,
        };
        Ok(Ports {
            aws,
            store,
            identity,
        })
    }

    /// Who is making changes: the IAM principal from STS; against a local emulator the
    /// `VIGIL_OPERATOR` stand-in.
    ///
    /// Fails with [`CliError::Admin`] (invalid) when there is no identity: every change is
    /// recorded with one, so none is made without it.
    pub async fn operator(&self) -> Result<Operator> {
        if let Identity::Local(name) = &self.identity {
            return Ok(Operator::local(name.as_deref())?);
        }
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
            .map(|arn| Operator::Iam(arn.to_owned()))
            .ok_or_else(|| CliError::Invalid("sts:GetCallerIdentity returned no ARN".into()))
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
