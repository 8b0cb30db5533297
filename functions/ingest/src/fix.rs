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
use crate::decode::Received;
use crate::{IngestError, Outcome, Ports, Rejection, pause, quarantine};
use tracing::info;
use vigil_aws::StoreError;
use vigil_aws::ports::{AlertQueue, IngestStore, Metrics};
use vigil_core::cells::cover_disc;
use vigil_core::history::Sighting;
use vigil_core::ingest::{Repeated, conflict_events, orders_to_evaluate, rejected_near_zones};
use vigil_core::{Fix, TagHistory, TagId};

/// Attempts at writing the tag's history before giving up (Lambda retries the event).
const HISTORY_ATTEMPTS: u32 = 6;

/// Handles a validated fix; see the module docs for the steps.
pub async fn handle_fix<S: IngestStore, Q: AlertQueue, M: Metrics>(
    m: Received<Fix>,
    ports: &Ports<S, Q, M>,
) -> Result<Outcome, IngestError> {
    let fix = &m.message;
    let received_at_ms = m.received_at_ms;
    let mut cells = Vec::with_capacity(4);
    cover_disc(
        fix.lat,
        fix.lon,
        ports.rules.lookup_radius_m(fix.accuracy_m),
        &mut cells,
    );
    let Some(ctx) = ports.store.load_context(&fix.tag_id, &cells).await? else {
        return unknown_tag(ports, &fix.tag_id, received_at_ms, &m.payload).await;
    };
    // The tag's force (its orders share it): the dimension per-force figures are counted by.
    let force = ctx
        .orders
        .iter()
        .find_map(|o| o.force_id.clone())
        .map_or_else(|| "none".to_owned(), String::from);
    let conflict = match ctx.history.sighting(fix) {
        Sighting::Duplicate => {
            ports
                .metrics
                .count("MessageDuplicate", ("Channel", "fix"), 1);
            return Ok(Outcome::Duplicate);
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
        quarantine(
            ports,
            fix.tag_id.as_str(),
            received_at_ms,
            &rejection,
            &m.payload,
        )
        .await?;
        if !events.is_empty() {
            ports.queue.send(&events).await?;
            ports
                .metrics
                .count("RejectedNearZone", ("Reason", &rejection.reason), 1);
            info!(tag_id = %fix.tag_id, zones = events.len(), "rejected fix near a zone: operators told");
        }
        return Ok(Outcome::Rejected {
            reason: rejection.reason,
            operator_events: events.len(),
        });
    }
    let work = orders_to_evaluate(&ctx.orders, &ctx.zones, &ctx.open, fix, &ports.rules);
    let newest_seen = ctx.history.newest();
    let mut queued = 0;
    for w in &work {
        queued += evaluate_order(fix, newest_seen, w, ports, received_at_ms).await?;
    }
    let (moved, victim_edge_m) = crate::moving::judge_fix(fix, received_at_ms, &ctx, ports).await?;
    queued += moved;
    if queued == 0 {
        queued += crate::pursuit::check_tag(fix, received_at_ms, &ctx, ports).await?;
    }
    if let Some(previous) = conflict {
        let events = conflict_events(&ctx.orders, Repeated::Fix(fix), &previous, received_at_ms);
        ports.queue.send(&events).await?;
        ports
            .metrics
            .count("MessageConflict", ("Channel", "fix"), 1);
        queued += events.len();
    }
    save_history(ports, &fix.tag_id, ctx.history, |h| {
        h.with_compared_fix(fix, received_at_ms, &victim_edge_m)
    })
    .await?;
    let path = if work.is_empty() { "quiet" } else { "near" };
    ports
        .metrics
        .count_each("FixesEvaluated", &[("Path", path), ("Force", &force)], 1);
    Ok(if work.is_empty() && queued == 0 {
        Outcome::Quiet
    } else {
        Outcome::Evaluated { events: queued }
    })
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
