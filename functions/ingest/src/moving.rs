//! The victim's moving zone (docs/PROXIMITY.md): the I/O around the core's decisions
//! ([`vigil_core::proximity`]), from whichever side reported.
//!
//! - His fix ([`judge_fix`]): only for his orders whose victim carries a device, one read of
//!   her devices' newest positions (a tag whose victims carry none costs nothing more); per
//!   order, pair the two, tell operators when her device's silence starts or ends, and move
//!   the moving zone when the two are compared and near, or its alert is open.
//! - Her position ([`handle_position`]): the device's context (two reads: the device, then
//!   its orders' tags with their histories), her position stored only if newer (one
//!   conditional write), then per order the same with his newest accepted fix.
//!
//! Her coordinates are never logged, counted or quarantined; a refused message from her
//! device keeps its reason code only.

use crate::commit::commit_with;
use crate::decode::{ReceivedPosition, RefusedPosition};
use crate::{IngestError, Outcome, Ports};
use std::collections::BTreeMap;
use tracing::{info, warn};
use vigil_aws::ports::{AlertQueue, IngestStore, Metrics, QuarantineRecord, TagContext};
use vigil_core::evaluate::{AlertLevel, assess};
use vigil_core::proximity::{
    Pairing, Sighting, VICTIM_ZONE_ID, VictimDevice, VictimPosition, VictimSilence, closing_zone,
    pair, plan_moving_zone, silence_change,
};
use vigil_core::{DeviceId, Fix, OrderId, OrderTerms, TagId};

/// The quarantine's key for a victim device's message: `device:<id>` (`:` is in no thing
/// name, so it can never be a tag's).
pub fn quarantine_key(device: &str) -> String {
    format!("device:{device}")
}

/// Judges his accepted fix against the newest position of each of his orders' victims who
/// carry a device; returns the number of alert events queued, and per order where the two
/// could be compared the distance from his fix to her moving zone's edge (kept with the fix in
/// his history, for the watchdog: a distance, never her position).
pub(crate) async fn judge_fix<S: IngestStore, Q: AlertQueue, M: Metrics>(
    fix: &Fix,
    received_at_ms: i64,
    ctx: &TagContext,
    ports: &Ports<S, Q, M>,
) -> Result<(usize, BTreeMap<OrderId, f64>), IngestError> {
    let mut compared = BTreeMap::new();
    let orders: Vec<(&OrderTerms, &VictimDevice)> = ctx
        .orders
        .iter()
        .filter_map(|t| t.victim_device.as_ref().map(|d| (t, d)))
        .collect();
    if orders.is_empty() {
        return Ok((0, compared));
    }
    let devices: Vec<DeviceId> = orders.iter().map(|(_, d)| d.device_id.clone()).collect();
    let positions = ports.store.victim_positions(&devices).await?;
    let mut queued = 0;
    for (terms, device) in orders {
        let open = ctx
            .open
            .iter()
            .any(|k| k.order_id == terms.order_id && k.zone_id.as_str() == VICTIM_ZONE_ID);
        let judged = Judged {
            terms,
            tag_id: &fix.tag_id,
            device,
            his: Some(Sighting {
                fix,
                received_at_ms,
            }),
            hers: positions.get(&device.device_id),
            open,
            mark: ctx.silent.get(&terms.order_id).copied(),
        };
        let (n, edge_m) = judge_order(&judged, received_at_ms, ports).await?;
        queued += n;
        if let Some(d) = edge_m {
            compared.insert(terms.order_id.clone(), d);
        }
    }
    Ok((queued, compared))
}

/// Handles a position from her device; see the module documentation.
pub(crate) async fn handle_position<S: IngestStore, Q: AlertQueue, M: Metrics>(
    m: ReceivedPosition,
    ports: &Ports<S, Q, M>,
) -> Result<Outcome, IngestError> {
    let ReceivedPosition {
        device_id,
        position,
    } = m;
    let now_ms = position.received_at_ms;
    let Some(ctx) = ports.store.device_context(&device_id).await? else {
        let refused = RefusedPosition {
            device: device_id.to_string(),
            received_at_ms: now_ms,
            rejection: crate::Rejection {
                reason: "unknown_device".into(),
                detail: "no order names this device".into(),
            },
        };
        return quarantine_position(ports, &refused).await;
    };
    let longest_age_s = ctx
        .orders
        .iter()
        .filter_map(|o| o.terms.victim_device.as_ref())
        .map(|d| d.zone.max_position_age_s as i64)
        .max()
        .unwrap_or(300);
    let stored = ctx
        .latest
        .as_ref()
        .is_none_or(|kept| position.is_newer_than(kept))
        && ports
            .store
            .save_position(&device_id, &position, now_ms / 1000 + longest_age_s)
            .await?;
    if !stored {
        // A replay, or older than the position kept: it says nothing new about where she is.
        ports
            .metrics
            .count("MessageDuplicate", ("Channel", "position"), 1);
        return Ok(Outcome::Duplicate);
    }
    let mut queued = 0;
    for order in &ctx.orders {
        let Some(device) = order.terms.victim_device.as_ref() else {
            continue;
        };
        let his = order.history.fixes.first().map(|f| f.to_fix(&order.tag_id));
        let judged = Judged {
            terms: &order.terms,
            tag_id: &order.tag_id,
            device,
            his: his
                .as_ref()
                .zip(order.history.fixes.first())
                .map(|(fix, f)| Sighting {
                    fix,
                    received_at_ms: f.received_at_ms,
                }),
            hers: Some(&position),
            open: order.moving_zone_open,
            mark: order.silent,
        };
        queued += judge_order(&judged, now_ms, ports).await?.0;
    }
    if queued == 0 {
        let previous = ctx.latest.as_ref().map(|p| p.received_at_ms);
        queued +=
            crate::pursuit::check_device(&device_id, previous, now_ms, position.at_ms, &ctx, ports)
                .await?;
    }
    ports.metrics.count(
        "PositionsEvaluated",
        ("Orders", &ctx.orders.len().to_string()),
        1,
    );
    Ok(if queued == 0 {
        Outcome::Quiet
    } else {
        Outcome::Evaluated { events: queued }
    })
}

/// One order's two sides, as read.
struct Judged<'a> {
    terms: &'a OrderTerms,
    tag_id: &'a TagId,
    device: &'a VictimDevice,
    his: Option<Sighting<'a>>,
    hers: Option<&'a VictimPosition>,
    open: bool,
    mark: Option<Option<i64>>,
}

/// Pairs one order's two sides at `now_ms`: her device's silence told or ended, the moving
/// zone moved when they are compared and near or its alert is open. Returns the events
/// queued, and the distance from his fix to her moving zone's edge when they were compared.
async fn judge_order<S: IngestStore, Q: AlertQueue, M: Metrics>(
    j: &Judged<'_>,
    now_ms: i64,
    ports: &Ports<S, Q, M>,
) -> Result<(usize, Option<f64>), IngestError> {
    let order_id = &j.terms.order_id;
    let tag_id = j.tag_id;
    let pairing = match pair(order_id, &j.device.zone, j.his, j.hers, now_ms) {
        Ok(p) => p,
        Err(e) => {
            // The terms are checked when the order is made; a stored order that fails here
            // is counted and logged (no position), never a crash.
            warn!(order_id = %order_id, error = %e, "the moving zone's terms are invalid");
            ports
                .metrics
                .count("VictimZoneInvalid", ("Order", "any"), 1);
            return Ok((0, None));
        }
    };
    let mut queued = 0;
    let mut edge_m = None;
    if let Some(change) = silence_change(j.mark, &pairing) {
        // Queued first, then marked: a retry after a failed mark queues the same event id
        // again, which the alert function handles once.
        let event = change.event(order_id, tag_id, &j.device.device_id, now_ms);
        ports.queue.send(std::slice::from_ref(&event)).await?;
        queued += 1;
        match change {
            VictimSilence::Started { last_ms } => {
                ports
                    .store
                    .mark_victim_silent(tag_id, order_id, last_ms)
                    .await?;
            }
            VictimSilence::Ended { .. } => {
                ports.store.clear_victim_silent(tag_id, order_id).await?;
            }
        }
        let kind = if matches!(change, VictimSilence::Started { .. }) {
            "silent"
        } else {
            "back"
        };
        ports.metrics.count("VictimDevice", ("Change", kind), 1);
        info!(order_id = %order_id, change = kind, "victim device reporting changed: operators told");
    }
    if !matches!(pairing, Pairing::Compare { .. })
        && j.open
        && let Some(his) = j.his
        && !j.terms.in_force(his.fix.at_ms)
    {
        // The order ended with the moving zone open while the two sides cannot be compared
        // (her device silent): close it as a fixed zone closes, out of force.
        let zone = match closing_zone(order_id, &j.device.zone, his.fix) {
            Ok(z) => z,
            Err(e) => {
                warn!(order_id = %order_id, error = %e, "the moving zone's terms are invalid");
                return Ok((queued, None));
            }
        };
        queued += commit_with(
            ports,
            order_id,
            tag_id,
            |_| Vec::new(),
            |records, _| plan_moving_zone(j.terms, records, &zone, his.fix, now_ms, &ports.rules),
        )
        .await?;
    }
    if let Pairing::Compare { fix, zone } = &pairing {
        let assessment = assess(fix, zone, j.terms.in_force(fix.at_ms), &ports.rules);
        edge_m = Some(assessment.distance_m);
        let near = assessment.exit > AlertLevel::Clear;
        if near || j.open {
            queued += commit_with(
                ports,
                order_id,
                tag_id,
                |_| Vec::new(),
                |records, _| plan_moving_zone(j.terms, records, zone, fix, now_ms, &ports.rules),
            )
            .await?;
        }
    }
    Ok((queued, edge_m))
}

/// Logs (reason only), counts and keeps a refused message from a victim's device, without its
/// payload.
pub(crate) async fn quarantine_position<S: IngestStore, Q, M: Metrics>(
    ports: &Ports<S, Q, M>,
    refused: &RefusedPosition,
) -> Result<Outcome, IngestError> {
    let r = &refused.rejection;
    warn!(device = %refused.device, reason = %r.reason, "victim device message rejected");
    ports
        .metrics
        .count("MessageRejected", ("Reason", &r.reason), 1);
    ports
        .store
        .quarantine(&QuarantineRecord {
            tag_id: quarantine_key(&refused.device),
            received_at_ms: refused.received_at_ms,
            reason: r.reason.clone(),
            detail: r.detail.clone(),
            payload: "(withheld: a victim device's payload may hold her position)".into(),
        })
        .await?;
    Ok(Outcome::Rejected {
        reason: r.reason.clone(),
        operator_events: 0,
    })
}
