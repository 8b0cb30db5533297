//! The anchor Lambda's wiring: configuration, clients and the forces once, then one run per
//! batch of the audit table's stream (Lambda's event source mapping), at the wall clock.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use tracing_subscriber::EnvFilter;
use vigil_anchor::{Ports, handle};
use vigil_aws::Aws;
use vigil_aws::metrics::EmfMetrics;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .json()
        .with_ansi(false)
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_current_span(false)
        .init();

    let aws = Aws::from_env().await?;
    let ports = Ports {
        bucket: aws.anchor_bucket()?,
        orders: aws.store(),
        metrics: EmfMetrics,
        forces: aws.function_forces().await,
    };
    let ports = &ports;

    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let now_ms = chrono::Utc::now().timestamp_millis();
            Ok::<serde_json::Value, Error>(handle(&event.payload, ports, now_ms).await.response())
        },
    ))
    .await
}
