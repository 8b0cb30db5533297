//! Pursuit mode's check in ingest ([`vigil_core::reporting::check`]): on every accepted fix
//! and position, from what was already read (the tag's or the device's item: its orders, open
//! zones and last command; the previous message's receive time), whether the device's
//! reporting disagrees with what the state asks for. If so, one `reporting` event asks the
//! alert function, which alone sends commands, to decide again. Nothing is written
//! otherwise: the quiet path stays one read and no write.
//!
//! A message that moved a zone skips the check: the zone change it queued makes the alert
//! function decide anyway.

use crate::{IngestError, Ports};
use vigil_aws::ports::{AlertQueue, DeviceContext, Metrics, TagContext};
use vigil_core::events::{AlertBody, AlertEvent};
use vigil_core::reporting::{self, Commanded, ReportingCommand, Wanted};
use vigil_core::{DeviceId, Fix, OrderId, TagId};

/// Checks the tag that sent `fix`, the newest of the `fixes` accepted fixes of its message,
/// with `previous_ms` the receive time of its previous message; returns the number of events
/// queued (0 or 1).
pub(crate) async fn check_tag<S, Q: AlertQueue, M: Metrics>(
    fix: &Fix,
    previous_ms: Option<i64>,
    fixes: usize,
    received_at_ms: i64,
    ctx: &TagContext,
    ports: &Ports<S, Q, M>,
) -> Result<usize, IngestError> {
    let says = ctx
        .orders
        .iter()
        .filter(|o| o.in_force(received_at_ms))
        .map(|o| (&o.policy, ctx.open.iter().any(|k| k.order_id == o.order_id)));
    let Some(wanted) = reporting::wanted(says) else {
        return Ok(0);
    };
    let fallback = ctx
        .open
        .first()
        .map(|k| &k.order_id)
        .or(ctx.orders.first().map(|o| &o.order_id));
    let ask = Ask {
        device: Commanded::Tag(fix.tag_id.clone()),
        tag_id: &fix.tag_id,
        wanted,
        told: ctx.command.as_ref(),
        fallback,
        at_ms: fix.at_ms,
    };
    ask.send_if_needed(previous_ms, fixes, received_at_ms, ports)
        .await
}

/// Checks her device after an accepted position; returns the number of events queued.
pub(crate) async fn check_device<S, Q: AlertQueue, M: Metrics>(
    device_id: &DeviceId,
    previous_ms: Option<i64>,
    received_at_ms: i64,
    at_ms: i64,
    ctx: &DeviceContext,
    ports: &Ports<S, Q, M>,
) -> Result<usize, IngestError> {
    let in_force = || {
        ctx.orders
            .iter()
            .filter(move |o| o.terms.in_force(received_at_ms))
    };
    let Some(wanted) = reporting::wanted(in_force().map(|o| (&o.terms.policy, o.open))) else {
        return Ok(0);
    };
    let first = in_force().find(|o| o.open).or(in_force().next());
    let Some(order) = first else {
        return Ok(0);
    };
    let ask = Ask {
        device: Commanded::VictimDevice(device_id.clone()),
        tag_id: &order.tag_id,
        wanted,
        told: ctx.command.as_ref(),
        fallback: Some(&order.terms.order_id),
        at_ms,
    };
    ask.send_if_needed(previous_ms, 1, received_at_ms, ports)
        .await
}

/// One device's check.
struct Ask<'a> {
    device: Commanded,
    /// The offender's tag of the order the event goes to.
    tag_id: &'a TagId,
    wanted: Wanted,
    told: Option<&'a ReportingCommand>,
    /// The order the event goes to when the device was never told anything.
    fallback: Option<&'a OrderId>,
    /// Device time of the message.
    at_ms: i64,
}

impl Ask<'_> {
    async fn send_if_needed<S, Q: AlertQueue, M: Metrics>(
        self,
        previous_ms: Option<i64>,
        fixes: usize,
        received_at_ms: i64,
        ports: &Ports<S, Q, M>,
    ) -> Result<usize, IngestError> {
        let Some(ask) =
            reporting::check(&self.wanted, self.told, previous_ms, fixes, received_at_ms)
        else {
            return Ok(0);
        };
        // The order whose chain records the command: the one that asked for the last one.
        let Some(order_id) = self.told.map(|c| &c.order_id).or(self.fallback) else {
            return Ok(0);
        };
        let event = AlertEvent {
            event_id: AlertEvent::reporting_id(&self.device, received_at_ms),
            order_id: order_id.clone(),
            tag_id: self.tag_id.clone(),
            at_ms: self.at_ms,
            received_at_ms,
            body: AlertBody::Reporting {
                device: self.device,
                ask,
                sent_at_ms: self.told.map(|c| c.sent_at_ms),
                window: None,
            },
        };
        ports.queue.send(std::slice::from_ref(&event)).await?;
        ports.metrics.count("ReportingAsks", ("Ask", ask.name()), 1);
        Ok(1)
    }
}
