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
}

impl Config {
    /// Reads `VIGIL_STAGE` (default `local`), `VIGIL_ALERTS_QUEUE_URL`,
    /// `VIGIL_OPERATORS_TOPIC_ARN` and `VIGIL_QUARANTINE_RETENTION_DAYS` (default 30).
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
        let quarantine_retention_days = match get("VIGIL_QUARANTINE_RETENTION_DAYS") {
            Some(v) => v.parse().map_err(|_| {
                StoreError::Config(format!(
                    "VIGIL_QUARANTINE_RETENTION_DAYS {v:?} is not a number of days"
                ))
            })?,
            None => 30,
        };
        Ok(Config {
            stage,
            alerts_queue_url: get("VIGIL_ALERTS_QUEUE_URL"),
            operators_topic_arn: get("VIGIL_OPERATORS_TOPIC_ARN"),
            quarantine_retention_days,
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

    /// The operators' topic ARN, or a configuration error naming the variable.
    pub fn operators_topic_arn(&self) -> Result<&str, StoreError> {
        self.operators_topic_arn
            .as_deref()
            .ok_or_else(|| StoreError::Config("VIGIL_OPERATORS_TOPIC_ARN is not set".into()))
    }
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

    #[test]
    fn defaults_and_names() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.stage, "local");
        assert_eq!(c.name("zone-cells"), "vigil-local-zone-cells");
        assert_eq!(c.quarantine_retention_days, 30);
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
            cfg(&[("VIGIL_QUARANTINE_RETENTION_DAYS", "x")])
                .unwrap_err()
                .to_string()
                .contains("number of days")
        );
    }
}
