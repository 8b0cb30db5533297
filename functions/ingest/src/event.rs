//! A tag event (strap, battery, power, GPS): identified by its content, queued for every
//! order in force.
//!
//! A tag that restarts and repeats its counter sends a new event under an old counter: the
//! event's id carries the content's digest, so it is never taken for a duplicate, and the
//! digest last seen under the counter tells a true redelivery (same digest: nothing to do)
//! from a conflict (another digest: handled as new, and operators are told).

use crate::decode::Received;
use crate::fix::{save_history, unknown_tag};
use crate::{IngestError, Outcome, Ports};
use tracing::info;
use vigil_aws::ports::{AlertQueue, IngestStore, Metrics};
use vigil_core::TagEvent;
use vigil_core::ingest::{Repeated, conflict_events, tag_event_events};
use vigil_core::operator::OperatorKind;

/// Handles a validated tag event.
pub async fn handle_tag_event<S: IngestStore, Q: AlertQueue, M: Metrics>(
    m: Received<TagEvent>,
    ports: &Ports<S, Q, M>,
) -> Result<Outcome, IngestError> {
    let ev = &m.message;
    let received_at_ms = m.received_at_ms;
    let Some(ctx) = ports.store.load_context(&ev.tag_id, &[]).await? else {
        return unknown_tag(ports, &ev.tag_id, received_at_ms, &m.payload).await;
    };
    let digest = ev.content_hash();
    let previous = ports.store.event_digest(&ev.tag_id, ev.seq).await?;
    if previous.as_deref() == Some(digest.as_str()) {
        ports
            .metrics
            .count("MessageDuplicate", ("Channel", "event"), 1);
        return Ok(Outcome::Duplicate);
    }
    let mut events = tag_event_events(&ctx.orders, ev, received_at_ms);
    let orders = events.len();
    if let Some(previous) = &previous {
        events.extend(conflict_events(
            &ctx.orders,
            Repeated::Event(ev),
            previous,
            received_at_ms,
        ));
        ports
            .metrics
            .count("MessageConflict", ("Channel", "event"), 1);
    }
    // Queue first, then record the digest: a failure in between is retried, and the alert
    // function drops the second delivery by its id.
    ports.queue.send(&events).await?;
    ports
        .store
        .save_event_digest(&ev.tag_id, ev.seq, &digest, received_at_ms)
        .await?;
    save_history(ports, &ev.tag_id, ctx.history, |h| {
        h.with_event(ev.kind, received_at_ms)
    })
    .await?;
    let kind = OperatorKind::TagEvent(ev.kind).to_string();
    ports.metrics.count("TagEvents", ("Kind", &kind), 1);
    info!(tag_id = %ev.tag_id, kind, orders, conflict = previous.is_some(), "tag event queued");
    Ok(Outcome::TagEvent { orders })
}
