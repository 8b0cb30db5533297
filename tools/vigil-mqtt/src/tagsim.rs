//! The tag simulator: many tags, each its own MQTT connection with its own client certificate
//! (client id = tag id = thing name, as IoT Core's policy requires), publishing wire-format v1
//! fixes on `tags/{tag}/fix` and events on `tags/{tag}/event` (or their Basic Ingest forms,
//! [`SimConfig::basic_ingest_rule`]) at QoS 1, and obeying
//! `{"report_interval_s": n, "batch_s": w}` on `tags/{tag}/cmd`: a fix every `n` seconds,
//! held up to `w` seconds and sent as one v2 batch (adaptive reporting; 0: each at once). A run is bounded by a fix count per tag and
//! by a duration; it ends with a [`Summary`].
//!
//! Positions follow a random walk around a point (deterministic per seed and tag), or a track
//! file (`lat,lon` per line, `#` comments), each tag starting at its own point of the track.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use rumqttc::{AsyncClient, Event, Packet, QoS};
use tokio::sync::watch;
use vigil_core::fix::{TagEvent, TagEventKind, encode_batch, encode_event, encode_fix};
use vigil_core::{Fix, TagId};

use crate::client::{Endpoint, tag_options};
use crate::pki::{CertPair, PkiError};

/// Metres per degree of latitude.
const M_PER_DEG: f64 = 111_320.0;
/// How long to wait for outstanding acknowledgements at the end.
const DRAIN: Duration = Duration::from_secs(5);
/// Fixes per 1 % of simulated battery drain.
const FIXES_PER_BATTERY_PCT: u64 = 10;
/// Most fixes in one v2 batch (`ValidationLimits::max_batch_fixes`).
const MAX_BATCH_FIXES: usize = 30;
/// Battery level at which a tag reports `battery_low`.
const BATTERY_LOW_PCT: u64 = 15;

/// Certificate names tried, in order, for a tag in a `--cert-dir`: what `vigil tags register`
/// writes, then the local PKI's name.
const CERT_NAMES: [&str; 2] = ["cert.pem", "pem"];
/// Key names tried, in order: `vigil tags csr --key-out <tag>.key` (docs/CLI.md), then the
/// name AWS's console downloads use.
const KEY_NAMES: [&str; 2] = ["key", "private.key"];

/// The certificate and key of `tag` in a directory of per-tag credentials: the certificate
/// `<tag>.cert.pem` (as `vigil tags register` writes it) or `<tag>.pem` (the local PKI's
/// name), the key `<tag>.key` or `<tag>.private.key`. Fails naming every file it looked for.
pub fn cert_in_dir(dir: &Path, tag: &str) -> Result<CertPair, PkiError> {
    let find = |what: &str, names: &[&str]| {
        let tried: Vec<_> = names
            .iter()
            .map(|n| dir.join(format!("{tag}.{n}")))
            .collect();
        match tried.iter().find(|p| p.is_file()) {
            Some(found) => Ok(found.clone()),
            None => Err(PkiError::Io {
                path: dir.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!(
                        "no {what} for tag {tag}: looked for {}",
                        tried
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
            }),
        }
    };
    Ok(CertPair {
        cert: find("certificate", &CERT_NAMES)?,
        key: find("private key", &KEY_NAMES)?,
    })
}

/// Where the simulated tags go.
#[derive(Debug, Clone)]
pub enum Route {
    /// A random walk within `radius_m` of a point at `speed_mps`.
    Walk {
        /// Centre latitude.
        lat: f64,
        /// Centre longitude.
        lon: f64,
        /// How far from the centre a tag may wander.
        radius_m: f64,
        /// Walking speed.
        speed_mps: f64,
    },
    /// A track, looped; tag `i` starts at point `i * len / tags`.
    Track(Vec<(f64, f64)>),
}

impl Route {
    /// Reads a track file: one `lat,lon` per line; blank lines and `#` comments are skipped.
    ///
    /// Fails with a message naming the line if a line is not two numbers in range, or if the
    /// file has no points.
    pub fn track_file(path: &Path) -> Result<Route, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut points = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let parsed: Option<(f64, f64)> = line
                .split_once(',')
                .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)));
            match parsed {
                Some((lat, lon)) if lat.abs() <= 90.0 && lon.abs() <= 180.0 => {
                    points.push((lat, lon))
                }
                _ => {
                    return Err(format!(
                        "{}:{}: expected `lat,lon` in degrees, found {line:?}",
                        path.display(),
                        i + 1
                    ));
                }
            }
        }
        if points.is_empty() {
            return Err(format!("{}: the track has no points", path.display()));
        }
        Ok(Route::Track(points))
    }
}

/// Gives each tag its client certificate.
pub type IdentityFn = Arc<dyn Fn(&str) -> Result<CertPair, PkiError> + Send + Sync>;

/// A simulator run.
#[derive(Clone)]
pub struct SimConfig {
    /// The broker (local, or AWS IoT Core's data endpoint).
    pub endpoint: Endpoint,
    /// The tags (thing names).
    pub tags: Vec<String>,
    /// Each tag's certificate.
    pub identity: IdentityFn,
    /// Where they go.
    pub route: Route,
    /// Time between fixes until a command changes it.
    pub report_interval: Duration,
    /// Stop each tag after this many fixes.
    pub max_fixes_per_tag: Option<u64>,
    /// Stop everything after this long.
    pub duration: Duration,
    /// Reported GPS accuracy, metres.
    pub accuracy_m: f64,
    /// Publish tag events too: `power_on` at start, `battery_low` as the simulated battery
    /// drains.
    pub events: bool,
    /// Seed of the random walks.
    pub seed: u64,
    /// Draw a progress bar on stderr.
    pub progress: bool,
    /// The ingest rule's name (e.g. `vigil_prod_ingest`): publish on its Basic Ingest topics,
    /// `$aws/rules/<rule>/tags/{tag}/fix` and `event`, as deployed tags do; `None`: the plain
    /// topics.
    pub basic_ingest_rule: Option<String>,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Tags that connected.
    pub tags_connected: u64,
    /// Fixes published.
    pub fixes: u64,
    /// Of the fix messages, the v2 batches of more than one fix.
    pub batches: u64,
    /// Events published.
    pub events: u64,
    /// Publishes the broker acknowledged (PUBACK).
    pub acked: u64,
    /// Commands obeyed.
    pub commands: u64,
    /// Connection, publish and command errors.
    pub errors: u64,
    /// Wall time of the run, ms.
    pub elapsed_ms: u64,
}

impl Summary {
    /// Publishes in total.
    pub fn published(&self) -> u64 {
        self.fixes + self.events
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "tags connected {}, published {} ({} fixes, {} in batches, {} events), acked {}, commands {}, errors {}, in {:.1} s",
            self.tags_connected,
            self.published(),
            self.fixes,
            self.batches,
            self.events,
            self.acked,
            self.commands,
            self.errors,
            self.elapsed_ms as f64 / 1000.0
        )
    }
}

#[derive(Default)]
struct Counters {
    connected: AtomicU64,
    fixes: AtomicU64,
    batches: AtomicU64,
    events: AtomicU64,
    acked: AtomicU64,
    commands: AtomicU64,
    errors: AtomicU64,
}

impl Counters {
    fn summary(&self, started: Instant) -> Summary {
        Summary {
            tags_connected: self.connected.load(Ordering::Relaxed),
            fixes: self.fixes.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            events: self.events.load(Ordering::Relaxed),
            acked: self.acked.load(Ordering::Relaxed),
            commands: self.commands.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            elapsed_ms: started.elapsed().as_millis() as u64,
        }
    }
}

/// What a tag was told: its reporting interval, and how long it may hold fixes to send them
/// as one batch (zero: each at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Command {
    /// Time between fixes.
    pub interval: Duration,
    /// Longest a fix may wait to be sent.
    pub batch: Duration,
}

/// A command to a tag: `{"report_interval_s": 15, "batch_s": 0}` (`batch_s` may be absent:
/// 0). Returns it, or why it was refused (not JSON, no interval, a value out of range:
/// interval 0.05-86400 s, batch 0-3600 s).
pub fn parse_command(payload: &[u8]) -> Result<Command, String> {
    let value: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| format!("command is not JSON: {e}"))?;
    let seconds = value
        .get("report_interval_s")
        .and_then(serde_json::Value::as_f64)
        .ok_or("command has no numeric report_interval_s")?;
    if !(0.05..=86_400.0).contains(&seconds) {
        return Err(format!(
            "report_interval_s {seconds} is outside [0.05, 86400]"
        ));
    }
    let batch = match value.get("batch_s") {
        None => 0.0,
        Some(v) => v.as_f64().ok_or("batch_s is not a number")?,
    };
    if !(0.0..=3_600.0).contains(&batch) {
        return Err(format!("batch_s {batch} is outside [0, 3600]"));
    }
    Ok(Command {
        interval: Duration::from_secs_f64(seconds),
        batch: Duration::from_secs_f64(batch),
    })
}

/// Runs the simulation until every tag has sent its fixes or the duration is over; returns
/// the summary. Connection problems are counted as errors, not returned.
pub async fn run(config: SimConfig) -> Summary {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + config.duration;
    let counters = Arc::new(Counters::default());
    let bar = if config.progress {
        let total = config
            .max_fixes_per_tag
            .map(|n| n * config.tags.len() as u64);
        let bar = ProgressBar::new(total.unwrap_or(0));
        let template = if total.is_some() {
            "{elapsed_precise} [{bar:40}] {pos}/{len} fixes {msg}"
        } else {
            "{elapsed_precise} {spinner} {pos} fixes {msg}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let config = Arc::new(config);
    let tasks: Vec<_> = (0..config.tags.len())
        .map(|i| {
            tokio::spawn(run_tag(
                config.clone(),
                i,
                counters.clone(),
                bar.clone(),
                deadline,
            ))
        })
        .collect();
    for task in tasks {
        if task.await.is_err() {
            counters.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
    let summary = counters.summary(started);
    bar.finish_with_message(format!(
        "acked {}, errors {}",
        summary.acked, summary.errors
    ));
    summary
}

async fn run_tag(
    config: Arc<SimConfig>,
    index: usize,
    counters: Arc<Counters>,
    bar: ProgressBar,
    deadline: tokio::time::Instant,
) {
    let tag = config.tags[index].clone();
    let error = |what: String| {
        tracing::warn!(tag = %tag, "{what}");
        counters.errors.fetch_add(1, Ordering::Relaxed);
    };
    // The wire format is vigil-core's: the simulator encodes what ingest parses.
    let tag_id = match TagId::new(tag.as_str()) {
        Ok(id) => id,
        Err(e) => return error(format!("not a tag id: {e}")),
    };
    let options =
        match (config.identity)(&tag).and_then(|id| tag_options(&config.endpoint, &tag, &id)) {
            Ok(o) => o,
            Err(e) => return error(format!("no certificate: {e}")),
        };
    let (client, mut eventloop) = AsyncClient::new(options, 100);
    let cmd_topic = format!("tags/{tag}/cmd");
    let topic_prefix = config
        .basic_ingest_rule
        .as_deref()
        .map_or_else(String::new, |rule| format!("$aws/rules/{rule}/"));
    let (interval_tx, mut interval_rx) = watch::channel(Command {
        interval: config.report_interval,
        batch: Duration::ZERO,
    });
    let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel::<bool>();
    let poll_counters = counters.clone();
    let poll_tag = tag.clone();
    let poll_cmd_topic = cmd_topic.clone();
    let poller = tokio::spawn(async move {
        let mut subscribed = Some(subscribed_tx);
        let mut closing = false;
        loop {
            match eventloop.poll().await {
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => closing = true,
                Err(_) if closing => return,
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    poll_counters.connected.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(s) = subscribed.take() {
                        let _ = s.send(true);
                    }
                }
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    poll_counters.acked.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Event::Incoming(Packet::Publish(p))) if p.topic == poll_cmd_topic => {
                    match parse_command(&p.payload) {
                        Ok(command) => {
                            poll_counters.commands.fetch_add(1, Ordering::Relaxed);
                            tracing::info!(tag = %poll_tag, ?command, "reporting changed");
                            let _ = interval_tx.send(command);
                        }
                        Err(e) => {
                            poll_counters.errors.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(tag = %poll_tag, "command refused: {e}");
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    poll_counters.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(tag = %poll_tag, "connection: {e}");
                    if let Some(s) = subscribed.take() {
                        let _ = s.send(false);
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
    let stop = |poller: tokio::task::JoinHandle<()>| async move {
        poller.abort();
        let _ = poller.await;
    };
    if let Err(e) = client.subscribe(&cmd_topic, QoS::AtLeastOnce).await {
        error(format!("subscribing to {cmd_topic}: {e}"));
        return stop(poller).await;
    }
    let ok = tokio::time::timeout_at(deadline, subscribed_rx).await;
    if !matches!(ok, Ok(Ok(true))) {
        return stop(poller).await;
    }

    let mut walker = Walker::new(&config, index);
    let mut seq = (crate::bridge::Clock::now_ms(&crate::bridge::WallClock) / 1000) as u64;
    let mut battery: u64 = 100;
    let publish = |topic: String, bytes: Vec<u8>| {
        let client = client.clone();
        async move { client.publish(topic, QoS::AtLeastOnce, false, bytes).await }
    };
    let event = |seq: u64, kind: TagEventKind, battery: u64| {
        encode_event(&TagEvent {
            tag_id: tag_id.clone(),
            seq,
            at_ms: now_ms(),
            kind,
            battery_pct: u8::try_from(battery).ok(),
        })
    };
    if config.events {
        seq += 1;
        let body = event(seq, TagEventKind::PowerOn, battery);
        match publish(format!("{topic_prefix}tags/{tag}/event"), body).await {
            Ok(()) => {
                counters.events.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => error(format!("publishing: {e}")),
        }
    }
    let mut fixes: u64 = 0;
    let mut next = tokio::time::Instant::now();
    // Fixes held for a batch, with when the oldest was taken.
    let mut held: Vec<Fix> = Vec::new();
    let mut held_since = tokio::time::Instant::now();
    let send_held = |held: Vec<Fix>| {
        let publish = &publish;
        let counters = &counters;
        let bar = &bar;
        let tag = &tag;
        let error = &error;
        let topic_prefix = &topic_prefix;
        async move {
            if held.is_empty() {
                return;
            }
            let body = if held.len() == 1 {
                encode_fix(&held[0])
            } else {
                encode_batch(&held)
            };
            match publish(format!("{topic_prefix}tags/{tag}/fix"), body).await {
                Ok(()) => {
                    counters
                        .fixes
                        .fetch_add(held.len() as u64, Ordering::Relaxed);
                    if held.len() > 1 {
                        counters.batches.fetch_add(1, Ordering::Relaxed);
                    }
                    bar.inc(held.len() as u64);
                }
                Err(e) => error(format!("publishing: {e}")),
            }
        }
    };
    loop {
        if config.max_fixes_per_tag.is_some_and(|max| fixes >= max) {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = tokio::time::sleep_until(deadline) => break,
            changed = interval_rx.changed() => {
                if changed.is_ok() {
                    // A new rate applies from now: the next fix is one new interval away, or
                    // due at once if that is sooner than the old schedule. Fixes held longer
                    // than the new window allows go at once.
                    let now = tokio::time::Instant::now();
                    let command = *interval_rx.borrow_and_update();
                    next = next.min(now + command.interval);
                    if !held.is_empty() && now.duration_since(held_since) >= command.batch {
                        send_held(std::mem::take(&mut held)).await;
                    }
                }
                continue;
            }
        }
        let Command { interval, batch } = *interval_rx.borrow();
        let (lat, lon) = walker.step(interval);
        seq += 1;
        let fix = Fix {
            tag_id: tag_id.clone(),
            seq,
            at_ms: now_ms(),
            lat: round6(lat),
            lon: round6(lon),
            accuracy_m: config.accuracy_m,
            speed_mps: None,
            heading_deg: None,
            battery_pct: u8::try_from(battery).ok(),
        };
        fixes += 1;
        if held.is_empty() {
            held_since = tokio::time::Instant::now();
        }
        held.push(fix);
        // Sent when the next fix would make the oldest wait longer than the window (at once
        // with no window), or when a batch is full.
        let waited = tokio::time::Instant::now().duration_since(held_since);
        if waited + interval > batch || held.len() >= MAX_BATCH_FIXES {
            send_held(std::mem::take(&mut held)).await;
        }
        if fixes.is_multiple_of(FIXES_PER_BATTERY_PCT) && battery > 0 {
            battery -= 1;
            if config.events && battery == BATTERY_LOW_PCT {
                seq += 1;
                let body = event(seq, TagEventKind::BatteryLow, battery);
                if publish(format!("{topic_prefix}tags/{tag}/event"), body)
                    .await
                    .is_ok()
                {
                    counters.events.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        next += interval;
    }
    send_held(std::mem::take(&mut held)).await;
    // Let outstanding PUBACKs arrive (counted across tags; close enough for the drain).
    let drain_until = tokio::time::Instant::now() + DRAIN;
    while tokio::time::Instant::now() < drain_until
        && counters.acked.load(Ordering::Relaxed)
            < counters.fixes.load(Ordering::Relaxed) + counters.events.load(Ordering::Relaxed)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = client.disconnect().await;
    let mut poller = poller;
    if tokio::time::timeout(Duration::from_secs(2), &mut poller)
        .await
        .is_err()
    {
        stop(poller).await;
    }
}

fn now_ms() -> i64 {
    crate::bridge::Clock::now_ms(&crate::bridge::WallClock)
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// One tag's position: a random walk or a place on a track.
struct Walker {
    route: Route,
    lat: f64,
    lon: f64,
    heading: f64,
    track_index: usize,
    rng: u64,
}

impl Walker {
    fn new(config: &SimConfig, index: usize) -> Walker {
        let mut rng = config.seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let (lat, lon, track_index) = match &config.route {
            Route::Walk { lat, lon, .. } => (*lat, *lon, 0),
            Route::Track(points) => {
                let i = index * points.len() / config.tags.len().max(1);
                (points[i].0, points[i].1, i)
            }
        };
        let heading = next_unit(&mut rng) * std::f64::consts::TAU;
        Walker {
            route: config.route.clone(),
            lat,
            lon,
            heading,
            track_index,
            rng,
        }
    }

    fn step(&mut self, interval: Duration) -> (f64, f64) {
        match &self.route {
            Route::Track(points) => {
                let p = points[self.track_index % points.len()];
                self.track_index += 1;
                p
            }
            Route::Walk {
                lat,
                lon,
                radius_m,
                speed_mps,
            } => {
                let (centre_lat, centre_lon) = (*lat, *lon);
                let step_m = speed_mps * interval.as_secs_f64();
                self.heading += (next_unit(&mut self.rng) - 0.5) * 1.5;
                let cos_lat = self.lat.to_radians().cos().max(0.01);
                let north = (self.lat - centre_lat) * M_PER_DEG;
                let east = (self.lon - centre_lon) * M_PER_DEG * cos_lat;
                if (north * north + east * east).sqrt() + step_m > *radius_m {
                    // Turn back towards the centre.
                    self.heading = (-east).atan2(-north);
                }
                self.lat += step_m * self.heading.cos() / M_PER_DEG;
                self.lon += step_m * self.heading.sin() / (M_PER_DEG * cos_lat);
                (self.lat, self.lon)
            }
        }
    }
}

/// xorshift64: deterministic and dependency-free; quality is irrelevant for a walk.
fn next_unit(state: &mut u64) -> f64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("vigil-tagsim-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_cert_dir_reads_what_vigil_tags_register_and_tags_csr_write() {
        let d = dir("register");
        std::fs::write(d.join("tag-0042.cert.pem"), "cert").unwrap();
        std::fs::write(d.join("tag-0042.key"), "key").unwrap();
        let pair = cert_in_dir(&d, "tag-0042").unwrap();
        assert_eq!(pair.cert, d.join("tag-0042.cert.pem"));
        assert_eq!(pair.key, d.join("tag-0042.key"));
    }

    #[test]
    fn a_cert_dir_in_the_local_pki_layout_still_works() {
        let d = dir("pki");
        std::fs::write(d.join("sim-1.pem"), "cert").unwrap();
        std::fs::write(d.join("sim-1.private.key"), "key").unwrap();
        let pair = cert_in_dir(&d, "sim-1").unwrap();
        assert_eq!(pair.cert, d.join("sim-1.pem"));
        assert_eq!(pair.key, d.join("sim-1.private.key"));
    }

    #[test]
    fn a_missing_certificate_names_every_file_looked_for() {
        let d = dir("missing");
        std::fs::write(d.join("tag-7.key"), "key").unwrap();
        let e = cert_in_dir(&d, "tag-7").unwrap_err().to_string();
        assert!(e.contains("no certificate for tag tag-7"), "{e}");
        assert!(
            e.contains("tag-7.cert.pem") && e.contains("tag-7.pem"),
            "{e}"
        );
        std::fs::write(d.join("tag-7.pem"), "cert").unwrap();
        std::fs::remove_file(d.join("tag-7.key")).unwrap();
        let e = cert_in_dir(&d, "tag-7").unwrap_err().to_string();
        assert!(e.contains("no private key for tag tag-7"), "{e}");
    }
}
