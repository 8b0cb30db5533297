//! The console API Lambda's wiring: configuration, clients and the forces once, then the
//! router for every request API Gateway's HTTP API passes on (its JWT authorizer has verified
//! the Cognito token by then).

use lambda_http::Error;
use std::sync::Arc;
use vigil_aws::Aws;
use vigil_console::auth::ApiGatewayJwt;
use vigil_console::{Console, router};

#[tokio::main]
async fn main() -> Result<(), Error> {
    vigil_aws::logs::init();

    let aws = Aws::from_env().await?;
    let parameter =
        aws.config.forces_parameter.clone().ok_or(
            "VIGIL_FORCES_PARAMETER is not set: the console needs the deployment's forces",
        )?;
    let forces = aws.load_forces(&parameter).await?;
    let console = Console {
        store: aws.store(),
        mac: aws.destination_mac()?,
        forces: Arc::new(forces),
        auth: Arc::new(ApiGatewayJwt),
        now_ms: Arc::new(|| chrono::Utc::now().timestamp_millis()),
    };
    lambda_http::run(router(console)).await
}
