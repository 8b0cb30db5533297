//! The local-stack executor: a scenario's messages go through the whole local pipeline, as a
//! tag's would in production. Each message is published over MQTT with mutual TLS, as its tag
//! (the tag's certificate from the local PKI, QoS 1, PUBACK awaited), to the embedded broker,
//! on the Basic Ingest topic of the rule that takes it (`$aws/rules/vigil_{stage}_ingest/
//! tags/{tag}/fix`), as tags publish in AWS; the IoT rule bridge applies `infra/rules/*.sql`
//! with a [`ScenarioClock`] (so `received_at`
//! is the scenario's device time and ingest validates time as it would live) and invokes the
//! ingest function in-process; the alert function then drains the SQS FIFO alert queue as
//! Lambda's event source mapping does, at the same scenario clock.
//!
//! What happened is read back from the emulator, never from the functions' return values,
//! and recorded by [`crate::observe`] exactly as the in-process executor records it:
//! - SMS: the emulator's record of SNS `Publish(PhoneNumber)` (`Emulator::sent_sms`), paired
//!   with the operator events (typed, `vigil_core::OperatorEvent`) that report them sent.
//! - Operator events: the operators topic's messages; for rejected messages, the quarantine
//!   table, which is where the live pipeline gives operators bad input.
//! - Outcomes: rejected when the message left a quarantine record, a duplicate when ingest
//!   counted one, otherwise accepted, its fields parsed from the published payload.
//! - Order levels: the zone states in the tables.
//!
//! Between scenarios the emulator is reset (`Emulator::reset`, which recreates the
//! resources), so no scenario sees another's SMS, states or claims. The broker, the bridge and
//! the tags' MQTT connections are shared across scenarios.

use crate::executor::{ExecutorError, Run, ScenarioExecutor, StepRecord};
use crate::observe::{Observer, Readback, order_levels};
use crate::scenario::{Channel, Message, Scenario};
use rumqttc::{AsyncClient, Event, Packet, QoS};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use vigil_aws::ports::AdminStore;
use vigil_core::PhoneNumber;
use vigil_local::{DynamoDb, Emulator};
use vigil_mqtt::bridge::basic_ingest_prefix;
use vigil_mqtt::{Bridge, Pki, ScenarioClock};
use vigil_stack::{Functions, LocalStack, StackClock, StackOptions};

/// How long a PUBACK, or the bridge's handling of one message, may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// The executor's name in reports and on the command line.
pub const NAME: &str = "local-stack";

/// Runs scenarios through the local stack ([`vigil_stack::LocalStack`], on a scenario clock):
/// the moto emulator, the mTLS broker with the tag policy, the rule bridge, ingest in-process
/// and the alert function draining the queue after each step. Everything it started stops
/// when it is dropped (the broker's threads, which rumqttd cannot stop, end with the process).
pub struct LocalStackExecutor {
    runtime: tokio::runtime::Runtime,
    stack: Option<Session>,
    scenarios_run: usize,
    /// Time spent resetting the emulator between scenarios, for reports.
    pub reset_time: Duration,
    /// For each message of the last scenario run: from the start of its publish until the
    /// alert queue was drained after it (the SMS it caused, if any, recorded by the emulator).
    pub step_latencies: Vec<Duration>,
}

/// The running local stack, and the scenario's tags connected to it.
struct Session {
    /// The monitoring centre's console on this stack, when served (`demo --console`).
    console: Option<vigil_stack::LocalConsole>,
    /// How long to wait after each message, so that a person watching the console sees the
    /// scenario unfold (zero: as fast as the stack handles it).
    pace: Duration,
    stack: LocalStack,
    /// The stack's scenario clock (a clone shares its time).
    clock: ScenarioClock,
    tags: HashMap<String, TagConnection>,
    /// Every command published on a device's `cmd` topic, as a subscriber on the broker
    /// received it; and how many of them the steps so far have taken.
    commands: CommandListener,
}

/// A command as received: (topic, payload).
type Command = (String, Vec<u8>);

/// A subscriber to every device's command topic (`tags/+/cmd`, `victims/+/cmd`) on the
/// broker, with the operators' identity: what the devices receive.
struct CommandListener {
    received: Arc<std::sync::Mutex<Vec<Command>>>,
    taken: usize,
    client: AsyncClient,
    task: JoinHandle<()>,
}

impl CommandListener {
    async fn start(stack: &LocalStack) -> Result<CommandListener, ExecutorError> {
        let identity = stack
            .pki
            .client(vigil_mqtt::pki::OPERATOR_CLIENT_ID)
            .map_err(|e| fail(format!("the operators' certificate: {e}")))?;
        let options =
            vigil_mqtt::client::mqtt_options(&stack.endpoint(), "vigil-operator-sim", &identity)
                .map_err(|e| fail(format!("the command listener's MQTT options: {e}")))?;
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        let received = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (subscribed_tx, mut subscribed) = mpsc::unbounded_channel();
        let sink = received.clone();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        sink.lock()
                            .expect("command list")
                            .push((p.topic.clone(), p.payload.to_vec()));
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = subscribed_tx.send(());
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
        for filter in ["tags/+/cmd", "victims/+/cmd"] {
            client
                .subscribe(filter, QoS::AtLeastOnce)
                .await
                .map_err(|e| fail(format!("subscribing to {filter}: {e}")))?;
        }
        for _ in 0..2 {
            tokio::time::timeout(STEP_TIMEOUT, subscribed.recv())
                .await
                .map_err(|_| fail("the broker did not acknowledge the command subscriptions"))?;
        }
        Ok(CommandListener {
            received,
            taken: 0,
            client,
            task,
        })
    }

    /// The commands received since the last call, once as many as the stack's data plane
    /// has published have arrived.
    async fn take(&mut self, published: u64) -> Result<Vec<Command>, ExecutorError> {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            {
                let all = self.received.lock().expect("command list");
                // The listener subscribed before the first step, on a broker of its own
                // session: every command it receives is one the data plane published.
                if all.len() as u64 >= published {
                    let new = all[self.taken..].to_vec();
                    self.taken = all.len();
                    return Ok(new);
                }
            }
            if Instant::now() > deadline {
                return Err(fail(format!(
                    "the broker delivered fewer commands than the data plane published ({published}) within {STEP_TIMEOUT:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn close(self) {
        let _ = self.client.disconnect().await;
        self.task.abort();
    }
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
        Self::start_with(endpoint, None)
    }

    /// As [`LocalStackExecutor::start_on`], with the DynamoDB of a started emulator chosen
    /// here rather than by `VIGIL_DYNAMODB` (`None`: by it): [`DynamoDb::Local`] runs the
    /// scenarios on AWS's DynamoDB Local, with SNS, SQS and IoT on moto.
    pub fn start_with(
        endpoint: Option<&str>,
        dynamodb: Option<DynamoDb>,
    ) -> Result<LocalStackExecutor, ExecutorError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| fail(format!("starting the async runtime: {e}")))?;
        let stack = runtime.block_on(Session::start(endpoint, dynamodb))?;
        Ok(LocalStackExecutor {
            runtime,
            stack: Some(stack),
            scenarios_run: 0,
            reset_time: Duration::ZERO,
            step_latencies: Vec::new(),
        })
    }

    /// Serves the monitoring centre's console on the stack (the web app built first when
    /// needed; the local sign-in) and plays each scenario at `pace` per message from now on;
    /// returns the console's URL.
    ///
    /// Fails when the stack was stopped, or the web app cannot be built or served.
    pub fn serve_console(&mut self, pace: Duration) -> Result<String, ExecutorError> {
        let session = self
            .stack
            .as_mut()
            .ok_or_else(|| fail("the local stack was stopped"))?;
        let dist = vigil_stack::console::build_web().map_err(fail)?;
        let console = self
            .runtime
            .block_on(vigil_stack::LocalConsole::start(&session.stack, dist, None))
            .map_err(|e| fail(e.to_string()))?;
        let url = console.url().to_owned();
        session.console = Some(console);
        session.pace = pace;
        Ok(url)
    }

    /// Blocks until Ctrl-C or SIGTERM (the console stays served meanwhile).
    pub fn wait_for_stop(&self) {
        let _ = self.runtime.block_on(vigil_stack::wait_for_stop_signal());
    }

    /// The emulator of the running stack, e.g. for its endpoint.
    pub fn emulator(&self) -> Option<&Emulator> {
        self.stack.as_ref().map(|s| s.stack.emulator())
    }

    /// Runs `f` on the executor's runtime with the stack's functions, broker endpoint, PKI,
    /// bridge and clock: for measurements that drive the same stack directly.
    pub fn with_stack<T>(&self, f: impl AsyncFnOnce(StackParts<'_>) -> T) -> Option<T> {
        let stack = self.stack.as_ref()?;
        Some(self.runtime.block_on(f(StackParts {
            functions: &stack.stack.functions,
            endpoint: stack.stack.endpoint(),
            pki: &stack.stack.pki,
            bridge: &stack.stack.bridge,
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
    pub functions: &'a Arc<Functions>,
    /// Where tags connect.
    pub endpoint: vigil_mqtt::Endpoint,
    /// The PKI the broker trusts.
    pub pki: &'a Pki,
    /// The rule bridge.
    pub bridge: &'a Bridge,
    /// The bridge's clock.
    pub clock: &'a ScenarioClock,
}

/// Provisions every order of `scenario` with its zones through the operators' provisioning
/// code (vigil-admin).
pub(crate) async fn provision(
    store: &vigil_aws::DynamoStore,
    scenario: &Scenario,
) -> Result<(), ExecutorError> {
    for order in &scenario.orders {
        vigil_admin::orders::provision_order(store, order, &scenario.zones_of(order))
            .await
            .map_err(|e| fail(format!("provisioning order {}: {e}", order.order_id)))?;
    }
    Ok(())
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
                .block_on(stack.stack.emulator().reset())
                .map_err(|e| fail(format!("resetting the emulator between scenarios: {e}")))?;
            self.reset_time += started.elapsed();
            // Each scenario has its own timeline: the functions' clock starts again with it
            // (else the previous scenario's later time makes every alert look late).
            stack.stack.functions.reset_clock();
        }
        self.scenarios_run += 1;
        self.step_latencies.clear();
        self.runtime
            .block_on(stack.run(scenario, &mut self.step_latencies))
    }
}

impl Session {
    async fn start(
        endpoint: Option<&str>,
        dynamodb: Option<DynamoDb>,
    ) -> Result<Session, ExecutorError> {
        let clock = ScenarioClock::new(0);
        let stack = LocalStack::start(StackOptions {
            endpoint_url: endpoint.map(str::to_owned),
            dynamodb,
            clock: StackClock::Scenario(clock.clone()),
            ..StackOptions::default()
        })
        .await
        .map_err(|e| fail(e.to_string()))?;
        let commands = CommandListener::start(&stack).await?;
        Ok(Session {
            console: None,
            pace: Duration::ZERO,
            stack,
            clock,
            tags: HashMap::new(),
            commands,
        })
    }

    async fn stop(self) {
        drop(self.console);
        for (_, tag) in self.tags {
            tag.close().await;
        }
        self.commands.close().await;
        self.stack.stop().await;
    }

    /// Provisions the scenario and delivers its messages one at a time.
    async fn run(
        &mut self,
        scenario: &Scenario,
        latencies: &mut Vec<Duration>,
    ) -> Result<Run, ExecutorError> {
        provision(&self.stack.functions.store, scenario).await?;
        let mut observer = Observer::default();
        let mut seen = (0, 0, self.stack.ingest.metrics.total("MessageDuplicate"));
        let mut steps = Vec::with_capacity(scenario.messages.len());
        for (index, message) in scenario.messages.iter().enumerate() {
            steps.push(
                self.deliver(
                    scenario,
                    index,
                    message,
                    &mut observer,
                    &mut seen,
                    latencies,
                )
                .await?,
            );
            if !self.pace.is_zero() {
                tokio::time::sleep(self.pace).await;
            }
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
        observer: &mut Observer,
        seen: &mut (usize, usize, u64),
        latencies: &mut Vec<Duration>,
    ) -> Result<StepRecord, ExecutorError> {
        if message.channel == Channel::Ack {
            // An operator, with the CLI's code, against the stack's tables.
            self.clock.set_ms(message.received_at_ms);
            crate::executor::acknowledge(&self.stack.functions.store, message)
                .await
                .map_err(fail)?;
            let readback = self.readback(scenario, message, observer, seen).await?;
            return observer
                .step(scenario, index, message, readback)
                .map_err(|e| fail(format!("{}: {e}", message.source)));
        }
        if message.channel == Channel::Tick {
            // EventBridge's schedule: the watchdog runs at this minute, then the queues drain.
            self.clock.set_ms(message.received_at_ms);
            self.stack
                .functions
                .run_schedules(message.received_at_ms)
                .await
                .map_err(|e| fail(format!("{}: {e}", message.source)))?;
            let readback = self.readback(scenario, message, observer, seen).await?;
            return observer
                .step(scenario, index, message, readback)
                .map_err(|e| fail(format!("{}: {e}", message.source)));
        }
        let topic = message.topic();
        let before = self.stack.bridge.stats();
        let expected: BTreeMap<String, u64> = self
            .stack
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
        // As devices publish in AWS (docs/WIRE_FORMAT.md): on the Basic Ingest topic of the
        // rule that takes the message, which sees the topic without the prefix.
        let basic_ingest = self
            .stack
            .rules
            .iter()
            .find(|(_, statement)| statement.matches_topic(&topic))
            .map_or_else(
                || topic.clone(),
                |(rule, _)| {
                    let stage = self.stack.emulator().stage();
                    format!("{}{topic}", basic_ingest_prefix(stage, rule))
                },
            );
        let failures_before = self.stack.bridge.failures().len();
        self.clock.set_ms(message.received_at_ms);
        let published = Instant::now();
        self.publish(message, &basic_ingest).await?;
        self.stack
            .bridge
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
            .stack
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
        self.stack.functions.advance_clock(message.received_at_ms);
        self.stack
            .functions
            .try_drain()
            .await
            .map_err(|e| fail(format!("draining the alert queue: {e}")))?;
        latencies.push(published.elapsed());

        let readback = self.readback(scenario, message, observer, seen).await?;
        observer
            .step(scenario, index, message, readback)
            .map_err(|e| fail(format!("{}: {e}", message.source)))
    }

    /// Publishes at QoS 1 as `tag` (its own connection and certificate) and waits for the
    /// broker's PUBACK.
    /// Publishes as the message's thing, over its own connection: a tag with the tag policy,
    /// a victim's device with the victim-device policy (its certificate has that one attached).
    async fn publish(&mut self, message: &Message, topic: &str) -> Result<(), ExecutorError> {
        let thing = message.tag_id.as_str();
        if !self.tags.contains_key(thing) {
            let pki = &self.stack.pki;
            let identity = match message.channel {
                Channel::Position => pki.device(thing),
                Channel::Fix | Channel::Event | Channel::Tick | Channel::Ack => pki.client(thing),
            }
            .map_err(|e| fail(format!("{thing}'s certificate: {e}")))?;
            let connection = connect_as(&self.stack.endpoint(), thing, &identity)?;
            self.tags.insert(thing.to_owned(), connection);
        }
        self.tags
            .get_mut(thing)
            .expect("the connection was just made")
            .publish(topic, message.payload.as_bytes())
            .await
    }

    /// What the stack recorded since the previous message: SMS and operator events from the
    /// emulator, the tag's quarantine records, the ingest's duplicate counter, the levels.
    async fn readback(
        &mut self,
        scenario: &Scenario,
        message: &Message,
        observer: &mut Observer,
        seen: &mut (usize, usize, u64),
    ) -> Result<Readback, ExecutorError> {
        let emulator = &self.stack.functions.emulator;
        let sms = emulator
            .sent_sms()
            .await
            .map_err(|e| fail(format!("reading back SMS: {e}")))?;
        let published = emulator
            .operator_events()
            .await
            .map_err(|e| fail(format!("reading back operator events: {e}")))?;
        let new_sms = sms
            .get(seen.0..)
            .unwrap_or_default()
            .iter()
            .map(|s| {
                PhoneNumber::new(&s.phone_number)
                    .map(|p| (p, s.message.clone()))
                    .map_err(|e| {
                        fail(format!(
                            "the emulator recorded an SMS to an invalid number: {e}"
                        ))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let events = published
            .get(seen.1..)
            .unwrap_or_default()
            .iter()
            .map(|m| {
                serde_json::from_str::<vigil_core::OperatorEvent>(&m.message).map_err(|e| {
                    fail(format!(
                        "an operator event is not a v1 operator event ({e})"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let duplicates = self.stack.ingest.metrics.total("MessageDuplicate");
        let quarantined = self
            .stack
            .functions
            .store
            .quarantined(&crate::in_process::quarantine_key(message))
            .await
            .map_err(|e| fail(format!("reading the quarantine table: {e}")))?;
        // The commands the alert function published through the IoT data plane, as the devices
        // receive them from the broker.
        let commands = self.commands.take(self.stack.iot_data.published()).await?;
        let readback = Readback {
            sms: new_sms,
            events,
            commands,
            quarantined: observer.new_quarantine(&message.tag_id, quarantined),
            duplicates: duplicates - seen.2,
            levels: order_levels(&self.stack.functions.store, scenario, &message.tag_id)
                .await
                .map_err(fail)?,
        };
        *seen = (sms.len(), published.len(), duplicates);
        Ok(readback)
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
    connect_as(endpoint, tag, &identity)
}

/// Connects as the thing `tag` with its certificate.
pub(crate) fn connect_as(
    endpoint: &vigil_mqtt::Endpoint,
    tag: &str,
    identity: &vigil_mqtt::pki::CertPair,
) -> Result<TagConnection, ExecutorError> {
    let identity = identity.clone();
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
