//! `vigil-sim load`: a fleet through the whole local stack (docs/PERFORMANCE.md, "Fleet load
//! run").
//!
//! Thousands of tags, each its own mTLS MQTT connection with its own certificate, publish a
//! fix a minute on their Basic Ingest topic and obey their commands (pursuit's faster rate, a
//! batch window), on a clock that runs faster than the wall clock as far as the machine
//! allows. The rule bridge invokes ingest with up to `concurrency` invocations at once (as
//! Lambda does, to its reserved concurrency); the alert function drains its queue as Lambda's
//! event source mapping does; the watchdog runs every minute of the same clock.
//!
//! The fleet, placed as tags are: orders' zones spread over a metropolitan area (so most
//! fixes fall in cells holding other orders' zones), and
//! - most tags far from their own zone (3-30 km), walking round a point of their own;
//! - some hovering in their zone's warning buffer, never inside the zone: one warning each;
//! - some approaching: straight in from outside the buffer, into the zone, and staying: a
//!   warning, then a breach (then pursuit's faster reporting).
//!
//! Before the run, the emulator's own ceiling for the same requests is measured: ingest's
//! handler on the far tags' fixes, straight to the emulator (no MQTT, no bridge) at the same
//! concurrency. With `speedup` unset, the clock runs as fast as makes the fleet's offered
//! rate a fraction of that ceiling (default 0.8, the target): the run then shows whether the
//! whole stack sustains it without falling behind. Falling behind is not only slower: the
//! fleet's time runs on while messages wait, so alerts go stale (a warning overtaken by its
//! breach is never sent, by design) and tags look silent; a run that falls behind fails its
//! exactly-once check.
//!
//! DynamoDB is AWS's DynamoDB Local by default: moto keeps every object it ever made for its
//! `data.json`, which after a fleet's hours of history takes longer to write out than the run
//! takes (the SMS and operator events are read from there).
//!
//! At the end: every expected SMS was sent exactly once (read back from the emulator, paired
//! with the operator events that report them sent) and no other; the latency from a fix's
//! publish to its SMS being sent ([`vigil_stack::SmsLog`]); fixes per second over time; the
//! CPU and peak memory of each process (this one: tags, broker, bridge and functions; the
//! emulator's). A summary table on stdout, a plot as SVG.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use rumqttc::{AsyncClient, Event, Packet, QoS};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::watch;
use vigil_core::fix::{encode_batch, encode_fix};
use vigil_core::{Fix, OperatorEvent, TagId};
use vigil_mqtt::bridge::{basic_ingest_prefix, wall_ms};
use vigil_mqtt::tagsim::{Command, parse_command};
use vigil_mqtt::{Clock, CompressedClock};
use vigil_stack::{LocalStack, SmsLog, StackClock, StackOptions};

use crate::executor::ExecutorError;
use crate::scenario::Scenario;

/// Metres per degree of latitude.
const M_PER_DEG: f64 = 111_320.0;
/// The zones: a 100 m circle with a 400 m warning buffer.
const ZONE_RADIUS_M: f64 = 100.0;
const BUFFER_M: f64 = 400.0;
/// GPS accuracy every tag reports.
const ACCURACY_M: f64 = 8.0;
/// The fleet's reporting interval until told otherwise.
const INTERVAL_MS: i64 = 60_000;
/// Tags connecting at once.
const CONNECT_WAVE: usize = 100;
/// Orders provisioned at once.
const PROVISION_AT_ONCE: usize = 8;
/// Most fixes in one v2 batch.
const MAX_BATCH: usize = 30;

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Tags (and orders, one zone each).
    pub tags: usize,
    /// Minutes of the fleet's time the tags report for.
    pub minutes: f64,
    /// How much faster than the wall clock the fleet's time runs; `None`: as fast as makes the
    /// offered rate `offered` times the emulator's measured ceiling.
    pub speedup: Option<f64>,
    /// Without `speedup`: the fleet's offered rate as a fraction of the emulator's ceiling.
    pub offered: f64,
    /// The DynamoDB the stack runs on.
    pub dynamodb: vigil_local::DynamoDb,
    /// Invocations of ingest at once (the bridge's, and the ceiling's).
    pub concurrency: usize,
    /// Percent of tags approaching their zone.
    pub approaching_pct: f64,
    /// Percent of tags hovering in their zone's buffer.
    pub hovering_pct: f64,
    /// Orders allow adaptive reporting (far tags may batch); otherwise every fix is sent at
    /// once, the fleet's most expensive case.
    pub adaptive: bool,
    /// Seed of the placement.
    pub seed: u64,
    /// Where the plot goes.
    pub svg: PathBuf,
    /// Draw progress bars on stderr.
    pub progress: bool,
    /// The `vigil-sim` binary, whose `load-tags` runs the tags in a process of their own.
    pub tags_exe: PathBuf,
}

fn fail(message: impl Into<String>) -> ExecutorError {
    ExecutorError {
        executor: "load".to_owned(),
        message: message.into(),
    }
}

/// What a tag does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// Walks a 300 m circle round a point `distance_m` from its zone.
    Far,
    /// Circles its zone 220-380 m from the centre: in the buffer, never in the zone.
    Hovering,
    /// Starts `start_m` from the centre and comes straight in at `speed_mps`, stopping 20 m
    /// from the centre.
    Approaching {
        /// Distance at the start, m.
        start_m: f64,
        /// Speed, m/s.
        speed_mps: f64,
    },
}

/// One tag of the fleet and its order.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The tag (thing name).
    pub tag: String,
    /// What it does.
    pub kind: Kind,
    /// Its zone's centre.
    pub centre: (f64, f64),
    /// For far tags, the centre of its walk.
    pub home: (f64, f64),
    /// A bearing (radians) and phase of its own.
    pub bearing: f64,
    /// When its first fix is, ms after the run starts (within the first minute).
    pub phase_ms: i64,
}

/// SplitMix64: a small deterministic generator for the placement.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next()
    }
}

/// `(lat, lon)` moved `east_m`, `north_m`.
fn offset((lat, lon): (f64, f64), east_m: f64, north_m: f64) -> (f64, f64) {
    (
        lat + north_m / M_PER_DEG,
        lon + east_m / (M_PER_DEG * lat.to_radians().cos()),
    )
}

/// The fleet: `n` tags over a 70 km square round London, `approaching_pct` and
/// `hovering_pct` percent of them near their zone; the approaching ones enter the buffer
/// between 15 % and 35 % of `run_ms` and reach the zone at most 140 s after.
pub fn fleet(
    n: usize,
    approaching_pct: f64,
    hovering_pct: f64,
    run_ms: i64,
    seed: u64,
) -> Vec<Plan> {
    let mut rng = Rng(seed);
    let approaching = ((n as f64) * approaching_pct / 100.0).round() as usize;
    let hovering = ((n as f64) * hovering_pct / 100.0).round() as usize;
    (0..n)
        .map(|i| {
            let centre = (rng.range(51.2, 51.8), rng.range(-0.6, 0.4));
            let bearing = rng.range(0.0, std::f64::consts::TAU);
            let kind = if i < approaching {
                let speed_mps = rng.range(3.0, 5.0);
                let edge = ZONE_RADIUS_M + BUFFER_M;
                let start_m = edge + speed_mps * run_ms as f64 / 1000.0 * rng.range(0.15, 0.35);
                Kind::Approaching { start_m, speed_mps }
            } else if i < approaching + hovering {
                Kind::Hovering
            } else {
                Kind::Far
            };
            let distance_m = rng.range(3_000.0, 30_000.0);
            let home = offset(
                centre,
                distance_m * bearing.cos(),
                distance_m * bearing.sin(),
            );
            Plan {
                tag: format!("load-{i}"),
                kind,
                centre,
                home,
                bearing,
                phase_ms: (rng.next() * INTERVAL_MS as f64) as i64,
            }
        })
        .collect()
}

impl Plan {
    /// Where the tag is `t_ms` after the run starts.
    pub fn position(&self, t_ms: i64) -> (f64, f64) {
        let t = t_ms as f64 / 1000.0;
        match self.kind {
            Kind::Far => {
                // 1.4 m/s round a 300 m circle.
                let a = self.bearing + t * 1.4 / 300.0;
                offset(self.home, 300.0 * a.cos(), 300.0 * a.sin())
            }
            Kind::Hovering => {
                // 1 m/s round the centre, 300 +- 80 m out.
                let a = self.bearing + t / 300.0;
                let r = 300.0 + 80.0 * (t / 97.0 + self.bearing).sin();
                offset(self.centre, r * a.cos(), r * a.sin())
            }
            Kind::Approaching { start_m, speed_mps } => {
                let r = (start_m - speed_mps * t).max(20.0);
                offset(self.centre, r * self.bearing.cos(), r * self.bearing.sin())
            }
        }
    }

    /// The SMS levels its victim must get, in order.
    pub fn expected(&self) -> &'static [&'static str] {
        match self.kind {
            Kind::Far => &[],
            Kind::Hovering => &["warning"],
            Kind::Approaching { .. } => &["warning", "breach"],
        }
    }

    fn order_id(&self) -> String {
        format!("o-{}", self.tag)
    }
}

/// The victim's number of tag `i` of the fleet.
fn phone(i: usize) -> String {
    format!("+4477009{i:05}")
}

/// The fleet's orders as a scenario (no messages), to provision through the operators' code.
fn orders(
    plans: &[Plan],
    adaptive: bool,
    start: chrono::DateTime<chrono::Utc>,
) -> Result<Scenario, ExecutorError> {
    let orders: Vec<_> = plans
        .iter()
        .enumerate()
        .map(|(i, p)| {
            json!({
                "order_id": p.order_id(), "tag_id": p.tag,
                "victim": {"victim_id": format!("v-{}", p.tag), "phone": phone(i), "language": "en"},
                "policy": {"adaptive_reporting": adaptive},
                "zones": [{"zone_id": format!("z-{}", p.tag), "kind": "home",
                    "circle": {"lat": p.centre.0, "lon": p.centre.1, "radius_m": ZONE_RADIUS_M},
                    "buffer_m": BUFFER_M}]
            })
        })
        .collect();
    let file = json!({
        "name": "load", "start": start.to_rfc3339(), "orders": orders, "fixes": [],
        "expect": {"sms": [], "no_other_sms": false}
    });
    Scenario::from_json(&file.to_string()).map_err(|e| fail(format!("the fleet's orders: {e}")))
}

fn bar(progress: bool, len: u64, template: &str) -> ProgressBar {
    if !progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// What the tags have done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Fixes published.
    pub fixes: u64,
    /// MQTT messages published.
    pub messages: u64,
    /// PUBACKs.
    pub acked: u64,
    /// Commands obeyed.
    pub commands: u64,
    /// Connection and publish errors.
    pub errors: u64,
}

/// Counters the tags and the sampler share.
#[derive(Default)]
struct Counters {
    /// Fixes published (acknowledged or not).
    fixes: AtomicU64,
    /// MQTT messages published.
    messages: AtomicU64,
    /// PUBACKs.
    acked: AtomicU64,
    /// Commands obeyed.
    commands: AtomicU64,
    /// Connection and publish errors.
    errors: AtomicU64,
}

impl Counters {
    fn tally(&self) -> Tally {
        Tally {
            fixes: self.fixes.load(Ordering::Relaxed),
            messages: self.messages.load(Ordering::Relaxed),
            acked: self.acked.load(Ordering::Relaxed),
            commands: self.commands.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }
}

/// What the tags' process runs: the fleet (made again from the same options and seed), where
/// it connects, and on which clock.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TagsSpec {
    /// Tags.
    pub tags: usize,
    /// Percent approaching.
    pub approaching_pct: f64,
    /// Percent hovering.
    pub hovering_pct: f64,
    /// The fleet's time the tags report for, ms.
    pub run_ms: i64,
    /// The placement's seed.
    pub seed: u64,
    /// The broker's host.
    pub host: String,
    /// The broker's port.
    pub port: u16,
    /// The broker's CA.
    pub ca: PathBuf,
    /// The PKI the tags' certificates come from.
    pub pki_dir: PathBuf,
    /// The Basic Ingest prefix of the ingest rule.
    pub topic_prefix: String,
    /// The stack's clock.
    pub clock: vigil_mqtt::Anchor,
    /// Each tag's first counter.
    pub first_seq: u64,
}

/// A line the tags' process writes on its stdout, as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Report {
    /// This many tags are connected and subscribed.
    Connected {
        /// So far.
        n: usize,
    },
    /// Every tag is connected; they report from `start_ms` to `end_ms` of the clock.
    Started {
        /// The first fixes' time.
        start_ms: i64,
        /// No fix from then on.
        end_ms: i64,
    },
    /// Each second.
    Progress(Tally),
    /// Every tag has published its last fix and had it acknowledged (or 60 s passed).
    Done {
        /// The counts.
        tally: Tally,
        /// (tag index, device time, published at: wall clock ms) of every fix of the tags
        /// that cause SMS.
        published: Vec<(usize, i64, f64)>,
        /// The process's CPU seconds from `Started` to now.
        cpu_s: f64,
        /// And over that time, seconds.
        wall_s: f64,
        /// Its peak resident memory, KiB.
        peak_kib: u64,
    },
}

/// When each fix of the tags that cause SMS was published (wall clock, Unix ms), by (tag
/// index, device time).
type Published = Arc<Mutex<HashMap<(usize, i64), f64>>>;

/// A connected tag.
struct Tag {
    client: AsyncClient,
    command: watch::Receiver<Command>,
    poller: tokio::task::JoinHandle<()>,
}

async fn connect(
    endpoint: vigil_mqtt::Endpoint,
    pki: Arc<vigil_mqtt::Pki>,
    plan: Arc<Plan>,
    counters: Arc<Counters>,
) -> Result<Tag, String> {
    let identity = pki.client(&plan.tag).map_err(|e| e.to_string())?;
    let options = vigil_mqtt::client::tag_options(&endpoint, &plan.tag, &identity)
        .map_err(|e| e.to_string())?;
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    let (tx, command) = watch::channel(Command {
        interval: Duration::from_millis(INTERVAL_MS as u64),
        batch: Duration::ZERO,
    });
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel::<Result<(), String>>();
    let cmd_topic = format!("tags/{}/cmd", plan.tag);
    let poller = tokio::spawn(async move {
        let mut subscribed = Some(subscribed_tx);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(s) = subscribed.take() {
                        let _ = s.send(Ok(()));
                    }
                }
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    counters.acked.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Event::Incoming(Packet::Publish(p))) if p.topic == cmd_topic => {
                    if let Ok(c) = parse_command(&p.payload) {
                        counters.commands.fetch_add(1, Ordering::Relaxed);
                        let _ = tx.send(c);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    if let Some(s) = subscribed.take() {
                        let _ = s.send(Err(e.to_string()));
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    });
    client
        .subscribe(format!("tags/{}/cmd", plan.tag), QoS::AtLeastOnce)
        .await
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(Duration::from_secs(60), subscribed).await {
        Ok(Ok(Ok(()))) => Ok(Tag {
            client,
            command,
            poller,
        }),
        Ok(Ok(Err(e))) => Err(e),
        _ => Err("no SUBACK within 60 s".to_owned()),
    }
}

/// A fix of `plan` at device time `at_ms`.
fn fix_of(plan: &Plan, seq: u64, at_ms: i64, t_ms: i64) -> Result<Fix, ExecutorError> {
    let (lat, lon) = plan.position(t_ms);
    Ok(Fix {
        tag_id: TagId::new(plan.tag.as_str()).map_err(|e| fail(e.to_string()))?,
        seq,
        at_ms,
        lat,
        lon,
        accuracy_m: ACCURACY_M,
        speed_mps: None,
        heading_deg: None,
        battery_pct: Some(80),
    })
}

/// One tag's run: a fix every interval of the fleet's clock from its phase until `end_ms`,
/// each sent at once, or held and sent as one batch while told a window.
#[allow(clippy::too_many_arguments)]
async fn run_tag(
    index: usize,
    plan: Arc<Plan>,
    tag: Tag,
    clock: CompressedClock,
    start_ms: i64,
    end_ms: i64,
    first_seq: u64,
    topic: String,
    counters: Arc<Counters>,
    published: Published,
) -> Result<(), ExecutorError> {
    let record = !plan.expected().is_empty();
    let mut at = start_ms + plan.phase_ms;
    let mut seq = first_seq;
    let mut held: Vec<Fix> = Vec::new();
    let send = |fixes: Vec<Fix>| {
        let client = tag.client.clone();
        let topic = topic.clone();
        let counters = counters.clone();
        let published = published.clone();
        async move {
            let payload = match fixes.as_slice() {
                [one] => encode_fix(one),
                many => encode_batch(many),
            };
            let now = wall_ms();
            if record {
                let mut p = published.lock().expect("published");
                for f in &fixes {
                    p.insert((index, f.at_ms), now);
                }
            }
            counters
                .fixes
                .fetch_add(fixes.len() as u64, Ordering::Relaxed);
            counters.messages.fetch_add(1, Ordering::Relaxed);
            if client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await
                .is_err()
            {
                counters.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    };
    while at < end_ms {
        tokio::time::sleep(clock.real(at - clock.now_ms())).await;
        let command = *tag.command.borrow();
        held.push(fix_of(&plan, seq, at, at - start_ms)?);
        seq += 1;
        let oldest = held.first().map_or(at, |f| f.at_ms);
        let window = command.batch.as_millis() as i64;
        let next = at + (command.interval.as_millis() as i64).max(1000);
        // Sent when the window allows no more waiting: before the next fix would be too late.
        if window == 0 || next - oldest > window || held.len() >= MAX_BATCH {
            send(std::mem::take(&mut held)).await;
        }
        at = next;
    }
    if !held.is_empty() {
        send(held).await;
    }
    Ok(())
}

/// The tags' process (`vigil-sim load-tags`): connects the fleet `spec` describes, runs it,
/// and writes a [`Report`] per line on `out`.
///
/// Fails when a tag cannot connect or a fix cannot be made.
pub fn run_tags(spec: &TagsSpec, out: &mut dyn Write) -> Result<(), ExecutorError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(format!("runtime: {e}")))?;
    runtime.block_on(run_tags_async(spec, out))
}

fn report(out: &mut dyn Write, r: &Report) -> Result<(), ExecutorError> {
    let line = serde_json::to_string(r).map_err(|e| fail(e.to_string()))?;
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| fail(format!("reporting: {e}")))
}

async fn run_tags_async(spec: &TagsSpec, out: &mut dyn Write) -> Result<(), ExecutorError> {
    let plans: Vec<Arc<Plan>> = fleet(
        spec.tags,
        spec.approaching_pct,
        spec.hovering_pct,
        spec.run_ms,
        spec.seed,
    )
    .into_iter()
    .map(Arc::new)
    .collect();
    let clock = CompressedClock::anchored(spec.clock);
    let pki = Arc::new(vigil_mqtt::Pki::ensure(&spec.pki_dir).map_err(|e| fail(e.to_string()))?);
    let endpoint = vigil_mqtt::Endpoint {
        host: spec.host.clone(),
        port: spec.port,
        ca: spec.ca.clone(),
    };
    let counters = Arc::new(Counters::default());
    let mut tags = Vec::with_capacity(plans.len());
    for wave in plans.chunks(CONNECT_WAVE) {
        let joins: Vec<_> = wave
            .iter()
            .map(|plan| {
                tokio::spawn(connect(
                    endpoint.clone(),
                    pki.clone(),
                    plan.clone(),
                    counters.clone(),
                ))
            })
            .collect();
        for (plan, join) in wave.iter().zip(joins) {
            let tag = join.await.map_err(|e| fail(e.to_string()))?;
            tags.push(tag.map_err(|e| fail(format!("{}: {e}", plan.tag)))?);
        }
        report(out, &Report::Connected { n: tags.len() })?;
    }
    let start_ms = clock.now_ms() + 1000;
    let end_ms = start_ms + spec.run_ms;
    report(out, &Report::Started { start_ms, end_ms })?;
    let own = || {
        processes()
            .remove(&std::process::id())
            .map(|(_, u)| u)
            .unwrap_or_default()
    };
    let (cpu_before, started) = (own().cpu_s, Instant::now());
    let published: Published = Arc::new(Mutex::new(HashMap::new()));
    let mut clients = Vec::new();
    let mut running = tokio::task::JoinSet::new();
    for (i, (plan, tag)) in plans.iter().zip(tags).enumerate() {
        clients.push((tag.client.clone(), tag.poller.abort_handle()));
        running.spawn(run_tag(
            i,
            plan.clone(),
            tag,
            clock.clone(),
            start_ms,
            end_ms,
            spec.first_seq,
            format!("{}tags/{}/fix", spec.topic_prefix, plan.tag),
            counters.clone(),
            published.clone(),
        ));
    }
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    while !running.is_empty() {
        tokio::select! {
            done = running.join_next() => {
                if let Some(done) = done {
                    done.map_err(|e| fail(e.to_string()))??;
                }
            }
            _ = ticker.tick() => report(out, &Report::Progress(counters.tally()))?,
        }
    }
    // Every publish acknowledged (QoS 1), or a minute.
    let deadline = Instant::now() + Duration::from_secs(60);
    while counters.tally().acked < counters.tally().messages && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        report(out, &Report::Progress(counters.tally()))?;
    }
    for (client, poller) in clients {
        let _ = client.disconnect().await;
        poller.abort();
    }
    let published = published
        .lock()
        .expect("published")
        .iter()
        .map(|(&(i, at_ms), &wall)| (i, at_ms, wall))
        .collect();
    let usage = own();
    report(
        out,
        &Report::Done {
            tally: counters.tally(),
            published,
            cpu_s: usage.cpu_s - cpu_before,
            wall_s: started.elapsed().as_secs_f64(),
            peak_kib: usage.peak_kib,
        },
    )
}

/// What the check of the alerts found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AlertCheck {
    /// SMS the fleet's movements call for.
    pub expected: usize,
    /// SMS the operator events report sent.
    pub sent: usize,
    /// What is wrong: an SMS missing, sent twice, unexpected, or recorded without an event.
    pub problems: Vec<String>,
}

/// Checks that every order's victim got exactly the SMS its tag's movement calls for, in order,
/// once each: `sent` is each "sent" operator event's (order, level) in publish order,
/// `recorded` the destination of each SMS the emulator recorded.
pub fn check_alerts(plans: &[Plan], sent: &[(String, String)], recorded: &[String]) -> AlertCheck {
    let mut by_order: HashMap<&str, Vec<&str>> = HashMap::new();
    for (order, level) in sent {
        by_order.entry(order).or_default().push(level);
    }
    let mut by_phone: HashMap<&str, usize> = HashMap::new();
    for to in recorded {
        *by_phone.entry(to).or_default() += 1;
    }
    let mut check = AlertCheck {
        sent: sent.len(),
        ..AlertCheck::default()
    };
    let mut known = 0;
    for (i, plan) in plans.iter().enumerate() {
        let expected = plan.expected();
        check.expected += expected.len();
        let order = plan.order_id();
        let got = by_order.get(order.as_str()).cloned().unwrap_or_default();
        known += got.len();
        if got != expected {
            check.problems.push(format!(
                "order {order} ({:?}): expected SMS {expected:?}, the operator events report {got:?}",
                plan.kind
            ));
        }
        let count = by_phone.get(phone(i).as_str()).copied().unwrap_or(0);
        if count != got.len() {
            check.problems.push(format!(
                "order {order}: {count} SMS recorded by the emulator, {} reported sent",
                got.len()
            ));
        }
    }
    if known != sent.len() {
        check.problems.push(format!(
            "{} SMS reported sent for orders not in the fleet",
            sent.len() - known
        ));
    }
    check
}

/// CPU time (user + system) and peak resident memory of a process or thread.
#[derive(Debug, Clone, Default)]
struct Usage {
    cpu_s: f64,
    peak_kib: u64,
}

/// The Linux clock ticks per second of `/proc/*/stat`'s times.
const TICKS: f64 = 100.0;

/// (name, CPU seconds) from a `/proc/.../stat` line.
fn stat_of(text: &str) -> Option<(String, f64, u32)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let name = text[open + 1..close].to_owned();
    let fields: Vec<&str> = text[close + 2..].split_whitespace().collect();
    // After the name: state(0) ppid(1) ... utime(11) stime(12).
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((name, (utime + stime) / TICKS, ppid))
}

/// This process and every process descended from it: pid -> (name, usage).
fn processes() -> BTreeMap<u32, (String, Usage)> {
    let me = std::process::id();
    let mut all: Vec<(u32, String, f64, u32)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if let Some((name, cpu, ppid)) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|t| stat_of(&t))
            {
                all.push((pid, name, cpu, ppid));
            }
        }
    }
    let mut ours = BTreeMap::new();
    let mut frontier = vec![me];
    while let Some(parent) = frontier.pop() {
        for (pid, name, cpu, ppid) in &all {
            if *pid == parent || (*ppid == parent && !ours.contains_key(pid)) {
                let peak_kib = std::fs::read_to_string(format!("/proc/{pid}/status"))
                    .ok()
                    .and_then(|s| {
                        s.lines()
                            .find(|l| l.starts_with("VmHWM:"))
                            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
                    })
                    .unwrap_or(0);
                if ours
                    .insert(
                        *pid,
                        (
                            name.clone(),
                            Usage {
                                cpu_s: *cpu,
                                peak_kib,
                            },
                        ),
                    )
                    .is_none()
                    && *pid != parent
                {
                    frontier.push(*pid);
                }
            }
        }
    }
    ours
}

/// This process's threads' CPU seconds, by thread name (digits and `-N` suffixes dropped).
fn threads() -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for entry in dir.flatten() {
            let path = entry.path().join("stat");
            if let Some((name, cpu, _)) =
                std::fs::read_to_string(path).ok().and_then(|t| stat_of(&t))
            {
                let name = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-');
                *out.entry(name.to_owned()).or_default() += cpu;
            }
        }
    }
    out
}

/// One sample of the run, each second.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Seconds since publishing began.
    t_s: f64,
    /// Fixes published so far.
    published: u64,
    /// Fixes ingest has judged so far.
    handled: u64,
}

/// What a run measured.
struct Measured {
    samples: Vec<Sample>,
    /// (seconds since publishing began, latency ms) of each SMS.
    latencies: Vec<(f64, f64)>,
}

/// Fixes ingest has judged (each counted once, under its path).
fn judged(stack: &LocalStack) -> u64 {
    let m = &stack.ingest.metrics;
    m.get("FixesEvaluated", "quiet") + m.get("FixesEvaluated", "near")
}

/// The emulator's ceiling: ingest's handler on one fix of each of `plans`, straight to the
/// emulator, `concurrency` at once; fixes per second.
async fn ceiling(
    stack: &LocalStack,
    plans: &[Arc<Plan>],
    seq: u64,
    concurrency: usize,
    clock: &CompressedClock,
) -> Result<f64, ExecutorError> {
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let errors = Arc::new(AtomicU64::new(0));
    let mut running = tokio::task::JoinSet::new();
    let started = Instant::now();
    for plan in plans {
        let now = clock.now_ms();
        let payload = encode_fix(&fix_of(plan, seq, now - 500, 0)?);
        let event = vigil_ingest::rule_event(&plan.tag, "fix", &payload, now);
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| fail(e.to_string()))?;
        let (ports, errors) = (stack.ingest.clone(), errors.clone());
        running.spawn(async move {
            if vigil_ingest::handle(event, &ports).await.is_err() {
                errors.fetch_add(1, Ordering::Relaxed);
            }
            drop(permit);
        });
    }
    while running.join_next().await.is_some() {}
    let rate = plans.len() as f64 / started.elapsed().as_secs_f64();
    match errors.load(Ordering::Relaxed) {
        0 => Ok(rate),
        n => Err(fail(format!(
            "{n} of the ceiling's {} fixes failed in ingest",
            plans.len()
        ))),
    }
}

/// Runs the load and writes the summary to `out`, the plot to `options.svg`.
///
/// Fails when the stack does not start, a step fails, or the alerts are not exactly those
/// expected (the summary is written first).
pub fn run(options: &LoadOptions, out: &mut dyn Write) -> Result<(), ExecutorError> {
    if options.tags == 0 || options.minutes < 5.0 || options.concurrency == 0 {
        return Err(fail(
            "a load run needs at least one tag, 5 minutes (the approaching tags' way in) and a concurrency of at least 1",
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(format!("runtime: {e}")))?;
    runtime.block_on(run_async(options, out))
}

async fn run_async(options: &LoadOptions, out: &mut dyn Write) -> Result<(), ExecutorError> {
    let io = |e: std::io::Error| fail(format!("writing the results: {e}"));
    let run_ms = (options.minutes * 60_000.0) as i64;
    let plans: Vec<Arc<Plan>> = fleet(
        options.tags,
        options.approaching_pct,
        options.hovering_pct,
        run_ms,
        options.seed,
    )
    .into_iter()
    .map(Arc::new)
    .collect();
    // At the wall clock's pace until the run: provisioning and connecting take what they take.
    let clock = CompressedClock::starting_now(1.0);
    let sms_log = SmsLog::new();
    let stack = LocalStack::start(StackOptions {
        clock: StackClock::Compressed(clock.clone()),
        dynamodb: Some(options.dynamodb),
        rule_concurrency: options.concurrency,
        sms_log: Some(sms_log.clone()),
        ..StackOptions::default()
    })
    .await
    .map_err(|e| fail(e.to_string()))?;
    let result = drive(options, &plans, &clock, &sms_log, &stack, run_ms).await;
    stack.stop().await;
    let (summary, problems) = result?;
    out.write_all(summary.as_bytes()).map_err(io)?;
    if problems.is_empty() {
        Ok(())
    } else {
        Err(fail(format!(
            "the alerts were not exactly those expected ({} problems; the first: {})",
            problems.len(),
            problems
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        )))
    }
}

/// Provisions, measures the ceiling, connects the tags, runs them, waits for the stack to
/// finish, and checks and measures what happened: (the summary, the alert problems).
#[allow(clippy::too_many_lines)]
async fn drive(
    options: &LoadOptions,
    plans: &[Arc<Plan>],
    clock: &CompressedClock,
    sms_log: &SmsLog,
    stack: &LocalStack,
    run_ms: i64,
) -> Result<(String, Vec<String>), ExecutorError> {
    let functions = &stack.functions;
    let wall_start = Instant::now();

    // 1. The orders, through the operators' provisioning code, a few at once.
    let owned: Vec<Plan> = plans.iter().map(|p| (**p).clone()).collect();
    let scenario = Arc::new(orders(&owned, options.adaptive, chrono::Utc::now())?);
    let provisioning = bar(
        options.progress,
        plans.len() as u64,
        "provisioning {bar:40} {pos}/{len} orders {elapsed}",
    );
    let permits = Arc::new(tokio::sync::Semaphore::new(PROVISION_AT_ONCE));
    let mut running = tokio::task::JoinSet::new();
    for i in 0..scenario.orders.len() {
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| fail(e.to_string()))?;
        let (store, scenario, bar) = (
            functions.store.clone(),
            scenario.clone(),
            provisioning.clone(),
        );
        running.spawn(async move {
            let order = &scenario.orders[i];
            let result =
                vigil_admin::orders::provision_order(&store, order, &scenario.zones_of(order))
                    .await;
            bar.inc(1);
            drop(permit);
            result.map_err(|e| fail(format!("provisioning {}: {e}", order.order_id)))
        });
    }
    while let Some(done) = running.join_next().await {
        done.map_err(|e| fail(e.to_string()))??;
    }
    provisioning.finish();
    let provisioned_in = wall_start.elapsed();

    // 2. The emulator's ceiling, on the far tags' fixes.
    let first_seq = (clock.now_ms() / 1000) as u64;
    let far: Vec<Arc<Plan>> = plans
        .iter()
        .filter(|p| p.kind == Kind::Far)
        .take(1500)
        .cloned()
        .collect();
    // Twice: the first round warms the emulator (DynamoDB Local's JIT) and gives each of these
    // tags a history, so the measured round is of fixes that follow another, as the run's are.
    ceiling(stack, &far, first_seq, options.concurrency, clock).await?;
    let ceiling_rate = ceiling(stack, &far, first_seq + 1, options.concurrency, clock).await?;
    let base_rate = plans.len() as f64 * 1000.0 / INTERVAL_MS as f64;
    let speedup = options
        .speedup
        .unwrap_or(options.offered * ceiling_rate / base_rate)
        .clamp(0.05, 100.0);
    clock.set_speedup(speedup);

    // 3. The tags, in a process of their own (as tags are outside the system; and this
    // process's file descriptors go to the broker's side of their connections): connected,
    // then reporting until the fleet's time is up.
    let pki = vigil_mqtt::Pki::default_dir();
    let endpoint = stack.endpoint();
    let spec = TagsSpec {
        tags: options.tags,
        approaching_pct: options.approaching_pct,
        hovering_pct: options.hovering_pct,
        run_ms,
        seed: options.seed,
        host: endpoint.host.clone(),
        port: endpoint.port,
        ca: endpoint.ca.clone(),
        pki_dir: pki,
        topic_prefix: basic_ingest_prefix(functions.emulator.stage(), "ingest"),
        clock: clock.anchor(),
        first_seq: first_seq + 2,
    };
    let spec_json = serde_json::to_string(&spec).map_err(|e| fail(e.to_string()))?;
    let mut child = tokio::process::Command::new(&options.tags_exe)
        .args(["load-tags", "--spec", &spec_json])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            fail(format!(
                "starting the tags ({}): {e}",
                options.tags_exe.display()
            ))
        })?;
    let tags_pid = child.id();
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| fail("the tags' process has no stdout"))?;
    let mut reports = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let connecting = bar(
        options.progress,
        plans.len() as u64,
        "connecting  {bar:40} {pos}/{len} tags {elapsed}",
    );
    let running_bar = bar(
        options.progress,
        (run_ms / 1000) as u64,
        "running     {bar:40} {pos}/{len} s of fleet time {msg}",
    );
    let handled_before = judged(stack);
    let mut samples: Vec<Sample> = Vec::new();
    let mut tally = Tally::default();
    let mut started: Option<(i64, Instant, f64)> = None;
    let mut before = None;
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let (tally, published, tags_usage) = loop {
        tokio::select! {
            line = reports.next_line() => {
                let line = line.map_err(|e| fail(format!("reading the tags' reports: {e}")))?;
                let Some(line) = line else {
                    let status = child.wait().await.map_err(|e| fail(e.to_string()))?;
                    return Err(fail(format!("the tags' process ended before it was done ({status})")));
                };
                match serde_json::from_str::<Report>(&line)
                    .map_err(|e| fail(format!("the tags' report {line:?}: {e}")))?
                {
                    Report::Connected { n } => connecting.set_position(n as u64),
                    Report::Started { start_ms, .. } => {
                        connecting.finish();
                        before = Some((processes(), threads()));
                        started = Some((start_ms, Instant::now(), wall_ms()));
                    }
                    Report::Progress(t) => tally = t,
                    Report::Done { tally, published, cpu_s, wall_s, peak_kib } => {
                        break (tally, published, (cpu_s, wall_s, peak_kib));
                    }
                }
            }
            _ = ticker.tick() => {
                if let Some((start_ms, at, _)) = started {
                    samples.push(Sample {
                        t_s: at.elapsed().as_secs_f64(),
                        published: tally.fixes,
                        handled: judged(stack) - handled_before,
                    });
                    running_bar.set_position(((clock.now_ms() - start_ms).max(0) / 1000) as u64);
                    running_bar.set_message(format!(
                        "{} fixes published, {} judged, {} SMS",
                        tally.fixes, judged(stack) - handled_before, sms_log.sent().len()
                    ));
                }
            }
        }
    };
    running_bar.finish();
    let status = child.wait().await.map_err(|e| fail(e.to_string()))?;
    if !status.success() {
        return Err(fail(format!("the tags' process failed ({status})")));
    }
    let (Some((_, publish_started, publish_started_ms)), Some((before_cpu, before_threads))) =
        (started, before)
    else {
        return Err(fail("the tags' process was done before it started"));
    };
    let connected_in = wall_start.elapsed() - provisioned_in - publish_started.elapsed();
    let publishing_s = publish_started.elapsed().as_secs_f64();
    let sample = |samples: &mut Vec<Sample>| {
        samples.push(Sample {
            t_s: publish_started.elapsed().as_secs_f64(),
            published: tally.fixes,
            handled: judged(stack) - handled_before,
        });
    };

    // 4. The stack finishes what it was given: every message judged, every SMS sent.
    let (messages, fixes) = (tally.messages, tally.fixes);
    let drain_deadline = Instant::now() + Duration::from_secs(900);
    while judged(stack) - handled_before < fixes {
        if Instant::now() > drain_deadline {
            return Err(fail(format!(
                "the stack did not judge every fix within 15 minutes: {} of {fixes}",
                judged(stack) - handled_before
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        if samples
            .last()
            .is_none_or(|s| publish_started.elapsed().as_secs_f64() - s.t_s >= 1.0)
        {
            sample(&mut samples);
        }
    }
    sample(&mut samples);
    let drained_s = publish_started.elapsed().as_secs_f64() - publishing_s;
    let expected_sms: usize = plans.iter().map(|p| p.expected().len()).sum();
    let sms_deadline = Instant::now() + Duration::from_secs(300);
    let mut last = (sms_log.sent().len(), Instant::now());
    let waiting = bar(
        options.progress,
        expected_sms as u64,
        "alerts      {bar:40} {pos}/{len} SMS sent {elapsed}",
    );
    loop {
        let n = sms_log.sent().len();
        waiting.set_position(n as u64);
        if n != last.0 {
            last = (n, Instant::now());
        }
        if (n >= expected_sms && last.1.elapsed() >= Duration::from_secs(8))
            || Instant::now() > sms_deadline
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    waiting.finish();
    let after_cpu = processes();
    let after_threads = threads();
    let measured_s = publish_started.elapsed().as_secs_f64();

    // 5. What was sent, read back from the emulator.
    let readback_started = Instant::now();
    let (sms, topic) = functions
        .emulator
        .sms_and_operator_events(Duration::from_secs(1200))
        .await
        .map_err(|e| fail(format!("reading the SMS and operator events back: {e}")))?;
    let readback_s = readback_started.elapsed().as_secs_f64();
    let recorded: Vec<String> = sms.into_iter().map(|s| s.phone_number).collect();
    let events: Vec<OperatorEvent> = topic
        .iter()
        .filter_map(|m| serde_json::from_str(&m.message).ok())
        .collect();
    let sent: Vec<&OperatorEvent> = events
        .iter()
        .filter(|e| e.victim_sms.starts_with("sent:"))
        .collect();
    let pairs: Vec<(String, String)> = sent
        .iter()
        .map(|e| {
            (
                e.order_id.to_string(),
                e.victim_sms.trim_start_matches("sent:").to_owned(),
            )
        })
        .collect();
    let check = check_alerts(&owned, &pairs, &recorded);

    // 6. Latency: each "sent" event's cause (its tag's fix at `at_ms`), published when, to
    // the SMS to its victim sent when (the k-th event of an order is its k-th SMS).
    let log = sms_log.sent();
    let published: HashMap<(usize, i64), f64> = published
        .into_iter()
        .map(|(i, at_ms, wall)| ((i, at_ms), wall))
        .collect();
    let mut nth: HashMap<String, usize> = HashMap::new();
    let mut latencies = Vec::new();
    for e in &sent {
        let Some(i) = e
            .tag_id
            .as_str()
            .strip_prefix("load-")
            .and_then(|i| i.parse::<usize>().ok())
        else {
            continue;
        };
        let k = nth.entry(phone(i)).or_default();
        let sms = log.iter().filter(|s| s.phone_number == phone(i)).nth(*k);
        *k += 1;
        if let (Some(sms), Some(at)) = (sms, published.get(&(i, e.at_ms))) {
            latencies.push(((sms.at_ms - publish_started_ms) / 1000.0, sms.at_ms - at));
        }
    }
    let measured = Measured { samples, latencies };
    if let Some(parent) = options.svg.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| fail(format!("{}: {e}", parent.display())))?;
    }
    std::fs::write(&options.svg, plot(&measured, publishing_s))
        .map_err(|e| fail(format!("{}: {e}", options.svg.display())))?;

    // 7. The summary.
    let stats = stack.bridge.stats();
    let ingest = stats.get("ingest").cloned().unwrap_or_default();
    let count = |k: fn(&Kind) -> bool| plans.iter().filter(|p| k(&p.kind)).count();
    let (n_far, n_hover, n_app) = (
        count(|k| *k == Kind::Far),
        count(|k| *k == Kind::Hovering),
        count(|k| matches!(k, Kind::Approaching { .. })),
    );
    // Sustained: fixes judged from the end of the first minute of publishing to its end.
    let window: Vec<&Sample> = measured
        .samples
        .iter()
        .filter(|s| s.t_s >= 60.0_f64.min(publishing_s / 4.0) && s.t_s <= publishing_s)
        .collect();
    let sustained = match (window.first(), window.last()) {
        (Some(a), Some(b)) if b.t_s > a.t_s => (b.handled - a.handled) as f64 / (b.t_s - a.t_s),
        _ => fixes as f64 / publishing_s,
    };
    let offered = fixes as f64 / publishing_s;
    let mut lat: Vec<f64> = measured.latencies.iter().map(|(_, l)| *l).collect();
    lat.sort_by(f64::total_cmp);
    let q = |q: f64| quantile(&lat, q).unwrap_or(f64::NAN);
    let rejected = stack.ingest.metrics.total("MessageRejected");
    let mut s = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(s, "## Fleet load run\n");
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(
        s,
        "| tags | {} ({n_far} far, {n_hover} hovering in a buffer, {n_app} approaching), one mTLS connection each |",
        plans.len()
    );
    let _ = writeln!(
        s,
        "| fleet time | {:.0} min at {speedup:.2}x the wall clock ({publishing_s:.0} s){}; adaptive reporting {}; DynamoDB: {:?} |",
        options.minutes,
        if options.speedup.is_none() {
            format!(", chosen to offer {:.2} of the ceiling", options.offered)
        } else {
            String::new()
        },
        if options.adaptive {
            "allowed"
        } else {
            "off (every fix sent at once)"
        },
        options.dynamodb
    );
    let _ = writeln!(
        s,
        "| set-up | provisioning {:.0} s ({:.0} orders/s), connecting {:.0} s |",
        provisioned_in.as_secs_f64(),
        plans.len() as f64 / provisioned_in.as_secs_f64(),
        connected_in.as_secs_f64()
    );
    let _ = writeln!(
        s,
        "| published | {fixes} fixes in {messages} messages; {} commands obeyed; {} MQTT errors |",
        tally.commands, tally.errors
    );
    let _ = writeln!(s, "| offered | {offered:.1} fixes/s |");
    let _ = writeln!(
        s,
        "| sustained through the stack | {sustained:.1} fixes/s (judged by ingest, after the first minute) |"
    );
    let _ = writeln!(
        s,
        "| emulator ceiling, same requests, {} at once | {ceiling_rate:.1} fixes/s (ingest's handler on {} far tags' fixes, no MQTT) |",
        options.concurrency,
        far.len()
    );
    let _ = writeln!(
        s,
        "| sustained / ceiling | **{:.2}** (target at least 0.8) |",
        sustained / ceiling_rate
    );
    let _ = writeln!(
        s,
        "| backlog after the last publish | judged in {drained_s:.1} s |"
    );
    let _ = writeln!(
        s,
        "| ingest invocations at once | peak {} of {} |",
        ingest.busy_peak, options.concurrency
    );
    let _ = writeln!(
        s,
        "| rule errors, rejected messages | {}, {rejected} |",
        ingest.errors()
    );
    let _ = writeln!(
        s,
        "| SMS | {} expected, {} reported sent, {} recorded: {} |",
        check.expected,
        check.sent,
        recorded.len(),
        if check.problems.is_empty() {
            "each expected SMS exactly once, no other"
        } else {
            "NOT exactly once (below)"
        }
    );
    let _ = writeln!(
        s,
        "| fix published -> SMS sent | p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms ({} SMS) |",
        q(0.5),
        q(0.9),
        q(0.99),
        q(1.0),
        lat.len()
    );
    let _ = writeln!(
        s,
        "\nCPU from the first publish until the last SMS ({measured_s:.0} s), and peak memory:\n"
    );
    let _ = writeln!(
        s,
        "| process | CPU s | of one core | peak memory |\n|---|---:|---:|---:|"
    );
    let (tags_cpu, tags_wall, tags_peak) = tags_usage;
    let _ = writeln!(
        s,
        "| vigil-sim load-tags: the tags (until their last PUBACK, {tags_wall:.0} s) | {tags_cpu:.1} | {:.0} % | {:.0} MiB |",
        tags_cpu / tags_wall * 100.0,
        tags_peak as f64 / 1024.0
    );
    for (pid, (name, after)) in after_cpu.iter().filter(|(pid, _)| Some(**pid) != tags_pid) {
        let before = before_cpu.get(pid).map_or(0.0, |(_, u)| u.cpu_s);
        let what = if *pid == std::process::id() {
            "vigil-sim: broker, bridge, functions".to_owned()
        } else {
            name.clone()
        };
        let _ = writeln!(
            s,
            "| {what} | {:.1} | {:.0} % | {:.0} MiB |",
            after.cpu_s - before,
            (after.cpu_s - before) / measured_s * 100.0,
            after.peak_kib as f64 / 1024.0
        );
    }
    let _ = writeln!(
        s,
        "\nvigil-sim's threads, by name:\n\n| threads | CPU s |\n|---|---:|"
    );
    let mut by_thread: Vec<(String, f64)> = after_threads
        .iter()
        .map(|(n, a)| (n.clone(), a - before_threads.get(n).copied().unwrap_or(0.0)))
        .collect();
    by_thread.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (name, cpu) in by_thread.iter().filter(|(_, c)| *c >= 0.05) {
        let _ = writeln!(s, "| {name} | {cpu:.1} |");
    }
    let _ = writeln!(
        s,
        "\nThe emulator's record of SMS and operator events read back in {readback_s:.0} s. Plot: {}",
        options.svg.display()
    );
    for p in check.problems.iter().take(20) {
        let _ = writeln!(s, "problem: {p}");
    }
    Ok((s, check.problems))
}

/// The `q` quantile (nearest rank) of `sorted`; `None` when it is empty.
fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied()
}

/// The plot: fixes per second over time (published, and judged by ingest) above, each SMS's
/// latency from its fix's publish below, with the p50 and p99 lines; time in seconds since the
/// first publish.
fn plot(m: &Measured, publishing_s: f64) -> String {
    use std::fmt::Write as _;
    const W: f64 = 900.0;
    const H: f64 = 260.0;
    const LEFT: f64 = 70.0;
    const RIGHT: f64 = 20.0;
    let end = m
        .samples
        .last()
        .map_or(1.0, |s| s.t_s)
        .max(m.latencies.iter().map(|l| l.0).fold(1.0, f64::max));
    let x = |t: f64| LEFT + (t / end) * (W - LEFT - RIGHT);
    // Rates over 5 s: the published count comes from the tags' process each second, sampled
    // here each second, so per-second rates alias (two reports in one second, none in the next).
    let rates: Vec<(f64, f64, f64)> = m
        .samples
        .windows(6)
        .filter(|w| w[5].t_s > w[0].t_s)
        .map(|w| {
            let dt = w[5].t_s - w[0].t_s;
            (
                w[5].t_s,
                (w[5].published - w[0].published) as f64 / dt,
                (w[5].handled - w[0].handled) as f64 / dt,
            )
        })
        .collect();
    let top = rates.iter().map(|r| r.1.max(r.2)).fold(1.0, f64::max) * 1.1;
    let mut lat: Vec<f64> = m.latencies.iter().map(|l| l.1).collect();
    lat.sort_by(f64::total_cmp);
    let lat_top = lat.last().copied().unwrap_or(1.0).max(1.0) * 1.1;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{}" font-family="sans-serif" font-size="12">"#,
        2.0 * H + 60.0
    );
    let _ = write!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    for (panel, title, ymax, unit) in [
        (
            0.0,
            "fixes per second over 5 s: published by the tags (blue), judged by ingest (orange)",
            top,
            "fixes/s",
        ),
        (
            H + 30.0,
            "fix published -> SMS sent, each SMS (dots); p50 and p99 (lines)",
            lat_top,
            "ms",
        ),
    ] {
        let y0 = panel + 30.0;
        let y1 = panel + H;
        let _ = write!(
            s,
            r#"<text x="{LEFT}" y="{}">{title}</text><line x1="{LEFT}" y1="{y1}" x2="{}" y2="{y1}" stroke="black"/><line x1="{LEFT}" y1="{y0}" x2="{LEFT}" y2="{y1}" stroke="black"/>"#,
            panel + 20.0,
            W - RIGHT
        );
        for k in 0..=4 {
            let v = ymax * f64::from(k) / 4.0;
            let y = y1 - (y1 - y0) * f64::from(k) / 4.0;
            let _ = write!(
                s,
                r##"<text x="{}" y="{}" text-anchor="end">{v:.0}</text><line x1="{LEFT}" y1="{y}" x2="{}" y2="{y}" stroke="#ddd"/>"##,
                LEFT - 6.0,
                y + 4.0,
                W - RIGHT
            );
        }
        let _ = write!(
            s,
            r#"<text x="12" y="{}" transform="rotate(-90 12 {})">{unit}</text>"#,
            (y0 + y1) / 2.0,
            (y0 + y1) / 2.0
        );
        for k in 0..=5 {
            let t = end * f64::from(k) / 5.0;
            let _ = write!(
                s,
                r#"<text x="{}" y="{}" text-anchor="middle">{t:.0} s</text>"#,
                x(t),
                y1 + 15.0
            );
        }
        let _ = write!(
            s,
            r##"<line x1="{0}" y1="{y0}" x2="{0}" y2="{y1}" stroke="#999" stroke-dasharray="4 3"/>"##,
            x(publishing_s)
        );
        let y = |v: f64| y1 - (v / ymax).min(1.0) * (y1 - y0);
        if panel == 0.0 {
            for (colour, pick_rate) in [("#1f77b4", 1usize), ("#ff7f0e", 2)] {
                let points: Vec<String> = rates
                    .iter()
                    .map(|r| {
                        let v = if pick_rate == 1 { r.1 } else { r.2 };
                        format!("{:.1},{:.1}", x(r.0), y(v))
                    })
                    .collect();
                let _ = write!(
                    s,
                    r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{}"/>"#,
                    points.join(" ")
                );
            }
        } else {
            for (t, l) in &m.latencies {
                let _ = write!(
                    s,
                    r##"<circle cx="{:.1}" cy="{:.1}" r="2" fill="#2ca02c"/>"##,
                    x(*t),
                    y(*l)
                );
            }
            for (q, label) in [(0.5, "p50"), (0.99, "p99")] {
                if let Some(v) = quantile(&lat, q) {
                    let _ = write!(
                        s,
                        r##"<line x1="{LEFT}" y1="{0:.1}" x2="{1}" y2="{0:.1}" stroke="#d62728"/><text x="{1}" y="{2:.1}" text-anchor="end" fill="#d62728">{label} {v:.0} ms</text>"##,
                        y(v),
                        W - RIGHT,
                        y(v) - 4.0
                    );
                }
            }
        }
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn distance_m(a: (f64, f64), b: (f64, f64)) -> f64 {
        let dy = (a.0 - b.0) * M_PER_DEG;
        let dx = (a.1 - b.1) * M_PER_DEG * a.0.to_radians().cos();
        dx.hypot(dy)
    }

    #[test]
    fn the_fleet_moves_as_each_kind_says() {
        let run_ms = 10 * 60_000;
        let plans = fleet(1000, 3.0, 2.0, run_ms, 7);
        let kinds = |f: fn(&Kind) -> bool| plans.iter().filter(|p| f(&p.kind)).count();
        assert_eq!(kinds(|k| matches!(k, Kind::Approaching { .. })), 30);
        assert_eq!(kinds(|k| *k == Kind::Hovering), 20);
        let edge = ZONE_RADIUS_M + BUFFER_M;
        for p in &plans {
            let d: Vec<f64> = (0..=run_ms / 1000)
                .map(|s| distance_m(p.position(s * 1000), p.centre))
                .collect();
            match p.kind {
                Kind::Far => assert!(d.iter().all(|d| *d > 2_500.0), "{p:?}"),
                Kind::Hovering => assert!(
                    d.iter()
                        .all(|d| *d > ZONE_RADIUS_M + 100.0 && *d < edge - 100.0),
                    "{p:?}"
                ),
                Kind::Approaching { .. } => {
                    let into_buffer = d.iter().position(|d| *d < edge).unwrap();
                    let into_zone = d.iter().position(|d| *d < ZONE_RADIUS_M - 20.0).unwrap();
                    assert!(into_buffer as i64 * 1000 >= run_ms / 10, "{p:?}");
                    // A minute's fixes cannot jump the buffer: at most 300 m apart.
                    assert!((into_zone - into_buffer) * 5 > 400, "{p:?}");
                    assert!((into_zone as i64 * 1000) < run_ms * 9 / 10, "{p:?}");
                }
            }
            // No tag moves faster than 5 m/s.
            for w in d.windows(2) {
                assert!((w[1] - w[0]).abs() <= 5.01, "{p:?}");
            }
        }
    }

    #[test]
    fn an_sms_missing_twice_or_unexpected_is_a_problem() {
        let plans = fleet(3, 100.0 / 3.0, 100.0 / 3.0, 600_000, 1);
        let kinds: Vec<_> = plans.iter().map(|p| p.expected()).collect();
        assert_eq!(kinds, [&["warning", "breach"][..], &["warning"], &[]]);
        let sent = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(o, l)| ((*o).to_owned(), (*l).to_owned()))
                .collect()
        };
        let good = sent(&[
            ("o-load-0", "warning"),
            ("o-load-1", "warning"),
            ("o-load-0", "breach"),
        ]);
        let phones = vec![phone(0), phone(1), phone(0)];
        let ok = check_alerts(&plans, &good, &phones);
        assert!(ok.problems.is_empty(), "{ok:?}");
        assert_eq!((ok.expected, ok.sent), (3, 3));

        let missing = check_alerts(&plans, &good[..2], &phones[..2]);
        assert!(missing.problems[0].contains("o-load-0"), "{missing:?}");
        let mut twice = good.clone();
        twice.push(("o-load-1".into(), "warning".into()));
        let mut twice_phones = phones.clone();
        twice_phones.push(phone(1));
        assert_eq!(
            check_alerts(&plans, &twice, &twice_phones).problems.len(),
            1
        );
        let unreported = check_alerts(&plans, &good, &[phones.clone(), vec![phone(2)]].concat());
        assert!(
            unreported.problems[0].contains("o-load-2"),
            "{unreported:?}"
        );
        let stranger = check_alerts(
            &plans,
            &[good.clone(), sent(&[("o-x", "breach")])].concat(),
            &phones,
        );
        assert!(
            stranger.problems[0].contains("not in the fleet"),
            "{stranger:?}"
        );
    }

    #[test]
    fn quantiles_are_by_nearest_rank() {
        let sorted = [10.0, 20.0, 30.0, 40.0];
        assert_eq!(quantile(&sorted, 0.5), Some(20.0));
        assert_eq!(quantile(&sorted, 0.99), Some(40.0));
        assert_eq!(quantile(&sorted, 0.0), Some(10.0));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn proc_stat_lines_give_the_name_parent_and_cpu() {
        let line = "4242 (tokio-runtime-w) S 4000 1 1 0 -1 4194560 10 0 0 0 250 50 0 0 20 0 1 0";
        assert_eq!(
            stat_of(line),
            Some(("tokio-runtime-w".to_owned(), 3.0, 4000))
        );
    }
}
