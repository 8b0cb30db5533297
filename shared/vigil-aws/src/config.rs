//! The one configuration loader for every function and tool.
//!
//! Resource names follow one rule, `vigil-<stage>-<logical>` (the same as the CDK app and the
//! local harness, from `infra/resources.json`); the stage comes from `VIGIL_STAGE`. The
//! endpoint of every AWS client comes from `AWS_ENDPOINT_URL` (read by aws-config), so the same
//! binaries run against AWS, moto or LocalStack.

use crate::error::StoreError;
use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use std::time::Duration;

/// Where everything is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Deployment stage: `local`, `dev`, `prod`, ...
    pub stage: String,
    /// URL of the alert queue.
    pub alerts_queue_url: Option<String>,
    /// ARN of the operators' topic.
    pub operators_topic_arn: Option<String>,
    /// How long quarantined messages are kept, days.
    pub quarantine_retention_days: u32,
    /// How long a silent tag's history is kept after its last accepted message, days.
    pub history_retention_days: u32,
    /// Countries whose phone numbers may be texted (ISO 3166 alpha-2), from
    /// `VIGIL_SMS_COUNTRIES`.
    pub sms_countries: Vec<String>,
    /// Alphanumeric SMS sender, where the destination country allows one.
    pub sms_sender_id: Option<String>,
    /// ARN (or id) of the KMS HMAC key for SMS destinations.
    pub destination_mac_key: Option<String>,
    /// The parameter holding the forces' run-time document (`VIGIL_FORCES_PARAMETER`;
    /// docs/FORCES.md); none: `/vigil/<stage>/forces` where a tool needs it, no per-force
    /// topics or routing in the functions.
    pub forces_parameter: Option<String>,
    /// The anchors bucket (`VIGIL_ANCHOR_BUCKET`; docs/EVIDENCE.md).
    pub anchor_bucket: Option<String>,
    /// ARN (or id, or alias) of the KMS key that signs evidence bundles
    /// (`VIGIL_EVIDENCE_KEY`).
    pub evidence_key: Option<String>,
}

impl Config {
    /// Reads `VIGIL_STAGE` (default `local`), `VIGIL_ALERTS_QUEUE_URL`,
    /// `VIGIL_OPERATORS_TOPIC_ARN`, `VIGIL_QUARANTINE_RETENTION_DAYS` (default 30),
    /// `VIGIL_HISTORY_RETENTION_DAYS` (default 30), `VIGIL_SMS_COUNTRIES` (comma-separated,
    /// default `GB`), `VIGIL_SMS_SENDER_ID`, `VIGIL_DESTINATION_MAC_KEY`,
    /// `VIGIL_FORCES_PARAMETER`, `VIGIL_ANCHOR_BUCKET` and `VIGIL_EVIDENCE_KEY`.
    pub fn from_env() -> Result<Config, StoreError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// As [`Config::from_env`], from any key lookup (tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, StoreError> {
        let stage = get("VIGIL_STAGE").unwrap_or_else(|| "local".to_owned());
        if stage.is_empty() || !stage.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(StoreError::Config(format!(
                "VIGIL_STAGE {stage:?} must be letters, digits and '-'"
            )));
        }
        let days = |var: &str| match get(var) {
            Some(v) => v
                .parse::<u32>()
                .map_err(|_| StoreError::Config(format!("{var} {v:?} is not a number of days"))),
            None => Ok(30),
        };
        let sms_countries: Vec<String> = get("VIGIL_SMS_COUNTRIES")
            .unwrap_or_else(|| "GB".to_owned())
            .split(',')
            .map(|c| c.trim().to_ascii_uppercase())
            .filter(|c| !c.is_empty())
            .collect();
        if let Some(bad) = sms_countries
            .iter()
            .find(|c| vigil_core::order::calling_code(c).is_none())
        {
            return Err(StoreError::Config(format!(
                "VIGIL_SMS_COUNTRIES names {bad:?}, which is not a country Vigil knows the calling code of"
            )));
        }
        let non_empty = |v: Option<String>| v.filter(|s| !s.is_empty());
        Ok(Config {
            stage,
            alerts_queue_url: non_empty(get("VIGIL_ALERTS_QUEUE_URL")),
            operators_topic_arn: non_empty(get("VIGIL_OPERATORS_TOPIC_ARN")),
            quarantine_retention_days: days("VIGIL_QUARANTINE_RETENTION_DAYS")?,
            history_retention_days: days("VIGIL_HISTORY_RETENTION_DAYS")?,
            sms_countries,
            sms_sender_id: non_empty(get("VIGIL_SMS_SENDER_ID")),
            destination_mac_key: non_empty(get("VIGIL_DESTINATION_MAC_KEY")),
            forces_parameter: non_empty(get("VIGIL_FORCES_PARAMETER")),
            anchor_bucket: non_empty(get("VIGIL_ANCHOR_BUCKET")),
            evidence_key: non_empty(get("VIGIL_EVIDENCE_KEY")),
        })
    }

    /// The physical name of a logical resource: `vigil-<stage>-<logical>`.
    pub fn name(&self, logical: &str) -> String {
        format!("vigil-{}-{logical}", self.stage)
    }

    /// The alert queue URL, or a configuration error naming the variable.
    pub fn alerts_queue_url(&self) -> Result<&str, StoreError> {
        self.alerts_queue_url
            .as_deref()
            .ok_or_else(|| StoreError::Config("VIGIL_ALERTS_QUEUE_URL is not set".into()))
    }

    /// The SMS destination MAC key, or a configuration error naming the variable.
    pub fn destination_mac_key(&self) -> Result<&str, StoreError> {
        self.destination_mac_key
            .as_deref()
            .ok_or_else(|| StoreError::Config("VIGIL_DESTINATION_MAC_KEY is not set".into()))
    }

    /// The anchors bucket, or a configuration error naming the variable.
    pub fn anchor_bucket(&self) -> Result<&str, StoreError> {
        self.anchor_bucket
            .as_deref()
            .ok_or_else(|| StoreError::Config("VIGIL_ANCHOR_BUCKET is not set".into()))
    }

    /// The evidence signing key, or a configuration error naming the variable.
    pub fn evidence_key(&self) -> Result<&str, StoreError> {
        self.evidence_key
            .as_deref()
            .ok_or_else(|| StoreError::Config("VIGIL_EVIDENCE_KEY is not set".into()))
    }

    /// The operators' topic ARN, or a configuration error naming the variable.
    pub fn operators_topic_arn(&self) -> Result<&str, StoreError> {
        self.operators_topic_arn
            .as_deref()
            .ok_or_else(|| StoreError::Config("VIGIL_OPERATORS_TOPIC_ARN is not set".into()))
    }
}

/// Everything a function or tool needs to build its AWS adapters, read from the environment
/// once: the one place ports are constructed (each binary then takes the adapters it uses).
#[derive(Clone)]
pub struct Aws {
    /// Resource names and settings.
    pub config: Config,
    /// The SDK configuration (region, credentials, endpoint, retries).
    pub sdk: aws_config::SdkConfig,
}

impl Aws {
    /// Reads the configuration and the SDK settings from the environment.
    pub async fn from_env() -> Result<Aws, StoreError> {
        Ok(Aws {
            config: Config::from_env()?,
            sdk: sdk_config().await,
        })
    }

    /// The DynamoDB store.
    pub fn store(&self) -> crate::DynamoStore {
        crate::DynamoStore::new(aws_sdk_dynamodb::Client::new(&self.sdk), &self.config)
    }

    /// The alert queue; fails naming the variable when its URL is not set.
    pub fn queue(&self) -> Result<crate::SqsQueue, StoreError> {
        Ok(crate::SqsQueue::new(
            aws_sdk_sqs::Client::new(&self.sdk),
            self.config.alerts_queue_url()?,
        ))
    }

    /// SMS and the operators' topic; fails naming the variable when the topic is not set.
    pub fn notifier(&self) -> Result<crate::SnsNotifier, StoreError> {
        Ok(crate::SnsNotifier::new(
            aws_sdk_sns::Client::new(&self.sdk),
            self.config.operators_topic_arn()?,
            self.config.sms_sender_id.clone(),
        ))
    }

    /// The forces' run-time document from the parameter `name` (SSM `GetParameter`).
    ///
    /// Fails with [`StoreError::Config`] when it cannot be read or is not valid.
    pub async fn load_forces(&self, name: &str) -> Result<vigil_core::forces::Forces, StoreError> {
        let text = aws_sdk_ssm::Client::new(&self.sdk)
            .get_parameter()
            .name(name)
            .send()
            .await
            .map_err(|e| {
                StoreError::Config(format!(
                    "could not read the forces parameter {name}: {}",
                    aws_sdk_ssm::error::DisplayErrorContext(e)
                ))
            })?
            .parameter
            .and_then(|p| p.value)
            .ok_or_else(|| StoreError::Config(format!("parameter {name} has no value")))?;
        vigil_core::forces::Forces::parse(&text).map_err(|e| StoreError::Config(e.to_string()))
    }

    /// The forces for a function (`VIGIL_FORCES_PARAMETER`): `None` when none is configured,
    /// and when it cannot be read, logged as an error: a broken forces document must never
    /// keep a victim's SMS from going out; every operator event still reaches the national
    /// topic.
    ///
    /// The read is bounded by [`FORCES_READ_BOUND`]: the alert function makes it before it
    /// takes its first event, and the SDK's own retries (5 attempts) could otherwise hold a
    /// cold function's first SMS for many seconds while SSM is slow.
    pub async fn function_forces(&self) -> Option<std::sync::Arc<vigil_core::forces::Forces>> {
        let name = self.config.forces_parameter.as_deref()?;
        forces_within(FORCES_READ_BOUND, self.load_forces(name)).await
    }

    /// The commander (IoT data plane `Publish`).
    pub fn commander(&self) -> crate::IotCommander {
        crate::IotCommander::new(aws_sdk_iotdataplane::Client::new(&self.sdk))
    }

    /// The anchors bucket; fails naming the variable when it is not set.
    pub fn anchor_bucket(&self) -> Result<crate::S3AnchorBucket, StoreError> {
        // An emulator on an endpoint URL (loopback) has no per-bucket host names: path-style
        // requests there; AWS's own endpoints take virtual-hosted ones.
        let emulated =
            self.sdk.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
        let s3 = aws_sdk_s3::config::Builder::from(&self.sdk)
            .force_path_style(emulated)
            .build();
        Ok(crate::S3AnchorBucket::new(
            aws_sdk_s3::Client::from_conf(s3),
            self.config.anchor_bucket()?,
        ))
    }

    /// The evidence signing key; fails naming the variable when it is not set.
    pub fn evidence_signer(&self) -> Result<crate::KmsEvidenceSigner, StoreError> {
        Ok(crate::KmsEvidenceSigner::new(
            aws_sdk_kms::Client::new(&self.sdk),
            self.config.evidence_key()?,
        ))
    }

    /// The keyed hash of SMS destinations; fails naming the variable when the key is not set.
    pub fn destination_mac(&self) -> Result<crate::KmsDestinationMac, StoreError> {
        Ok(crate::KmsDestinationMac::new(
            aws_sdk_kms::Client::new(&self.sdk),
            self.config.destination_mac_key()?,
        ))
    }
}

/// How long a function waits for the forces parameter before starting without it.
pub const FORCES_READ_BOUND: std::time::Duration = std::time::Duration::from_secs(2);

/// The forces `read` gives within `bound`; `None`, logged as an error, when it fails or takes
/// longer (operator events then go to the national topic only; a victim's SMS never waits).
pub async fn forces_within(
    bound: std::time::Duration,
    read: impl std::future::Future<Output = Result<vigil_core::forces::Forces, StoreError>>,
) -> Option<std::sync::Arc<vigil_core::forces::Forces>> {
    let why = match tokio::time::timeout(bound, read).await {
        Ok(Ok(forces)) => return Some(std::sync::Arc::new(forces)),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {} ms", bound.as_millis()),
    };
    tracing::error!(error = %why, "forces unavailable: operator events go to the national topic only, no routing by place");
    None
}

/// The SDK configuration every client is built from: region and credentials from the usual
/// chain, endpoint from `AWS_ENDPOINT_URL`, standard retries (exponential backoff with jitter,
/// which covers throttling) with up to 5 attempts, and bounded timeouts.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(5)
                .with_initial_backoff(Duration::from_millis(50)),
        )
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_attempt_timeout(Duration::from_secs(5))
                .operation_timeout(Duration::from_secs(20))
                .build(),
        )
        .load()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, StoreError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| m.get(k).cloned())
    }

    #[tokio::test]
    async fn a_slow_or_broken_forces_read_never_holds_the_function_up() {
        let forces = include_str!("../../../infra/forces.json");
        let bound = std::time::Duration::from_millis(50);
        let ok = forces_within(bound, async {
            vigil_core::forces::Forces::parse(forces).map_err(|e| StoreError::Config(e.to_string()))
        })
        .await;
        assert!(ok.is_some(), "a prompt answer is used");
        // SSM never answering: started without the forces once the bound has passed.
        let hung = forces_within(bound, std::future::pending()).await;
        assert!(hung.is_none());
        let broken = forces_within(bound, async {
            Err(StoreError::Config("no such parameter".into()))
        })
        .await;
        assert!(broken.is_none());
    }

    #[test]
    fn defaults_and_names() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.stage, "local");
        assert_eq!(c.name("zone-cells"), "vigil-local-zone-cells");
        assert_eq!(c.quarantine_retention_days, 30);
        assert_eq!(c.sms_countries, vec!["GB".to_owned()]);
        assert_eq!(
            cfg(&[("VIGIL_SMS_COUNTRIES", "gb, ie")])
                .unwrap()
                .sms_countries,
            vec!["GB".to_owned(), "IE".to_owned()]
        );
        assert!(
            c.alerts_queue_url()
                .unwrap_err()
                .to_string()
                .contains("VIGIL_ALERTS_QUEUE_URL")
        );
    }

    #[test]
    fn bad_values_are_named() {
        assert!(
            cfg(&[("VIGIL_STAGE", "a b")])
                .unwrap_err()
                .to_string()
                .contains("VIGIL_STAGE")
        );
        assert!(
            cfg(&[("VIGIL_SMS_COUNTRIES", "GB,XX")])
                .unwrap_err()
                .to_string()
                .contains("\"XX\"")
        );
        assert!(
            cfg(&[("VIGIL_QUARANTINE_RETENTION_DAYS", "x")])
                .unwrap_err()
                .to_string()
                .contains("number of days")
        );
    }
}
