//! The alert Lambda's wiring: configuration and clients once, then the SQS handler.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use tracing_subscriber::EnvFilter;
use vigil_alert::{Ports, handle_batch};
use vigil_aws::metrics::EmfMetrics;
use vigil_aws::{Config, DynamoStore, SnsNotifier};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .json()
        .with_ansi(false)
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_current_span(false)
        .init();

    let config = Config::from_env()?;
    let sdk = vigil_aws::config::sdk_config().await;
    let sender_id = std::env::var("VIGIL_SMS_SENDER_ID")
        .ok()
        .filter(|s| !s.is_empty());
    let ports = Ports {
        store: DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), &config),
        notifier: SnsNotifier::new(
            aws_sdk_sns::Client::new(&sdk),
            config.operators_topic_arn()?,
            sender_id,
        ),
        metrics: EmfMetrics,
    };
    let ports = &ports;

    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let now_ms = chrono::Utc::now().timestamp_millis();
        Ok::<SqsBatchResponse, Error>(handle_batch(event.payload, ports, now_ms).await)
    }))
    .await
}
