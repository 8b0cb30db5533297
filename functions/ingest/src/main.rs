//! Lambda wiring for the ingest function: build the clients once, then serve events.

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use vigil_aws::Aws;
use vigil_aws::metrics::EmfMetrics;
use vigil_ingest::{IngestError, Ports, handle};

fn diagnostic(e: IngestError) -> Diagnostic {
    Diagnostic {
        error_type: e.error_type().to_owned(),
        error_message: e.to_string(),
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracing_subscriber::fmt()
        .json()
        .with_ansi(false)
        .without_time()
        .with_current_span(false)
        .init();
    let aws = Aws::from_env().await?;
    let ports = Ports::new(aws.store(), aws.queue()?, EmfMetrics);
    let ports = &ports;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            handle(event.payload, ports)
                .await
                .map(|outcome| format!("{outcome:?}"))
                .map_err(diagnostic)
        },
    ))
    .await
}
