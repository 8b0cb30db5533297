//! [`InvokeApi`]: the Lambda Invoke API of the local stack's functions, so that clients that
//! invoke a function in AWS (the AWS CLI's `lambda invoke`, `vigil dlq redrive --queue
//! rule-errors`) do the same here, at `AWS_ENDPOINT_URL_LAMBDA`.
//!
//! `POST /2015-03-31/functions/{name}/invocations` with the event as the body runs the
//! function the way the bridge's rule action does (in-process, or through the Invoke API the
//! stack was given): `vigil-<stage>-ingest` (or `ingest`). `X-Amz-Invocation-Type: Event`
//! answers 202 once the function has run; `RequestResponse` (the default) 200. A function
//! error is answered as Lambda does: 200 with `X-Amz-Function-Error: Unhandled` and
//! `{"errorType", "errorMessage"}`. Unknown functions get 404 `ResourceNotFoundException`.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use vigil_local::http::{header, json_response, read_request};
use vigil_mqtt::{RuleAction, RuleOutput};

/// The running Invoke API; stops when dropped.
pub struct InvokeApi {
    url: String,
    task: JoinHandle<()>,
}

impl InvokeApi {
    /// Serves `functions` (name -> how to run it) on a free loopback port.
    ///
    /// Fails if no port can be bound.
    pub async fn start(functions: Vec<(String, Arc<dyn RuleAction>)>) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
        let functions = Arc::new(functions);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let functions = functions.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve(stream, &functions).await {
                        tracing::debug!(error = %e, "invoke API connection ended");
                    }
                });
            }
        });
        Ok(InvokeApi { url, task })
    }

    /// Its URL (`AWS_ENDPOINT_URL_LAMBDA`).
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for InvokeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    mut stream: TcpStream,
    functions: &[(String, Arc<dyn RuleAction>)],
) -> std::io::Result<()> {
    let mut buffered = Vec::new();
    while let Some((head, body)) = read_request(&mut stream, &mut buffered).await? {
        let response = respond(&head, &body, functions).await;
        stream.write_all(&response).await?;
    }
    Ok(())
}

async fn respond(head: &str, body: &[u8], functions: &[(String, Arc<dyn RuleAction>)]) -> Vec<u8> {
    let path = head
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .split('?')
        .next()
        .unwrap_or_default();
    let name = path
        .strip_prefix("/2015-03-31/functions/")
        .and_then(|rest| rest.strip_suffix("/invocations"))
        .map(|n| n.rsplit(':').next().unwrap_or(n)); // an ARN ends with the name
    let Some(name) = name else {
        return refused(
            404,
            "ResourceNotFoundException",
            &format!("no route {path}"),
        );
    };
    let Some((_, action)) = functions.iter().find(|(n, _)| n == name) else {
        return refused(
            404,
            "ResourceNotFoundException",
            &format!("Function not found: {name}"),
        );
    };
    let event: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return refused(400, "InvalidRequestContentException", &e.to_string()),
    };
    let asynchronous = header(head, "x-amz-invocation-type") == Some("Event");
    match action.execute(&RuleOutput::Json(event)).await {
        Ok(()) if asynchronous => json_response(202, &[], &Value::Null),
        Ok(()) => json_response(200, &[], &Value::Null),
        Err(e) => json_response(
            200,
            &[("X-Amz-Function-Error", "Unhandled")],
            &error(
                if e.retryable {
                    "Retryable"
                } else {
                    "Permanent"
                },
                &e.message,
            ),
        ),
    }
}

/// A function's error, as Lambda returns it in the payload.
fn error(kind: &str, message: &str) -> Value {
    json!({ "errorType": kind, "errorMessage": message })
}

/// A refused request, as the Lambda API answers it (`x-amzn-ErrorType`, `Type`/`message`).
fn refused(status: u16, kind: &str, message: &str) -> Vec<u8> {
    json_response(
        status,
        &[("x-amzn-ErrorType", kind)],
        &json!({ "Type": "User", "message": message }),
    )
}
