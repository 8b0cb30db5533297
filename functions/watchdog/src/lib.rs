//! Vigil's watchdog function (docs/WATCHDOG.md): run once a minute by an EventBridge
//! schedule, it reads only the tags that are due and tells operators (and, near her zones,
//! the victim, through the alert function) when a tag goes silent or loses GPS, and when it
//! recovers. The decisions are the core's ([`vigil_core::watchdog`]); this crate is the I/O.
//!
//! # One run at `now`
//! 1. **The minutes due**: from the cursor (the last minute processed) to now, at most
//!    [`MAX_CATCH_UP_MINUTES`] (after an outage, older minutes are left to the sweep).
//! 2. **Per minute**, the tags armed for it (the `watch` table's parts): their orders, marks
//!    and histories in one `BatchGetItem` per 50 tags; the core judges each; each change
//!    becomes an alert event on the alert queue (deterministic id: a rerun repeats it and the
//!    alert function handles it once), then its mark is set or removed; each tag is armed
//!    again at its next check, many tags per part (one write per part, not per tag). A tag
//!    with no order in force and nothing told is not armed again. The cursor moves,
//!    conditionally: one run at a time.
//!    The escalations armed for the minute (urgent alerts not acknowledged) are queued as they
//!    are; the alert function decides whether each still stands. So is, for each tag an
//!    operator's change armed (vigil-admin: a zone added, her device given, an order created
//!    on the tag or moved to it), the ask that ends its batching window (adaptive reporting,
//!    docs/WIRE_FORMAT.md); the watchdog builds that ask itself from the part's order and tag,
//!    so what operators may write in the `watch` table can never become any other event.
//! 3. **The sweep**, on the first run, after a gap, and every [`SWEEP_EVERY_MINUTES`]: every
//!    tag with an order that no part of the next [`IDLE_RECHECK_MS`] holds (a new order, a
//!    part lost to a crash) is armed for the next minute; a tag armed twice (a rerun after a
//!    crash planned it at two minutes) keeps its earliest.
//!
//! Cost grows with the tags due, not the fleet: a healthy tag reporting once a minute is
//! read about once per silence limit (5 min); the sweep's scan of the `tags` table every 15
//! minutes is the one read of the whole fleet (docs/WATCHDOG.md has the figures).

use std::collections::{BTreeMap, BTreeSet};
use tracing::{info, warn};
use vigil_aws::StoreError;
use vigil_aws::ports::{AlertQueue, Due, Metrics, ORDER_CHANGE_PREFIX, WatchStore, WatchedTag};
use vigil_core::events::{AlertBody, AlertEvent, NearZone};
use vigil_core::reporting::{Ask, Commanded};
use vigil_core::watchdog::{self, Change, IDLE_RECHECK_MS};
use vigil_core::{OrderId, TagId, ZoneId};

/// Minutes a run catches up on after an outage at most; the sweep re-arms the rest.
pub const MAX_CATCH_UP_MINUTES: i64 = 60;

/// The sweep runs on minutes divisible by this (and on the first run, and after a gap).
pub const SWEEP_EVERY_MINUTES: i64 = 15;

/// Minutes before the ones a run processes in which it still queues escalations after an
/// outage: as long as a part lives.
pub const ESCALATION_CATCH_UP_MINUTES: i64 = 24 * 60;

/// Tags per part of a minute: a part is one item, about 30 bytes a tag, far below
/// DynamoDB's 400 KB.
pub const TAGS_PER_PART: usize = 1_000;

/// What the function runs on.
pub struct Ports<S, Q, M> {
    /// The watch table, tags, histories and zones.
    pub store: S,
    /// The alert queue.
    pub queue: Q,
    /// Counters.
    pub metrics: M,
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The minutes processed.
    pub minutes: Vec<i64>,
    /// Tags judged.
    pub checked: usize,
    /// Conditions started and ended (events queued).
    pub started: usize,
    /// Conditions ended.
    pub ended: usize,
    /// Whether the sweep ran, and how many tags it armed.
    pub swept: Option<usize>,
    /// Escalations queued (urgent alerts not acknowledged, armed by the alert function).
    pub escalations: usize,
    /// Asks queued to end a tag's batching window after an operator's change.
    pub order_changes: usize,
}

/// Why a run failed: a store error (the next run resumes from the cursor).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct WatchdogError(#[from] pub StoreError);

/// One run at `now_ms` (the schedule's time, or the scenario clock).
///
/// Fails on a store error; everything done before it (events queued, marks, parts, the
/// cursor) stays done, and the next run resumes from the cursor.
pub async fn run<S: WatchStore, Q: AlertQueue, M: Metrics>(
    ports: &Ports<S, Q, M>,
    now_ms: i64,
) -> Result<Outcome, WatchdogError> {
    let now_min = now_ms.div_euclid(60_000);
    let mut cursor = ports.store.watch_cursor().await?;
    let first = match cursor {
        Some(done) => (done + 1).max(now_min - MAX_CATCH_UP_MINUTES + 1),
        None => now_min,
    };
    let gap = cursor.is_some_and(|done| first > done + 1);
    let first_run = cursor.is_none();
    let mut out = Outcome::default();
    // Minutes an outage skipped: their tags are left to the sweep, but an escalation or an
    // operator's change armed in one is never dropped (a part lives a day).
    if let Some(done) = cursor {
        for minute in (done + 1).max(now_min - ESCALATION_CATCH_UP_MINUTES)..first {
            let due = ports.store.due(minute).await?;
            queue_armed(ports, minute, &due, now_ms, &mut out).await?;
        }
    }
    for minute in first..=now_min {
        let due = ports.store.due(minute).await?;
        queue_armed(ports, minute, &due, now_ms, &mut out).await?;
        let tags: Vec<TagId> = due.tags.into_iter().collect();
        let watched = ports.store.watched(&tags).await?;
        let mut arms: BTreeMap<i64, Vec<TagId>> = BTreeMap::new();
        for tag in &watched {
            out.checked += 1;
            if let Some(next) = judge_tag(tag, ports, now_ms, &mut out).await? {
                arms.entry(next).or_default().push(tag.tag_id.clone());
            }
        }
        write_arms(&ports.store, &format!("p{minute}"), arms).await?;
        ports.store.advance_watch_cursor(cursor, minute).await?;
        cursor = Some(minute);
        out.minutes.push(minute);
    }
    ports.metrics.count(
        "WatchdogChecks",
        ("Function", "watchdog"),
        out.checked as u64,
    );
    if first_run || gap || out.minutes.len() > 1 || now_min % SWEEP_EVERY_MINUTES == 0 {
        out.swept = Some(sweep(&ports.store, &ports.metrics, now_min).await?);
    }
    info!(
        minutes = out.minutes.len(),
        checked = out.checked,
        started = out.started,
        ended = out.ended,
        escalations = out.escalations,
        order_changes = out.order_changes,
        swept = ?out.swept,
        "watchdog run"
    );
    Ok(out)
}

/// Queues what was armed for `minute` as alert events: its escalations and the asks of its
/// operators' changes.
async fn queue_armed<S, Q: AlertQueue, M: Metrics>(
    ports: &Ports<S, Q, M>,
    minute: i64,
    due: &Due,
    now_ms: i64,
    out: &mut Outcome,
) -> Result<(), WatchdogError> {
    out.escalations += queue_escalations(ports, &due.events).await?;
    let asks: Vec<AlertEvent> = due
        .changed
        .iter()
        .map(|(order_id, tag_id)| order_changed(order_id, tag_id, minute, now_ms))
        .collect();
    if !asks.is_empty() {
        ports.queue.send(&asks).await?;
        ports.metrics.count(
            "OrderChangesQueued",
            ("Function", "watchdog"),
            asks.len() as u64,
        );
        for e in &asks {
            info!(event_id = %e.event_id, order_id = %e.order_id, tag_id = %e.tag_id, "operator's change: the tag's window ends");
        }
        out.order_changes += asks.len();
    }
    Ok(())
}

/// The ask that ends `tag_id`'s batching window because an operator changed `order_id`, armed
/// for `minute`: its id and content are fixed by the part, so a rerun of the minute queues the
/// same event, which the alert function handles once.
fn order_changed(order_id: &OrderId, tag_id: &TagId, minute: i64, now_ms: i64) -> AlertEvent {
    AlertEvent {
        event_id: AlertEvent::order_changed_id(order_id, tag_id, minute),
        order_id: order_id.clone(),
        tag_id: tag_id.clone(),
        at_ms: minute * 60_000,
        received_at_ms: now_ms,
        body: AlertBody::Reporting {
            device: Commanded::Tag(tag_id.clone()),
            ask: Ask::OrderChanged,
            sent_at_ms: None,
            window: None,
        },
    }
}

/// Queues the escalations due (their ids are fixed: a rerun of the minute queues them again,
/// and the alert function handles each once).
async fn queue_escalations<S, Q: AlertQueue, M: Metrics>(
    ports: &Ports<S, Q, M>,
    events: &[AlertEvent],
) -> Result<usize, WatchdogError> {
    if events.is_empty() {
        return Ok(0);
    }
    ports.queue.send(events).await?;
    ports.metrics.count(
        "EscalationsQueued",
        ("Function", "watchdog"),
        events.len() as u64,
    );
    for e in events {
        info!(event_id = %e.event_id, order_id = %e.order_id, "escalation queued");
    }
    Ok(events.len())
}

/// Judges one tag, queues and marks its changes; returns the minute of its next check, or
/// `None` when it needs none (no order in force, nothing told).
async fn judge_tag<S: WatchStore, Q: AlertQueue, M: Metrics>(
    tag: &WatchedTag,
    ports: &Ports<S, Q, M>,
    now_ms: i64,
    out: &mut Outcome,
) -> Result<Option<i64>, WatchdogError> {
    // A tag told a batching window sends that much less often (adaptive reporting).
    let orders = watchdog::allowing_window(&tag.orders, tag.window_s);
    let changes = watchdog::judge(&orders, &tag.history, &tag.told, now_ms);
    let mut told = tag.told.clone();
    for change in &changes {
        let event = event_of(tag, change, ports, now_ms).await?;
        // Queued first, then marked: a rerun after a failed mark queues the same event id
        // again, which the alert function handles once.
        ports.queue.send(std::slice::from_ref(&event)).await?;
        let key = (change.order_id.clone(), change.condition);
        let mark = change.started.then_some(change.episode_ms);
        ports
            .store
            .mark_watch(&tag.tag_id, &change.order_id, change.condition, mark)
            .await?;
        if change.started {
            told.insert(key, change.episode_ms);
            out.started += 1;
        } else {
            told.remove(&key);
            out.ended += 1;
        }
        let what = format!(
            "{}_{}",
            change.condition.name(),
            if change.started { "started" } else { "ended" }
        );
        ports.metrics.count("WatchChanges", ("Change", &what), 1);
        info!(event_id = %event.event_id, tag_id = %tag.tag_id, change = %what, "watchdog change queued");
    }
    let watched = tag.orders.iter().any(|o| o.in_force(now_ms)) || !told.is_empty();
    Ok(watched.then(|| {
        let next = watchdog::next_check_ms(&orders, &tag.history, &told, now_ms);
        // Processed when the minute has begun: the first minute starting at or after it.
        next.div_euclid(60_000) + i64::from(next.rem_euclid(60_000) != 0)
    }))
}

/// The alert event of a change: the tag's last known position, and for a start the zone
/// of the order its last fix was near, or her moving zone when that fix was near her device
/// (the victim is told then).
async fn event_of<S: WatchStore, Q, M>(
    tag: &WatchedTag,
    change: &Change,
    ports: &Ports<S, Q, M>,
    now_ms: i64,
) -> Result<AlertEvent, WatchdogError> {
    let last = watchdog::last_known(&tag.history).cloned();
    let near = match (&last, change.started && change.condition.loses_contact()) {
        (Some(fix), true) => {
            let terms = tag.orders.iter().find(|o| o.order_id == change.order_id);
            let extra = terms.map_or(0.0, |o| o.policy.silent_victim_distance_m);
            let zones = ports.store.order_zones(&change.order_id).await?;
            let fixed = watchdog::near_zone(fix, &zones, extra).map(|(id, d): (&ZoneId, f64)| {
                let kind = zones
                    .iter()
                    .find(|z| z.id() == id)
                    .map(vigil_core::Zone::kind)
                    .unwrap_or(vigil_core::ZoneKind::Other);
                NearZone {
                    zone_id: id.clone(),
                    zone_kind: kind,
                    distance_m: d,
                }
            });
            // Her device: the distance ingest kept with that fix when it compared it with her
            // position (the watchdog never reads where she is).
            let hers = terms
                .and_then(|t| watchdog::near_victim(fix, t, extra))
                .map(|d| NearZone {
                    zone_id: vigil_core::proximity::victim_zone_id(),
                    zone_kind: vigil_core::ZoneKind::VictimLocation,
                    distance_m: d,
                });
            [fixed, hers]
                .into_iter()
                .flatten()
                .min_by(|a, b| a.distance_m.total_cmp(&b.distance_m))
        }
        _ => None,
    };
    Ok(AlertEvent {
        event_id: AlertEvent::watch_id(
            &change.order_id,
            change.condition,
            change.started,
            change.episode_ms,
        ),
        order_id: change.order_id.clone(),
        tag_id: tag.tag_id.clone(),
        at_ms: change.episode_ms.unwrap_or(now_ms),
        received_at_ms: now_ms,
        body: AlertBody::Watch {
            condition: change.condition,
            started: change.started,
            episode_ms: change.episode_ms,
            last_fix: last,
            near,
        },
    })
}

/// Writes the planned checks: per minute, parts of at most [`TAGS_PER_PART`] tags named
/// `<prefix>#<n>` (a rerun of the same minute replaces its own parts).
async fn write_arms<S: WatchStore>(
    store: &S,
    prefix: &str,
    arms: BTreeMap<i64, Vec<TagId>>,
) -> Result<(), WatchdogError> {
    for (minute, mut tags) in arms {
        tags.sort();
        tags.dedup();
        for (n, chunk) in tags.chunks(TAGS_PER_PART).enumerate() {
            store.arm(minute, &format!("{prefix}#{n}"), chunk).await?;
        }
    }
    Ok(())
}

/// Arms every tag with an order that no part of the coming [`IDLE_RECHECK_MS`] holds, for
/// the next minute; removes a tag armed twice from all but its earliest part; counts the tags
/// with an order per force (`Tags`, every sweep). Returns the number of tags armed.
async fn sweep<S: WatchStore>(
    store: &S,
    metrics: &impl Metrics,
    now_min: i64,
) -> Result<usize, WatchdogError> {
    let horizon = now_min + IDLE_RECHECK_MS / 60_000;
    let armed = store.armed(now_min + 1, horizon).await?;
    let mut earliest: BTreeMap<&TagId, (i64, &str)> = BTreeMap::new();
    let mut drop: BTreeMap<(i64, String), BTreeSet<TagId>> = BTreeMap::new();
    for ((minute, part), tags) in &armed {
        // An operator's change is not a check: it is never dropped as a second arm.
        if part.starts_with(ORDER_CHANGE_PREFIX) {
            continue;
        }
        for tag in tags {
            match earliest.get(tag) {
                Some(_) => {
                    drop.entry((*minute, part.clone()))
                        .or_default()
                        .insert(tag.clone());
                }
                None => {
                    earliest.insert(tag, (*minute, part));
                }
            }
        }
    }
    for ((minute, part), extra) in &drop {
        let keep: Vec<TagId> = armed[&(*minute, part.clone())]
            .difference(extra)
            .cloned()
            .collect();
        warn!(minute, part = %part, removed = extra.len(), "tags armed twice: the later check removed");
        store.arm(*minute, part, &keep).await?;
    }
    let tags = store.tags_with_orders().await?;
    // The fleet per force, for each force's figures (docs/FORCES.md).
    let mut per_force: BTreeMap<String, u64> = BTreeMap::new();
    for (_, force) in &tags {
        *per_force
            .entry(force.as_ref().map_or("none", |f| f.as_str()).to_owned())
            .or_default() += 1;
    }
    for (force, n) in &per_force {
        metrics.count("Tags", ("Force", force), *n);
    }
    let missing: Vec<TagId> = tags
        .into_iter()
        .map(|(t, _)| t)
        .filter(|t| !earliest.contains_key(t))
        .collect();
    let n = missing.len();
    if n > 0 {
        let arms = BTreeMap::from([(now_min + 1, missing)]);
        write_arms(store, &format!("s{now_min}"), arms).await?;
    }
    Ok(n)
}
