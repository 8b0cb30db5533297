//! Adaptive reporting in ingest ([`vigil_core::batching`]): from the newest fix of a message,
//! the batching window the tag may use, and a `reporting` event (ask `window`) to the alert
//! function, which alone commands devices, when it differs from the one the tag was told.
//!
//! - A tag told a window is judged on **every** message: the shrinking that keeps a breach
//!   from being seen late must never wait.
//! - A tag told none is judged at most every [`CHECK_EVERY_MS`] (the time is kept in its
//!   history, written anyway), so a tag near its zones costs a Query of its orders' zones a
//!   few times an hour, not per fix.
//! - The distances are to every zone of every order of the tag not ended, in force or still to
//!   come (an order coming into force while the tag batches is already counted).
//! - No window unless every such order allows it (`policy.adaptive_reporting`, on by
//!   default), in pursuit (any zone open), for an order whose victim carries a device (her
//!   moving zone is judged fix by fix), or without zones: those tags send every fix at once,
//!   as before. A tag told a window that one of these now forbids is told none on its next
//!   message; an operator's change ends it at once (vigil-admin, through the watchdog and
//!   the alert function), so no window judged without the change outlives it by more than
//!   the watchdog's minute.

use crate::{IngestError, Ports};
use vigil_aws::ports::{AlertQueue, IngestStore, Metrics, TagContext};
use vigil_core::Fix;
use vigil_core::batching::{self, Distances};
use vigil_core::events::{AlertBody, AlertEvent};
use vigil_core::reporting::{self, Ask, Commanded, Window};

/// How often a tag told no window is judged for one.
pub const CHECK_EVERY_MS: i64 = 10 * 60_000;

/// Judges the window for the tag that sent `fix` (its message's newest accepted fix) and asks
/// for a command when it changed; returns the events queued (0 or 1) and, when it judged,
/// the receive time to keep as [`vigil_core::TagHistory::window_checked_ms`].
pub(crate) async fn check<S: IngestStore, Q: AlertQueue, M: Metrics>(
    fix: &Fix,
    received_at_ms: i64,
    ctx: &TagContext,
    ports: &Ports<S, Q, M>,
) -> Result<(usize, Option<i64>), IngestError> {
    let in_force: Vec<_> = ctx
        .orders
        .iter()
        .filter(|o| o.in_force(received_at_ms))
        .collect();
    let says = in_force
        .iter()
        .map(|o| (&o.policy, ctx.open.iter().any(|k| k.order_id == o.order_id)));
    let Some(wanted) = reporting::wanted(says) else {
        return Ok((0, None));
    };
    let told = ctx.command.as_ref();
    let current = told.map_or(0, |c| c.batch_s);
    let due = ctx
        .history
        .window_checked_ms
        .is_none_or(|t| received_at_ms - t >= CHECK_EVERY_MS);
    if wanted.pursuit || (current == 0 && !due) {
        // In pursuit the change of rate already ended any window (the alert function's).
        return Ok((0, None));
    }
    // The window is judged against every order not ended: one still to come into force must
    // not find the tag batching without its zones when it does.
    let judged: Vec<_> = ctx
        .orders
        .iter()
        .filter(|o| {
            o.valid_until
                .is_none_or(|u| received_at_ms < u.timestamp_millis())
        })
        .collect();
    let allowed = judged.iter().all(|o| o.policy.adaptive_reporting);
    if !allowed && current == 0 {
        return Ok((0, None));
    }
    let d = if !allowed || judged.iter().any(|o| o.victim_device.is_some()) {
        Distances {
            to_buffer_m: None,
            to_victim: Some(None),
        }
    } else {
        let mut nearest: Option<f64> = None;
        for o in &judged {
            for z in ports.store.order_zones(&o.order_id).await? {
                let edge = z.distance_to_edge_m(fix.lat, fix.lon, f64::INFINITY);
                let m = (edge - z.buffer_m() - fix.accuracy_m).max(0.0);
                nearest = Some(nearest.map_or(m, |n| n.min(m)));
            }
        }
        Distances {
            to_buffer_m: nearest,
            to_victim: None,
        }
    };
    let w = batching::window_s(
        &ports.batching,
        &d,
        wanted.report_interval_s,
        received_at_ms - fix.at_ms,
        current,
        false,
    );
    if w == current {
        return Ok((0, Some(received_at_ms)));
    }
    let Some(order_id) = told
        .map(|c| &c.order_id)
        .or(in_force.first().map(|o| &o.order_id))
    else {
        return Ok((0, Some(received_at_ms)));
    };
    let device = Commanded::Tag(fix.tag_id.clone());
    let event = AlertEvent {
        event_id: format!("{}:w{w}", AlertEvent::reporting_id(&device, received_at_ms)),
        order_id: order_id.clone(),
        tag_id: fix.tag_id.clone(),
        at_ms: fix.at_ms,
        received_at_ms,
        body: AlertBody::Reporting {
            device,
            ask: Ask::Window,
            sent_at_ms: told.map(|c| c.sent_at_ms),
            window: Some(Window {
                batch_s: w,
                basis_ms: received_at_ms,
            }),
        },
    };
    ports.queue.send(std::slice::from_ref(&event)).await?;
    let direction = if w < current { "shorter" } else { "longer" };
    ports
        .metrics
        .count("WindowAsks", ("Direction", direction), 1);
    Ok((1, Some(received_at_ms)))
}
