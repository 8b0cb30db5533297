//! The anchor Lambda's wiring: configuration, clients and the forces once, then one run per
//! batch of the audit table's stream (Lambda's event source mapping), at the wall clock.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use vigil_anchor::{Ports, handle};
use vigil_aws::Aws;
use vigil_aws::metrics::EmfMetrics;

#[tokio::main]
async fn main() -> Result<(), Error> {
    vigil_aws::logs::init();

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
