//! [`LocalStack`]: everything that stands in for AWS on one machine, started one way for every
//! user (`vigil-stack up`, the simulator's local-stack executor, the demo, `bench-local`, the
//! integration tests):
//!
//! 1. the AWS emulator: moto started on a free port (or one already running, `endpoint_url`),
//!    with `infra/resources.json` provisioned; DynamoDB is moto's, or AWS's DynamoDB Local on
//!    a port of its own (`dynamodb`, `VIGIL_DYNAMODB=local`);
//! 2. the MQTT broker on a free port, behind its TLS front that applies the shipped tag policy;
//! 3. the IoT data plane's `Publish` ([`IotDataApi`], `AWS_ENDPOINT_URL_IOT_DATA_PLANE` in the
//!    env), which publishes to that broker: the alert function's commander sends devices their
//!    commands through it, as it does through IoT in AWS;
//! 4. the functions on the emulator ([`Functions`]), their IoT data plane endpoint that one;
//! 5. the IoT rule bridge, whose Lambda action invokes ingest ([`IngestRunner`]): in-process,
//!    through a Lambda Invoke API you run, or the real ingest binary under a `cargo lambda
//!    watch` the stack starts with the emulator's environment (and the IoT data plane's);
//! 6. the alert function: with the wall clock, a task drains the alert queue as Lambda's event
//!    source mapping does; with a scenario clock, the caller drains it
//!    ([`Functions::try_drain`]) after each step, at the scenario's time;
//! 7. the error path: what the bridge could not deliver (after its retries) goes to the
//!    `rule-errors` queue as Lambda's on-failure destination records it, and the functions'
//!    Lambda Invoke API ([`InvokeApi`], `AWS_ENDPOINT_URL_LAMBDA` in the env) lets
//!    `vigil dlq redrive` invoke ingest again, as in AWS;
//! 8. with [`StackOptions::faults`], a [`FaultProxy`] between the functions and the emulator,
//!    for fault injection (docs/FAULTS.md).
//!
//! [`LocalStack::stop`] stops them in reverse order and removes the env file, if one was
//! written; [`wait_for_stop_signal`] is how a long-running `up` waits for Ctrl-C or SIGTERM
//! (both stop it the same way). rumqttd's threads end with the process.
//!
//! A new function is one line in `functions::deploy`: its name, its trigger and its handler.
//! This module wires every trigger the same way for every function: an IoT rule's Lambda
//! action (and the Invoke API) by the function's name, a queue's event source mapping.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::task::JoinHandle;
use vigil_local::{DynamoDb, Emulator, FaultProxy};
use vigil_mqtt::bridge::default_rules_dir;
use vigil_mqtt::pki::{BRIDGE_CLIENT_ID, OPERATOR_CLIENT_ID};
use vigil_mqtt::{
    Bridge, BridgeOptions, Clock, CompressedClock, Endpoint, HttpLambda, InProcessLambda,
    LambdaWatch, LocalBroker, Pki, RuleAction, RuleTargets, ScenarioClock, Statement, WallClock,
};

use crate::functions::{ALERT_TIMEOUT, FunctionOptions, Functions, IngestPorts, Trigger};
use crate::invoke::InvokeApi;
use crate::iot_data::{self, IotDataApi};

/// How the bridge's Lambda action runs the functions IoT rules invoke (ingest).
#[derive(Debug, Clone, Default)]
pub enum IngestRunner {
    /// The handler in this process, on the functions' ports.
    #[default]
    InProcess,
    /// The Lambda Invoke API at this URL (e.g. a `cargo lambda watch` you started).
    InvokeApi(String),
    /// The real binary (`functions/<name>`) under `cargo lambda watch`, which the stack
    /// starts (pinned cargo-lambda, installed when missing) with the emulator's environment,
    /// and stops.
    CargoLambdaWatch,
}

/// Which clock the stack runs on.
#[derive(Debug, Clone)]
pub enum StackClock {
    /// Live: the bridge stamps the wall-clock receive time, and a task drains the alert queue
    /// at the wall clock.
    Wall,
    /// A scenario's: the bridge stamps this clock's time; the caller moves it, and drains the
    /// alert queue after each step ([`Functions::try_drain`]) at the functions' clock.
    Scenario(ScenarioClock),
    /// Live, but faster: as [`StackClock::Wall`] on a clock that runs faster than the wall
    /// clock (a load run's compressed time); the schedules fire at its minutes.
    Compressed(CompressedClock),
}

/// How many invocations of ingest run at once: its reserved concurrency as `infra/` deploys it
/// (`ingestReservedConcurrency` in `infra/lib/config.ts`), which is as many asynchronous
/// invocations as Lambda runs at once for the IoT rule.
pub const INGEST_CONCURRENCY: usize = 20;

/// How to start the stack.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Use the emulator already running here (moto or LocalStack) instead of starting moto.
    pub endpoint_url: Option<String>,
    /// With `endpoint_url`: DynamoDB is at this URL instead (e.g. a running DynamoDB Local).
    pub dynamodb_endpoint_url: Option<String>,
    /// Which DynamoDB a started emulator has; `None`: the one `VIGIL_DYNAMODB` names (moto
    /// when unset). Not used with `endpoint_url`.
    pub dynamodb: Option<DynamoDb>,
    /// The resources' stage; default: `infra/resources.json`'s default stage.
    pub stage: Option<String>,
    /// How ingest runs.
    pub ingest: IngestRunner,
    /// The PKI the broker trusts and the bridge's certificate come from.
    pub pki_dir: PathBuf,
    /// The IoT rule SQL files.
    pub rules_dir: PathBuf,
    /// The clock.
    pub clock: StackClock,
    /// How many messages each IoT rule's function handles at once (default
    /// [`INGEST_CONCURRENCY`], as deployed).
    pub rule_concurrency: usize,
    /// Put a [`FaultProxy`] between the functions and the emulator ([`LocalStack::faults`]).
    pub faults: bool,
    /// The alert function's timeout (default: as deployed, 30 s).
    pub alert_timeout: std::time::Duration,
    /// Failed or abandoned alert messages come back after this instead of the queue's
    /// visibility timeout (tests that reach the dead-letter queue in seconds).
    pub alert_retry_after: Option<std::time::Duration>,
    /// Record when each SMS is sent ([`crate::SmsLog`]).
    pub sms_log: Option<crate::SmsLog>,
}

impl Default for StackOptions {
    /// moto started here (DynamoDB as `VIGIL_DYNAMODB` says), the default stage, ingest
    /// in-process, `.local/pki`, `infra/rules`, the wall clock.
    fn default() -> Self {
        StackOptions {
            endpoint_url: None,
            dynamodb_endpoint_url: None,
            dynamodb: None,
            stage: None,
            ingest: IngestRunner::InProcess,
            pki_dir: Pki::default_dir(),
            rules_dir: default_rules_dir(),
            clock: StackClock::Wall,
            rule_concurrency: INGEST_CONCURRENCY,
            faults: false,
            alert_timeout: ALERT_TIMEOUT,
            alert_retry_after: None,
            sms_log: None,
        }
    }
}

/// Why the stack did not start: which part, and why.
#[derive(Debug, thiserror::Error)]
#[error("{part}: {message}")]
pub struct StackError {
    /// The part that failed, e.g. "the MQTT broker".
    pub part: &'static str,
    /// What went wrong.
    pub message: String,
}

fn err(part: &'static str) -> impl Fn(String) -> StackError {
    move |message| StackError { part, message }
}

/// The running local stack. Its parts are public for callers that drive them directly (the
/// scenario executor publishes as tags, the benchmark measures the bridge).
pub struct LocalStack {
    /// The functions on the emulator (which they own).
    pub functions: Arc<Functions>,
    /// The clock the bridge stamps receive times with (the wall clock's, a scenario's, or a
    /// compressed one): what the local console reads as now.
    pub now: Arc<dyn Clock>,
    /// The ingest function's ports (their metrics count what the bridge delivered in-process).
    pub ingest: Arc<IngestPorts>,
    /// The PKI the broker trusts.
    pub pki: Pki,
    /// The broker.
    pub broker: LocalBroker,
    /// The IoT rule bridge.
    pub bridge: Bridge,
    /// Each rule's name and statement (its `FROM` filter), in the bridge's order.
    pub rules: Vec<(String, Statement)>,
    clock: StackClock,
    event_sources: Vec<JoinHandle<()>>,
    /// The `cargo lambda watch` running each IoT-rule function, by name, when the stack
    /// started them ([`IngestRunner::CargoLambdaWatch`]).
    pub lambda_watch: BTreeMap<&'static str, LambdaWatch>,
    /// The fault proxy between the functions and the emulator, when asked for.
    pub faults: Option<FaultProxy>,
    /// The functions' Lambda Invoke API.
    pub invoke_api: InvokeApi,
    /// The IoT data plane's `Publish`, to the broker (the alert function's commands).
    pub iot_data: IotDataApi,
    error_path: JoinHandle<()>,
    env_file: Option<PathBuf>,
}

impl LocalStack {
    /// Starts every part (see the module documentation), in order; a part that fails stops
    /// the ones already started and is named in the error.
    pub async fn start(options: StackOptions) -> Result<LocalStack, StackError> {
        let stage = match options.stage {
            Some(stage) => stage,
            None => {
                vigil_local::Resources::bundled()
                    .map_err(|e| err("infra/resources.json")(e.to_string()))?
                    .naming
                    .default_stage
            }
        };
        let emulator = match &options.endpoint_url {
            Some(url) => Emulator::connect_with_dynamodb(
                url,
                options.dynamodb_endpoint_url.as_deref(),
                &stage,
            )
            .await
            .map_err(|e| err("the AWS emulator")(format!("{url} cannot be used: {e}")))?,
            None => {
                let dynamodb = match options.dynamodb {
                    Some(dynamodb) => dynamodb,
                    None => {
                        DynamoDb::from_env().map_err(|e| err("the AWS emulator")(e.to_string()))?
                    }
                };
                Emulator::start_with(&stage, dynamodb)
                    .await
                    .map_err(|e| err("the AWS emulator")(format!("did not start: {e}")))?
            }
        };
        let faults = if options.faults {
            Some(
                FaultProxy::start(emulator.endpoint_url())
                    .await
                    .map_err(|e| err("the fault proxy")(e.to_string()))?,
            )
        } else {
            None
        };
        let pki = Pki::ensure(&options.pki_dir).map_err(|e| err("the local PKI")(e.to_string()))?;
        let broker = LocalBroker::start_for_stage(&pki, &stage)
            .map_err(|e| err("the MQTT broker")(e.to_string()))?;
        let operator = pki
            .client(OPERATOR_CLIENT_ID)
            .map_err(|e| err("the operators' certificate")(e.to_string()))?;
        let iot_data = IotDataApi::start(&broker.endpoint(), &operator)
            .await
            .map_err(|e| err("the IoT data plane")(e.to_string()))?;
        let function_options = FunctionOptions {
            endpoint_url: faults.as_ref().map(|f| f.url().to_owned()),
            iot_data_endpoint_url: Some(iot_data.url().to_owned()),
            alert_timeout: options.alert_timeout,
            retry_after: options.alert_retry_after,
            sms_log: options.sms_log.clone(),
            ..FunctionOptions::default()
        };
        let functions =
            Arc::new(Functions::on_with(emulator, function_options).map_err(err("the functions"))?);
        let ingest = functions.ingest.clone();
        // Each function an IoT rule invokes, run as `options.ingest` says.
        let mut lambda_watch = BTreeMap::new();
        let mut rule_functions: BTreeMap<&'static str, Arc<dyn RuleAction>> = BTreeMap::new();
        for d in functions
            .deployed()
            .iter()
            .filter(|d| d.trigger == Trigger::IotRule)
        {
            let action: Arc<dyn RuleAction> = match &options.ingest {
                IngestRunner::InProcess => {
                    let handler = d.handler.clone();
                    let clock = functions.clone();
                    Arc::new(InProcessLambda::new(d.name, move |event| {
                        handler(event, clock.now_ms())
                    }))
                }
                IngestRunner::InvokeApi(url) => Arc::new(HttpLambda::new(url, d.name)),
                IngestRunner::CargoLambdaWatch => {
                    let dir = vigil_local::workspace_root().join("functions").join(d.name);
                    let mut env = functions.emulator.env_vars();
                    env.push((iot_data::ENDPOINT_VAR.to_owned(), iot_data.url().to_owned()));
                    let name = d.name;
                    let watch =
                        tokio::task::spawn_blocking(move || LambdaWatch::start(&dir, name, &env))
                            .await
                            .map_err(|e| err("cargo lambda watch")(e.to_string()))?
                            .map_err(err("cargo lambda watch"))?;
                    let action = Arc::new(HttpLambda::new(&watch.url(), d.name));
                    lambda_watch.insert(d.name, watch);
                    action
                }
            };
            rule_functions.insert(d.name, action);
        }
        let rule_files = vigil_mqtt::load_rules(&options.rules_dir)
            .map_err(|e| err("the IoT rules")(e.to_string()))?;
        let rules = rule_files
            .iter()
            .map(|r| (r.name.clone(), r.statement.clone()))
            .collect();
        let actions = RuleTargets::default()
            .build(
                |function| rule_functions.get(function).cloned(),
                functions.store.client(),
                |table| functions.emulator.table_name(table).ok().map(str::to_owned),
            )
            .map_err(err("the rule actions"))?;
        let identity = pki
            .client(BRIDGE_CLIENT_ID)
            .map_err(|e| err("the bridge's certificate")(e.to_string()))?;
        // Live, the bridge and the event sources read one clock (the wall clock's time, or
        // faster); on a scenario's, the caller moves it and drains.
        let (bridge_clock, live): (Arc<dyn Clock>, Option<CompressedClock>) = match &options.clock {
            StackClock::Scenario(clock) => (Arc::new(clock.clone()), None),
            // The bridge stamps the wall clock itself, as before: a tag's device time and the
            // receive time come from the same clock, so a fix is never received before it was
            // taken; the event sources' clock is the same time, to the millisecond.
            StackClock::Wall => (
                Arc::new(WallClock),
                Some(CompressedClock::starting_now(1.0)),
            ),
            StackClock::Compressed(clock) => (Arc::new(clock.clone()), Some(clock.clone())),
        };
        let bridge = Bridge::start(
            &broker.endpoint(),
            &identity,
            rule_files,
            actions,
            bridge_clock.clone(),
            &BridgeOptions {
                concurrency: options.rule_concurrency,
                stage: Some(stage.clone()),
            },
        )
        .await
        .map_err(|e| err("the rule bridge")(e.to_string()))?;
        // The error path and the Invoke API use the emulator directly: in AWS, Lambda's own
        // delivery to the on-failure destination does not go through the functions' faults.
        let rule_errors = rule_errors_sender(&functions.emulator)?;
        let error_path = tokio::spawn(rule_errors.forward(bridge.error_path()));
        let invoke_api = InvokeApi::start(
            rule_functions
                .iter()
                .flat_map(|(name, action)| {
                    [
                        (format!("vigil-{stage}-{name}"), action.clone()),
                        ((*name).to_owned(), action.clone()),
                    ]
                })
                .collect(),
        )
        .await
        .map_err(|e| err("the Lambda Invoke API")(e.to_string()))?;
        let event_sources = match live {
            Some(clock) => functions.spawn_event_sources(clock),
            None => Vec::new(),
        };
        Ok(LocalStack {
            functions,
            now: bridge_clock,
            ingest,
            pki,
            broker,
            bridge,
            rules,
            clock: options.clock,
            event_sources,
            lambda_watch,
            faults,
            invoke_api,
            iot_data,
            error_path,
            env_file: None,
        })
    }

    /// The emulator.
    pub fn emulator(&self) -> &Emulator {
        &self.functions.emulator
    }

    /// Where tags connect: host `localhost` (the name OpenSSL clients need for SNI), the
    /// broker's port and the local CA.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            host: "localhost".to_owned(),
            ..self.broker.endpoint()
        }
    }

    /// The scenario clock, when the stack runs on one.
    pub fn scenario_clock(&self) -> Option<&ScenarioClock> {
        match &self.clock {
            StackClock::Scenario(clock) => Some(clock),
            StackClock::Wall | StackClock::Compressed(_) => None,
        }
    }

    /// The environment a client of the stack needs: the emulator's (`AWS_*`, `VIGIL_*`), the
    /// broker's (`VIGIL_MQTT_HOST`, `VIGIL_MQTT_PORT`, `VIGIL_MQTT_CA`), the functions' Lambda
    /// Invoke API (`AWS_ENDPOINT_URL_LAMBDA`), the IoT data plane
    /// (`AWS_ENDPOINT_URL_IOT_DATA_PLANE`) and the ingest rule's name for Basic Ingest
    /// (`VIGIL_BASIC_INGEST_RULE`, which `vigil-tagsim` reads).
    pub fn env(&self) -> BTreeMap<String, String> {
        let endpoint = self.endpoint();
        let mut env: BTreeMap<String, String> = self.emulator().env_vars().into_iter().collect();
        env.insert("VIGIL_MQTT_HOST".into(), endpoint.host);
        env.insert("VIGIL_MQTT_PORT".into(), endpoint.port.to_string());
        env.insert(
            "VIGIL_MQTT_CA".into(),
            endpoint.ca.to_string_lossy().into_owned(),
        );
        env.insert(
            "AWS_ENDPOINT_URL_LAMBDA".into(),
            self.invoke_api.url().to_owned(),
        );
        env.insert(
            iot_data::ENDPOINT_VAR.to_owned(),
            self.iot_data.url().to_owned(),
        );
        env.insert(
            "VIGIL_BASIC_INGEST_RULE".into(),
            format!("vigil_{}_ingest", self.emulator().stage()),
        );
        env
    }

    /// Writes [`LocalStack::env`] to `path` as `KEY=value` lines (for `set -a; . path`); the
    /// file is removed again by [`LocalStack::stop`], so it never names dead ports.
    pub fn write_env(&mut self, path: PathBuf) -> Result<(), StackError> {
        let text: String = self
            .env()
            .iter()
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect();
        std::fs::write(&path, text)
            .map_err(|e| err("the env file")(format!("{}: {e}", path.display())))?;
        self.env_file = Some(path);
        Ok(())
    }

    /// Stops everything, in reverse order: the alert task, the bridge, the IoT data plane, the
    /// emulator (when this stack started it), and removes the env file. The broker's front
    /// stops with it; rumqttd's threads end with the process.
    pub async fn stop(self) {
        for task in self.event_sources {
            task.abort();
            let _ = task.await;
        }
        self.error_path.abort();
        self.bridge.stop().await;
        if let Some(path) = &self.env_file {
            let _ = std::fs::remove_file(path);
        }
        drop(self.lambda_watch);
        drop(self.iot_data);
        drop(self.broker);
        drop(self.functions);
    }
}

/// Waits for Ctrl-C or SIGTERM, whichever comes first: a long-running stack stops the same
/// way for both.
///
/// Fails if the signal handlers cannot be installed.
pub async fn wait_for_stop_signal() -> Result<(), StackError> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| err("the SIGTERM handler")(e.to_string()))?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.map_err(|e| err("the Ctrl-C handler")(e.to_string())),
        _ = term.recv() => Ok(()),
    }
}

/// Sends what the bridge could not deliver to the `rule-errors` queue.
struct RuleErrors {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    function_arn: String,
}

fn rule_errors_sender(emulator: &Emulator) -> Result<RuleErrors, StackError> {
    let queue_url = emulator
        .queue_url("rule-errors")
        .map_err(|e| err("the rule-errors queue")(e.to_string()))?
        .to_owned();
    Ok(RuleErrors {
        sqs: aws_sdk_sqs::Client::new(&emulator.sdk_config()),
        queue_url,
        function_arn: format!(
            "arn:aws:lambda:{}:123456789012:function:vigil-{}-ingest",
            emulator.region(),
            emulator.stage()
        ),
    })
}

impl RuleErrors {
    /// Sends each failure as it comes, until the bridge stops: a failed Lambda action as
    /// Lambda's on-failure destination record (`requestPayload` is the event, what a redrive
    /// invokes again); a message the rule itself could not evaluate as IoT's error action
    /// would (its topic and reason).
    async fn forward(
        self,
        mut failures: tokio::sync::mpsc::UnboundedReceiver<vigil_mqtt::bridge::RuleFailure>,
    ) {
        while let Some(f) = failures.recv().await {
            let body = match &f.event {
                Some(event) => destination_record(&self.function_arn, &f, event),
                None => serde_json::json!({
                    "ruleName": f.rule,
                    "topic": f.topic,
                    "failures": [{ "failedAction": "none", "errorMessage": f.reason }],
                }),
            };
            let sent = self
                .sqs
                .send_message()
                .queue_url(&self.queue_url)
                .message_body(body.to_string())
                .send()
                .await;
            if let Err(e) = sent {
                tracing::error!(topic = %f.topic, error = %aws_sdk_sqs::error::DisplayErrorContext(e), "a failed message could not be kept in rule-errors");
            }
        }
    }
}

/// Lambda's on-failure destination record for an asynchronous invocation whose retries ran out.
fn destination_record(
    function_arn: &str,
    failure: &vigil_mqtt::bridge::RuleFailure,
    event: &serde_json::Value,
) -> serde_json::Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    serde_json::json!({
        "version": "1.0",
        "timestamp_ms": now,
        "requestContext": {
            "functionArn": format!("{function_arn}:$LATEST"),
            "condition": "RetriesExhausted",
            "approximateInvokeCount": failure.attempts,
        },
        "requestPayload": event,
        "responseContext": { "statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled" },
        "responsePayload": { "errorType": "IngestError", "errorMessage": failure.reason },
    })
}
