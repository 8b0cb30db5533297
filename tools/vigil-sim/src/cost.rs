//! `vigil-sim cost`: the cost per tag-month, built from counted requests (docs/PERFORMANCE.md,
//! "Cost per tag-month, from counted requests").
//!
//! The product's handlers (ingest, the watchdog) run against the emulator on a DynamoDB and
//! SQS client carrying the instrumented SDK layer ([`RequestCounter`]): every request and the
//! DynamoDB capacity units it consumed, computed from the items it read and wrote. The bytes a
//! handler logs are counted as it writes them: its EMF lines (the metrics adapter's own
//! [`emf_line_each`]) and its tracing lines (formatted as `main.rs` formats them). What cannot
//! be measured here is named as an estimate: the Lambda duration, and Lambda's own platform
//! lines (START, END, REPORT).
//!
//! The model: a [`PathSpec`] is one kind of message (his fix with nothing near, her device's
//! position, ...) with the fixes it carries; its [`PerMessage`] units are measured. A [`Row`]
//! is a reporting rate with the paths its tag (and her device) take; [`tag_month`] multiplies
//! the units by the prices in `prices.json` (one reviewed file, each price with its source).
//! A new path is a [`Path`] with its [`PATHS`] entry (its `fixes_per_message`), its messages
//! delivered and recorded in `Measurer::ingest_paths`, and one entry of [`ROWS`]; the pricing
//! needs no change. Adaptive reporting's batches ([`Path::TagBatched`]) came in that way.

use crate::bench::{START, fix, fleet_orders};
use crate::executor::ExecutorError;
use crate::local_stack::provision;
use crate::scenario::Scenario;
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use vigil_aws::counting::RequestCounter;
use vigil_aws::metrics::emf_line_each;
use vigil_aws::ports::{IngestStore, Metrics, ReportingStore, WatchStore};
use vigil_aws::{Config, DynamoStore, SqsQueue};
use vigil_core::reporting::{Commanded, ReportingCommand};
use vigil_core::{DeviceId, Fix, OrderId, TagId};
use vigil_local::Emulator;

/// The bar of issue 12: a tag-month at one fix a minute, everything but SMS.
pub const TARGET_USD: f64 = 0.03;

/// Minutes in the 30-day month the table is priced for.
pub const MINUTES_A_MONTH: f64 = 30.0 * 24.0 * 60.0;

/// The prices, reviewed: `tools/vigil-sim/prices.json`.
pub const PRICES_JSON: &str = include_str!("../prices.json");

/// One list price and where it was read.
#[derive(Debug, Clone, Deserialize)]
pub struct Price {
    /// USD for `per` units.
    pub usd: f64,
    /// How many units `usd` buys.
    pub per: f64,
    /// The page it was read on, and what it is.
    pub source: String,
}

impl Price {
    /// The price of `units`.
    pub fn of(&self, units: f64) -> f64 {
        self.usd * units / self.per
    }
}

/// Every price the table uses (`prices.json`).
#[derive(Debug, Clone, Deserialize)]
pub struct Prices {
    /// The region the figures are meant for.
    pub region: String,
    /// When the pages were read.
    pub read_on: String,
    /// What to check before budgeting.
    pub caveat: String,
    /// Per connection-minute of a device kept connected.
    pub iot_connection_minutes: Price,
    /// Per message (5 KB increments) on a plain topic.
    pub iot_messages: Price,
    /// Per rule triggered.
    pub iot_rules_triggered: Price,
    /// Per rule action executed.
    pub iot_rule_actions: Price,
    /// Per Lambda invocation.
    pub lambda_requests: Price,
    /// Per GB-second of Lambda duration (arm64).
    pub lambda_gb_seconds: Price,
    /// Per DynamoDB read request unit (on demand).
    pub dynamodb_read_units: Price,
    /// Per DynamoDB write request unit (on demand).
    pub dynamodb_write_units: Price,
    /// Per SQS FIFO request.
    pub sqs_fifo_requests: Price,
    /// Per byte ingested by CloudWatch Logs.
    pub log_gb_ingested: Price,
}

impl Prices {
    /// The reviewed prices shipped with the simulator.
    ///
    /// Fails when `prices.json` does not parse (a test keeps it parsing).
    pub fn shipped() -> Result<Prices, serde_json::Error> {
        serde_json::from_str(PRICES_JSON)
    }

    /// Every price with what it is for, in report order.
    pub fn each(&self) -> [(&'static str, &Price); 10] {
        [
            ("IoT connection-minutes", &self.iot_connection_minutes),
            ("IoT messages (5 KB each)", &self.iot_messages),
            ("IoT rules triggered", &self.iot_rules_triggered),
            ("IoT rule actions", &self.iot_rule_actions),
            ("Lambda requests", &self.lambda_requests),
            ("Lambda GB-seconds (arm64)", &self.lambda_gb_seconds),
            ("DynamoDB read request units", &self.dynamodb_read_units),
            ("DynamoDB write request units", &self.dynamodb_write_units),
            ("SQS FIFO requests", &self.sqs_fifo_requests),
            ("CloudWatch Logs bytes ingested", &self.log_gb_ingested),
        ]
    }
}

/// IoT Core meters a message in increments of this many bytes.
pub const IOT_MESSAGE_BYTES: f64 = 5.0 * 1024.0;

/// What a Lambda function is billed for besides its requests: memory as deployed
/// (`infra/lib/vigil-stack.ts`) and an estimated duration.
#[derive(Debug, Clone, Copy)]
pub struct LambdaSize {
    /// Memory, MB.
    pub memory_mb: f64,
    /// Billed duration per invocation, ms: an estimate, not measured in Lambda.
    pub duration_ms: f64,
}

impl LambdaSize {
    fn gb_seconds(&self) -> f64 {
        self.memory_mb / 1024.0 * self.duration_ms / 1000.0
    }
}

/// Ingest: 256 MB; 20 ms per message, the upper end of the 5-20 ms estimated in
/// docs/DEPLOY.md.
pub const INGEST_LAMBDA: LambdaSize = LambdaSize {
    memory_mb: 256.0,
    duration_ms: 20.0,
};

/// The watchdog: 256 MB; 200 ms per run, docs/WATCHDOG.md's estimate.
pub const WATCHDOG_LAMBDA: LambdaSize = LambdaSize {
    memory_mb: 256.0,
    duration_ms: 200.0,
};

/// Lambda's platform lines per invocation in the text log format (what the functions had
/// before `loggingFormat: JSON` with system logs at WARN): examples of the lines Lambda writes,
/// sized as written (a UUID request id; a warm invocation, no `Init Duration`).
pub const PLATFORM_LINES: [&str; 3] = [
    "START RequestId: 6f0c3c8e-3a4f-4b7e-9d61-0c2a5e8b1f47 Version: $LATEST\n",
    "END RequestId: 6f0c3c8e-3a4f-4b7e-9d61-0c2a5e8b1f47\n",
    "REPORT RequestId: 6f0c3c8e-3a4f-4b7e-9d61-0c2a5e8b1f47\tDuration: 12.41 ms\tBilled Duration: 13 ms\tMemory Size: 256 MB\tMax Memory Used: 31 MB\t\n",
];

/// How the functions' logs are configured, which decides whether the platform lines are
/// ingested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logging {
    /// Text format: START, END and REPORT for every invocation (before).
    TextWithPlatformLines,
    /// `loggingFormat: JSON`, system log level WARN: no platform lines (as deployed).
    JsonSystemWarn,
}

impl Logging {
    /// Platform bytes per invocation.
    pub fn platform_bytes(self) -> f64 {
        match self {
            Logging::TextWithPlatformLines => {
                PLATFORM_LINES.iter().map(|l| l.len()).sum::<usize>() as f64
            }
            Logging::JsonSystemWarn => 0.0,
        }
    }
}

/// A kind of message whose cost is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Path {
    /// His fix, nothing near, no device on his orders.
    TagQuiet,
    /// His fix, nothing near, an order with her device.
    TagQuietWithDevice,
    /// His fix in pursuit mode, in a zone's warning buffer, no change of state.
    TagNear,
    /// The same, on an order with her device.
    TagNearWithDevice,
    /// Her device's position, nothing near.
    DevicePosition,
    /// Her device's position while his order is in pursuit (a zone open), nothing changing.
    DevicePositionPursuit,
    /// His fixes far from every zone (over 45 km), told a window of 15 minutes by adaptive
    /// reporting: a v2 batch of 15 fixes a message, the window judged again on each.
    TagBatched,
}

/// Fixes in one batch of [`Path::TagBatched`]: a 900 s window at a fix a minute.
pub const BATCH_FIXES: u32 = 15;

/// A path and what one of its messages carries.
#[derive(Debug, Clone, Copy)]
pub struct PathSpec {
    /// The path.
    pub path: Path,
    /// What it is, for the report.
    pub label: &'static str,
    /// Fixes (or positions) one message carries: 1 in wire format v1.
    pub fixes_per_message: u32,
}

/// Every measured path.
pub const PATHS: &[PathSpec] = &[
    PathSpec {
        path: Path::TagQuiet,
        label: "his fix, nothing near",
        fixes_per_message: 1,
    },
    PathSpec {
        path: Path::TagQuietWithDevice,
        label: "his fix, nothing near, her device on the order",
        fixes_per_message: 1,
    },
    PathSpec {
        path: Path::TagNear,
        label: "his fix in pursuit, in a buffer, no change",
        fixes_per_message: 1,
    },
    PathSpec {
        path: Path::TagNearWithDevice,
        label: "his fix in pursuit, in a buffer, no change, her device on the order",
        fixes_per_message: 1,
    },
    PathSpec {
        path: Path::DevicePosition,
        label: "her position, nothing near",
        fixes_per_message: 1,
    },
    PathSpec {
        path: Path::DevicePositionPursuit,
        label: "her position in pursuit, nothing changing",
        fixes_per_message: 1,
    },
    PathSpec {
        path: Path::TagBatched,
        label: "his fixes far from every zone, 15 in a v2 batch",
        fixes_per_message: BATCH_FIXES,
    },
];

fn spec(path: Path) -> &'static PathSpec {
    PATHS
        .iter()
        .find(|p| p.path == path)
        .expect("every path has a PATHS entry")
}

/// A reporting rate and the paths its messages take.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    /// The rate, for the report.
    pub label: &'static str,
    /// Fixes his tag takes a minute (her device reports at the same rate when she has one:
    /// pursuit mode commands both).
    pub fixes_per_minute: f64,
    /// His messages.
    pub tag: Path,
    /// Her device's messages, when she has one.
    pub device: Option<Path>,
}

/// The rows of the table.
pub const ROWS: &[Row] = &[
    Row {
        label: "1 fix/min",
        fixes_per_minute: 1.0,
        tag: Path::TagQuiet,
        device: None,
    },
    Row {
        label: "1 fix/min, far: batched 15 a message",
        fixes_per_minute: 1.0,
        tag: Path::TagBatched,
        device: None,
    },
    Row {
        label: "1 fix/min",
        fixes_per_minute: 1.0,
        tag: Path::TagQuietWithDevice,
        device: Some(Path::DevicePosition),
    },
    Row {
        label: "1 fix/15 s (pursuit)",
        fixes_per_minute: 4.0,
        tag: Path::TagNear,
        device: None,
    },
    Row {
        label: "1 fix/15 s (pursuit)",
        fixes_per_minute: 4.0,
        tag: Path::TagNearWithDevice,
        device: Some(Path::DevicePositionPursuit),
    },
];

/// The units one message (or one watchdog run's share) consumed, averaged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PerMessage {
    /// AWS requests by operation (DynamoDB's and SQS's).
    pub requests: BTreeMap<String, f64>,
    /// DynamoDB read request units.
    pub read_units: f64,
    /// DynamoDB write request units.
    pub write_units: f64,
    /// Writes whose size the bodies did not show (counted as one unit).
    pub estimated_writes: f64,
    /// The MQTT payload, bytes.
    pub payload_bytes: f64,
    /// What the handler logged (EMF and tracing lines), bytes; platform lines not included.
    pub log_bytes: f64,
}

/// SQS's operations, priced as SQS requests; every other counted operation is DynamoDB's.
const SQS_OPERATIONS: &[&str] = &[
    "SendMessage",
    "SendMessageBatch",
    "ReceiveMessage",
    "DeleteMessage",
    "DeleteMessageBatch",
];

impl PerMessage {
    /// SQS requests.
    pub fn sqs_requests(&self) -> f64 {
        SQS_OPERATIONS
            .iter()
            .filter_map(|op| self.requests.get(*op))
            .sum()
    }

    fn add(&mut self, other: &PerMessage) {
        for (op, n) in &other.requests {
            *self.requests.entry(op.clone()).or_default() += n;
        }
        self.read_units += other.read_units;
        self.write_units += other.write_units;
        self.estimated_writes += other.estimated_writes;
        self.payload_bytes += other.payload_bytes;
        self.log_bytes += other.log_bytes;
    }

    fn divided(&self, n: f64) -> PerMessage {
        PerMessage {
            requests: self
                .requests
                .iter()
                .map(|(k, v)| (k.clone(), v / n))
                .collect(),
            read_units: self.read_units / n,
            write_units: self.write_units / n,
            estimated_writes: self.estimated_writes / n,
            payload_bytes: self.payload_bytes / n,
            log_bytes: self.log_bytes / n,
        }
    }

    /// The requests, as `Op n` pairs, for the report.
    pub fn request_list(&self) -> String {
        self.requests
            .iter()
            .map(|(op, n)| format!("{op} {}", trim(*n)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A number without trailing zeros (`1`, `0.25`).
fn trim(n: f64) -> String {
    let s = format!("{n:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Everything measured on the emulator.
#[derive(Debug, Clone)]
pub struct Measurements {
    /// Per message of each path.
    pub paths: BTreeMap<Path, PerMessage>,
    /// The watchdog's units per tag per minute (its runs over the fleet, divided by the tags).
    pub watchdog_per_tag_minute: PerMessage,
    /// The fleet the watchdog ran over: its one invocation a minute is shared by these tags.
    pub watchdog_tags: usize,
}

/// How much to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CostOptions {
    /// Messages measured per path (after one unmeasured warm-up message).
    pub messages: usize,
    /// Tags the watchdog runs over.
    pub watchdog_tags: usize,
    /// Minutes of watchdog runs measured (after the 16-minute warm-up that its first sweep
    /// needs to arm every tag).
    pub watchdog_minutes: usize,
}

impl Default for CostOptions {
    fn default() -> Self {
        CostOptions {
            messages: 10,
            watchdog_tags: 100,
            watchdog_minutes: 30,
        }
    }
}

fn fail(message: impl Into<String>) -> ExecutorError {
    ExecutorError {
        executor: "cost".to_owned(),
        message: message.into(),
    }
}

/// Bytes logged, shared by the metrics adapter and the tracing writer.
#[derive(Debug, Clone, Default)]
pub struct LoggedBytes(Arc<AtomicU64>);

impl LoggedBytes {
    fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
    fn add(&self, n: usize) {
        self.0.fetch_add(n as u64, Ordering::SeqCst);
    }
}

/// The EMF lines `EmfMetrics` would print, counted instead of printed.
impl Metrics for LoggedBytes {
    fn count(&self, name: &str, dimension: (&str, &str), n: u64) {
        self.count_each(name, &[dimension], n);
    }

    fn count_each(&self, name: &str, dimensions: &[(&str, &str)], n: u64) {
        let now_ms = chrono::Utc::now().timestamp_millis();
        self.add(emf_line_each(name, dimensions, n, now_ms).len() + 1);
    }
}

impl io::Write for LoggedBytes {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.add(buf.len());
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The tracing subscriber ingest's `main.rs` installs, writing into `bytes`.
fn log_subscriber(bytes: LoggedBytes) -> impl tracing::Subscriber + Send + Sync {
    tracing_subscriber::fmt()
        .json()
        .with_ansi(false)
        .without_time()
        .with_current_span(false)
        .with_writer(move || bytes.clone())
        .finish()
}

const MIN_MS: i64 = 60_000;

/// A generated fleet ([`fleet_orders`]) as a scenario.
fn fleet(prefix: &str, n: usize, lat0: f64, device: bool) -> Result<Scenario, ExecutorError> {
    let file = json!({
        "name": format!("cost-{prefix}"), "start": START, "fixes": [],
        "orders": fleet_orders(prefix, n, lat0, device),
        "expect": {"sms": [], "no_other_sms": true}
    });
    Scenario::from_json(&file.to_string()).map_err(|e| fail(format!("generated scenario: {e}")))
}

fn fix_at(tag: &str, seq: u64, at_ms: i64, lat: f64) -> Result<Fix, ExecutorError> {
    fix(tag, seq, at_ms, (lat, 10.0))
}

/// The handlers' ports on the counted clients.
struct Measurer {
    emulator: Emulator,
    store: DynamoStore,
    counter: RequestCounter,
    logged: LoggedBytes,
    ingest: vigil_ingest::Ports<DynamoStore, SqsQueue, LoggedBytes>,
    watchdog: vigil_watchdog::Ports<DynamoStore, SqsQueue, LoggedBytes>,
    start_ms: i64,
}

impl Measurer {
    async fn start(logged: LoggedBytes) -> Result<Measurer, ExecutorError> {
        let emulator = Emulator::start()
            .await
            .map_err(|e| fail(format!("the emulator: {e}")))?;
        let env: BTreeMap<String, String> = emulator.env_vars().into_iter().collect();
        let config =
            Config::from_lookup(|k| env.get(k).cloned()).map_err(|e| fail(e.to_string()))?;
        let sdk = emulator.sdk_config();
        let counter = RequestCounter::new();
        let dynamodb = aws_sdk_dynamodb::config::Builder::from(&sdk)
            .interceptor(counter.clone())
            .build();
        let sqs = aws_sdk_sqs::config::Builder::from(&sdk)
            .interceptor(counter.clone())
            .build();
        let store = DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(dynamodb), &config);
        let queue_url = config
            .alerts_queue_url()
            .map_err(|e| fail(e.to_string()))?
            .to_owned();
        let queue = SqsQueue::new(aws_sdk_sqs::Client::from_conf(sqs), queue_url);
        let start_ms = chrono::DateTime::parse_from_rfc3339(START)
            .map_err(|e| fail(e.to_string()))?
            .timestamp_millis();
        Ok(Measurer {
            emulator,
            ingest: vigil_ingest::Ports::new(store.clone(), queue.clone(), logged.clone()),
            watchdog: vigil_watchdog::Ports {
                store: store.clone(),
                queue,
                metrics: logged.clone(),
            },
            store,
            counter,
            logged,
            start_ms,
        })
    }

    async fn provision(&self, scenario: &Scenario) -> Result<(), ExecutorError> {
        provision(&self.store, scenario).await
    }

    /// Runs `work` with the counter and the log bytes at zero; what it consumed.
    async fn counted<T>(&self, work: impl Future<Output = T>) -> (T, PerMessage) {
        self.counter.reset();
        let logged_before = self.logged.get();
        let out = work.await;
        let capacity = self.counter.capacity();
        let used = PerMessage {
            requests: self
                .counter
                .snapshot()
                .into_iter()
                .map(|(op, n)| (op, n as f64))
                .collect(),
            read_units: capacity.read_units,
            write_units: capacity.write_units,
            estimated_writes: capacity.estimated_writes as f64,
            payload_bytes: 0.0,
            log_bytes: (self.logged.get() - logged_before) as f64,
        };
        (out, used)
    }

    /// Delivers one message to ingest as its IoT rule would (received 200 ms after its
    /// device time); what it consumed, with its payload's size.
    async fn deliver(
        &self,
        event: serde_json::Value,
        payload_bytes: usize,
    ) -> Result<PerMessage, ExecutorError> {
        let (outcome, mut used) = self
            .counted(vigil_ingest::handle(event, &self.ingest))
            .await;
        outcome.map_err(|e| fail(format!("ingest: {e}")))?;
        used.payload_bytes = payload_bytes as f64;
        Ok(used)
    }

    async fn his_fix(&self, fix: &Fix) -> Result<PerMessage, ExecutorError> {
        let payload = vigil_core::fix::encode_fix(fix);
        let event = vigil_ingest::rule_event(fix.tag_id.as_str(), "fix", &payload, fix.at_ms + 200);
        self.deliver(event, payload.len()).await
    }

    async fn her_position(
        &self,
        device: &str,
        seq: u64,
        at_ms: i64,
        lat: f64,
    ) -> Result<PerMessage, ExecutorError> {
        let payload = format!(
            r#"{{"v":1,"seq":{seq},"at_ms":{at_ms},"lat":{lat},"lon":10.0,"accuracy_m":10}}"#
        );
        let event = vigil_ingest::position_event(device, payload.as_bytes(), at_ms + 200);
        self.deliver(event, payload.len()).await
    }

    /// Tells the store that `device` was commanded to report every 15 s (as the alert function
    /// does on a warning), so that ingest's pursuit check finds it obedient.
    async fn pursuit_commanded(
        &self,
        device: Commanded,
        order: &str,
        at_ms: i64,
    ) -> Result<(), ExecutorError> {
        let command = ReportingCommand {
            report_interval_s: 15,
            sent_at_ms: at_ms,
            attempts: 1,
            pursuit: true,
            order_id: OrderId::new(order).map_err(|e| fail(e.to_string()))?,
            batch_s: 0,
            window_basis_ms: None,
        };
        self.store
            .save_command(&device, Some(&command), None)
            .await
            .map_err(|e| fail(format!("saving the pursuit command: {e}")))
    }

    /// Tells the store that `tag` was told a batching window of `batch_s` (as the alert
    /// function does when ingest judges one allowed).
    async fn window_commanded(
        &self,
        tag: &str,
        order: &str,
        batch_s: u32,
        at_ms: i64,
    ) -> Result<(), ExecutorError> {
        let command = ReportingCommand {
            report_interval_s: 60,
            sent_at_ms: at_ms,
            attempts: 1,
            pursuit: false,
            order_id: OrderId::new(order).map_err(|e| fail(e.to_string()))?,
            batch_s,
            window_basis_ms: Some(at_ms),
        };
        let device = Commanded::Tag(TagId::new(tag).map_err(|e| fail(e.to_string()))?);
        self.store
            .save_command(&device, Some(&command), None)
            .await
            .map_err(|e| fail(format!("saving the window: {e}")))
    }

    /// His fixes as one v2 batch, received just after the newest.
    async fn his_batch(&self, fixes: &[Fix]) -> Result<PerMessage, ExecutorError> {
        let payload = vigil_core::fix::encode_batch(fixes);
        let newest = fixes.iter().map(|f| f.at_ms).max().unwrap_or(0);
        let tag = fixes.first().map(|f| f.tag_id.as_str()).unwrap_or("");
        let event = vigil_ingest::rule_event(tag, "fix", &payload, newest + 200);
        self.deliver(event, payload.len()).await
    }

    /// Every ingest path, `n` messages each after one warm-up.
    async fn ingest_paths(&self, n: usize) -> Result<BTreeMap<Path, PerMessage>, ExecutorError> {
        let mut totals: BTreeMap<Path, PerMessage> = BTreeMap::new();
        let mut record = |path: Path, used: PerMessage| totals.entry(path).or_default().add(&used);
        // Order "plain" (no device): zone at 40.0; order "dev" with her device: zone at 50.0.
        self.provision(&fleet("plain", 1, 40.0, false)?).await?;
        self.provision(&fleet("dev", 1, 50.0, true)?).await?;
        self.provision(&fleet("far", 1, 30.0, false)?).await?;
        let (plain, dev, device) = ("plain-0", "dev-0", "dev-v-dev-0");
        let t0 = self.start_ms;
        let far = |lat0: f64| lat0 - 0.05; // 5.5 km south of the zone
        let buffer = |lat0: f64| lat0 + 400.0 / 111_250.0; // 300 m from the edge, in the buffer
        let her_far = 50.1; // 11 km north of his zone, 16 km from him
        // A minute apart, far from everything: his fixes (both orders) and her positions.
        for k in 0..=n {
            let at = t0 + k as i64 * MIN_MS;
            let quiet = self
                .his_fix(&fix_at(plain, k as u64 + 1, at, far(40.0))?)
                .await?;
            let hers = self
                .her_position(device, k as u64 + 1, at + 20_000, her_far)
                .await?;
            let with_device = self
                .his_fix(&fix_at(dev, k as u64 + 1, at + 30_000, far(50.0))?)
                .await?;
            if k > 0 {
                record(Path::TagQuiet, quiet);
                record(Path::DevicePosition, hers);
                record(Path::TagQuietWithDevice, with_device);
            }
        }
        // Far from everything (0.6° south of the zone, 67 km), told a window of 15 minutes:
        // a batch of 15 fixes a message, the window judged again on each (one Query more).
        let far_tag = "far-0";
        self.window_commanded(far_tag, "o-far-0", BATCH_FIXES * 60, t0)
            .await?;
        let per = i64::from(BATCH_FIXES);
        for b in 0..=n as i64 {
            let fixes = (0..per)
                .map(|i| {
                    let k = b * per + i;
                    fix_at(far_tag, k as u64 + 1, t0 + k * MIN_MS, 30.0 - 0.6)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let used = self.his_batch(&fixes).await?;
            if b > 0 {
                record(Path::TagBatched, used);
            }
        }
        // 20 minutes later, into the buffers: a warning each (not measured), the pursuit
        // command kept as the alert function keeps it; then every 15 s in the buffer.
        let pursuit = t0 + (n as i64 + 20) * MIN_MS;
        let seq = n as u64 + 2;
        self.his_fix(&fix_at(plain, seq, pursuit, buffer(40.0))?)
            .await?;
        self.his_fix(&fix_at(dev, seq, pursuit, buffer(50.0))?)
            .await?;
        self.pursuit_commanded(
            Commanded::Tag(TagId::new(plain).map_err(|e| fail(e.to_string()))?),
            "o-plain-0",
            pursuit,
        )
        .await?;
        self.pursuit_commanded(
            Commanded::Tag(TagId::new(dev).map_err(|e| fail(e.to_string()))?),
            "o-dev-0",
            pursuit,
        )
        .await?;
        self.pursuit_commanded(
            Commanded::VictimDevice(DeviceId::new(device).map_err(|e| fail(e.to_string()))?),
            "o-dev-0",
            pursuit,
        )
        .await?;
        for k in 1..=n + 1 {
            let at = pursuit + k as i64 * 15_000;
            let seq = seq + k as u64;
            let near = self.his_fix(&fix_at(plain, seq, at, buffer(40.0))?).await?;
            let hers = self.her_position(device, seq, at + 5_000, her_far).await?;
            let with_device = self
                .his_fix(&fix_at(dev, seq, at + 7_000, buffer(50.0))?)
                .await?;
            if k > 1 {
                record(Path::TagNear, near);
                record(Path::DevicePositionPursuit, hers);
                record(Path::TagNearWithDevice, with_device);
            }
        }
        Ok(totals
            .into_iter()
            .map(|(path, total)| (path, total.divided(n as f64)))
            .collect())
    }

    /// The watchdog's units per tag per minute over `tags` tags each reporting once a minute,
    /// on a reset emulator: `minutes` runs after the 16-minute warm-up (the first sweep arms
    /// every tag). The histories are written by the harness, not counted.
    async fn watchdog(&self, tags: usize, minutes: usize) -> Result<PerMessage, ExecutorError> {
        self.emulator
            .reset()
            .await
            .map_err(|e| fail(format!("reset: {e}")))?;
        self.provision(&fleet("wd", tags, 30.0, false)?).await?;
        let mut total = PerMessage::default();
        for m in 0..16 + minutes as i64 {
            let now = self.start_ms + m * MIN_MS;
            let due = self
                .store
                .due_tags(now.div_euclid(MIN_MS))
                .await
                .map_err(|e| fail(format!("due tags: {e}")))?;
            for tag in due {
                let at = now - 30_000;
                let history = self
                    .store
                    .history(&tag)
                    .await
                    .map_err(|e| fail(format!("history: {e}")))?;
                let f = fix_at(tag.as_str(), (at / 1000) as u64, at, 29.0)?;
                self.store
                    .save_history(&tag, &history.with_fix(&f, at))
                    .await
                    .map_err(|e| fail(format!("history: {e}")))?;
            }
            let (outcome, used) = self.counted(vigil_watchdog::run(&self.watchdog, now)).await;
            let outcome = outcome.map_err(|e| fail(format!("watchdog: {e}")))?;
            if outcome.started > 0 {
                return Err(fail(format!(
                    "a fleet reporting every minute should raise nothing, the watchdog started {} conditions",
                    outcome.started
                )));
            }
            if m >= 16 {
                total.add(&used);
            }
        }
        Ok(total.divided((minutes * tags) as f64))
    }
}

/// Measures every path and the watchdog on an emulator started for it (and stopped after).
///
/// Fails when the emulator does not start or a handler fails.
pub async fn measure(options: CostOptions) -> Result<Measurements, ExecutorError> {
    let logged = LoggedBytes::default();
    let _logs = tracing::subscriber::set_default(log_subscriber(logged.clone()));
    let measurer = Measurer::start(logged).await?;
    let paths = measurer.ingest_paths(options.messages.max(1)).await?;
    let watchdog_per_tag_minute = measurer
        .watchdog(
            options.watchdog_tags.max(1),
            options.watchdog_minutes.max(1),
        )
        .await?;
    Ok(Measurements {
        paths,
        watchdog_per_tag_minute,
        watchdog_tags: options.watchdog_tags.max(1),
    })
}

/// Where a message enters IoT Core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// `tags/<id>/fix`: messaging is billed.
    PlainTopic,
    /// `$aws/rules/<rule>/...`: no messaging charge; the rule still runs.
    BasicIngest,
}

/// One tag-month's cost, by item, USD.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TagMonth {
    /// IoT Core connection-minutes (his tag, and her device when she has one).
    pub connectivity: f64,
    /// IoT Core messages (none with Basic Ingest).
    pub messaging: f64,
    /// IoT rules triggered and their actions.
    pub rules: f64,
    /// Ingest's invocations.
    pub lambda_requests: f64,
    /// Ingest's duration (estimated).
    pub lambda_duration: f64,
    /// Ingest's DynamoDB read units.
    pub reads: f64,
    /// Ingest's DynamoDB write units.
    pub writes: f64,
    /// Ingest's SQS requests.
    pub sqs: f64,
    /// Ingest's log bytes.
    pub logs: f64,
    /// The tag's share of the watchdog: its requests, units, invocations, duration and logs.
    pub watchdog: f64,
}

impl TagMonth {
    /// The items, named, in report order.
    pub fn items(&self) -> [(&'static str, f64); 10] {
        [
            ("IoT connectivity", self.connectivity),
            ("IoT messaging", self.messaging),
            ("IoT rules (trigger + action)", self.rules),
            ("Lambda requests", self.lambda_requests),
            ("Lambda duration (estimated)", self.lambda_duration),
            ("DynamoDB reads", self.reads),
            ("DynamoDB writes", self.writes),
            ("SQS", self.sqs),
            ("CloudWatch Logs", self.logs),
            ("watchdog share", self.watchdog),
        ]
    }

    /// The total.
    pub fn total(&self) -> f64 {
        self.items().iter().map(|(_, usd)| usd).sum()
    }
}

/// A tag-month of `row`, entering by `entry`, with the functions' logs as `logging`.
pub fn tag_month(
    row: &Row,
    entry: Entry,
    logging: Logging,
    m: &Measurements,
    p: &Prices,
) -> TagMonth {
    // The watchdog: the tag's share of each minute's run.
    let w = &m.watchdog_per_tag_minute;
    let runs_per_tag = MINUTES_A_MONTH / m.watchdog_tags as f64;
    let mut month = TagMonth {
        watchdog: p.dynamodb_read_units.of(MINUTES_A_MONTH * w.read_units)
            + p.dynamodb_write_units.of(MINUTES_A_MONTH * w.write_units)
            + p.sqs_fifo_requests.of(MINUTES_A_MONTH * w.sqs_requests())
            + p.log_gb_ingested
                .of(MINUTES_A_MONTH * w.log_bytes + runs_per_tag * logging.platform_bytes())
            + p.lambda_requests.of(runs_per_tag)
            + p.lambda_gb_seconds
                .of(runs_per_tag * WATCHDOG_LAMBDA.gb_seconds()),
        ..TagMonth::default()
    };
    // His tag's messages, and her device's: each connected all month.
    for path in std::iter::once(row.tag).chain(row.device) {
        let units = &m.paths[&path];
        let messages =
            row.fixes_per_minute * MINUTES_A_MONTH / f64::from(spec(path).fixes_per_message);
        month.connectivity += p.iot_connection_minutes.of(MINUTES_A_MONTH);
        if entry == Entry::PlainTopic {
            let increments = (units.payload_bytes / IOT_MESSAGE_BYTES).ceil().max(1.0);
            month.messaging += p.iot_messages.of(messages * increments);
        }
        // One rule (ingest.sql or victim.sql), one action (the Lambda) per message.
        month.rules += p.iot_rules_triggered.of(messages) + p.iot_rule_actions.of(messages);
        month.lambda_requests += p.lambda_requests.of(messages);
        month.lambda_duration += p
            .lambda_gb_seconds
            .of(messages * INGEST_LAMBDA.gb_seconds());
        month.reads += p.dynamodb_read_units.of(messages * units.read_units);
        month.writes += p.dynamodb_write_units.of(messages * units.write_units);
        month.sqs += p.sqs_fifo_requests.of(messages * units.sqs_requests());
        month.logs += p
            .log_gb_ingested
            .of(messages * (units.log_bytes + logging.platform_bytes()));
    }
    month
}

fn usd(x: f64) -> String {
    format!("{x:.4}")
}

/// The report: the tag-month table, the split of the 1 fix/min Basic Ingest rows, the
/// counted units per message, and what is estimated.
pub fn render(m: &Measurements, p: &Prices) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "Cost per tag-month, USD, 30 days connected, everything but SMS ({}; prices read {}, tools/vigil-sim/prices.json). Target at 1 fix/min: at most {TARGET_USD} USD.\n",
        p.region, p.read_on
    );
    let _ = writeln!(
        w,
        "| reporting | her device | plain topic | Basic Ingest | Basic Ingest, before (text logs: START/END/REPORT) | Basic Ingest at most {TARGET_USD} |"
    );
    let _ = writeln!(w, "|---|---|---:|---:|---:|---|");
    for row in ROWS {
        let after = |entry| tag_month(row, entry, Logging::JsonSystemWarn, m, p).total();
        let before = tag_month(
            row,
            Entry::BasicIngest,
            Logging::TextWithPlatformLines,
            m,
            p,
        )
        .total();
        let basic = after(Entry::BasicIngest);
        let _ = writeln!(
            w,
            "| {} | {} | {} | **{}** | {} | {} |",
            row.label,
            if row.device.is_some() { "yes" } else { "no" },
            usd(after(Entry::PlainTopic)),
            usd(basic),
            usd(before),
            if basic <= TARGET_USD { "yes" } else { "no" }
        );
    }
    let _ = writeln!(
        w,
        "\nSplit of the 1 fix/min rows, Basic Ingest, as deployed (USD per tag-month):\n"
    );
    let at_rest: Vec<_> = ROWS.iter().filter(|r| r.fixes_per_minute == 1.0).collect();
    let months: Vec<_> = at_rest
        .iter()
        .map(|r| tag_month(r, Entry::BasicIngest, Logging::JsonSystemWarn, m, p))
        .collect();
    let heads: Vec<String> = at_rest
        .iter()
        .map(|r| {
            let device = if r.device.is_some() {
                "her device"
            } else {
                "no device"
            };
            format!("{}, {device}", r.label)
        })
        .collect();
    let _ = writeln!(w, "| item | {} |", heads.join(" | "));
    let _ = writeln!(w, "|---|{}", "---:|".repeat(heads.len()));
    if let Some(first) = months.first() {
        for (i, (item, _)) in first.items().iter().enumerate() {
            let cells: Vec<_> = months.iter().map(|t| usd(t.items()[i].1)).collect();
            let _ = writeln!(w, "| {item} | {} |", cells.join(" | "));
        }
        let totals: Vec<_> = months
            .iter()
            .map(|t| format!("**{}**", usd(t.total())))
            .collect();
        let _ = writeln!(w, "| **total** | {} |", totals.join(" | "));
    }
    let _ = writeln!(
        w,
        "\nCounted per message (the emulator, the product's handlers, the instrumented SDK layer):\n"
    );
    let _ = writeln!(
        w,
        "| path | fixes per message | requests | read units | write units | payload bytes | logged bytes |"
    );
    let _ = writeln!(w, "|---|---:|---|---:|---:|---:|---:|");
    for s in PATHS {
        if let Some(u) = m.paths.get(&s.path) {
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} | {} | {} |",
                s.label,
                s.fixes_per_message,
                u.request_list(),
                trim(u.read_units),
                trim(u.write_units),
                trim(u.payload_bytes),
                trim(u.log_bytes)
            );
        }
    }
    let wd = &m.watchdog_per_tag_minute;
    let _ = writeln!(
        w,
        "| watchdog, per tag per minute ({} tags) | - | {} | {} | {} | - | {} |",
        m.watchdog_tags,
        wd.request_list(),
        trim(wd.read_units),
        trim(wd.write_units),
        trim(wd.log_bytes)
    );
    let estimated: f64 =
        m.paths.values().map(|u| u.estimated_writes).sum::<f64>() + wd.estimated_writes;
    let _ = writeln!(
        w,
        "\nEstimated, not measured: Lambda duration ({} ms at {} MB per ingest message, {} ms at {} MB per watchdog run); Lambda's platform lines ({} bytes per invocation in the text format, none with JSON and system logs at WARN); one IoT rule and one action per message; her device reports at his rate. Writes sized as one unit for want of the item: {}.",
        INGEST_LAMBDA.duration_ms,
        INGEST_LAMBDA.memory_mb,
        WATCHDOG_LAMBDA.duration_ms,
        WATCHDOG_LAMBDA.memory_mb,
        Logging::TextWithPlatformLines.platform_bytes(),
        trim(estimated)
    );
    let _ = writeln!(
        w,
        "\nPrices used (tools/vigil-sim/prices.json, read {}):\n",
        p.read_on
    );
    let _ = writeln!(w, "| item | USD | per | source |");
    let _ = writeln!(w, "|---|---:|---:|---|");
    for (item, price) in p.each() {
        let _ = writeln!(
            w,
            "| {item} | {} | {} | {} |",
            price.usd, price.per, price.source
        );
    }
    let _ = writeln!(w, "\n{}", p.caveat);
    out
}

/// The `cost` command: measures, prices and writes the report to `out`.
///
/// Fails when the emulator does not start, a handler fails, or `out` cannot be written.
pub fn run(options: CostOptions, out: &mut dyn Write) -> Result<(), ExecutorError> {
    let prices =
        Prices::shipped().map_err(|e| fail(format!("tools/vigil-sim/prices.json: {e}")))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(format!("runtime: {e}")))?;
    let measured = runtime.block_on(measure(options))?;
    out.write_all(render(&measured, &prices).as_bytes())
        .map_err(|e| fail(format!("writing the report: {e}")))
}
