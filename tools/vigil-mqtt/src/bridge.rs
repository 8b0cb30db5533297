//! The IoT rule bridge: what IoT Core's rules engine does, on the local broker. It reads every
//! `infra/rules/*.sql`, subscribes (QoS 1, one MQTT connection per rule) to each rule's `FROM`
//! filter, evaluates the rule per message with the receive time from a [`Clock`], and runs the
//! rule's [`RuleAction`]. A rule that fails for a message (see [`crate::sql`]) or an action
//! that fails (after two retries if retrying can help, as IoT Core's async Lambda invoke does)
//! goes to the error path: counted, logged and kept in [`Bridge::failures`].
//!
//! As IoT Core does, a rule also hears its Basic Ingest topics when the bridge knows the stage
//! ([`BridgeOptions::stage`]): a message on `$aws/rules/vigil_{stage}_{rule}/<topic>` reaches
//! that rule only, which sees `<topic>` (the prefix is not part of the topic its SQL reads).
//! The broker's front relays those messages to [`crate::front::BASIC_INGEST_RELAY`], where the
//! bridge hears them (rumqttd routes no `$` topics).
//!
//! Each rule's messages are taken in arrival order and handled by up to
//! [`BridgeOptions::concurrency`] at once, as Lambda runs up to its reserved concurrency of
//! asynchronous invocations at once: with more than one, messages (even one tag's) may finish
//! in any order, as they can in AWS.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, Packet, QoS};
use tokio::sync::{Notify, Semaphore, mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};

use crate::action::RuleAction;
use crate::client::{Endpoint, mqtt_options};
use crate::pki::{CertPair, PkiError};
use crate::sql::{Evaluation, Message, SqlError, Statement};

/// Failures kept for inspection (oldest dropped first).
const KEPT_FAILURES: usize = 1000;
/// Extra attempts for a retryable action error.
const RETRIES: usize = 2;

/// The receive time a rule's `timestamp()` sees.
pub trait Clock: Send + Sync {
    /// Now, Unix ms.
    fn now_ms(&self) -> i64;
}

/// The wall clock (the default, as live).
#[derive(Debug, Clone, Copy, Default)]
pub struct WallClock;

impl Clock for WallClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    }
}

/// A clock a scenario sets: the scenario's "now", so ingest validates device time against the
/// receive time as it would live. Clones share the time. Set it before publishing a message
/// and wait for the bridge to handle it ([`Bridge::wait_handled`]) before moving it on.
#[derive(Debug, Clone, Default)]
pub struct ScenarioClock(Arc<AtomicI64>);

impl ScenarioClock {
    /// A clock at `now_ms`.
    pub fn new(now_ms: i64) -> ScenarioClock {
        ScenarioClock(Arc::new(AtomicI64::new(now_ms)))
    }

    /// Sets the time.
    pub fn set_ms(&self, now_ms: i64) {
        self.0.store(now_ms, Ordering::SeqCst);
    }

    /// Moves the time on by `ms`.
    pub fn advance_ms(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ScenarioClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A clock that runs `speedup` times as fast as the wall clock, from the wall clock's time when
/// it was made: a load run compresses a fleet's time as far as the machine allows (or
/// stretches it, below 1), and every part of the stack (the bridge's receive times, the alert
/// function, the schedules) reads this time. Clones share it; another process keeps the same
/// time from its [`CompressedClock::anchor`]. At speedup 1 it is the wall clock.
#[derive(Debug, Clone)]
pub struct CompressedClock(Arc<Mutex<Anchor>>);

/// Where a [`CompressedClock`] stands: at wall-clock time `wall_ms` (Unix ms, fractional) it
/// read `origin_ms`, and it runs `speedup` times as fast from there.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Anchor {
    /// The clock's time at `wall_ms`.
    pub origin_ms: f64,
    /// The wall clock's time then.
    pub wall_ms: f64,
    /// How much faster than the wall clock it runs.
    pub speedup: f64,
}

/// The wall clock, Unix ms with a fraction: what [`CompressedClock`] anchors on, and what
/// processes sharing one compressed clock time their events by.
pub fn wall_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

impl CompressedClock {
    /// A clock at the wall clock's time now, running `speedup` times as fast (below 1:
    /// slower; at least 0.01).
    pub fn starting_now(speedup: f64) -> CompressedClock {
        let now = wall_ms();
        CompressedClock::anchored(Anchor {
            origin_ms: now,
            wall_ms: now,
            speedup,
        })
    }

    /// The clock another one's [`CompressedClock::anchor`] describes.
    pub fn anchored(anchor: Anchor) -> CompressedClock {
        CompressedClock(Arc::new(Mutex::new(Anchor {
            speedup: anchor.speedup.max(0.01),
            ..anchor
        })))
    }

    /// Where it stands now: what another process needs to keep the same time.
    pub fn anchor(&self) -> Anchor {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How much faster than the wall clock it runs.
    pub fn speedup(&self) -> f64 {
        self.anchor().speedup
    }

    /// From now on, runs `speedup` times as fast (at least 0.01); time never jumps.
    pub fn set_speedup(&self, speedup: f64) {
        let mut a = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = wall_ms();
        a.origin_ms += (now - a.wall_ms) * a.speedup;
        a.wall_ms = now;
        a.speedup = speedup.max(0.01);
    }

    /// The wall-clock time that `ms` of this clock's time takes.
    pub fn real(&self, ms: i64) -> Duration {
        Duration::from_secs_f64(ms.max(0) as f64 / 1000.0 / self.speedup())
    }
}

impl Clock for CompressedClock {
    fn now_ms(&self) -> i64 {
        let a = self.anchor();
        (a.origin_ms + (wall_ms() - a.wall_ms) * a.speedup) as i64
    }
}

/// Errors loading rules or starting the bridge.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// A rule file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A rule file is not in the supported SQL subset.
    #[error("{path}: {error}")]
    Sql {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the column.
        error: SqlError,
    },
    /// A rule has no action, or an action names no rule.
    #[error("{0}")]
    Wiring(String),
    /// Certificates could not be read.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The broker refused the connection or subscription, or did not answer.
    #[error("rule {rule}: {message}")]
    Connect {
        /// The rule whose connection failed.
        rule: String,
        /// What happened.
        message: String,
    },
}

/// A rule file: its name (the file stem), path and parsed statement.
#[derive(Debug, Clone)]
pub struct RuleFile {
    /// The file stem, e.g. `ingest`.
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// The statement.
    pub statement: Statement,
}

/// The rule directory of this workspace: `<root>/infra/rules`.
pub fn default_rules_dir() -> PathBuf {
    vigil_local::workspace_root().join("infra").join("rules")
}

/// Reads and parses every `*.sql` in `dir`, sorted by name.
///
/// Fails with [`BridgeError::Io`] if the directory or a file cannot be read, or
/// [`BridgeError::Sql`] (file, column and reason) for a statement outside the subset.
pub fn load_rules(dir: &Path) -> Result<Vec<RuleFile>, BridgeError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| BridgeError::Io { path, source }
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let sql = std::fs::read_to_string(&path).map_err(io(&path))?;
            let statement = Statement::parse(sql.trim()).map_err(|error| BridgeError::Sql {
                path: path.clone(),
                error,
            })?;
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            Ok(RuleFile {
                name,
                path,
                statement,
            })
        })
        .collect()
}

/// Counters of one rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleStats {
    /// Messages received on the rule's filter.
    pub received: u64,
    /// Messages whose `WHERE` was not true.
    pub filtered: u64,
    /// Messages the rule failed for (error path).
    pub rule_failed: u64,
    /// Actions that succeeded.
    pub action_ok: u64,
    /// Actions that failed after retries (error path).
    pub action_failed: u64,
    /// Times the rule's connection was re-established and its subscription renewed (the
    /// broker acknowledged the new SUBSCRIBE).
    pub resubscribed: u64,
    /// Messages being handled now.
    pub busy: u64,
    /// The most messages handled at once so far.
    pub busy_peak: u64,
}

impl RuleStats {
    /// Messages fully handled (filtered, failed, or action done either way).
    pub fn handled(&self) -> u64 {
        self.filtered + self.rule_failed + self.action_ok + self.action_failed
    }

    /// Messages that went to the error path.
    pub fn errors(&self) -> u64 {
        self.rule_failed + self.action_failed
    }
}

/// How the bridge runs its rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeOptions {
    /// Messages of one rule handled at once (at least 1): the rule's Lambda function's
    /// concurrency.
    pub concurrency: usize,
    /// The stage whose Basic Ingest rule names (`vigil_{stage}_{rule}`) the bridge hears;
    /// `None`: the rules' own topics only.
    pub stage: Option<String>,
}

impl Default for BridgeOptions {
    /// One message at a time, no Basic Ingest.
    fn default() -> Self {
        BridgeOptions {
            concurrency: 1,
            stage: None,
        }
    }
}

/// The Basic Ingest topic prefix of `rule` at `stage`: `$aws/rules/vigil_{stage}_{rule}/`, as
/// the CDK app names the rules (`ruleName` in `infra/lib/vigil-stack.ts`) and the tag policy
/// names their topics.
pub fn basic_ingest_prefix(stage: &str, rule: &str) -> String {
    format!("$aws/rules/vigil_{stage}_{rule}/")
}

/// Where the broker's front relays `rule`'s Basic Ingest messages at `stage`.
fn relayed_prefix(stage: &str, rule: &str) -> String {
    format!("{}vigil_{stage}_{rule}/", crate::front::BASIC_INGEST_RELAY)
}

/// A message that went to a rule's error path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleFailure {
    /// The rule.
    pub rule: String,
    /// The message's topic.
    pub topic: String,
    /// Why: the rule's failure or the action's error.
    pub reason: String,
    /// What the action was given (for a Lambda action, the invocation's event), when the rule
    /// produced an output: what a redrive sends again.
    pub event: Option<serde_json::Value>,
    /// How many times the action was tried (0 when the rule itself failed).
    pub attempts: u32,
}

#[derive(Default)]
struct Shared {
    stats: Mutex<BTreeMap<String, RuleStats>>,
    failures: Mutex<Vec<RuleFailure>>,
    error_path: Mutex<Option<mpsc::UnboundedSender<RuleFailure>>>,
    changed: Notify,
}

impl Shared {
    fn update(&self, rule: &str, f: impl FnOnce(&mut RuleStats)) {
        f(self
            .stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(rule.to_owned())
            .or_default());
        self.changed.notify_waiters();
    }

    fn fail(&self, failure: RuleFailure) {
        tracing::warn!(rule = %failure.rule, topic = %failure.topic, reason = %failure.reason, "rule error path");
        if let Some(tx) = &*self.error_path.lock().unwrap_or_else(|e| e.into_inner()) {
            let _ = tx.send(failure.clone());
        }
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() >= KEPT_FAILURES {
            failures.remove(0);
        }
        failures.push(failure);
    }
}

/// A running bridge. Dropping it stops its tasks (and so its MQTT connections).
pub struct Bridge {
    shared: Arc<Shared>,
    clients: Vec<AsyncClient>,
    tasks: Vec<JoinHandle<()>>,
}

/// The client id `clientid()` gives for a message on `topic`. rumqttd does not tell a
/// subscriber who published, so locally this is the thing the topic names (`tags/{id}/...`,
/// or a victim's device's `victims/{id}/...`). The broker's front enforces the shipped
/// policies ([`crate::front`]): a tag or a device connects only with its own thing name as
/// client id and publishes only under its own topics, so for their messages this is exactly
/// the publisher's client id. (Service identities are neither; ingest's `client_mismatch`
/// check has its own tests.)
fn publisher(topic: &str) -> Option<&str> {
    let mut parts = topic.split('/');
    match (parts.next(), parts.next()) {
        (Some("tags" | "victims"), Some(id)) if !id.is_empty() => Some(id),
        _ => None,
    }
}

struct Received {
    topic: String,
    payload: Vec<u8>,
    received_at_ms: i64,
}

impl Bridge {
    /// Connects one client per rule to `endpoint` with `identity`, subscribes to each rule's
    /// filter (and its Basic Ingest filter, with [`BridgeOptions::stage`]), and returns once
    /// every subscription is acknowledged. `actions` must have exactly one action per rule
    /// name.
    ///
    /// Fails with [`BridgeError::Wiring`] if a rule has no action or an action no rule,
    /// [`BridgeError::Connect`] if the broker refuses (TLS, subscription) or does not answer
    /// within 10 s, or [`BridgeError::Pki`] if the certificate files cannot be read.
    pub async fn start(
        endpoint: &Endpoint,
        identity: &CertPair,
        rules: Vec<RuleFile>,
        actions: BTreeMap<String, Arc<dyn RuleAction>>,
        clock: Arc<dyn Clock>,
        bridge_options: &BridgeOptions,
    ) -> Result<Bridge, BridgeError> {
        if bridge_options.concurrency == 0 {
            return Err(BridgeError::Wiring(
                "the bridge's concurrency must be at least 1".to_owned(),
            ));
        }
        for rule in &rules {
            if !actions.contains_key(&rule.name) {
                return Err(BridgeError::Wiring(format!(
                    "rule {} ({}) has no action configured (configured: {})",
                    rule.name,
                    rule.path.display(),
                    actions.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
        }
        if let Some(extra) = actions
            .keys()
            .find(|k| !rules.iter().any(|r| &r.name == *k))
        {
            return Err(BridgeError::Wiring(format!(
                "an action is configured for rule {extra:?}, but there is no {extra}.sql"
            )));
        }
        let shared = Arc::new(Shared::default());
        let mut bridge = Bridge {
            shared: shared.clone(),
            clients: Vec::new(),
            tasks: Vec::new(),
        };
        for rule in rules {
            let action = actions[&rule.name].clone();
            shared.update(&rule.name, |_| {});
            let mut options = mqtt_options(
                endpoint,
                &format!("vigil-bridge-{}-{}", rule.name, std::process::id()),
                identity,
            )?;
            options.set_inflight(100);
            let (client, mut eventloop) = AsyncClient::new(options, 1000);
            let (tx, rx) = mpsc::channel::<Received>(10_000);
            let (subscribed_tx, subscribed_rx) = oneshot::channel::<Result<(), String>>();
            let filter = rule.statement.from.clone();
            // The rule's own filter, and its Basic Ingest filter when the stage is known.
            let prefix = bridge_options
                .stage
                .as_deref()
                .map(|stage| relayed_prefix(stage, &rule.name));
            let filters: Vec<rumqttc::SubscribeFilter> = std::iter::once(filter.clone())
                .chain(prefix.iter().map(|p| format!("{p}{filter}")))
                .map(|path| rumqttc::SubscribeFilter::new(path, QoS::AtLeastOnce))
                .collect();
            let name = rule.name.clone();
            let clock = clock.clone();
            let poll_shared = shared.clone();
            let resubscribe = client.clone();
            let poll_filters = filters.clone();
            let poller = tokio::spawn(async move {
                let mut subscribed = Some(subscribed_tx);
                let mut closing = false;
                let mut connected_before = false;
                let mut renewing = false;
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => closing = true,
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            // A clean session forgets its subscriptions: after a reconnect
                            // (another client took the id, the broker restarted) the rule
                            // would hear nothing more unless it subscribes again (issue 11.4).
                            if connected_before {
                                match resubscribe.try_subscribe_many(poll_filters.clone()) {
                                    Ok(()) => renewing = true,
                                    Err(e) => {
                                        tracing::error!(rule = %name, error = %e, "bridge reconnected but could not subscribe again")
                                    }
                                }
                            }
                            connected_before = true;
                        }
                        // Ending drops the sender: the rule's worker finishes what is queued.
                        Err(_) if closing => return,
                        Ok(Event::Incoming(Packet::SubAck(ack))) => {
                            let ok = ack
                                .return_codes
                                .iter()
                                .all(|c| !matches!(c, rumqttc::SubscribeReasonCode::Failure));
                            if renewing {
                                renewing = false;
                                if ok {
                                    tracing::info!(rule = %name, "bridge reconnected and subscribed again");
                                    poll_shared.update(&name, |s| s.resubscribed += 1);
                                } else {
                                    tracing::error!(rule = %name, "bridge reconnected; the broker refused the subscription");
                                }
                            }
                            if let Some(s) = subscribed.take() {
                                let _ = s.send(if ok {
                                    Ok(())
                                } else {
                                    Err("the broker refused the subscription".to_owned())
                                });
                            }
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            let received_at_ms = clock.now_ms();
                            poll_shared.update(&name, |s| s.received += 1);
                            // Basic Ingest: the rule sees the topic without its prefix.
                            let topic = prefix
                                .as_deref()
                                .and_then(|prefix| p.topic.strip_prefix(prefix))
                                .unwrap_or(&p.topic);
                            let msg = Received {
                                topic: topic.to_owned(),
                                payload: p.payload.to_vec(),
                                received_at_ms,
                            };
                            if tx.send(msg).await.is_err() {
                                return;
                            }
                        }
                        Ok(_) => {}
                        Err(e) => {
                            if let Some(s) = subscribed.take() {
                                let _ = s.send(Err(format!("connecting: {e}")));
                                return;
                            }
                            tracing::warn!(rule = %name, error = %e, "bridge connection lost; reconnecting");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                }
            });
            bridge.tasks.push(poller);
            client
                .subscribe_many(filters)
                .await
                .map_err(|e| BridgeError::Connect {
                    rule: rule.name.clone(),
                    message: e.to_string(),
                })?;
            let answer = tokio::time::timeout(Duration::from_secs(10), subscribed_rx).await;
            let failure = match answer {
                Ok(Ok(Ok(()))) => None,
                Ok(Ok(Err(e))) => Some(e),
                Ok(Err(_)) => Some("the connection task ended".to_owned()),
                Err(_) => Some(format!("no SUBACK for {filter} within 10 s")),
            };
            if let Some(message) = failure {
                return Err(BridgeError::Connect {
                    rule: rule.name,
                    message,
                });
            }
            bridge.clients.push(client);
            bridge.tasks.push(tokio::spawn(run_rule(
                Arc::new(rule),
                action,
                rx,
                shared.clone(),
                bridge_options.concurrency,
            )));
        }
        Ok(bridge)
    }

    /// Every rule's counters, by rule name.
    pub fn stats(&self) -> BTreeMap<String, RuleStats> {
        self.shared
            .stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Every message that goes to an error path from now on, as it happens (the local stack
    /// sends them to the `rule-errors` queue, as IoT Core's error action and Lambda's
    /// on-failure destination do). A second call replaces the first receiver.
    pub fn error_path(&self) -> mpsc::UnboundedReceiver<RuleFailure> {
        let (tx, rx) = mpsc::unbounded_channel();
        *self
            .shared
            .error_path
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(tx);
        rx
    }

    /// Messages that went to an error path (the last 1000).
    pub fn failures(&self) -> Vec<RuleFailure> {
        self.shared
            .failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits until `done(stats)` holds, or `timeout` passes; returns the stats either way, in
    /// `Ok` if it held.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        done: impl Fn(&BTreeMap<String, RuleStats>) -> bool,
    ) -> Result<BTreeMap<String, RuleStats>, BTreeMap<String, RuleStats>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.shared.changed.notified();
            let stats = self.stats();
            if done(&stats) {
                return Ok(stats);
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                let stats = self.stats();
                return if done(&stats) { Ok(stats) } else { Err(stats) };
            }
        }
    }

    /// Waits until every rule has handled everything it received, and at least `min_handled`
    /// messages in total, or `timeout` passes.
    pub async fn wait_handled(
        &self,
        min_handled: u64,
        timeout: Duration,
    ) -> Result<BTreeMap<String, RuleStats>, BTreeMap<String, RuleStats>> {
        self.wait_until(timeout, |stats| {
            stats.values().all(|s| s.handled() >= s.received)
                && stats.values().map(RuleStats::handled).sum::<u64>() >= min_handled
        })
        .await
    }

    /// Disconnects, lets each rule finish the messages it already received (up to 5 s in
    /// all), and stops every task.
    pub async fn stop(mut self) {
        for client in self.clients.drain(..) {
            let _ = client.disconnect().await;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        for mut task in self.tasks.drain(..) {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
                let _ = task.await;
            }
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Takes the rule's messages in arrival order and handles up to `concurrency` at once; when
/// the channel closes, finishes those still running.
async fn run_rule(
    rule: Arc<RuleFile>,
    action: Arc<dyn RuleAction>,
    mut rx: mpsc::Receiver<Received>,
    shared: Arc<Shared>,
    concurrency: usize,
) {
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut running = JoinSet::new();
    while let Some(msg) = rx.recv().await {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break; // never closed
        };
        shared.update(&rule.name, |s| {
            s.busy += 1;
            s.busy_peak = s.busy_peak.max(s.busy);
        });
        let (rule, action, shared) = (rule.clone(), action.clone(), shared.clone());
        running.spawn(async move {
            handle_message(&rule, action.as_ref(), &shared, msg).await;
            shared.update(&rule.name, |s| s.busy -= 1);
            drop(permit);
        });
        while running.try_join_next().is_some() {}
    }
    while running.join_next().await.is_some() {}
}

/// Evaluates the rule on one message and runs its action (retrying as IoT Core's asynchronous
/// invoke does); counts the result and sends failures to the error path.
async fn handle_message(rule: &RuleFile, action: &dyn RuleAction, shared: &Shared, msg: Received) {
    let message = Message {
        topic: &msg.topic,
        payload: &msg.payload,
        received_at_ms: msg.received_at_ms,
        client_id: publisher(&msg.topic),
    };
    match rule.statement.evaluate(&message) {
        Evaluation::Filtered => shared.update(&rule.name, |s| s.filtered += 1),
        Evaluation::Failed(reason) => {
            shared.fail(RuleFailure {
                rule: rule.name.clone(),
                topic: msg.topic.clone(),
                reason,
                event: None,
                attempts: 0,
            });
            shared.update(&rule.name, |s| s.rule_failed += 1);
        }
        Evaluation::Output(output) => {
            let mut attempt = 0;
            let result = loop {
                match action.execute(&output).await {
                    Err(e) if e.retryable && attempt < RETRIES => {
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(200 * attempt as u64)).await;
                    }
                    other => break other,
                }
            };
            match result {
                Ok(()) => shared.update(&rule.name, |s| s.action_ok += 1),
                Err(e) => {
                    shared.fail(RuleFailure {
                        rule: rule.name.clone(),
                        topic: msg.topic.clone(),
                        reason: format!("{}: {}", action.describe(), e.message),
                        event: Some(crate::action::lambda_event(&output)),
                        attempts: u32::try_from(attempt + 1).unwrap_or(u32::MAX),
                    });
                    shared.update(&rule.name, |s| s.action_failed += 1);
                }
            }
        }
    }
}
