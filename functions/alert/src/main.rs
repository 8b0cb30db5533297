//! The alert Lambda's wiring: configuration and clients once, then the SQS handler.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use vigil_alert::{Ports, handle_batch};
use vigil_aws::Aws;
use vigil_aws::metrics::EmfMetrics;

#[tokio::main]
async fn main() -> Result<(), Error> {
    vigil_aws::logs::init();

    let aws = Aws::from_env().await?;
    let ports = Ports {
        store: aws.store(),
        notifier: aws.notifier()?,
        destination_mac: aws.destination_mac()?,
        metrics: EmfMetrics,
        commander: aws.commander(),
        sms_countries: aws.config.sms_countries.clone(),
        forces: aws.function_forces().await,
    };
    let ports = &ports;

    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let now_ms = chrono::Utc::now().timestamp_millis();
        Ok::<SqsBatchResponse, Error>(handle_batch(event.payload, ports, now_ms).await)
    }))
    .await
}
