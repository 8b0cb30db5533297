//! The in-process executor: the product without I/O. Each message goes through the ingest
//! function's handler exactly as the IoT rule would deliver it, and the alert queue is drained
//! through the alert function's handler, both over the in-memory adapters of `vigil-aws`
//! (one store shared by both, as the tables are). No logic of the pipeline is repeated here:
//! what this executor records is read back as the local-stack executor reads it
//! ([`crate::observe`]).

use crate::executor::{ExecutorError, Run, ScenarioExecutor};
use crate::observe::{Observer, Readback, order_levels};
use crate::scenario::{Channel, Message, Scenario};
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use vigil_aws::memory::{MemoryCommander, MemoryMac, MemoryNotifier, MemoryQueue, MemoryStore};
use vigil_aws::metrics::MemoryMetrics;
use vigil_aws::ports::AdminStore;
use vigil_core::{BreachRules, ValidationLimits};

/// Runs scenarios through the product's handlers over in-memory ports.
#[derive(Debug, Clone, Default)]
pub struct InProcessExecutor {
    /// Validation limits, as the ingest function applies them.
    pub limits: ValidationLimits,
    /// Breach detection and hysteresis thresholds.
    pub rules: BreachRules,
}

impl InProcessExecutor {
    /// An executor with the production defaults.
    pub fn new() -> Self {
        Self::default()
    }
}

const NAME: &str = "in-process";

fn fail(message: impl Into<String>) -> ExecutorError {
    ExecutorError {
        executor: NAME.to_owned(),
        message: message.into(),
    }
}

/// The two functions wired on one in-memory store, as the Lambdas are on one set of tables.
struct Functions {
    store: MemoryStore,
    queue: MemoryQueue,
    notifier: MemoryNotifier,
    commander: MemoryCommander,
    metrics: MemoryMetrics,
    ingest: vigil_ingest::Ports<MemoryStore, MemoryQueue, MemoryMetrics>,
    watchdog: vigil_watchdog::Ports<MemoryStore, MemoryQueue, MemoryMetrics>,
    alert:
        vigil_alert::Ports<MemoryStore, MemoryNotifier, MemoryMac, MemoryMetrics, MemoryCommander>,
    next_message_id: u64,
}

impl Functions {
    fn new(executor: &InProcessExecutor) -> Functions {
        let (store, queue, notifier, metrics) = (
            MemoryStore::new(),
            MemoryQueue::default(),
            MemoryNotifier::default(),
            MemoryMetrics::default(),
        );
        // The same configuration the functions read from their environment, defaults
        // included (`VIGIL_SMS_COUNTRIES`).
        let config = vigil_aws::Config::from_lookup(|_| None).expect("the default configuration");
        let commander = MemoryCommander::default();
        Functions {
            watchdog: vigil_watchdog::Ports {
                store: store.clone(),
                queue: queue.clone(),
                metrics: metrics.clone(),
            },
            ingest: vigil_ingest::Ports {
                store: store.clone(),
                queue: queue.clone(),
                metrics: metrics.clone(),
                limits: executor.limits.clone(),
                rules: executor.rules.clone(),
                batching: vigil_core::batching::BatchRules::default(),
            },
            alert: vigil_alert::Ports {
                store: store.clone(),
                notifier: notifier.clone(),
                destination_mac: MemoryMac::default(),
                metrics: metrics.clone(),
                commander: commander.clone(),
                sms_countries: config.sms_countries,
                // The shipped forces (sender ids, areas); no topics in process.
                forces: vigil_core::forces::Forces::parse(include_str!(
                    "../../../infra/forces.json"
                ))
                .ok()
                .map(std::sync::Arc::new),
            },
            store,
            queue,
            notifier,
            commander,
            metrics,
            next_message_id: 0,
        }
    }

    /// Runs the alert function on everything queued, as SQS FIFO batches of up to ten,
    /// grouped by order, at `now_ms`, until the queue is empty.
    async fn drain(&mut self, now_ms: i64) -> Result<(), ExecutorError> {
        loop {
            let events = self.queue.drain();
            if events.is_empty() {
                return Ok(());
            }
            for chunk in events.chunks(10) {
                let mut batch = SqsEvent::default();
                for e in chunk {
                    self.next_message_id += 1;
                    let mut m = SqsMessage::default();
                    m.message_id = Some(format!("m-{}", self.next_message_id));
                    m.body = Some(serde_json::to_string(e).expect("events serialize"));
                    m.attributes.insert(
                        vigil_alert::batch::MESSAGE_GROUP_ID.to_owned(),
                        e.order_id.to_string(),
                    );
                    batch.records.push(m);
                }
                let response = vigil_alert::handle_batch(batch, &self.alert, now_ms).await;
                if let Some(f) = response.batch_item_failures.first() {
                    return Err(fail(format!(
                        "the alert function failed on message {} in memory",
                        f.item_identifier
                    )));
                }
            }
        }
    }
}

impl ScenarioExecutor for InProcessExecutor {
    fn name(&self) -> &str {
        NAME
    }

    fn execute(&mut self, scenario: &Scenario) -> Result<Run, ExecutorError> {
        self.execute_with_outputs(scenario).map(|(run, _)| run)
    }
}

/// Everything the functions emitted while running a scenario, besides the victims' SMS: what
/// the monitoring centre, the metrics, the quarantine and the audit log received. For privacy
/// checks (none of it may hold a victim's phone number or a zone's coordinates).
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    /// Each operator event as published to the operators' topic (JSON).
    pub operator_events: Vec<String>,
    /// Each quarantine record (JSON), payload excerpt included.
    pub quarantine: Vec<String>,
    /// Every audit record of every order (JSON).
    pub audit: Vec<String>,
    /// The metrics: every counter with its dimension.
    pub metrics: String,
}

impl InProcessExecutor {
    /// As [`ScenarioExecutor::execute`], and also returns what the functions emitted. The
    /// functions run on a current-thread runtime in the calling thread, so a tracing
    /// subscriber set for this thread sees every log line they write.
    pub fn execute_with_outputs(
        &mut self,
        scenario: &Scenario,
    ) -> Result<(Run, Outputs), ExecutorError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| fail(format!("starting the async runtime: {e}")))?;
        runtime.block_on(async {
            let (run, f) = self.run(scenario).await?;
            let mut audit = Vec::new();
            for order in &scenario.orders {
                use vigil_aws::ports::AuditLog;
                let chain = f
                    .store
                    .read(&order.order_id)
                    .await
                    .map_err(|e| fail(format!("reading the audit chain: {e}")))?;
                audit.extend(chain.iter().map(json));
            }
            let outputs = Outputs {
                operator_events: f.notifier.operator_events().iter().map(json).collect(),
                quarantine: f.store.quarantined_all().iter().map(json).collect(),
                audit,
                metrics: format!("{:?}", f.metrics),
            };
            Ok((run, outputs))
        })
    }

    async fn run(&self, scenario: &Scenario) -> Result<(Run, Functions), ExecutorError> {
        let mut f = Functions::new(self);
        for order in &scenario.orders {
            vigil_admin::orders::provision_order(&f.store, order, &scenario.zones_of(order))
                .await
                .map_err(|e| fail(format!("provisioning order {}: {e}", order.order_id)))?;
        }
        let mut observer = Observer::default();
        let mut steps = Vec::with_capacity(scenario.messages.len());
        for (index, message) in scenario.messages.iter().enumerate() {
            let (sms_before, events_before, commands_before) = (
                f.notifier.sms().len(),
                f.notifier.operator_events().len(),
                f.commander.published().len(),
            );
            let duplicates_before = f.metrics.total("MessageDuplicate");
            if message.channel == Channel::Tick {
                vigil_watchdog::run(&f.watchdog, message.received_at_ms)
                    .await
                    .map_err(|e| fail(format!("{}: the watchdog failed: {e}", message.source)))?;
            } else if message.channel == Channel::Ack {
                crate::executor::acknowledge(&f.store, message)
                    .await
                    .map_err(fail)?;
            } else {
                let event = rule_event_of(message);
                vigil_ingest::handle(event, &f.ingest).await.map_err(|e| {
                    fail(format!("{}: ingest failed in memory: {e}", message.source))
                })?;
            }
            f.drain(message.received_at_ms).await?;
            let quarantined = f
                .store
                .quarantined(&quarantine_key(message))
                .await
                .map_err(|e| fail(e.to_string()))?;
            let readback = Readback {
                sms: f.notifier.sms()[sms_before..]
                    .iter()
                    .map(|s| (s.to.clone(), s.text.clone()))
                    .collect(),
                events: f.notifier.operator_events()[events_before..].to_vec(),
                quarantined: observer.new_quarantine(&message.tag_id, quarantined),
                duplicates: f.metrics.total("MessageDuplicate") - duplicates_before,
                levels: order_levels(&f.store, scenario, &message.tag_id)
                    .await
                    .map_err(fail)?,
                commands: f.commander.published()[commands_before..]
                    .iter()
                    .map(|c| (c.topic.clone(), c.payload.clone()))
                    .collect(),
            };
            steps.push(
                observer
                    .step(scenario, index, message, readback)
                    .map_err(fail)?,
            );
        }
        Ok((
            Run {
                executor: NAME.to_owned(),
                steps,
            },
            f,
        ))
    }
}

/// JSON of a value the functions emitted.
fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| format!("<unserializable: {e}>"))
}

/// The event the IoT rule gives ingest for a message: the tags' rule's, or the victim rule's.
fn rule_event_of(message: &Message) -> serde_json::Value {
    let (thing, payload, at) = (
        message.tag_id.as_str(),
        message.payload.as_bytes(),
        message.received_at_ms,
    );
    match message.channel {
        Channel::Fix => vigil_ingest::rule_event(thing, "fix", payload, at),
        Channel::Event => vigil_ingest::rule_event(thing, "event", payload, at),
        Channel::Position => vigil_ingest::position_event(thing, payload, at),
        // Not delivered to ingest: the watchdog runs, or an operator acknowledges.
        Channel::Tick | Channel::Ack => serde_json::Value::Null,
    }
}

/// Where ingest quarantines a refused message of this publisher.
pub(crate) fn quarantine_key(message: &Message) -> String {
    match message.channel {
        Channel::Position => vigil_ingest::moving::quarantine_key(message.tag_id.as_str()),
        Channel::Fix | Channel::Event | Channel::Tick | Channel::Ack => message.tag_id.to_string(),
    }
}
