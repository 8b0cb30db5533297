//! One order's states moved by one fix: the I/O around the core's decision.
//!
//! Read the order's states consistently; deliver any outbox an earlier invocation committed
//! but may not have queued; fetch the order's open zones the fix's cells did not hold; let
//! [`plan_order`] decide; commit the plan atomically, conditional on the revisions read; on a
//! lost race, back off with jitter and do it all again; queue the committed events, then clear
//! the outboxes. Nothing here decides anything.

use crate::{IngestError, Ports, pause};
use std::collections::BTreeMap;
use std::collections::BTreeSet;
use tracing::info;
use vigil_aws::StoreError;
use vigil_aws::ports::{AlertQueue, Commit, IngestStore, Metrics};
use vigil_core::events::AlertEvent;
use vigil_core::ingest::{OrderPlan, OrderWork, ZoneRecord, plan_order, zones_to_fetch};
use vigil_core::operator::OperatorKind;
use vigil_core::{Fix, OrderId, TagId, Zone, ZoneId, ZoneKey};

/// Attempts at an order's commit before giving up as a conflict (Lambda retries the event).
const COMMIT_ATTEMPTS: u32 = 8;

/// Moves one order's fixed zones' states with the fix; returns the number of alert events
/// queued.
pub async fn evaluate_order<S: IngestStore, Q: AlertQueue, M: Metrics>(
    fix: &Fix,
    newest_seen: Option<(i64, u64)>,
    work: &OrderWork<'_>,
    ports: &Ports<S, Q, M>,
    received_at_ms: i64,
) -> Result<usize, IngestError> {
    let near: Vec<Zone> = work.near.iter().map(|z| (*z).clone()).collect();
    commit_with(
        ports,
        &work.terms.order_id,
        &fix.tag_id,
        |records| zones_to_fetch(work, records),
        |records, fetched| {
            let zones: Vec<&Zone> = near.iter().chain(fetched).collect();
            plan_order(
                work.terms,
                records,
                &zones,
                fix,
                newest_seen,
                received_at_ms,
                &ports.rules,
            )
        },
    )
    .await
}

/// Reads an order's states, fetches the zones `fetch` names, lets `plan` decide, and commits
/// the plan as described in the module documentation; returns the number of alert events
/// queued (an earlier invocation's outbox delivered included). The fixed zones' evaluation and the moving zone's (crate::moving) both commit
/// through here.
pub(crate) async fn commit_with<S: IngestStore, Q: AlertQueue, M: Metrics>(
    ports: &Ports<S, Q, M>,
    order_id: &OrderId,
    tag_id: &TagId,
    fetch: impl Fn(&BTreeMap<ZoneId, ZoneRecord>) -> Vec<ZoneKey>,
    plan: impl Fn(&BTreeMap<ZoneId, ZoneRecord>, &[Zone]) -> OrderPlan,
) -> Result<usize, IngestError> {
    let mut last_conflict = None;
    let mut delivered = 0;
    for attempt in 0..COMMIT_ATTEMPTS {
        if attempt > 0 {
            pause(attempt - 1).await;
        }
        let records = ports.store.states(order_id).await?;
        // Deliver what an earlier invocation committed but may not have queued.
        for (zone_id, r) in records.iter().filter(|(_, r)| !r.pending.is_empty()) {
            ports.queue.send(&r.pending).await?;
            ports.store.clear_pending(order_id, zone_id, r.rev).await?;
            delivered += r.pending.len();
        }
        let missing = fetch(&records);
        let fetched = if missing.is_empty() {
            Vec::new()
        } else {
            ports.store.zones(&missing).await?
        };
        let plan = plan(&records, &fetched);
        if plan.is_empty() {
            return Ok(delivered);
        }
        let events: Vec<AlertEvent> = plan.events().cloned().collect();
        let cleared: BTreeSet<(ZoneId, u64)> = plan
            .writes
            .iter()
            .filter(|w| !w.pending.is_empty())
            .map(|w| (w.zone_id.clone(), w.expected_rev + 1))
            .collect();
        let commit = Commit {
            order_id: order_id.clone(),
            tag_id: tag_id.clone(),
            writes: plan.writes,
            opened: plan.opened,
            closed: plan.closed,
        };
        match ports.store.commit(&commit).await {
            Ok(()) => {}
            Err(e @ StoreError::Conflict { .. }) => {
                ports
                    .metrics
                    .count("CommitConflicts", ("Table", "zone-state"), 1);
                last_conflict = Some(e);
                continue;
            }
            Err(e) => return Err(e.into()),
        }
        if events.is_empty() {
            return Ok(delivered);
        }
        ports.queue.send(&events).await?;
        for (zone_id, rev) in cleared {
            ports.store.clear_pending(order_id, &zone_id, rev).await?;
        }
        for e in &events {
            let kinds = OperatorKind::of_event(e);
            for kind in &kinds {
                ports
                    .metrics
                    .count("Transitions", ("Kind", &kind.to_string()), 1);
            }
            info!(event_id = %e.event_id, order_id = %order_id, kinds = ?kinds.iter().map(ToString::to_string).collect::<Vec<_>>(), "alert event queued");
        }
        return Ok(delivered + events.len());
    }
    Err(last_conflict
        .unwrap_or(StoreError::Conflict {
            what: format!("order {order_id}"),
        })
        .into())
}
