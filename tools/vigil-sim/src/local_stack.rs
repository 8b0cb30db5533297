//! The local-stack executor: a scenario's messages go through the whole local pipeline, as a
//! tag's would in production. Each message is published over MQTT with mutual TLS, as its tag
//! (the tag's certificate from the local PKI, QoS 1, PUBACK awaited), to the embedded broker;
//! the IoT rule bridge applies `infra/rules/*.sql` with a [`ScenarioClock`] (so `received_at`
//! is the scenario's device time and ingest validates time as it would live), invokes the
//! ingest function in-process and writes last-seen with the rule's DynamoDB action; the alert
//! function then drains the SQS FIFO alert queue as Lambda's event source mapping does.
//!
//! What happened is read back from the emulator, never from the functions' return values:
//! - SMS: the emulator's record of SNS `Publish(PhoneNumber)` (`Emulator::sent_sms`). The
//!   level and order of each SMS come from the operator event the alert function published
//!   for it (`victim_sms: "sent:<alert>"`), paired by the victim's phone.
//! - Operator events: the operators topic's messages, one [`OperatorEvent`] per kind in
//!   their `kinds`; and, for rejected messages, the quarantine table, which is where the live
//!   pipeline gives operators bad input (`fix_rejected:<reason>`, as the in-process executor
//!   names them). The live pipeline does not publish rejections to the operators topic.
//! - Outcomes: a message that left a quarantine record is rejected with that record's reason;
//!   any other is recorded as accepted, its fields parsed from the published payload. The
//!   stack does not report duplicates or lateness, so they show as accepted fixes.
//! - Order levels: the `order_level_after` of the order's latest zone event.
//!
//! Between scenarios the emulator is reset (`Emulator::reset`, which recreates the
//! resources), so no scenario sees another's SMS, states or claims. The broker, the bridge and
//! the tags' MQTT connections are shared across scenarios.

use crate::executor::{
    ExecutorError, OperatorEvent, OrderLevel, Outcome, Run, ScenarioExecutor, SentSms, StepRecord,
};
use crate::scenario::{Channel, Message, Scenario};
use rumqttc::{AsyncClient, Event, Packet, QoS};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use vigil_aws::ports::AdminStore;
use vigil_aws::ports::QuarantineRecord;
use vigil_core::events::rejected_kind;
use vigil_core::fix::{parse_event, parse_fix};
use vigil_core::{AlertLevel, OrderId, PhoneNumber, TagId, Urgency, ValidationLimits, VictimAlert};
use vigil_local::Emulator;
use vigil_mqtt::bridge::default_rules_dir;
use vigil_mqtt::pki::BRIDGE_CLIENT_ID;
use vigil_mqtt::{
    Bridge, InProcessLambda, LocalBroker, Pki, RuleAction, RuleTargets, ScenarioClock,
};
use vigil_pipeline::Pipeline;

/// How long a PUBACK, or the bridge's handling of one message, may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// The executor's name in reports and on the command line.
pub const NAME: &str = "local-stack";

/// Runs scenarios through the local stack it starts: the moto emulator, the mTLS broker, the
/// rule bridge, ingest in-process and the alert function draining the queue. Everything it
/// started stops when it is dropped (the broker's threads, which rumqttd cannot stop, end
/// with the process).
pub struct LocalStackExecutor {
    runtime: tokio::runtime::Runtime,
    stack: Option<LocalStack>,
    scenarios_run: usize,
    /// Time spent resetting the emulator between scenarios, for reports.
    pub reset_time: Duration,
    /// For each message of the last scenario run: from the start of its publish until the
    /// alert queue was drained after it (the SMS it caused, if any, recorded by the emulator).
    pub step_latencies: Vec<Duration>,
}

/// The running local stack.
struct LocalStack {
    pipeline: Arc<Pipeline>,
    pki: Pki,
    broker: LocalBroker,
    bridge: Bridge,
    clock: ScenarioClock,
    /// Rule name and its `FROM` filter.
    rules: Vec<(String, vigil_mqtt::Statement)>,
    tags: HashMap<String, TagConnection>,
}

/// One tag's MQTT connection: its client and the PUBACKs (or connection errors) its event loop
/// reports.
pub(crate) struct TagConnection {
    client: AsyncClient,
    acks: mpsc::UnboundedReceiver<Result<(), String>>,
    task: JoinHandle<()>,
}

fn fail(message: impl Into<String>) -> ExecutorError {
    ExecutorError {
        executor: NAME.to_owned(),
        message: message.into(),
    }
}

impl LocalStackExecutor {
    /// Starts the local stack: a private moto emulator (installing the pinned moto into
    /// `.local/venv` on first use), the broker with the local PKI (`.local/pki`), and the
    /// bridge with a scenario clock, ingest in-process and last-seen through the rule's
    /// DynamoDB action.
    ///
    /// Fails when any part does not start; the error says which and why.
    pub fn start() -> Result<LocalStackExecutor, ExecutorError> {
        Self::start_on(None)
    }

    /// As [`LocalStackExecutor::start`], but with `endpoint` set, the AWS side is the emulator
    /// already running there (moto started by `vigil-local up`, or LocalStack), with Vigil's
    /// resources created in it if missing, and left running afterwards. Scenarios reset it
    /// between runs: never point this at an emulator holding data you need.
    pub fn start_on(endpoint: Option<&str>) -> Result<LocalStackExecutor, ExecutorError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| fail(format!("starting the async runtime: {e}")))?;
        let stack = runtime.block_on(LocalStack::start(endpoint))?;
        Ok(LocalStackExecutor {
            runtime,
            stack: Some(stack),
            scenarios_run: 0,
            reset_time: Duration::ZERO,
            step_latencies: Vec::new(),
        })
    }

    /// The emulator of the running stack, e.g. for its endpoint.
    pub fn emulator(&self) -> Option<&Emulator> {
        self.stack.as_ref().map(|s| &s.pipeline.emulator)
    }

    /// Runs `f` on the executor's runtime with the stack's pipeline, broker endpoint, PKI,
    /// bridge and clock: for measurements that drive the same stack directly.
    pub fn with_stack<T>(&self, f: impl AsyncFnOnce(StackParts<'_>) -> T) -> Option<T> {
        let stack = self.stack.as_ref()?;
        Some(self.runtime.block_on(f(StackParts {
            pipeline: &stack.pipeline,
            endpoint: stack.broker.endpoint(),
            pki: &stack.pki,
            bridge: &stack.bridge,
            clock: &stack.clock,
        })))
    }

    /// Stops everything this executor started. Dropping it does the same.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stack) = self.stack.take() {
            self.runtime.block_on(stack.stop());
        }
    }
}

/// The parts of a running local stack, lent to [`LocalStackExecutor::with_stack`].
pub struct StackParts<'a> {
    /// The functions on the emulator.
    pub pipeline: &'a Arc<Pipeline>,
    /// Where tags connect.
    pub endpoint: vigil_mqtt::Endpoint,
    /// The PKI the broker trusts.
    pub pki: &'a Pki,
    /// The rule bridge.
    pub bridge: &'a Bridge,
    /// The bridge's clock.
    pub clock: &'a ScenarioClock,
}

impl Drop for LocalStackExecutor {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl ScenarioExecutor for LocalStackExecutor {
    fn name(&self) -> &str {
        NAME
    }

    fn execute(&mut self, scenario: &Scenario) -> Result<Run, ExecutorError> {
        let stack = self
            .stack
            .as_mut()
            .ok_or_else(|| fail("the local stack was stopped"))?;
        if self.scenarios_run > 0 {
            let started = Instant::now();
            self.runtime
                .block_on(stack.pipeline.emulator.reset())
                .map_err(|e| fail(format!("resetting the emulator between scenarios: {e}")))?;
            self.reset_time += started.elapsed();
        }
        self.scenarios_run += 1;
        self.step_latencies.clear();
        self.runtime
            .block_on(stack.run(scenario, &mut self.step_latencies))
    }
}

impl LocalStack {
    async fn start(endpoint: Option<&str>) -> Result<LocalStack, ExecutorError> {
        let emulator = match endpoint {
            Some(url) => {
                let stage = vigil_local::Resources::bundled()
                    .map_err(|e| fail(format!("infra/resources.json: {e}")))?
                    .naming
                    .default_stage;
                Emulator::connect(url, &stage)
                    .await
                    .map_err(|e| fail(format!("the AWS emulator at {url} cannot be used: {e}")))?
            }
            None => Emulator::start()
                .await
                .map_err(|e| fail(format!("the AWS emulator did not start: {e}")))?,
        };
        let pipeline = Arc::new(Pipeline::on(emulator).map_err(fail)?);
        let pki =
            Pki::ensure(Pki::default_dir()).map_err(|e| fail(format!("the local PKI: {e}")))?;
        let broker = LocalBroker::start(&pki).map_err(|e| fail(format!("the MQTT broker: {e}")))?;
        let clock = ScenarioClock::new(0);
        let rule_files = vigil_mqtt::load_rules(&default_rules_dir())
            .map_err(|e| fail(format!("the IoT rules: {e}")))?;
        let rules = rule_files
            .iter()
            .map(|r| (r.name.clone(), r.statement.clone()))
            .collect();
        let ingest: Arc<dyn RuleAction> =
            Arc::new(InProcessLambda::ingest(Arc::new(pipeline.ingest_ports())));
        let dynamo = pipeline.store.client().clone();
        let actions = RuleTargets::default()
            .build(
                |function| (function == "ingest").then(|| ingest.clone()),
                &dynamo,
                |table| pipeline.emulator.table_name(table).ok().map(str::to_owned),
            )
            .map_err(|e| fail(format!("the rule actions: {e}")))?;
        let identity = pki
            .client(BRIDGE_CLIENT_ID)
            .map_err(|e| fail(format!("the bridge's certificate: {e}")))?;
        let bridge = Bridge::start(
            &broker.endpoint(),
            &identity,
            rule_files,
            actions,
            Arc::new(clock.clone()),
        )
        .await
        .map_err(|e| fail(format!("the rule bridge: {e}")))?;
        Ok(LocalStack {
            pipeline,
            pki,
            broker,
            bridge,
            clock,
            rules,
            tags: HashMap::new(),
        })
    }

    async fn stop(self) {
        for (_, tag) in self.tags {
            tag.close().await;
        }
        self.bridge.stop().await;
        // Dropping the pipeline stops the emulator; the broker ends with the process.
        drop(self.pipeline);
    }

    /// Provisions the scenario and delivers its messages one at a time.
    async fn run(
        &mut self,
        scenario: &Scenario,
        latencies: &mut Vec<Duration>,
    ) -> Result<Run, ExecutorError> {
        for order in &scenario.orders {
            let zones: Vec<_> = scenario
                .zones
                .iter()
                .filter(|z| order.zone_ids.contains(z.id()))
                .cloned()
                .collect();
            vigil_cli::orders::provision_order(&self.pipeline.store, order, &zones)
                .await
                .map_err(|e| fail(format!("provisioning order {}: {e}", order.order_id)))?;
        }
        let mut readback = ReadBackState::default();
        let mut steps = Vec::with_capacity(scenario.messages.len());
        for (index, message) in scenario.messages.iter().enumerate() {
            steps.push(
                self.deliver(scenario, index, message, &mut readback, latencies)
                    .await?,
            );
        }
        Ok(Run {
            executor: NAME.to_owned(),
            steps,
        })
    }

    /// Publishes one message as its tag, waits for the bridge, drains the alert queue, and
    /// reads back what it caused.
    async fn deliver(
        &mut self,
        scenario: &Scenario,
        index: usize,
        message: &Message,
        readback: &mut ReadBackState,
        latencies: &mut Vec<Duration>,
    ) -> Result<StepRecord, ExecutorError> {
        let topic = message.topic();
        let before = self.bridge.stats();
        let expected: BTreeMap<String, u64> = self
            .rules
            .iter()
            .map(|(name, statement)| {
                let handled = before.get(name).map_or(0, |s| s.handled());
                (
                    name.clone(),
                    handled + u64::from(statement.matches_topic(&topic)),
                )
            })
            .collect();
        let failures_before = self.bridge.failures().len();
        self.clock.set_ms(message.received_at_ms);
        let published = Instant::now();
        self.publish(&message.tag_id, &topic, message.payload.as_bytes())
            .await?;
        self.bridge
            .wait_until(STEP_TIMEOUT, |stats| {
                expected
                    .iter()
                    .all(|(rule, n)| stats.get(rule).is_some_and(|s| s.handled() >= *n))
            })
            .await
            .map_err(|stats| {
                fail(format!(
                    "the rule bridge did not handle {} ({topic}) within {STEP_TIMEOUT:?}: {stats:?}",
                    message.source
                ))
            })?;
        if let Some(f) = self
            .bridge
            .failures()
            .iter()
            .skip(failures_before)
            .find(|f| f.rule == "ingest")
        {
            return Err(fail(format!(
                "{}: the ingest rule's action failed: {}",
                message.source, f.reason
            )));
        }
        let handled = self
            .pipeline
            .try_drain()
            .await
            .map_err(|e| fail(format!("draining the alert queue: {e}")))?;
        latencies.push(published.elapsed());

        let quarantined = self.new_quarantine(&message.tag_id, readback).await?;
        let mut effects = if handled > 0 {
            self.new_effects(scenario, readback).await?
        } else {
            StepEffects::default()
        };
        for r in &quarantined {
            effects.operator_events.push(OperatorEvent {
                kind: rejected_kind(&r.reason),
                order_id: None,
                zone_id: None,
                urgency: None,
                detail: r.detail.clone(),
            });
        }
        let outcome = match quarantined.first() {
            Some(r) => Outcome::Rejected {
                reason: r.reason.clone(),
                detail: r.detail.clone(),
            },
            None => accepted(message),
        };
        let levels = scenario
            .orders_of(&message.tag_id)
            .map(|o| OrderLevel {
                order_id: o.order_id.clone(),
                level: readback
                    .levels
                    .get(&o.order_id)
                    .copied()
                    .unwrap_or_default(),
            })
            .collect();
        Ok(StepRecord {
            message: index,
            at_s: message.at_s,
            tag_id: message.tag_id.clone(),
            channel: message.channel,
            outcome,
            levels,
            sms: effects.sms,
            operator_events: effects.operator_events,
        })
    }

    /// Publishes at QoS 1 as `tag` (its own connection and certificate) and waits for the
    /// broker's PUBACK.
    async fn publish(
        &mut self,
        tag: &TagId,
        topic: &str,
        payload: &[u8],
    ) -> Result<(), ExecutorError> {
        if !self.tags.contains_key(tag.as_str()) {
            let connection = connect_tag(&self.broker.endpoint(), &self.pki, tag.as_str())?;
            self.tags.insert(tag.as_str().to_owned(), connection);
        }
        self.tags
            .get_mut(tag.as_str())
            .expect("the connection was just made")
            .publish(topic, payload)
            .await
    }

    /// Quarantine records of `tag` that were not there before this step.
    async fn new_quarantine(
        &self,
        tag: &TagId,
        readback: &mut ReadBackState,
    ) -> Result<Vec<QuarantineRecord>, ExecutorError> {
        let all = self
            .pipeline
            .store
            .quarantined(tag.as_str())
            .await
            .map_err(|e| fail(format!("reading the quarantine table: {e}")))?;
        let seen = readback.quarantine.entry(tag.clone()).or_default();
        let mut known = seen.clone();
        let mut fresh = Vec::new();
        for r in all {
            match known.iter().position(|k| *k == r) {
                Some(i) => {
                    known.swap_remove(i);
                }
                None => fresh.push(r),
            }
        }
        seen.extend(fresh.iter().cloned());
        Ok(fresh)
    }

    /// The SMS and operator events recorded since the last read-back.
    async fn new_effects(
        &self,
        scenario: &Scenario,
        readback: &mut ReadBackState,
    ) -> Result<StepEffects, ExecutorError> {
        let emulator = &self.pipeline.emulator;
        let sms = emulator
            .sent_sms()
            .await
            .map_err(|e| fail(format!("reading back SMS: {e}")))?;
        let events = emulator
            .operator_events()
            .await
            .map_err(|e| fail(format!("reading back operator events: {e}")))?;
        let new_sms = sms.get(readback.sms..).unwrap_or_default();
        let new_events = events.get(readback.operator_events..).unwrap_or_default();
        readback.sms = sms.len();
        readback.operator_events = events.len();

        let mut unpaired: Vec<&vigil_local::SentSms> = new_sms.iter().collect();
        let mut effects = StepEffects::default();
        for published in new_events {
            let body: Value = serde_json::from_str(&published.message).map_err(|e| {
                fail(format!(
                    "an operator event is not JSON ({e}): {}",
                    published.message
                ))
            })?;
            let event = parse_operator_event(&body)?;
            if let Some(level) = event.level_after {
                readback.levels.insert(event.order_id.clone(), level);
            }
            if let Some(alert) = event.sms_sent {
                let order = scenario
                    .orders
                    .iter()
                    .find(|o| o.order_id == event.order_id)
                    .ok_or_else(|| {
                        fail(format!(
                            "an operator event names order {}, which the scenario does not have",
                            event.order_id
                        ))
                    })?;
                let phone = &order.victim.phone;
                let i = unpaired
                    .iter()
                    .position(|s| s.phone_number == phone.e164())
                    .ok_or_else(|| {
                        fail(format!(
                            "order {} reports SMS {} sent, but the emulator recorded no SMS to {}",
                            event.order_id,
                            crate::report::alert_name(alert),
                            phone.redacted()
                        ))
                    })?;
                let recorded = unpaired.remove(i);
                effects.sms.push(SentSms {
                    order_id: event.order_id.clone(),
                    to: PhoneNumber::new(&recorded.phone_number).map_err(|e| {
                        fail(format!(
                            "the emulator recorded an SMS to an invalid number: {e}"
                        ))
                    })?,
                    level: alert,
                    text: recorded.message.clone(),
                });
            }
            effects
                .operator_events
                .extend(event.kinds.into_iter().map(|kind| OperatorEvent {
                    kind,
                    order_id: Some(event.order_id.clone()),
                    zone_id: event.zone_id.clone(),
                    urgency: Some(event.urgency),
                    detail: event.detail.clone(),
                }));
        }
        if let Some(extra) = unpaired.first() {
            return Err(fail(format!(
                "the emulator recorded an SMS to {} that no operator event reports as sent",
                PhoneNumber::new(&extra.phone_number)
                    .map_or_else(|_| "?".to_owned(), |p| p.redacted())
            )));
        }
        Ok(effects)
    }
}

/// Connects `tag` to the broker at `endpoint` with its certificate from `pki` (issued when
/// missing); client id = tag id, as a tag does. The connection is made on the first publish.
///
/// Fails when the certificate cannot be issued or read.
pub(crate) fn connect_tag(
    endpoint: &vigil_mqtt::Endpoint,
    pki: &Pki,
    tag: &str,
) -> Result<TagConnection, ExecutorError> {
    let identity = pki
        .client(tag)
        .map_err(|e| fail(format!("tag {tag}'s certificate: {e}")))?;
    let options = vigil_mqtt::client::mqtt_options(endpoint, tag, &identity)
        .map_err(|e| fail(format!("tag {tag}'s MQTT options: {e}")))?;
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    let (tx, acks) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            let report = match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => Ok(()),
                Ok(_) => continue,
                Err(e) => Err(e.to_string()),
            };
            let failed = report.is_err();
            if tx.send(report).is_err() {
                return;
            }
            if failed {
                // rumqttc reconnects on the next poll.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });
    Ok(TagConnection { client, acks, task })
}

impl TagConnection {
    /// Publishes at QoS 1 and waits for the broker's PUBACK (one publish at a time).
    pub(crate) async fn publish(
        &mut self,
        topic: &str,
        payload: &[u8],
    ) -> Result<(), ExecutorError> {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.to_vec())
            .await
            .map_err(|e| fail(format!("publishing on {topic}: {e}")))?;
        match tokio::time::timeout(STEP_TIMEOUT, self.acks.recv()).await {
            Ok(Some(Ok(()))) => Ok(()),
            Ok(Some(Err(e))) => Err(fail(format!("{topic}: MQTT connection: {e}"))),
            Ok(None) => Err(fail(format!("{topic}: the MQTT connection ended"))),
            Err(_) => Err(fail(format!("{topic}: no PUBACK within {STEP_TIMEOUT:?}"))),
        }
    }

    /// Disconnects and stops the connection's event loop.
    pub(crate) async fn close(self) {
        let _ = self.client.disconnect().await;
        self.task.abort();
    }
}

/// What has been read back so far in one scenario.
#[derive(Default)]
struct ReadBackState {
    sms: usize,
    operator_events: usize,
    quarantine: HashMap<TagId, Vec<QuarantineRecord>>,
    levels: HashMap<OrderId, AlertLevel>,
}

#[derive(Default)]
struct StepEffects {
    sms: Vec<SentSms>,
    operator_events: Vec<OperatorEvent>,
}

/// The fields of the alert function's operator event the run needs.
struct PublishedEvent {
    kinds: Vec<String>,
    order_id: OrderId,
    zone_id: Option<vigil_core::ZoneId>,
    urgency: Urgency,
    level_after: Option<AlertLevel>,
    sms_sent: Option<VictimAlert>,
    detail: String,
}

fn parse_operator_event(body: &Value) -> Result<PublishedEvent, ExecutorError> {
    let bad = |what: &str| fail(format!("operator event without a valid {what}: {body}"));
    let field = |k: &str| body.get(k).cloned().unwrap_or(Value::Null);
    let kinds: Vec<String> = serde_json::from_value(field("kinds")).map_err(|_| bad("kinds"))?;
    let order_id: OrderId =
        serde_json::from_value(field("order_id")).map_err(|_| bad("order_id"))?;
    let zone_id: Option<vigil_core::ZoneId> =
        serde_json::from_value(field("zone_id")).map_err(|_| bad("zone_id"))?;
    let urgency: Urgency = serde_json::from_value(field("urgency")).map_err(|_| bad("urgency"))?;
    let level_after: Option<AlertLevel> =
        serde_json::from_value(field("order_level_after")).map_err(|_| bad("order_level_after"))?;
    let victim_sms = field("victim_sms");
    let victim_sms = victim_sms.as_str().ok_or_else(|| bad("victim_sms"))?;
    let sms_sent = match victim_sms.strip_prefix("sent:") {
        Some(alert) => Some(
            serde_json::from_value(Value::String(alert.to_owned()))
                .map_err(|_| bad("victim_sms"))?,
        ),
        None => None,
    };
    let place = body
        .get("distance_m")
        .and_then(Value::as_f64)
        .map(|d| {
            if d <= 0.0 {
                format!(", {:.0} m inside", -d)
            } else {
                format!(", {d:.0} m from the edge")
            }
        })
        .unwrap_or_default();
    let what = zone_id
        .as_ref()
        .map_or_else(|| "tag event".to_owned(), ToString::to_string);
    Ok(PublishedEvent {
        detail: format!("{what}{place}; victim SMS {victim_sms}"),
        kinds,
        order_id,
        zone_id,
        urgency,
        level_after,
        sms_sent,
    })
}

/// The outcome of a message the stack accepted, from the payload as published.
fn accepted(message: &Message) -> Outcome {
    let limits = ValidationLimits::default();
    let payload = message.payload.as_bytes();
    let (tag, at) = (&message.tag_id, message.received_at_ms);
    let parsed = match message.channel {
        Channel::Fix => parse_fix(payload, tag, at, &limits).map(|fix| Outcome::Fix {
            seq: fix.seq,
            at_ms: fix.at_ms,
            lat: fix.lat,
            lon: fix.lon,
            accuracy_m: fix.accuracy_m,
            late_by_ms: None,
        }),
        Channel::Event => parse_event(payload, tag, at, &limits).map(|event| Outcome::Event {
            seq: event.seq,
            kind: event.kind,
        }),
    };
    parsed.unwrap_or_else(|e| Outcome::Rejected {
        reason: e.reason().to_owned(),
        detail: format!("the stack accepted it, but vigil-core rejects it: {e}"),
    })
}
