//! Pursuit mode in the alert function: after a zone change, and when ingest asks, the tag
//! and her device are told the reporting rate the current state asks for
//! ([`vigil_core::reporting`]); after an operator's change to one of its orders (an ask the
//! watchdog queues for vigil-admin), the tag is told to end any batching window at once.
//!
//! Per device: read its orders' states and the command it was last sent (consistently);
//! decide; keep the new command with a write conditional on the one read (two handlers
//! deciding at once publish once: the loser re-reads and finds nothing to do); publish it,
//! retained, on the device's `cmd` topic. A failed publish puts the previous command back, so
//! ingest's check sees the state and the command disagree and asks again on the device's
//! next message; the failure is counted and reported to operators, never lost silently.

use vigil_aws::StoreError;
use vigil_aws::ports::{Commander, Metrics, ReportingStore};
use vigil_core::events::{AlertBody, AlertEvent};
use vigil_core::operator::CommandReport;
use vigil_core::reporting::{self, Ask, Commanded, ReportingCommand, Wanted};
use vigil_core::{OrderPolicy, TagId};

/// Attempts at keeping a command before giving up as a conflict.
const SAVE_ATTEMPTS: u32 = 4;

/// The devices whose rate an event may change: a zone change's tag and, when the order's
/// victim carries one, her device; an ask's own device. Other events change no rate.
pub(crate) async fn devices_of<S: ReportingStore>(
    event: &AlertEvent,
    store: &S,
) -> Result<Vec<Commanded>, StoreError> {
    match &event.body {
        AlertBody::ZoneChange { .. } => {
            let mut out = vec![Commanded::Tag(event.tag_id.clone())];
            if let Some(tag) = store.tag_reporting(&event.tag_id).await? {
                out.extend(
                    tag.orders
                        .iter()
                        .filter(|o| o.order_id == event.order_id)
                        .filter_map(|o| o.victim_device.as_ref())
                        .map(|d| Commanded::VictimDevice(d.device_id.clone())),
                );
            }
            Ok(out)
        }
        AlertBody::Reporting { device, .. } => Ok(vec![device.clone()]),
        _ => Ok(Vec::new()),
    }
}

/// What the device should do and what it was last told, on the current state; `None` for a
/// device that no longer exists.
async fn read<S: ReportingStore>(
    device: &Commanded,
    store: &S,
    now_ms: i64,
) -> Result<Option<(Wanted, Option<ReportingCommand>)>, StoreError> {
    let default = OrderPolicy::default();
    let fallback = || reporting::wanted([(&default, false)]).expect("one order");
    match device {
        Commanded::Tag(tag_id) => {
            let Some(tag) = store.tag_reporting(tag_id).await? else {
                return Ok(None);
            };
            let says = tag.orders.iter().filter(|o| o.in_force(now_ms)).map(|o| {
                let open = tag.open.iter().any(|k| k.order_id == o.order_id);
                (&o.policy, open)
            });
            // No order in force: the normal rate of a tag with no special terms.
            let wanted = reporting::wanted(says).unwrap_or_else(fallback);
            Ok(Some((wanted, tag.command)))
        }
        Commanded::VictimDevice(device_id) => {
            let Some(dev) = store.device_reporting(device_id).await? else {
                return Ok(None);
            };
            let mut says: Vec<(OrderPolicy, bool)> = Vec::new();
            let mut tags: Vec<&TagId> = dev.orders.iter().map(|(_, t)| t).collect();
            tags.dedup();
            for tag_id in tags {
                let Some(tag) = store.tag_reporting(tag_id).await? else {
                    continue;
                };
                for o in tag.orders.iter().filter(|o| {
                    o.in_force(now_ms)
                        && o.victim_device
                            .as_ref()
                            .is_some_and(|d| &d.device_id == device_id)
                        && dev
                            .orders
                            .iter()
                            .any(|(id, t)| id == &o.order_id && t == tag_id)
                }) {
                    let open = tag.open.iter().any(|k| k.order_id == o.order_id);
                    says.push((o.policy.clone(), open));
                }
            }
            let wanted =
                reporting::wanted(says.iter().map(|(p, open)| (p, *open))).unwrap_or_else(fallback);
            Ok(Some((wanted, dev.command)))
        }
    }
}

/// Tells each of `devices` the rate the current state asks for, if it was told another, or
/// again when ingest saw it ignore its command; returns what was sent (and failed).
///
/// Fails only on a store error (the event is retried; a retry re-decides on the state then,
/// so nothing is sent twice for one change).
pub(crate) async fn reconcile<S, C, M>(
    event: &AlertEvent,
    devices: &[Commanded],
    store: &S,
    commander: &C,
    metrics: &M,
    now_ms: i64,
) -> Result<Vec<CommandReport>, StoreError>
where
    S: ReportingStore,
    C: Commander,
    M: Metrics,
{
    let mut reports = Vec::new();
    for device in devices {
        let ask = match &event.body {
            AlertBody::Reporting {
                device: asked,
                ask,
                sent_at_ms,
                window,
            } if asked == device => Some((*ask, *sent_at_ms, *window)),
            _ => None,
        };
        let (resend, window) = match ask {
            Some((Ask::Ignored, sent_at_ms, _)) => (sent_at_ms, None),
            Some((Ask::Window, _, window)) => (None, window),
            _ => (None, None),
        };
        let changed = matches!(ask, Some((Ask::OrderChanged, _, _)));
        for attempt in 0..SAVE_ATTEMPTS {
            let Some((wanted, told)) = read(device, store, now_ms).await? else {
                break;
            };
            // An operator's change ends any window, at the rate the state asks for. Else a
            // change of rate first (it ends any window); else the window ingest judged.
            let decided = if changed {
                Some(reporting::after_change(&wanted, &event.order_id, now_ms))
            } else {
                reporting::next_command(&wanted, told.as_ref(), resend, &event.order_id, now_ms)
                    .or_else(|| {
                        window.and_then(|w| {
                            reporting::next_window(
                                &wanted,
                                told.as_ref(),
                                w,
                                &event.order_id,
                                now_ms,
                            )
                        })
                    })
            };
            let Some((next, reason)) = decided else {
                break;
            };
            match store.save_command(device, Some(&next), told.as_ref()).await {
                Ok(()) => {}
                Err(StoreError::Conflict { .. }) if attempt + 1 < SAVE_ATTEMPTS => continue,
                Err(e) => return Err(e),
            }
            let payload = reporting::payload(&next);
            let failed = match commander.publish(&device.topic(), &payload).await {
                Ok(()) => {
                    metrics.count("CommandsSent", ("Reason", reason.name()), 1);
                    None
                }
                Err(e) => {
                    metrics.count("CommandFailed", ("Reason", e.kind()), 1);
                    tracing::warn!(device = %device, error = %e, "reporting command not published");
                    // Put back what the device was told, so ingest's check asks again.
                    if let Err(undo) = store.save_command(device, told.as_ref(), Some(&next)).await
                    {
                        tracing::warn!(device = %device, error = %undo, "reporting command kept although not published");
                    }
                    Some(e.to_string())
                }
            };
            reports.push(CommandReport {
                device: device.clone(),
                report_interval_s: next.report_interval_s,
                reason,
                attempts: next.attempts,
                failed,
            });
            break;
        }
    }
    Ok(reports)
}

/// Whether a report is the last attempt at a command: the device ignored every one.
pub(crate) fn gave_up(report: &CommandReport) -> bool {
    report.failed.is_none() && report.attempts >= reporting::MAX_ATTEMPTS
}
