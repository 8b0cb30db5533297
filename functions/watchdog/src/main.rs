//! The watchdog Lambda's wiring: configuration and clients once, then one run per scheduled
//! event (EventBridge, every minute), at the wall clock.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use vigil_aws::Aws;
use vigil_aws::metrics::EmfMetrics;
use vigil_watchdog::{Ports, run};

#[tokio::main]
async fn main() -> Result<(), Error> {
    vigil_aws::logs::init();

    let aws = Aws::from_env().await?;
    let ports = Ports {
        store: aws.store(),
        queue: aws.queue()?,
        metrics: EmfMetrics,
    };
    let ports = &ports;

    lambda_runtime::run(service_fn(
        move |_event: LambdaEvent<serde_json::Value>| async move {
            let now_ms = chrono::Utc::now().timestamp_millis();
            let outcome = run(ports, now_ms).await?;
            Ok::<serde_json::Value, Error>(serde_json::json!({
                "minutes": outcome.minutes.len(),
                "checked": outcome.checked,
                "started": outcome.started,
                "ended": outcome.ended,
            }))
        },
    ))
    .await
}
