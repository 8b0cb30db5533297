//! A fix, from a validated message to states, alerts and the tag's history.
//!
//! 1. One read: the tag's orders (terms only), its open zones, its history of accepted fixes
//!    and the zones of the cells the fix's lookup disc touches.
//! 2. The same counter with the same content as a fix in the history: a duplicate, nothing
//!    written. The same counter with other content: judged as new, and operators are told.
//! 3. The speed check against the history's two newest ACCEPTED fixes. A fix that fails it is
//!    quarantined and never becomes history; if it would have raised a zone of an order in
//!    force, operators get an urgent `rejected_fix_near_zone` event naming the possible
//!    breach (docs/SAFETY.md says why this is operators only).
//! 4. The orders with zones near the fix or open alerts move their states
//!    ([`crate::commit`]); the others are the quiet path. Orders whose victim carries a device
//!    judge the fix against her newest position ([`crate::moving`]).
//! 5. The history gains the fix, last: a failure before it is retried by Lambda, and the
//!    retry finds the states already moved (a replayed fix is a no-op) and their outboxes
//!    still to send.

use crate::commit::evaluate_order;
use crate::decode::{Fixes, Received};
use crate::{IngestError, Outcome, Ports, Rejection, pause, quarantine};
use std::collections::BTreeMap;
use tracing::info;
use vigil_aws::StoreError;
use vigil_aws::ports::{AlertQueue, IngestStore, Metrics, TagContext};
use vigil_core::cells::{Cell, cover_disc};
use vigil_core::fix::{BatchItem, encode_fix};
use vigil_core::history::Sighting;
use vigil_core::ingest::{Repeated, conflict_events, orders_to_evaluate, rejected_near_zones};
use vigil_core::{Fix, OrderId, TagHistory, TagId};

/// Attempts at writing the tag's history before giving up (Lambda retries the event).
const HISTORY_ATTEMPTS: u32 = 6;

/// Most geohash cells read in one `BatchGetItem` with the tag and its history (DynamoDB takes
/// 100 keys a request): a batch whose fixes touch more cells is handled in parts, each one read
/// and one history write.
const CELLS_PER_READ: usize = 96;

/// Handles the fixes of one message on the fix channel: a v1 fix, or a v2 batch (in counter
/// order). One read for the whole message (the union of the fixes' lookup cells), each fix
/// judged in turn by the steps in the module docs against the history as the fixes before it
/// left it, then one history write. A batch of one is a v1 fix; a longer one gives an
/// outcome per fix.
pub async fn handle_fixes<S: IngestStore, Q: AlertQueue, M: Metrics>(
    m: Received<Fixes>,
    ports: &Ports<S, Q, M>,
) -> Result<Outcome, IngestError> {
    let Received {
        message: Fixes { tag_id, items },
        received_at_ms,
        payload,
    } = m;
    let n = items.len();
    let mut outcomes = Vec::with_capacity(n);
    let mut rest = items.into_iter().peekable();
    let mut paths = Paths::default();
    let mut previous_message_ms = None;
    while rest.peek().is_some() {
        // The next part: as many fixes as one read's cells allow (all of them, almost always).
        let mut part: Vec<BatchItem> = Vec::new();
        let mut cells: Vec<Cell> = Vec::new();
        while let Some(item) = rest.peek() {
            let mut more = Vec::with_capacity(4);
            if let Ok(fix) = item {
                cover_disc(
                    fix.lat,
                    fix.lon,
                    ports.rules.lookup_radius_m(fix.accuracy_m),
                    &mut more,
                );
            }
            more.retain(|c| !cells.contains(c));
            if !part.is_empty() && cells.len() + more.len() > CELLS_PER_READ {
                break;
            }
            cells.extend(more);
            part.push(rest.next().expect("peeked"));
        }
        let Some(mut ctx) = ports.store.load_context(&tag_id, &cells).await? else {
            // No order restrains the tag: the message is kept once, whole.
            return unknown_tag(ports, &tag_id, received_at_ms, &payload).await;
        };
        let before = ctx.history.clone();
        previous_message_ms =
            previous_message_ms.or_else(|| before.fixes.iter().map(|f| f.received_at_ms).max());
        let mut accepted: Vec<(Fix, BTreeMap<OrderId, f64>)> = Vec::new();
        let mut queued = 0;
        for item in part {
            let outcome = match item {
                Err((e, bytes)) => refuse(ports, &tag_id, received_at_ms, e, &bytes).await?,
                Ok(fix) => {
                    // A v1 fix is kept as published if refused later; a batch's fix as its own
                    // v1 encoding (made only then), not the whole batch.
                    let published = (n == 1).then_some(payload.as_slice());
                    let judged = judge(&fix, received_at_ms, published, &ctx, ports).await?;
                    let more_follow = outcomes.len() + 1 < n;
                    if more_follow && (judged.near || judged.queued > 0) {
                        // The fix may have opened or closed a zone (his or her moving one):
                        // the next fix is judged against the open marks as they are now (read
                        // again, as a fix of its own would), with the history as this message
                        // left it. Near fixes in a batch are rare: batches come from far away.
                        if let Some(now) = ports.store.load_context(&tag_id, &cells).await? {
                            ctx = TagContext {
                                history: ctx.history,
                                ..now
                            };
                        }
                    }
                    if let Some(edge) = judged.accepted {
                        ctx.history = ctx.history.with_compared_fix(&fix, received_at_ms, &edge);
                        accepted.push((fix, edge));
                        paths.count(judged.near, &ctx);
                    }
                    queued += judged.queued;
                    judged.outcome
                }
            };
            outcomes.push(outcome);
        }
        let Some((newest, _)) = accepted.last() else {
            continue;
        };
        let mut window_checked = None;
        if rest.peek().is_none() {
            let mut asked = 0;
            if queued == 0 {
                asked += crate::pursuit::check_tag(
                    newest,
                    previous_message_ms,
                    accepted.len(),
                    received_at_ms,
                    &ctx,
                    ports,
                )
                .await?;
            }
            // Whatever else the message did: a window that must shrink never waits.
            let (window, checked) =
                crate::window::check(newest, received_at_ms, &ctx, ports).await?;
            asked += window;
            window_checked = checked;
            if asked > 0 && n == 1 && queued == 0 {
                outcomes = vec![Outcome::Evaluated { events: asked }];
            }
        }
        save_history(ports, &tag_id, before, |h| {
            let mut next = accepted.iter().fold(h.clone(), |h, (fix, edge)| {
                h.with_compared_fix(fix, received_at_ms, edge)
            });
            next.window_checked_ms = window_checked.or(next.window_checked_ms);
            next
        })
        .await?;
    }
    paths.emit(ports);
    Ok(one_or_batch(outcomes))
}

/// What judging one fix gave: its outcome, the events queued, and (when accepted) what its
/// history entry keeps of the comparisons with her device.
struct Judged {
    outcome: Outcome,
    queued: usize,
    /// Whether a zone of its orders was near or open (the near path).
    near: bool,
    accepted: Option<BTreeMap<OrderId, f64>>,
}

/// One fix against the context read for its message (steps 2 to 4 of the module docs); the
/// history is the caller's to extend. `published` is the payload that carried the fix alone
/// (v1), kept if it is refused; a batch's fix is kept as its own v1 encoding.
async fn judge<S: IngestStore, Q: AlertQueue, M: Metrics>(
    fix: &Fix,
    received_at_ms: i64,
    published: Option<&[u8]>,
    ctx: &TagContext,
    ports: &Ports<S, Q, M>,
) -> Result<Judged, IngestError> {
    let conflict = match ctx.history.sighting(fix) {
        Sighting::Duplicate => {
            ports
                .metrics
                .count("MessageDuplicate", ("Channel", "fix"), 1);
            return Ok(Judged {
                outcome: Outcome::Duplicate,
                queued: 0,
                near: false,
                accepted: None,
            });
        }
        Sighting::Conflict { previous_hash } => Some(previous_hash),
        Sighting::New => None,
    };
    if let Err(e) = ctx.history.check_speed(fix, &ports.limits) {
        let events = rejected_near_zones(
            &ctx.orders,
            &ctx.zones,
            fix,
            &e,
            received_at_ms,
            &ports.rules,
        );
        let rejection = Rejection::from(e);
        let kept = published.map_or_else(|| encode_fix(fix), <[u8]>::to_vec);
        quarantine(
            ports,
            fix.tag_id.as_str(),
            received_at_ms,
            &rejection,
            &kept,
        )
        .await?;
        if !events.is_empty() {
            ports.queue.send(&events).await?;
            ports
                .metrics
                .count("RejectedNearZone", ("Reason", &rejection.reason), 1);
            info!(tag_id = %fix.tag_id, zones = events.len(), "rejected fix near a zone: operators told");
        }
        return Ok(Judged {
            outcome: Outcome::Rejected {
                reason: rejection.reason,
                operator_events: events.len(),
            },
            queued: events.len(),
            near: false,
            accepted: None,
        });
    }
    let work = orders_to_evaluate(&ctx.orders, &ctx.zones, &ctx.open, fix, &ports.rules);
    let newest_seen = ctx.history.newest();
    let mut queued = 0;
    for w in &work {
        queued += evaluate_order(fix, newest_seen, w, ports, received_at_ms).await?;
    }
    let (moved, victim_edge_m) = crate::moving::judge_fix(fix, received_at_ms, ctx, ports).await?;
    queued += moved;
    if let Some(previous) = conflict {
        let events = conflict_events(&ctx.orders, Repeated::Fix(fix), &previous, received_at_ms);
        ports.queue.send(&events).await?;
        ports
            .metrics
            .count("MessageConflict", ("Channel", "fix"), 1);
        queued += events.len();
    }
    Ok(Judged {
        outcome: if work.is_empty() && queued == 0 {
            Outcome::Quiet
        } else {
            Outcome::Evaluated { events: queued }
        },
        queued,
        near: !work.is_empty(),
        accepted: Some(victim_edge_m),
    })
}

/// Quarantines one refused fix of a v2 batch with its own bytes, so the record shows what was
/// wrong with it (the batch's other fixes are judged as usual).
async fn refuse<S: IngestStore, Q, M: Metrics>(
    ports: &Ports<S, Q, M>,
    tag_id: &TagId,
    received_at_ms: i64,
    e: vigil_core::FixError,
    bytes: &[u8],
) -> Result<Outcome, IngestError> {
    let rejection = Rejection::from(e);
    quarantine(ports, tag_id.as_str(), received_at_ms, &rejection, bytes).await?;
    Ok(Outcome::Rejected {
        reason: rejection.reason,
        operator_events: 0,
    })
}

fn one_or_batch(mut outcomes: Vec<Outcome>) -> Outcome {
    if outcomes.len() == 1 {
        outcomes.pop().expect("one")
    } else {
        Outcome::Batch(outcomes)
    }
}

/// The accepted fixes of a message by path and force, counted as one metric line per
/// message (the figures of a batch in one line, not one per fix).
#[derive(Default)]
struct Paths {
    counts: BTreeMap<(&'static str, String), u64>,
}

impl Paths {
    fn count(&mut self, near: bool, ctx: &TagContext) {
        let path = if near { "near" } else { "quiet" };
        // The tag's force (its orders share it): the dimension per-force figures are counted by.
        let force = ctx
            .orders
            .iter()
            .find_map(|o| o.force_id.clone())
            .map_or_else(|| "none".to_owned(), String::from);
        *self.counts.entry((path, force)).or_default() += 1;
    }

    fn emit<S, Q, M: Metrics>(&self, ports: &Ports<S, Q, M>) {
        for ((path, force), n) in &self.counts {
            ports
                .metrics
                .count_each("FixesEvaluated", &[("Path", path), ("Force", force)], *n);
        }
    }
}

/// Quarantines a message from a tag no order restrains.
pub(crate) async fn unknown_tag<S: IngestStore, Q, M: Metrics>(
    ports: &Ports<S, Q, M>,
    tag_id: &TagId,
    received_at_ms: i64,
    payload: &[u8],
) -> Result<Outcome, IngestError> {
    let r = Rejection {
        reason: "unknown_tag".into(),
        detail: format!("tag {tag_id} has no order"),
    };
    quarantine(ports, tag_id.as_str(), received_at_ms, &r, payload).await?;
    Ok(Outcome::Rejected {
        reason: r.reason,
        operator_events: 0,
    })
}

/// Writes the tag's history as `next` makes it from the stored one: on a lost race (another
/// invocation of the same tag wrote first) it re-reads and applies `next` again, so neither
/// writer's fix is lost.
pub(crate) async fn save_history<S: IngestStore, Q, M: Metrics>(
    ports: &Ports<S, Q, M>,
    tag_id: &TagId,
    read: TagHistory,
    next: impl Fn(&TagHistory) -> TagHistory,
) -> Result<(), IngestError> {
    let mut current = read;
    let mut last = None;
    for attempt in 0..HISTORY_ATTEMPTS {
        match ports.store.save_history(tag_id, &next(&current)).await {
            Ok(()) => return Ok(()),
            Err(e @ StoreError::Conflict { .. }) => {
                ports
                    .metrics
                    .count("CommitConflicts", ("Table", "last-seen"), 1);
                last = Some(e);
                pause(attempt).await;
                current = ports.store.history(tag_id).await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(last
        .unwrap_or(StoreError::Conflict {
            what: format!("history of tag {tag_id}"),
        })
        .into())
}
