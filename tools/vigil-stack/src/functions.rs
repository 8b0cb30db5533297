//! [`Functions`]: Vigil's functions wired on an emulator, in this process, as their `main.rs`
//! wires them in Lambda: the IoT rule's Lambda action into ingest, the alert queue (SQS FIFO)
//! drained as Lambda's event source mapping does, the alert function, SNS and KMS, and
//! read-back of what victims and operators received.
//!
//! Time: messages carry the receive time the rule would give them. The alert function handles
//! a batch at the functions' clock, which follows the newest receive time published (a
//! scenario clock, so that a test's fixed dates are "now" for the whole pipeline), or at the
//! wall clock in [`Functions::run_alert_source`], the long-running form `up` uses.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;
use vigil_alert::handle_batch;
use vigil_aws::metrics::MemoryMetrics;
use vigil_aws::{Aws, Config, DynamoStore, KmsDestinationMac, SnsNotifier, SqsQueue};
use vigil_core::fix::encode_fix;
use vigil_core::{Fix, ProtectionOrder, Zone};
use vigil_ingest::{Outcome, handle, rule_event};
use vigil_local::{Emulator, SentSms, SqsEventSource, TopicMessage};

/// The alert function's ports on the emulator.
pub type AlertPorts =
    vigil_alert::Ports<DynamoStore, SnsNotifier, KmsDestinationMac, MemoryMetrics>;

/// The functions wired on an emulator.
pub struct Functions {
    /// The emulator (stopped when the functions are dropped).
    pub emulator: Emulator,
    /// The functions' configuration.
    pub config: Config,
    /// The store, for provisioning and assertions.
    pub store: DynamoStore,
    /// The ingest function's ports.
    pub ingest: vigil_ingest::Ports<DynamoStore, SqsQueue, MemoryMetrics>,
    /// The alert function's ports.
    pub alert: AlertPorts,
    source: SqsEventSource,
    queue: SqsQueue,
    now_ms: Arc<AtomicI64>,
    options: FunctionOptions,
    alert_timeouts: AtomicU64,
}

/// How the functions run on the emulator (defaults: as deployed).
#[derive(Debug, Clone)]
pub struct FunctionOptions {
    /// Where the functions' AWS clients connect instead of the emulator's own endpoint (a
    /// [`vigil_local::FaultProxy`] in front of it).
    pub endpoint_url: Option<String>,
    /// The alert function's timeout: a batch not handled by then is abandoned mid-way, as
    /// Lambda stops a function that runs out of time, and comes back after the queue's
    /// visibility timeout. Default: 30 s, as `infra/` deploys it.
    pub alert_timeout: Duration,
    /// When set, failed and abandoned alert messages come back after this instead of the
    /// queue's visibility timeout (60 s), so a test reaches the dead-letter queue in seconds.
    pub retry_after: Option<Duration>,
}

impl Default for FunctionOptions {
    fn default() -> Self {
        FunctionOptions {
            endpoint_url: None,
            alert_timeout: ALERT_TIMEOUT,
            retry_after: None,
        }
    }
}

/// The alert function's timeout as `infra/lib/vigil-stack.ts` deploys it.
pub const ALERT_TIMEOUT: Duration = Duration::from_secs(30);

/// The ingest function's ports as its `main.rs` builds them, on the functions' store and queue.
fn ingest_ports(
    store: &DynamoStore,
    queue: &SqsQueue,
) -> vigil_ingest::Ports<DynamoStore, SqsQueue, MemoryMetrics> {
    vigil_ingest::Ports::new(store.clone(), queue.clone(), MemoryMetrics::default())
}

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

    /// As [`Functions::on`], with options (an endpoint in front of the emulator, the alert
    /// function's timeout, a shorter retry delay).
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
        let aws = Aws {
            config: config.clone(),
            sdk,
        };
        let store = aws.store();
        let queue = aws.queue().map_err(|e| format!("alert queue: {e}"))?;
        let alert = vigil_alert::Ports {
            store: store.clone(),
            notifier: aws
                .notifier()
                .map_err(|e| format!("operators topic: {e}"))?,
            destination_mac: aws
                .destination_mac()
                .map_err(|e| format!("destination key: {e}"))?,
            metrics: MemoryMetrics::default(),
            sms_countries: config.sms_countries.clone(),
        };
        let ingest = ingest_ports(&store, &queue);
        let queue_url = config
            .alerts_queue_url()
            .map_err(|e| format!("alert queue: {e}"))?
            .to_owned();
        let source = SqsEventSource::new(
            aws_sdk_sqs::Client::new(&aws.sdk),
            queue_url,
            emulator.region(),
        );
        Ok(Functions {
            emulator,
            config,
            store,
            ingest,
            alert,
            source,
            queue,
            now_ms: Arc::new(AtomicI64::new(0)),
            options,
            alert_timeouts: AtomicU64::new(0),
        })
    }

    /// Another set of the ingest function's ports on the same tables and queue, with its own
    /// metrics: for a second caller that needs to own them, such as the IoT rule bridge's
    /// `InProcessLambda::ingest`.
    pub fn ingest_ports(&self) -> vigil_ingest::Ports<DynamoStore, SqsQueue, MemoryMetrics> {
        ingest_ports(&self.store, &self.queue)
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

    /// Starts the functions' clock again (a new scenario's timeline, after an emulator reset).
    pub fn reset_clock(&self) {
        self.now_ms.store(0, Ordering::SeqCst);
    }

    /// The functions' clock: the newest receive time published (or advanced to).
    pub fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }

    /// Runs the alert function on everything in the alert queue, batch by batch, until it is
    /// empty; returns the number of messages handled. Panics if the queue cannot be read; see
    /// [`Functions::try_drain`].
    pub async fn drain(&self) -> usize {
        self.try_drain().await.expect("drain the alert queue")
    }

    /// Runs the alert function on everything in the alert queue, batch by batch, as Lambda's
    /// event source mapping does, until it is empty; returns the number of messages handled.
    ///
    /// Fails when the emulator does not answer a receive or delete.
    pub async fn try_drain(&self) -> Result<usize, vigil_local::Error> {
        let mut handled = 0;
        loop {
            let batch = self.source.receive(10, 0).await?;
            if batch.is_empty() {
                return Ok(handled);
            }
            let event = serde_json::from_value(batch.event.clone()).expect("the SQS event shape");
            handled += self.handle_received(&batch, event, self.now_ms()).await?;
        }
    }

    /// The alert function as Lambda's SQS event source runs it, until the task is dropped:
    /// long polls of up to 10 messages, each batch handled at the wall clock, partial batch
    /// failures returned to the queue. An unreadable queue is logged and retried.
    pub async fn run_alert_source(&self) {
        loop {
            let batch = match self.source.receive(10, 5).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "alert queue unreadable; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
            };
            if batch.is_empty() {
                continue;
            }
            let Ok(event) = serde_json::from_value(batch.event.clone()) else {
                tracing::error!("an SQS batch that is not an SQS event");
                continue;
            };
            if let Err(e) = self.handle_received(&batch, event, wall_clock_ms()).await {
                tracing::warn!(error = %e, "completing an alert batch");
            }
        }
    }

    /// Runs the alert function on one received batch at `now_ms` and completes it as the
    /// event source mapping does (successes deleted, failures back to the queue); returns how
    /// many were deleted. Shared by [`Functions::try_drain`] and
    /// [`Functions::run_alert_source`], which differ only in how long they wait and which
    /// clock they read.
    async fn handle_received(
        &self,
        batch: &vigil_local::ReceivedBatch,
        event: aws_lambda_events::event::sqs::SqsEvent,
        now_ms: i64,
    ) -> Result<usize, vigil_local::Error> {
        let run = handle_batch(event, &self.alert, now_ms);
        let Ok(response) = tokio::time::timeout(self.options.alert_timeout, run).await else {
            // Lambda stops the function: nothing of the batch is deleted, and every message
            // comes back after the visibility timeout (or `retry_after`).
            self.alert_timeouts.fetch_add(1, Ordering::SeqCst);
            tracing::warn!(
                messages = batch.len(),
                timeout_s = self.options.alert_timeout.as_secs_f64(),
                "the alert function timed out mid-batch"
            );
            if let Some(after) = self.options.retry_after {
                self.source.release(batch, after).await?;
            }
            return Ok(0);
        };
        let response = serde_json::to_value(&response).expect("a batch response is JSON");
        self.source
            .complete_retrying(batch, &response, self.options.retry_after)
            .await
    }

    /// How many alert batches ran out of time.
    pub fn alert_timeouts(&self) -> u64 {
        self.alert_timeouts.load(Ordering::SeqCst)
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

fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
