//! [`Functions`]: Vigil's functions wired on an emulator, in this process, as their `main.rs`
//! wires them in Lambda: the IoT rule's Lambda action into ingest, the alert queue (SQS FIFO)
//! drained as Lambda's event source mapping does, the alert function, SNS and KMS, and
//! read-back of what victims and operators received.
//!
//! Every function is one line of [`deploy`]: its name, its [`Trigger`] (how AWS invokes it)
//! and its [`Handler`] on ports built as its `main.rs` builds them. The stack wires each
//! trigger the same way for every function: an IoT rule's Lambda action and the Lambda Invoke
//! API by name, a queue's event source mapping, or an EventBridge schedule (the watchdog,
//! every minute: at a scenario's clock through [`Functions::run_schedules`], or at the wall
//! clock in [`Functions::spawn_event_sources`]).
//!
//! Time: messages carry the receive time the rule would give them. The alert function handles
//! a batch at the functions' clock, which follows the newest receive time published (a
//! scenario clock, so that a test's fixed dates are "now" for the whole pipeline), or at the
//! wall clock in [`Functions::spawn_event_sources`], the long-running form `up` uses.

use serde_json::Value;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;
use vigil_alert::handle_batch;
use vigil_aws::metrics::MemoryMetrics;
use vigil_aws::{
    Aws, Config, DynamoStore, IotCommander, KmsDestinationMac, S3AnchorBucket, SnsNotifier,
    SqsQueue,
};
use vigil_core::fix::encode_fix;
use vigil_core::{Fix, ProtectionOrder, Zone};
use vigil_ingest::{Outcome, handle, rule_event};
use vigil_local::{Emulator, SentSms, SqsEventSource, StreamEventSource, TopicMessage};
use vigil_mqtt::{ActionError, Clock, CompressedClock};

/// The ingest function's ports on the emulator.
pub type IngestPorts = vigil_ingest::Ports<DynamoStore, SqsQueue, MemoryMetrics>;

/// The anchor function's ports on the emulator.
pub type AnchorPorts = vigil_anchor::Ports<S3AnchorBucket, DynamoStore, MemoryMetrics>;

/// The watchdog's ports on the emulator.
pub type WatchdogPorts = vigil_watchdog::Ports<DynamoStore, SqsQueue, MemoryMetrics>;

/// The alert function's ports on the emulator.
pub type AlertPorts =
    vigil_alert::Ports<DynamoStore, SnsNotifier, KmsDestinationMac, MemoryMetrics, IotCommander>;

/// How AWS invokes a function (`infra/lib/vigil-stack.ts`), and so how the local stack does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The Lambda action of the IoT rules that name this function (`infra/rules`,
    /// `RuleTargets`); also invocable by name through the Lambda Invoke API.
    IotRule,
    /// Lambda's event source mapping on this queue (its logical name in
    /// `infra/resources.json`): batches of up to 10 at the stack's clock, partial batch
    /// failures back to the queue, a batch not done within `timeout` abandoned whole.
    Queue {
        /// The queue.
        queue: &'static str,
        /// The function's timeout as deployed.
        timeout: Duration,
    },
    /// Lambda's event source mapping on this table's DynamoDB stream (its logical name in
    /// `infra/resources.json`): each shard in order, batches of up to `batch_size` gathered
    /// for up to `window`, a batch item failure retried from that record, nothing skipped.
    Stream {
        /// The table.
        table: &'static str,
        /// Records per batch at most.
        batch_size: i32,
        /// How long a batch is gathered (`MaximumBatchingWindowInSeconds`).
        window: Duration,
    },
    /// An EventBridge schedule: `rate(every)`, fired at the start of each period (for a
    /// minute, at :00), with a scheduled event; the stack fires it at its clock (a scenario's,
    /// [`Functions::run_schedules`], or the wall clock in [`Functions::spawn_event_sources`]).
    Schedule {
        /// The rate.
        every: Duration,
    },
}

/// A function's handler as the stack invokes it: the event its trigger delivers and the
/// stack's clock (ms since the epoch); its JSON result, or an error that says whether a retry
/// can help (the Lambda error type).
pub type Handler = Arc<
    dyn Fn(Value, i64) -> Pin<Box<dyn Future<Output = Result<Value, ActionError>> + Send>>
        + Send
        + Sync,
>;

/// One of Vigil's functions as the stack deploys it.
#[derive(Clone)]
pub struct Deployed {
    /// Its logical name: `vigil-<stage>-<name>` in AWS.
    pub name: &'static str,
    /// How it is invoked.
    pub trigger: Trigger,
    /// What runs.
    pub handler: Handler,
}

impl std::fmt::Debug for Deployed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deployed")
            .field("name", &self.name)
            .field("trigger", &self.trigger)
            .finish_non_exhaustive()
    }
}

/// Every function of the stack, one line each (a table, kept one line per function): a new
/// function goes here, with its handler adapter below (its Lambda signature, as its `main.rs`
/// serves it).
#[rustfmt::skip]
fn deploy(ingest: &Arc<IngestPorts>, alert: &Arc<AlertPorts>, watchdog: &Arc<WatchdogPorts>, anchor: &Arc<AnchorPorts>, o: &FunctionOptions) -> Vec<Deployed> {
    vec![
        Deployed::rule("ingest", ingest_handler(ingest.clone())),
        Deployed::queue("alert", "alerts", o.alert_timeout, alert_handler(alert.clone())),
        Deployed::schedule("watchdog", Duration::from_secs(60), watchdog_handler(watchdog.clone())),
        Deployed::stream("anchor", "audit", ANCHOR_BATCH_SIZE, o.anchor_window, anchor_handler(anchor.clone())),
    ]
}

/// The anchor function's batch size on the audit stream, as `infra/lib/vigil-stack.ts`
/// deploys it.
pub const ANCHOR_BATCH_SIZE: i32 = 100;

/// The anchor function's batching window on the audit stream, as `infra/lib/vigil-stack.ts`
/// deploys it: the longest a change waits for its anchor when all runs (docs/EVIDENCE.md).
pub const ANCHOR_WINDOW: Duration = Duration::from_secs(10);

impl Deployed {
    /// A function an IoT rule's Lambda action invokes.
    pub fn rule(name: &'static str, handler: Handler) -> Deployed {
        Deployed {
            name,
            trigger: Trigger::IotRule,
            handler,
        }
    }

    /// A function an EventBridge schedule invokes every `every`.
    pub fn schedule(name: &'static str, every: Duration, handler: Handler) -> Deployed {
        Deployed {
            name,
            trigger: Trigger::Schedule { every },
            handler,
        }
    }

    /// A function Lambda's event source mapping on `table`'s stream invokes.
    pub fn stream(
        name: &'static str,
        table: &'static str,
        batch_size: i32,
        window: Duration,
        handler: Handler,
    ) -> Deployed {
        Deployed {
            name,
            trigger: Trigger::Stream {
                table,
                batch_size,
                window,
            },
            handler,
        }
    }

    /// A function Lambda's event source mapping on `queue` invokes; `timeout` as deployed.
    pub fn queue(
        name: &'static str,
        queue: &'static str,
        timeout: Duration,
        handler: Handler,
    ) -> Deployed {
        Deployed {
            name,
            trigger: Trigger::Queue { queue, timeout },
            handler,
        }
    }
}

/// Ingest as its `main.rs` serves it: the rule's event in, the outcome out; a failed port is a
/// `Retryable` or `Permanent` error.
fn ingest_handler(ports: Arc<IngestPorts>) -> Handler {
    Arc::new(move |event, _now_ms| {
        let ports = ports.clone();
        Box::pin(async move {
            match vigil_ingest::handle(event, &ports).await {
                Ok(outcome) => Ok(Value::String(format!("{outcome:?}"))),
                Err(e) => Err(ActionError {
                    retryable: e.is_retryable(),
                    message: format!("ingest failed ({}): {e}", e.error_type()),
                }),
            }
        })
    })
}

/// Alert as its `main.rs` serves it: an SQS event in, the partial batch response out, at the
/// stack's clock.
fn alert_handler(ports: Arc<AlertPorts>) -> Handler {
    Arc::new(move |event, now_ms| {
        let ports = ports.clone();
        Box::pin(async move {
            let event = serde_json::from_value(event).map_err(|e| ActionError {
                retryable: false,
                message: format!("not an SQS event: {e}"),
            })?;
            let response = handle_batch(event, &ports, now_ms).await;
            Ok(serde_json::to_value(&response).expect("a batch response is JSON"))
        })
    })
}

/// The anchor function as its `main.rs` serves it: a DynamoDB stream event in, the partial
/// batch response out, at the stack's clock.
fn anchor_handler(ports: Arc<AnchorPorts>) -> Handler {
    Arc::new(move |event, now_ms| {
        let ports = ports.clone();
        Box::pin(async move {
            Ok(vigil_anchor::handle(&event, &ports, now_ms)
                .await
                .response())
        })
    })
}

/// The watchdog as its `main.rs` serves it: a scheduled event in, a summary out, at the
/// stack's clock (the schedule's time).
fn watchdog_handler(ports: Arc<WatchdogPorts>) -> Handler {
    Arc::new(move |_event, now_ms| {
        let ports = ports.clone();
        Box::pin(async move {
            match vigil_watchdog::run(&ports, now_ms).await {
                Ok(o) => Ok(serde_json::json!({
                    "minutes": o.minutes.len(),
                    "checked": o.checked,
                    "started": o.started,
                    "ended": o.ended,
                })),
                Err(e) => Err(ActionError {
                    retryable: e.0.is_retryable(),
                    message: format!("watchdog failed: {e}"),
                }),
            }
        })
    })
}

/// A scheduled function and the time it last fired (ms; 0: never).
struct Scheduled {
    name: &'static str,
    every_ms: i64,
    handler: Handler,
    last_ms: AtomicI64,
}

/// EventBridge's scheduled event for `at_ms`.
fn scheduled_event(name: &str, at_ms: i64) -> Value {
    let time = chrono::DateTime::from_timestamp_millis(at_ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    serde_json::json!({
        "version": "0",
        "source": "aws.events",
        "detail-type": "Scheduled Event",
        "time": time,
        "resources": [format!("local:rule/vigil-{name}")],
        "detail": {},
    })
}

/// A queue-triggered function and its event source mapping.
struct Consumer {
    name: &'static str,
    source: SqsEventSource,
    handler: Handler,
    timeout: Duration,
}

/// A stream-triggered function and its event source mapping.
struct StreamConsumer {
    name: &'static str,
    source: tokio::sync::Mutex<StreamEventSource>,
    handler: Handler,
    batch_size: i32,
    window: Duration,
}

/// The functions wired on an emulator.
pub struct Functions {
    /// The emulator (stopped when the functions are dropped).
    pub emulator: Emulator,
    /// The functions' configuration.
    pub config: Config,
    /// The store, for provisioning and assertions.
    pub store: DynamoStore,
    /// The ingest function's ports (their metrics count every message delivered to it).
    pub ingest: Arc<IngestPorts>,
    /// The alert function's ports.
    pub alert: Arc<AlertPorts>,
    /// The watchdog's ports.
    pub watchdog: Arc<WatchdogPorts>,
    /// The anchor function's ports.
    pub anchor: Arc<AnchorPorts>,
    deployed: Vec<Deployed>,
    consumers: Vec<Consumer>,
    streams: Vec<StreamConsumer>,
    schedules: Vec<Scheduled>,
    now_ms: Arc<AtomicI64>,
    options: FunctionOptions,
    timeouts: AtomicU64,
}

/// How the functions run on the emulator (defaults: as deployed).
#[derive(Debug, Clone)]
pub struct FunctionOptions {
    /// Where the functions' AWS clients connect instead of the emulator's own endpoint (a
    /// [`vigil_local::FaultProxy`] in front of it).
    pub endpoint_url: Option<String>,
    /// The IoT data plane's endpoint (`AWS_ENDPOINT_URL_IOT_DATA_PLANE`), where the alert
    /// function's commander publishes: the stack's [`crate::IotDataApi`], which forwards to
    /// the local broker. `None`: the emulator's, which keeps commands to itself.
    pub iot_data_endpoint_url: Option<String>,
    /// The alert function's timeout: a batch not handled by then is abandoned mid-way, as
    /// Lambda stops a function that runs out of time, and comes back after the queue's
    /// visibility timeout. Default: 30 s, as `infra/` deploys it.
    pub alert_timeout: Duration,
    /// When set, failed and abandoned alert messages come back after this instead of the
    /// queue's visibility timeout (60 s), so a test reaches the dead-letter queue in seconds.
    pub retry_after: Option<Duration>,
    /// When set, every SMS the alert function sends is recorded here with its time.
    pub sms_log: Option<crate::SmsLog>,
    /// The anchor function's batching window on the audit stream. Default: [`ANCHOR_WINDOW`],
    /// as deployed.
    pub anchor_window: Duration,
}

impl Default for FunctionOptions {
    fn default() -> Self {
        FunctionOptions {
            endpoint_url: None,
            iot_data_endpoint_url: None,
            alert_timeout: ALERT_TIMEOUT,
            retry_after: None,
            sms_log: None,
            anchor_window: ANCHOR_WINDOW,
        }
    }
}

/// Batches of a queue handled at once: the alert function's reserved concurrency as `infra/`
/// deploys it (`alertReservedConcurrency` in `infra/lib/config.ts`). Lambda's event source
/// mapping on a FIFO queue runs that many batches at once, never two of one message group (one
/// order) at once; the emulator's FIFO queue keeps that rule, as SQS does.
pub const QUEUE_CONCURRENCY: usize = 5;

/// The alert function's timeout as `infra/lib/vigil-stack.ts` deploys it.
pub const ALERT_TIMEOUT: Duration = Duration::from_secs(30);

impl Functions {
    /// Starts an emulator and wires the functions to it as `main.rs` would in Lambda.
    ///
    /// Panics if the emulator does not start (tests); see [`Functions::on`] for a fallible one.
    pub async fn start() -> Functions {
        let emulator = Emulator::start().await.expect("emulator starts");
        Functions::on(emulator).expect("functions on the emulator")
    }

    /// Wires the functions to `emulator` as `main.rs` would in Lambda; they own it (a started
    /// emulator stops when they are dropped).
    ///
    /// Fails with a description when the emulator's environment lacks a queue or topic the
    /// functions' configuration needs.
    pub fn on(emulator: Emulator) -> Result<Functions, String> {
        Functions::on_with(emulator, FunctionOptions::default())
    }

    /// As [`Functions::on`], with options (an endpoint in front of the emulator, the IoT data
    /// plane's endpoint, the alert function's timeout, a shorter retry delay).
    ///
    /// Fails as [`Functions::on`].
    pub fn on_with(emulator: Emulator, options: FunctionOptions) -> Result<Functions, String> {
        let env: BTreeMap<String, String> = emulator.env_vars().into_iter().collect();
        let config =
            Config::from_lookup(|k| env.get(k).cloned()).map_err(|e| format!("config: {e}"))?;
        let sdk = match &options.endpoint_url {
            Some(url) => emulator.sdk_config_via(url),
            None => emulator.sdk_config(),
        };
        let sdk = match &options.iot_data_endpoint_url {
            Some(url) => crate::iot_data::with_endpoint(&sdk, url),
            None => sdk,
        };
        let aws = Aws {
            config: config.clone(),
            sdk,
        };
        let store = aws.store();
        let queue = aws.queue().map_err(|e| format!("alert queue: {e}"))?;
        let ingest = Arc::new(vigil_ingest::Ports::new(
            store.clone(),
            queue,
            MemoryMetrics::default(),
        ));
        let notifier = match &options.sms_log {
            // As `aws.notifier()` builds it, with the log's interceptor on the client.
            Some(log) => SnsNotifier::new(
                aws_sdk_sns::Client::from_conf(
                    aws_sdk_sns::config::Builder::from(&aws.sdk)
                        .interceptor(log.clone())
                        .build(),
                ),
                config
                    .operators_topic_arn()
                    .map_err(|e| format!("operators topic: {e}"))?,
                config.sms_sender_id.clone(),
            ),
            None => aws
                .notifier()
                .map_err(|e| format!("operators topic: {e}"))?,
        };
        let alert = Arc::new(vigil_alert::Ports {
            store: store.clone(),
            notifier,
            destination_mac: aws
                .destination_mac()
                .map_err(|e| format!("destination key: {e}"))?,
            metrics: MemoryMetrics::default(),
            commander: aws.commander(),
            sms_countries: config.sms_countries.clone(),
            // The document the harness put in the forces parameter, as main.rs reads it.
            forces: vigil_core::forces::Forces::parse(emulator.forces_document())
                .ok()
                .map(Arc::new),
        });
        let watchdog = Arc::new(vigil_watchdog::Ports {
            store: store.clone(),
            queue: aws.queue().map_err(|e| format!("alert queue: {e}"))?,
            metrics: MemoryMetrics::default(),
        });
        let anchor = Arc::new(vigil_anchor::Ports {
            bucket: aws
                .anchor_bucket()
                .map_err(|e| format!("anchors bucket: {e}"))?,
            orders: store.clone(),
            metrics: MemoryMetrics::default(),
            forces: alert.forces.clone(),
        });
        let deployed = deploy(&ingest, &alert, &watchdog, &anchor, &options);
        let mut consumers = Vec::new();
        let mut schedules = Vec::new();
        let mut streams = Vec::new();
        for d in &deployed {
            if let Trigger::Stream {
                table,
                batch_size,
                window,
            } = d.trigger
            {
                streams.push(StreamConsumer {
                    name: d.name,
                    source: tokio::sync::Mutex::new(
                        emulator
                            .stream_source(table)
                            .map_err(|e| format!("{}'s stream: {e}", d.name))?,
                    ),
                    handler: d.handler.clone(),
                    batch_size,
                    window,
                });
            }
            if let Trigger::Schedule { every } = d.trigger {
                schedules.push(Scheduled {
                    name: d.name,
                    every_ms: every.as_millis() as i64,
                    handler: d.handler.clone(),
                    last_ms: AtomicI64::new(0),
                });
            }
            if let Trigger::Queue { queue, timeout } = d.trigger {
                let url = emulator
                    .queue_url(queue)
                    .map_err(|e| format!("{}'s queue: {e}", d.name))?;
                consumers.push(Consumer {
                    name: d.name,
                    source: SqsEventSource::new(
                        aws_sdk_sqs::Client::new(&aws.sdk),
                        url,
                        emulator.region(),
                    ),
                    handler: d.handler.clone(),
                    timeout,
                });
            }
        }
        Ok(Functions {
            emulator,
            config,
            store,
            ingest,
            alert,
            watchdog,
            anchor,
            deployed,
            consumers,
            streams,
            schedules,
            now_ms: Arc::new(AtomicI64::new(0)),
            options,
            timeouts: AtomicU64::new(0),
        })
    }

    /// Every function, with its trigger and handler ([`deploy`]).
    pub fn deployed(&self) -> &[Deployed] {
        &self.deployed
    }

    /// Provisions an order and its zones through the operators' provisioning code (vigil-admin).
    pub async fn provision(&self, order: &ProtectionOrder, zones: &[Zone]) {
        vigil_admin::orders::provision_order(&self.store, order, zones)
            .await
            .expect("provision order and zones");
    }

    /// Delivers a fix as IoT Core would: the rule's Lambda action invokes ingest (received
    /// 200 ms after the device time).
    pub async fn publish_fix(&self, fix: &Fix) -> Outcome {
        let received_at = fix.at_ms + 200;
        self.publish_raw(fix.tag_id.as_str(), "fix", &encode_fix(fix), received_at)
            .await
    }

    /// Delivers any payload on `tags/{tag}/{channel}` to ingest, as the rule encodes it; the
    /// functions' clock moves to `received_at_ms` if that is later.
    pub async fn publish_raw(
        &self,
        tag: &str,
        channel: &str,
        payload: &[u8],
        received_at_ms: i64,
    ) -> Outcome {
        self.advance_clock(received_at_ms);
        handle(
            rule_event(tag, channel, payload, received_at_ms),
            &self.ingest,
        )
        .await
        .expect("ingest")
    }

    /// Moves the functions' clock to `now_ms` if that is later.
    pub fn advance_clock(&self, now_ms: i64) {
        self.now_ms.fetch_max(now_ms, Ordering::SeqCst);
    }

    /// Starts the functions' clock again (a new scenario's timeline, after an emulator reset),
    /// the schedules' too.
    pub fn reset_clock(&self) {
        self.now_ms.store(0, Ordering::SeqCst);
        for s in &self.schedules {
            s.last_ms.store(0, Ordering::SeqCst);
        }
    }

    /// The functions' clock: the newest receive time published (or advanced to).
    pub fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }

    /// Fires every scheduled function (the watchdog) at each of its times after the last one
    /// and up to `until_ms`, at that time, draining the queues after each run, as EventBridge
    /// and the event source mappings would; returns the runs made. A schedule that never fired
    /// fires first at the start of the period that holds `until_ms`. Also moves the functions'
    /// clock to `until_ms`.
    ///
    /// Fails when a run fails (the error names the function) or a queue cannot be drained.
    pub async fn run_schedules(&self, until_ms: i64) -> Result<usize, String> {
        let mut runs = 0;
        for s in &self.schedules {
            let last = s.last_ms.load(Ordering::SeqCst);
            let mut at = if last == 0 {
                until_ms.div_euclid(s.every_ms) * s.every_ms
            } else {
                last + s.every_ms
            };
            while at <= until_ms {
                self.advance_clock(at);
                (s.handler)(scheduled_event(s.name, at), at)
                    .await
                    .map_err(|e| format!("{} at {at}: {}", s.name, e.message))?;
                s.last_ms.store(at, Ordering::SeqCst);
                runs += 1;
                self.try_drain()
                    .await
                    .map_err(|e| format!("draining after {}: {e}", s.name))?;
                at += s.every_ms;
            }
        }
        self.advance_clock(until_ms);
        Ok(runs)
    }

    /// Runs the queue-triggered functions (the alert function) on everything in their queues,
    /// batch by batch, until every queue is empty; returns the number of messages handled.
    /// Panics if a queue cannot be read; see [`Functions::try_drain`].
    pub async fn drain(&self) -> usize {
        self.try_drain().await.expect("drain the functions' queues")
    }

    /// Runs each queue-triggered function on everything in its queue, batch by batch, as
    /// Lambda's event source mapping does, at the functions' clock, until every queue is
    /// empty (a function may queue work for another); returns the number of messages handled.
    ///
    /// Fails when the emulator does not answer a receive or delete.
    pub async fn try_drain(&self) -> Result<usize, vigil_local::Error> {
        let mut handled = 0;
        loop {
            let mut received = 0;
            for consumer in &self.consumers {
                loop {
                    let batch = consumer.source.receive(10, 0).await?;
                    if batch.is_empty() {
                        break;
                    }
                    received += batch.len();
                    handled += self
                        .handle_received(consumer, &batch, self.now_ms())
                        .await?;
                }
            }
            if received == 0 {
                return Ok(handled);
            }
        }
    }

    /// Every queue's event source mapping as Lambda runs it, in tasks that run until aborted:
    /// per queue, [`QUEUE_CONCURRENCY`] pollers, each in long polls of up to 10 messages, each
    /// batch handled at `clock`'s time (the wall clock's, or a load run's faster one), partial
    /// batch failures returned to the queue; and every schedule, at `clock`'s minutes. An
    /// unreadable queue is logged and retried.
    pub fn spawn_event_sources(
        self: &Arc<Self>,
        clock: CompressedClock,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let queues = (0..self.consumers.len() * QUEUE_CONCURRENCY).map(|n| {
            let i = n / QUEUE_CONCURRENCY;
            let (functions, clock) = (self.clone(), clock.clone());
            tokio::spawn(async move {
                functions
                    .run_event_source(&functions.consumers[i], &clock)
                    .await
            })
        });
        let schedules = (0..self.schedules.len()).map(|i| {
            let (functions, clock) = (self.clone(), clock.clone());
            tokio::spawn(async move {
                functions
                    .run_schedule(&functions.schedules[i], &clock)
                    .await
            })
        });
        let streams = (0..self.streams.len()).map(|i| {
            let (functions, clock) = (self.clone(), clock.clone());
            tokio::spawn(async move {
                functions
                    .run_stream_source(&functions.streams[i], &clock)
                    .await
            })
        });
        queues.chain(schedules).chain(streams).collect()
    }

    /// A stream's event source mapping at `clock`: polls its shards; once records arrive,
    /// gathers for the batching window (at `clock`'s pace), then hands one batch to the
    /// function and moves past what it finished.
    async fn run_stream_source(&self, s: &StreamConsumer, clock: &CompressedClock) {
        let mut gathering = false;
        loop {
            let polled = s.source.lock().await.poll(s.batch_size).await;
            match polled {
                Ok(Some(batch)) if gathering || batch.len() >= s.batch_size as usize => {
                    gathering = false;
                    if let Err(e) = self.handle_stream_batch(s, batch, clock.now_ms()).await {
                        tracing::warn!(function = s.name, error = %e, "a stream batch failed; retried");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
                Ok(Some(_)) => {
                    gathering = true;
                    tokio::time::sleep(clock.real(s.window.as_millis() as i64)).await;
                }
                // Lambda polls a shard four times a second; locally once (the window is 10 s).
                Ok(None) => tokio::time::sleep(Duration::from_secs(1)).await,
                Err(e) => {
                    tracing::warn!(function = s.name, error = %e, "stream unreadable; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Runs a stream's function on one batch at `now_ms` and moves the stream past what it
    /// finished; fails, leaving the position where it was, when the invocation fails.
    async fn handle_stream_batch(
        &self,
        s: &StreamConsumer,
        batch: vigil_local::StreamBatch,
        now_ms: i64,
    ) -> Result<usize, String> {
        let response = (s.handler)(batch.event.clone(), now_ms)
            .await
            .map_err(|e| e.message)?;
        Ok(s.source.lock().await.complete(&batch, &response))
    }

    /// Runs each stream-triggered function (the anchor function) on everything in its stream
    /// now, batch by batch without waiting for the batching window, at the functions' clock;
    /// returns the number of records finished.
    ///
    /// Fails when the stream cannot be read, or a batch makes no progress three times in a
    /// row (the error says which function).
    pub async fn drain_streams(&self) -> Result<usize, String> {
        let mut finished = 0;
        for s in &self.streams {
            let mut stuck = 0;
            loop {
                let polled = s.source.lock().await.poll(s.batch_size).await;
                let Some(batch) = polled.map_err(|e| format!("{}'s stream: {e}", s.name))? else {
                    break;
                };
                let done = self.handle_stream_batch(s, batch, self.now_ms()).await?;
                finished += done;
                stuck = if done == 0 { stuck + 1 } else { 0 };
                if stuck == 3 {
                    return Err(format!("{} makes no progress on its stream", s.name));
                }
            }
        }
        Ok(finished)
    }

    /// A schedule at `clock` (the wall clock's time, or faster): fires at the start of each
    /// period, as EventBridge does.
    async fn run_schedule(&self, s: &Scheduled, clock: &CompressedClock) {
        loop {
            let now = clock.now_ms();
            let next = (now.div_euclid(s.every_ms) + 1) * s.every_ms;
            tokio::time::sleep(clock.real(next - now)).await;
            if let Err(e) = (s.handler)(scheduled_event(s.name, next), clock.now_ms()).await {
                tracing::warn!(function = s.name, error = %e.message, "a scheduled run failed");
            }
            s.last_ms.store(next, Ordering::SeqCst);
        }
    }

    async fn run_event_source(&self, consumer: &Consumer, clock: &CompressedClock) {
        loop {
            let batch = match consumer.source.receive(10, 5).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(function = consumer.name, error = %e, "queue unreadable; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
            };
            if batch.is_empty() {
                continue;
            }
            if let Err(e) = self.handle_received(consumer, &batch, clock.now_ms()).await {
                tracing::warn!(function = consumer.name, error = %e, "completing a batch");
            }
        }
    }

    /// Runs a queue's function on one received batch at `now_ms` and completes it as the
    /// event source mapping does (successes deleted, failures back to the queue); returns how
    /// many were deleted. Shared by [`Functions::try_drain`] and
    /// [`Functions::spawn_event_sources`], which differ only in how long they wait and which
    /// clock they read.
    async fn handle_received(
        &self,
        consumer: &Consumer,
        batch: &vigil_local::ReceivedBatch,
        now_ms: i64,
    ) -> Result<usize, vigil_local::Error> {
        let run = (consumer.handler)(batch.event.clone(), now_ms);
        let response = match tokio::time::timeout(consumer.timeout, run).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => {
                // The whole invocation failed: every message comes back.
                tracing::warn!(function = consumer.name, error = %e, "a batch failed");
                if let Some(after) = self.options.retry_after {
                    consumer.source.release(batch, after).await?;
                }
                return Ok(0);
            }
            Err(_) => {
                // Lambda stops the function: nothing of the batch is deleted, and every
                // message comes back after the visibility timeout (or `retry_after`).
                self.timeouts.fetch_add(1, Ordering::SeqCst);
                tracing::warn!(
                    function = consumer.name,
                    messages = batch.len(),
                    timeout_s = consumer.timeout.as_secs_f64(),
                    "the function timed out mid-batch"
                );
                if let Some(after) = self.options.retry_after {
                    consumer.source.release(batch, after).await?;
                }
                return Ok(0);
            }
        };
        consumer
            .source
            .complete_retrying(batch, &response, self.options.retry_after)
            .await
    }

    /// How many batches of the queue-triggered functions (the alert function) ran out of time.
    pub fn alert_timeouts(&self) -> u64 {
        self.timeouts.load(Ordering::SeqCst)
    }

    /// SMS the emulator recorded.
    pub async fn sms(&self) -> Vec<SentSms> {
        self.emulator.sent_sms().await.expect("sms read-back")
    }

    /// Operator-topic events the emulator recorded.
    pub async fn operator_events(&self) -> Vec<TopicMessage> {
        self.emulator
            .operator_events()
            .await
            .expect("operator events read-back")
    }
}
