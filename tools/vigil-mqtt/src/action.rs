//! What a rule does with its output: [`RuleAction`] and the three actions Vigil's rules use
//! locally. Which rule gets which action is [`RuleTargets`] (the same mapping the CDK app
//! makes: `ingest.sql` invokes the ingest Lambda). The DynamoDBv2 action is kept for rules
//! that write a table directly; Vigil's own rules do not (the tag's history is written by
//! ingest, from accepted fixes only: docs/SAFETY.md).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;

use crate::sql::RuleOutput;

/// A boxed future of an action.
pub type ActionFuture<'a> = Pin<Box<dyn Future<Output = Result<(), ActionError>> + Send + 'a>>;

/// Why an action failed, and whether trying again can help (IoT Core retries a Lambda invoke
/// that was throttled; a poison message is not retried).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ActionError {
    /// What failed.
    pub message: String,
    /// Whether a retry can help.
    pub retryable: bool,
}

impl ActionError {
    fn permanent(message: impl Into<String>) -> ActionError {
        ActionError {
            message: message.into(),
            retryable: false,
        }
    }
}

/// One rule action: receives the rule's output for one message.
pub trait RuleAction: Send + Sync {
    /// A short description for logs, e.g. `lambda ingest (in-process)`.
    fn describe(&self) -> String;
    /// Runs the action on one output.
    fn execute<'a>(&'a self, output: &'a RuleOutput) -> ActionFuture<'a>;
}

/// The rule's output as the Lambda event IoT Core sends: the JSON document (a binary output is
/// sent as a base64 string, which is how IoT Core hands non-JSON to Lambda).
/// The event a Lambda action invokes its function with: the rule's JSON output, or a binary
/// output base64-encoded.
pub fn lambda_event(output: &RuleOutput) -> Value {
    match output {
        RuleOutput::Json(v) => v.clone(),
        RuleOutput::Binary(b) => {
            use base64::Engine;
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
    }
}

/// A boxed async Lambda handler: event in, result or an error.
pub type LambdaFn = Arc<
    dyn Fn(Value) -> Pin<Box<dyn Future<Output = Result<Value, ActionError>> + Send>> + Send + Sync,
>;

/// Lambda action, in-process: calls a handler function directly (for tests and the local
/// stack, where the functions run inside the same process).
#[derive(Clone)]
pub struct InProcessLambda {
    name: String,
    handler: LambdaFn,
}

impl InProcessLambda {
    /// Wraps `handler` as the Lambda function `name`.
    pub fn new<F, Fut>(name: impl Into<String>, handler: F) -> InProcessLambda
    where
        F: Fn(Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, ActionError>> + Send + 'static,
    {
        InProcessLambda {
            name: name.into(),
            handler: Arc::new(move |event| Box::pin(handler(event))),
        }
    }
}

impl RuleAction for InProcessLambda {
    fn describe(&self) -> String {
        format!("lambda {} (in-process)", self.name)
    }

    fn execute<'a>(&'a self, output: &'a RuleOutput) -> ActionFuture<'a> {
        let call = (self.handler)(lambda_event(output));
        Box::pin(async move { call.await.map(|_| ()) })
    }
}

/// Lambda action over HTTP: the Lambda Invoke API
/// (`POST <base>/2015-03-31/functions/<name>/invocations`), as `cargo lambda watch` serves it.
#[derive(Debug, Clone)]
pub struct HttpLambda {
    url: String,
    name: String,
    http: reqwest::Client,
}

impl HttpLambda {
    /// Invokes `function` at `base_url` (e.g. `http://127.0.0.1:9000`).
    pub fn new(base_url: &str, function: &str) -> HttpLambda {
        HttpLambda {
            url: format!(
                "{}/2015-03-31/functions/{function}/invocations",
                base_url.trim_end_matches('/')
            ),
            name: function.to_owned(),
            http: reqwest::Client::new(),
        }
    }
}

impl RuleAction for HttpLambda {
    fn describe(&self) -> String {
        format!("lambda {} at {}", self.name, self.url)
    }

    fn execute<'a>(&'a self, output: &'a RuleOutput) -> ActionFuture<'a> {
        Box::pin(async move {
            let body = serde_json::to_vec(&lambda_event(output)).expect("JSON serializes");
            let response = self
                .http
                .post(&self.url)
                .header("content-type", "application/json")
                .timeout(Duration::from_secs(300))
                .body(body)
                .send()
                .await
                .map_err(|e| ActionError {
                    message: format!("invoking {}: {e}", self.url),
                    retryable: true,
                })?;
            let status = response.status();
            let function_error = response
                .headers()
                .get("x-amz-function-error")
                .map(|v| v.to_str().unwrap_or("?").to_owned());
            let text = response.text().await.unwrap_or_default();
            if !status.is_success() || function_error.is_some() {
                // The function's error type says whether a retry can help (see ingest's main).
                let retryable = status.as_u16() == 429
                    || status.is_server_error() && function_error.is_none()
                    || text.contains("\"Retryable\"");
                return Err(ActionError {
                    message: format!("{} answered {status}: {text}", self.url),
                    retryable,
                });
            }
            Ok(())
        })
    }
}

/// DynamoDBv2 action: `PutItem` of the rule's JSON output, one attribute per top-level key
/// (numbers -> N, strings -> S, booleans -> BOOL, null -> NULL, objects -> M, arrays -> L).
#[derive(Debug, Clone)]
pub struct DynamoPut {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoPut {
    /// Writes into the table with this physical name (e.g. `vigil-local-quarantine`).
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> DynamoPut {
        DynamoPut {
            client,
            table: table.into(),
        }
    }
}

/// The DynamoDB attribute of a JSON value, as the DynamoDBv2 action maps it.
pub fn attribute(value: &Value) -> AttributeValue {
    match value {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Number(n) => AttributeValue::N(n.to_string()),
        Value::String(s) => AttributeValue::S(s.clone()),
        Value::Array(items) => AttributeValue::L(items.iter().map(attribute).collect()),
        Value::Object(fields) => AttributeValue::M(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), attribute(v)))
                .collect(),
        ),
    }
}

impl RuleAction for DynamoPut {
    fn describe(&self) -> String {
        format!("dynamodb PutItem {}", self.table)
    }

    fn execute<'a>(&'a self, output: &'a RuleOutput) -> ActionFuture<'a> {
        Box::pin(async move {
            let RuleOutput::Json(Value::Object(fields)) = output else {
                return Err(ActionError::permanent(
                    "the DynamoDBv2 action needs a JSON object as the rule's output",
                ));
            };
            let item: HashMap<String, AttributeValue> = fields
                .iter()
                .map(|(k, v)| (k.clone(), attribute(v)))
                .collect();
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .send()
                .await
                .map_err(|e| {
                    let e = aws_sdk_dynamodb::error::DisplayErrorContext(e);
                    let text = e.to_string();
                    ActionError {
                        retryable: text.contains("Throttl")
                            || text.contains("ProvisionedThroughputExceeded")
                            || text.contains("dispatch failure"),
                        message: format!("PutItem {}: {text}", self.table),
                    }
                })?;
            Ok(())
        })
    }
}

/// What a rule's action is, by logical name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionTarget {
    /// Invoke this Lambda function (by its logical name, e.g. `ingest`).
    Lambda {
        /// The function.
        function: String,
    },
    /// Put the output into this table (logical name from `infra/resources.json`).
    DynamoDb {
        /// The table.
        table: String,
    },
}

/// Rule name (the SQL file's stem) -> its action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleTargets(pub BTreeMap<String, ActionTarget>);

impl Default for RuleTargets {
    /// Vigil's rules, as `infra/rules/README.md` and the CDK app define them.
    fn default() -> RuleTargets {
        let ingest = || ActionTarget::Lambda {
            function: "ingest".to_owned(),
        };
        RuleTargets(BTreeMap::from([
            ("ingest".to_owned(), ingest()),
            // Positions from victims' own devices (docs/PROXIMITY.md).
            ("victim".to_owned(), ingest()),
        ]))
    }
}

impl RuleTargets {
    /// Builds the actions: `lambda(function)` for Lambda targets, and a [`DynamoPut`] with
    /// `dynamo` and `table_name(logical)` for table targets.
    ///
    /// Fails with a message naming the target if `lambda` or `table_name` has none for it.
    pub fn build(
        &self,
        lambda: impl Fn(&str) -> Option<Arc<dyn RuleAction>>,
        dynamo: &aws_sdk_dynamodb::Client,
        table_name: impl Fn(&str) -> Option<String>,
    ) -> Result<BTreeMap<String, Arc<dyn RuleAction>>, String> {
        let mut actions = BTreeMap::new();
        for (rule, target) in &self.0 {
            let action: Arc<dyn RuleAction> = match target {
                ActionTarget::Lambda { function } => lambda(function).ok_or_else(|| {
                    format!("rule {rule}: no Lambda function {function:?} is wired")
                })?,
                ActionTarget::DynamoDb { table } => Arc::new(DynamoPut::new(
                    dynamo.clone(),
                    table_name(table)
                        .ok_or_else(|| format!("rule {rule}: no table {table:?} is declared"))?,
                )),
            };
            actions.insert(rule.clone(), action);
        }
        Ok(actions)
    }
}
