//! The floor: the ingest handler's own CPU cost per fix, on the in-memory ports, in one
//! process. No SDK, no HTTP, no emulator: what is left is Vigil's code (and serde), so the gap
//! to the emulator's and AWS's figures is theirs.
//!
//! Run with `cargo bench -p vigil-ingest --bench floor`; the results and how to read them are
//! in `docs/PERFORMANCE.md` ("The floor").
//!
//! # What one iteration is
//! One NEW fix of tag `tag-1` (the next `seq`, one reporting interval after the previous one:
//! 60 s, or 15 s in pursuit mode near a zone; further along a walk at 1.35 m/s), handed to
//! [`vigil_ingest::handle`] as the Lambda gets it: the body of the invocation (the IoT rule's
//! event JSON, payload in base64), parsed and handled. Building
//! that body (the tag's and IoT Core's work) is not timed. The handler runs on a
//! current-thread tokio runtime, as in the Lambda.
//!
//! # Cases (`floor/<case>`)
//! The tag restrains two orders: `o1` with three zones around home (home, work, the
//! children's school, a polygon) and `o2` with two.
//! - `quiet`: the walk is 5 km from every zone: the quiet path (one read, the history written).
//! - `quiet_populated`: the same walk with 40 other tags' orders' zones in the cells it reads,
//!   as a fix in a city at national scale reads them (the zone lookup bench: about 33
//!   candidates per populated fix at 100k zones); still the quiet path for this tag.
//! - `near`: a walk 300 m from home's centre, inside its 500 m warning buffer, after the
//!   warning, reporting at the pursuit rate the alert function commanded (recorded in the
//!   setup as it would record it): each fix reads and judges the order's states and changes
//!   nothing.
//! - `device`: `o1`'s victim carries her device; her position, sent (untimed) 10 s before each
//!   of his fixes, is 5 km away, fresh and paired with his fix: his fix judged against her
//!   moving zone, no change (still the quiet path: no fixed zone near).
//!
//! # Checks (panic on failure, never on time)
//! Every timed fix must take its case's path (`Outcome::Quiet`, or `Evaluated` with no event),
//! the metrics must count every fix on that path, nothing may be queued or quarantined, and
//! the tag's history must stay bounded ([`vigil_core::history::KEPT_FIXES`]), so the store
//! does not grow with the run.

use criterion::{Criterion, criterion_group, criterion_main};
use std::cell::RefCell;
use std::hint::black_box;
use std::time::{Duration, Instant};
use vigil_aws::memory::{MemoryQueue, MemoryStore};
use vigil_aws::metrics::MemoryMetrics;
use vigil_aws::ports::{AdminStore, IngestStore, ReportingStore};
use vigil_core::fix::encode_fix;
use vigil_core::history::KEPT_FIXES;
use vigil_core::proximity::{VictimDevice, VictimZoneTerms};
use vigil_core::reporting::{Commanded, ReportingCommand};
use vigil_core::{DeviceId, Fix, OrderId, ProtectionOrder, TagId, Zone};
use vigil_ingest::{Outcome, Ports, handle, position_event, rule_event};
use vigil_testkit::HOME;

type MemoryPorts = Ports<MemoryStore, MemoryQueue, MemoryMetrics>;

/// 2025-12-01T00:00:00Z: the first fix.
const T0_MS: i64 = 1_764_547_200_000;
/// The normal reporting interval (the default order policy's), ms.
const NORMAL_EVERY_MS: i64 = 60_000;
/// The pursuit reporting interval (the default order policy's), seconds.
const PURSUIT_EVERY_S: u32 = 15;
/// The walk's speed: a brisk walk.
const WALK_MPS: f64 = 1.35;
/// Between the fix's device time and IoT Core's receive time.
const DELIVERY_MS: i64 = 300;
const M_PER_DEG_LAT: f64 = 111_250.0;
/// Her device's id (`device` case).
const DEVICE: &str = "phone-v1";

/// A point `north_m`, `east_m` metres from [`HOME`].
fn offset(north_m: f64, east_m: f64) -> (f64, f64) {
    let m_per_deg_lon = M_PER_DEG_LAT * HOME.0.to_radians().cos();
    (
        HOME.0 + north_m / M_PER_DEG_LAT,
        HOME.1 + east_m / m_per_deg_lon,
    )
}

fn circle(order: &str, id: &str, kind: &str, at: (f64, f64), radius_m: f64, buffer_m: f64) -> Zone {
    serde_json::from_value(serde_json::json!({
        "zone_id": id, "kind": kind, "order_id": order, "buffer_m": buffer_m,
        "circle": {"lat": at.0, "lon": at.1, "radius_m": radius_m},
    }))
    .expect("a valid circle zone")
}

/// A 200 m × 150 m rectangle with a 300 m buffer, its south-west corner at `corner`.
fn school(order: &str, corner: (f64, f64)) -> Zone {
    let (n, e) = (
        200.0 / M_PER_DEG_LAT,
        150.0 / (M_PER_DEG_LAT * corner.0.to_radians().cos()),
    );
    let (lat, lon) = corner;
    serde_json::from_value(serde_json::json!({
        "zone_id": "school", "kind": "school", "order_id": order, "buffer_m": 300,
        "polygon": [[lon, lat], [lon + e, lat], [lon + e, lat + n], [lon, lat + n]],
    }))
    .expect("a valid polygon zone")
}

fn order(order_id: &str, tag_id: &str, victim: &str, device: bool) -> ProtectionOrder {
    let mut o: ProtectionOrder = serde_json::from_value(serde_json::json!({
        "order_id": order_id, "tag_id": tag_id,
        "victim": {"victim_id": victim, "phone": "+447700900123", "language": "en"}
    }))
    .expect("a valid order");
    if device {
        o.victim_device = Some(VictimDevice {
            device_id: DeviceId::new(DEVICE).expect("a device id"),
            zone: VictimZoneTerms::default(),
        });
    }
    o
}

/// The store for a case: `tag-1`'s two orders and five zones, and `crowd` other tags' orders,
/// each with a home zone within about 1 km of `crowd_at` (north, east of [`HOME`], metres).
async fn store(device: bool, crowd: usize, crowd_at: (f64, f64)) -> MemoryStore {
    let store = MemoryStore::new();
    store
        .put_order(&order("o1", "tag-1", "v1", device))
        .await
        .unwrap();
    store
        .put_order(&order("o2", "tag-1", "v2", false))
        .await
        .unwrap();
    let zones = [
        circle("o1", "home", "home", HOME, 100.0, 500.0),
        circle(
            "o1",
            "work",
            "work",
            offset(-3_000.0, 2_500.0),
            150.0,
            400.0,
        ),
        school("o1", offset(1_200.0, -1_800.0)),
        circle(
            "o2",
            "home",
            "home",
            offset(-6_000.0, -4_000.0),
            80.0,
            600.0,
        ),
        circle(
            "o2",
            "relative",
            "other",
            offset(2_000.0, 6_000.0),
            120.0,
            300.0,
        ),
    ];
    for z in &zones {
        store.put_zone(z).await.unwrap();
    }
    for i in 0..crowd {
        // A spiral of homes around `crowd_at`, 40 m to about 1 km out.
        let angle = i as f64 * 2.4;
        let r = 40.0 + 25.0 * i as f64;
        let at = offset(crowd_at.0 + r * angle.sin(), crowd_at.1 + r * angle.cos());
        let (o, t) = (format!("crowd-{i}"), format!("crowd-tag-{i}"));
        store
            .put_order(&order(&o, &t, &format!("cv{i}"), false))
            .await
            .unwrap();
        store
            .put_zone(&circle(&o, "home", "home", at, 100.0, 500.0))
            .await
            .unwrap();
    }
    store
}

/// A walk of `radius_m` around `centre` (north, east of [`HOME`], metres), one fix every
/// `every_ms`; `next` gives the next fix's rule event, as the invocation's body.
struct Walk {
    centre: (f64, f64),
    radius_m: f64,
    every_ms: i64,
    seq: u64,
}

impl Walk {
    fn new(centre: (f64, f64), radius_m: f64, every_ms: i64) -> Self {
        Walk {
            centre,
            radius_m,
            every_ms,
            seq: 0,
        }
    }

    /// Device time of fix `seq`.
    fn at_ms(&self, seq: u64) -> i64 {
        T0_MS + seq as i64 * self.every_ms
    }

    fn next(&mut self) -> (Vec<u8>, i64) {
        self.seq += 1;
        let step_rad = WALK_MPS * (self.every_ms / 1000) as f64 / self.radius_m;
        let angle = self.seq as f64 * step_rad;
        let (lat, lon) = offset(
            self.centre.0 + self.radius_m * angle.sin(),
            self.centre.1 + self.radius_m * angle.cos(),
        );
        let at_ms = self.at_ms(self.seq);
        let fix = Fix {
            tag_id: TagId::new("tag-1").expect("a tag id"),
            seq: self.seq,
            at_ms,
            lat,
            lon,
            accuracy_m: 8.0,
            speed_mps: Some(WALK_MPS),
            heading_deg: None,
            battery_pct: Some(80),
        };
        let received_at_ms = at_ms + DELIVERY_MS;
        let event = rule_event("tag-1", "fix", &encode_fix(&fix), received_at_ms);
        (serde_json::to_vec(&event).expect("json"), received_at_ms)
    }
}

/// Her position `north_m` north of [`HOME`] at `at_ms`, as the invocation's body.
fn her_position(seq: u64, at_ms: i64, north_m: f64) -> Vec<u8> {
    let (lat, lon) = offset(north_m, 0.0);
    let payload =
        format!(r#"{{"v":1,"seq":{seq},"at_ms":{at_ms},"lat":{lat},"lon":{lon},"accuracy_m":10}}"#);
    serde_json::to_vec(&position_event(DEVICE, payload.as_bytes(), at_ms + 500)).expect("json")
}

/// What every timed fix of a case must lead to.
#[derive(Clone, Copy, PartialEq)]
enum Path {
    Quiet,
    /// Evaluated, with no event queued.
    Near,
}

/// One case: its ports, its walk, the path each fix must take, and her device's positions.
struct Case {
    ports: MemoryPorts,
    walk: Walk,
    path: Path,
    /// Her position, `north_m` of home, sent (untimed) before each fix of his.
    her_north_m: Option<f64>,
    her_seq: u64,
    fixes: u64,
}

impl Case {
    /// Sends her position, 10 s before his next fix, when she carries her device (untimed).
    async fn her_turn(&mut self) {
        let Some(north_m) = self.her_north_m else {
            return;
        };
        self.her_seq += 1;
        let at_ms = self.walk.at_ms(self.walk.seq + 1) - 10_000;
        let body = her_position(self.her_seq, at_ms, north_m);
        let out = handle(serde_json::from_slice(&body).unwrap(), &self.ports).await;
        assert!(
            !matches!(out.unwrap(), Outcome::Rejected { .. }),
            "her position accepted"
        );
    }

    /// Handles the next fix; returns the time its handling took.
    async fn one_fix(&mut self) -> Duration {
        self.her_turn().await;
        let (body, _) = self.walk.next();
        let started = Instant::now();
        let event: serde_json::Value = serde_json::from_slice(black_box(&body)).expect("json");
        let outcome = handle(event, &self.ports).await;
        let took = started.elapsed();
        let outcome = outcome.expect("handled");
        match self.path {
            Path::Quiet => assert_eq!(outcome, Outcome::Quiet, "fix {}", self.walk.seq),
            Path::Near => {
                assert_eq!(
                    outcome,
                    Outcome::Evaluated { events: 0 },
                    "fix {}",
                    self.walk.seq
                )
            }
        }
        self.fixes += 1;
        took
    }

    /// Panics unless the run stayed on its path and the store stayed bounded.
    async fn check(&self, name: &str) {
        let path = if self.path == Path::Quiet {
            "quiet"
        } else {
            "near"
        };
        let counted = self.ports.metrics.get("FixesEvaluated", path);
        assert!(
            counted >= self.fixes,
            "{name}: {counted} counted on {path}, {} sent",
            self.fixes
        );
        assert!(self.ports.queue.sent().is_empty(), "{name}: events queued");
        assert!(
            self.ports.store.quarantined_all().is_empty(),
            "{name}: quarantined"
        );
        let history = self
            .ports
            .store
            .history(&TagId::new("tag-1").unwrap())
            .await
            .unwrap();
        assert!(history.fixes.len() <= KEPT_FIXES, "{name}: history grows");
        eprintln!(
            "floor/{name}: {} fixes handled, all on the {path} path; history holds {} fixes (at most {KEPT_FIXES}), revision {}",
            self.fixes,
            history.fixes.len(),
            history.rev
        );
    }
}

/// Builds a case, and sends its first fixes (untimed) until it is on its path: the `near`
/// walk's first fix raises the warning; every case then checks 10 fixes on its path.
async fn case(name: &str) -> Case {
    let quiet_at = (5_000.0, 0.0);
    let pursuit_ms = i64::from(PURSUIT_EVERY_S) * 1000;
    let (store, walk, path, her) = match name {
        "quiet" => (
            store(false, 0, quiet_at).await,
            Walk::new(quiet_at, 200.0, NORMAL_EVERY_MS),
            Path::Quiet,
            None,
        ),
        "quiet_populated" => (
            store(false, 40, quiet_at).await,
            Walk::new(quiet_at, 200.0, NORMAL_EVERY_MS),
            Path::Quiet,
            None,
        ),
        "near" => (
            store(false, 0, quiet_at).await,
            Walk::new((0.0, 0.0), 300.0, pursuit_ms),
            Path::Near,
            None,
        ),
        "device" => (
            store(true, 0, quiet_at).await,
            Walk::new(quiet_at, 200.0, NORMAL_EVERY_MS),
            Path::Quiet,
            Some(0.0),
        ),
        _ => unreachable!("no case {name}"),
    };
    let ports = Ports::new(store, MemoryQueue::default(), MemoryMetrics::default());
    let mut c = Case {
        ports,
        walk,
        path,
        her_north_m: her,
        her_seq: 0,
        fixes: 0,
    };
    if name == "near" {
        let (body, received_at_ms) = c.walk.next();
        let out = handle(serde_json::from_slice(&body).unwrap(), &c.ports)
            .await
            .unwrap();
        assert_eq!(
            out,
            Outcome::Evaluated { events: 1 },
            "the walk's first fix warns"
        );
        c.ports.queue.drain();
        // The alert function, on the warning, tells the tag the pursuit rate and keeps it.
        let pursuit = ReportingCommand {
            report_interval_s: PURSUIT_EVERY_S,
            sent_at_ms: received_at_ms,
            attempts: 1,
            pursuit: true,
            order_id: OrderId::new("o1").unwrap(),
            batch_s: 0,
            window_basis_ms: None,
        };
        let tag = Commanded::Tag(TagId::new("tag-1").unwrap());
        c.ports
            .store
            .save_command(&tag, Some(&pursuit), None)
            .await
            .unwrap();
    }
    if name == "device" {
        // Her device's first position ends its "never reported" state.
        c.her_turn().await;
        c.ports.queue.drain();
    }
    for _ in 0..10 {
        c.one_fix().await;
    }
    c
}

fn floor(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a tokio runtime");
    let mut group = c.benchmark_group("floor");
    group
        .sample_size(50)
        .measurement_time(Duration::from_secs(5));
    for name in ["quiet", "quiet_populated", "near", "device"] {
        let case = RefCell::new(rt.block_on(case(name)));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut case = case.borrow_mut();
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += case.one_fix().await;
                    }
                    total
                })
            })
        });
        rt.block_on(case.borrow().check(name));
    }
    group.finish();
}

criterion_group!(benches, floor);
criterion_main!(benches);
