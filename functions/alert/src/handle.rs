//! One alert event, handled idempotently by its id and content.

use crate::audit::{self, SmsSent};
use crate::redact::redact_phone;
use crate::{AlertError, CLAIM_STALE_AFTER_MS, Outcome, Ports, pursuit};
use tracing::{info, warn};
use vigil_aws::StoreError;
use vigil_aws::ports::{
    AlertStore, AuditEntry, AuditLog, Claim, Commander, DestinationMac, EscalationStore, Metrics,
    Notifier, ReportingStore,
};
use vigil_core::events::{AlertBody, AlertEvent};
use vigil_core::operator::{CommandReport, OperatorEvent, OperatorKind};
use vigil_core::policy::{self, Decision, Hold, Moment};
use vigil_core::watchdog::Condition;
use vigil_core::{
    AlertLevel, OrderPolicy, Urgency, VictimDecision, ZoneKind, escalation, messages,
};

/// Handles one alert event at `now_ms`, idempotently by its id: claim (bound to the event's
/// content), order, notices, the order's current level, decision, victim SMS (or a held
/// one), notices saved, operator event, audit records, finish.
///
/// Returns [`Outcome::Duplicate`] when the id was already handled with the same content.
/// Fails with [`AlertError::InProgress`] while another delivery holds a fresh claim,
/// [`AlertError::UnknownOrder`] when the order does not exist, and [`AlertError::Store`] when
/// a port fails (SNS errors have the victim's number redacted). A claim found written for
/// other content is taken over, raised to operators as urgent (`claim_mismatch`), audited
/// and counted, and the event is handled: a planted claim cannot silence an alert.
pub async fn handle_event<S, N, D, M, C>(
    event: &AlertEvent,
    ports: &Ports<S, N, D, M, C>,
    now_ms: i64,
) -> Result<Outcome, AlertError>
where
    S: AlertStore + AuditLog + ReportingStore + EscalationStore,
    N: Notifier,
    D: DestinationMac,
    M: Metrics,
    C: Commander,
{
    let event_id = event.event_id.as_str();
    let digest = event.content_digest();
    let mismatch = match ports
        .store
        .claim(event_id, &digest, now_ms, CLAIM_STALE_AFTER_MS)
        .await
    {
        Ok(Claim::Claimed) => None,
        Ok(Claim::Done) => {
            ports
                .metrics
                .count("AlertDuplicate", ("Type", event.type_name()), 1);
            info!(event_id, order_id = %event.order_id, "duplicate alert event skipped");
            return Ok(Outcome::Duplicate);
        }
        Ok(Claim::Mismatch { stored_digest }) => Some(stored_digest),
        Err(StoreError::Conflict { .. }) => return Err(AlertError::InProgress(event_id.into())),
        Err(e) => return Err(e.into()),
    };
    let result = handle_claimed(event, &digest, mismatch.as_deref(), ports, now_ms).await;
    if let Err(e) = &result {
        // Let the redelivery take the event at once. If releasing fails too, the claim goes
        // stale within CLAIM_STALE_AFTER_MS instead.
        if let Err(release_err) = ports.store.release(event_id).await {
            warn!(event_id, reason = e.reason(), release_error = %release_err, "claim not released");
        }
    }
    result
}

/// The decision for operators-only events, by what they are.
fn operators_only(event: &AlertEvent) -> Urgency {
    match &event.body {
        AlertBody::RejectedNearZone { entry, .. } if *entry == AlertLevel::Breach => {
            Urgency::Urgent
        }
        // Her device reports again: for the record.
        AlertBody::VictimDevice { silent: false, .. } => Urgency::Info,
        _ => Urgency::High,
    }
}

/// The steps after a successful claim.
async fn handle_claimed<S, N, D, M, C>(
    event: &AlertEvent,
    digest: &str,
    mismatch: Option<&str>,
    ports: &Ports<S, N, D, M, C>,
    now_ms: i64,
) -> Result<Outcome, AlertError>
where
    S: AlertStore + AuditLog + ReportingStore + EscalationStore,
    N: Notifier,
    D: DestinationMac,
    M: Metrics,
    C: Commander,
{
    let Ports {
        store,
        notifier,
        destination_mac,
        metrics,
        sms_countries,
        commander,
        ..
    } = ports;
    let event_id = event.event_id.as_str();
    let order_id = &event.order_id;
    match &event.body {
        AlertBody::Reporting { .. } => return handle_ask(event, digest, ports, now_ms).await,
        AlertBody::Escalation { .. } => {
            return handle_escalation(event, digest, ports, now_ms).await;
        }
        _ => {}
    }

    let order = store
        .order(order_id)
        .await?
        .ok_or_else(|| AlertError::UnknownOrder(order_id.clone()))?;
    let phone = &order.victim.phone;
    let (notices, rev) = store.notices(order_id).await?;
    let level_now = match &event.body {
        AlertBody::ZoneChange { .. } => Some(store.order_level(order_id).await?),
        _ => None,
    };
    let at = Moment {
        now_ms,
        received_at_ms: event.received_at_ms,
        current_level: level_now,
    };
    let late = now_ms - event.received_at_ms > order.policy.max_event_age_s as i64 * 1000;
    let (mut decision, mut next_notices) = match &event.body {
        AlertBody::ZoneChange { change, .. } => {
            policy::decide(change, &order.policy, &notices, &at)
        }
        AlertBody::TagEvent { kind, .. } => {
            policy::decide_tag_event(*kind, &order.policy, &notices, &at)
        }
        // The watchdog: the victim hears of lost contact near her zones, and of its return
        // if she heard of the loss.
        AlertBody::Watch {
            condition,
            started,
            near,
            ..
        } if condition.loses_contact() => {
            if *started {
                policy::decide_tag_silent(near.is_some(), &order.policy, &notices, &at)
            } else {
                policy::decide_contact_restored(&order.policy, &notices, &at)
            }
        }
        // A strap still cut, a battery still low: operators (the tag's own event already
        // told the victim what her order allows).
        AlertBody::Watch {
            condition, started, ..
        } => (
            Decision {
                victim: VictimDecision::Nothing,
                urgency: match (condition, started) {
                    (_, false) => Urgency::Info,
                    (Condition::Tamper, true) => Urgency::Urgent,
                    _ => Urgency::High,
                },
            },
            notices.clone(),
        ),
        AlertBody::RejectedNearZone { .. }
        | AlertBody::MessageConflict { .. }
        | AlertBody::VictimDevice { .. }
        | AlertBody::Reporting { .. }
        | AlertBody::Escalation { .. } => (
            Decision {
                victim: VictimDecision::Nothing,
                urgency: operators_only(event),
            },
            notices.clone(),
        ),
    };
    if let VictimDecision::Send { alert } = decision.victim
        && !phone.in_countries(sms_countries)
    {
        // Never text a number outside the deployment's countries; somebody must call.
        decision.victim = VictimDecision::Held {
            alert,
            hold: Hold::Destination,
        };
        decision.urgency = Urgency::Urgent;
        next_notices = notices.clone();
    }

    let mut entries = Vec::new();
    if let Some(stored) = mismatch {
        metrics.count("ClaimMismatch", ("Type", event.type_name()), 1);
        warn!(event_id, order_id = %order_id, "claim for this event id held other content: handled anyway");
        entries.push(audit::claim_mismatch(event, digest, stored));
        decision.urgency = Urgency::Urgent;
    }
    entries.push(audit::event_record(event, digest));
    match decision.victim {
        VictimDecision::Send { alert } => {
            let (zone_kind, fix) = match &event.body {
                AlertBody::ZoneChange { zone_kind, fix, .. } => (*zone_kind, Some(fix)),
                AlertBody::Watch {
                    near: Some(near), ..
                } => (near.zone_kind, None),
                _ => (ZoneKind::Other, None),
            };
            let text = messages::render_for_order(alert, &order, zone_kind, fix);
            // Hash before sending: once the SMS is out, nothing may stop its audit record.
            let to_mac = destination_mac
                .mac(phone)
                .await
                .map_err(|e| redact_phone(e, phone))?;
            let sender = ports
                .forces
                .as_deref()
                .zip(order.force_id.as_ref())
                .and_then(|(forces, f)| forces.get(f))
                .and_then(|f| f.sms_sender_id.as_deref());
            let message_id = notifier
                .send_sms(phone, &text, sender)
                .await
                .map_err(|e| redact_phone(e, phone))?;
            metrics.count_each(
                "SmsSent",
                &[
                    ("Alert", alert.name()),
                    crate::forces::force_dimension(order.force_id.as_ref()),
                ],
                1,
            );
            entries.push(audit::sms_sent(&SmsSent {
                event_id,
                alert,
                to: phone.redacted(),
                to_mac: &to_mac,
                message_id: &message_id,
                text: &text,
            }));
        }
        VictimDecision::Held { alert, hold } => {
            metrics.count("SmsHeld", ("Reason", hold.name()), 1);
            entries.push(audit::sms_held(event_id, alert, hold));
        }
        VictimDecision::Nothing => {}
    }
    store.append(order_id, &entries, now_ms).await?;
    // Nothing to write when the victim's notices did not change (most operator-only events).
    if next_notices != notices {
        store
            .save_notices(order_id, &next_notices, rev)
            .await
            .map_err(|e| redact_phone(e, phone))?;
    }

    // Pursuit mode, once the victim's SMS and notices are safe: a failure here retries the
    // event, and the retry finds the SMS already counted in her notices.
    let devices = pursuit::devices_of(event, store).await?;
    let commands = pursuit::reconcile(event, &devices, store, commander, metrics, now_ms).await?;

    let mut operator = OperatorEvent::new(event, &decision, late, level_now);
    operator.force_id = order.force_id.clone();
    if mismatch.is_some() {
        operator.kinds.push(OperatorKind::ClaimMismatch);
    }
    let command_entries = with_commands(&mut operator, event_id, commands);
    let victim_sms = decision.victim.label();
    let told = tell_operators(
        ports,
        event,
        &operator,
        Some(&order.policy),
        &victim_sms,
        late,
        now_ms,
    )
    .await?;
    let mut entries = command_entries;
    entries.push(told);
    store.append(order_id, &entries, now_ms).await?;

    store.finish(event_id, now_ms).await?;
    let kinds: Vec<String> = operator.kinds.iter().map(ToString::to_string).collect();
    info!(
        event_id,
        order_id = %order_id,
        kinds = ?kinds,
        urgency = operator.urgency.name(),
        decision = %victim_sms,
        late,
        "alert event handled"
    );
    Ok(Outcome::Handled {
        victim: decision.victim,
        urgency: operator.urgency,
        kinds,
    })
}

/// Tells operators of `event`: arms its escalation first when it is urgent (under `policy`,
/// the order's; once operators are told, nothing may stop the escalation), publishes the
/// operator event and counts it. Returns the `operator_notified` audit record, for the caller
/// to append with its own.
async fn tell_operators<S, N, D, M, C>(
    ports: &Ports<S, N, D, M, C>,
    event: &AlertEvent,
    operator: &OperatorEvent,
    policy: Option<&OrderPolicy>,
    victim_sms: &str,
    late: bool,
    now_ms: i64,
) -> Result<AuditEntry, AlertError>
where
    S: EscalationStore,
    N: Notifier,
    M: Metrics,
{
    if let Some(armed) =
        policy.and_then(|p| escalation::next(event, &operator.kind, operator.urgency, p, now_ms))
    {
        ports.store.arm_escalation(&armed).await?;
    }
    let message_id = ports.notifier.publish_operator(operator).await?;
    let force = operator.force_id.as_ref();
    ports.metrics.count_each(
        "OperatorEvents",
        &[
            ("Urgency", operator.urgency.name()),
            crate::forces::force_dimension(force),
        ],
        1,
    );
    let mut told = audit::operator_notified(event, operator.urgency, &message_id, victim_sms, late);
    if let Some(forces) = ports.forces.as_deref() {
        let routed =
            crate::forces::tell_forces(&ports.notifier, &ports.metrics, forces, operator).await?;
        if !routed.is_empty() {
            told.detail["routed_to_forces"] = serde_json::json!(routed);
        }
    }
    Ok(told)
}

/// Adds the reporting commands sent to the operator event (a device that ignored every
/// attempt raises it to high) and returns their audit records.
fn with_commands(
    operator: &mut OperatorEvent,
    event_id: &str,
    commands: Vec<CommandReport>,
) -> Vec<AuditEntry> {
    let entries = commands
        .iter()
        .map(|c| audit::command_sent(event_id, c))
        .collect();
    if commands.iter().any(|c| c.failed.is_none())
        && !operator.kinds.contains(&OperatorKind::ReportingCommand)
    {
        operator.kinds.push(OperatorKind::ReportingCommand);
    }
    if commands.iter().any(pursuit::gave_up) {
        operator.kinds.push(OperatorKind::DeviceIgnoresCommands);
        operator.urgency = operator.urgency.max(Urgency::High);
    }
    operator.commands = commands;
    entries
}

/// Ingest's ask about a device's reporting: decide again on the current state; when a
/// command goes out, audit it in the order's chain and tell operators (info, or high when the
/// device ignored every attempt). An ask that leads to nothing (another handler already
/// sent the command) only finishes.
async fn handle_ask<S, N, D, M, C>(
    event: &AlertEvent,
    digest: &str,
    ports: &Ports<S, N, D, M, C>,
    now_ms: i64,
) -> Result<Outcome, AlertError>
where
    S: AlertStore + AuditLog + ReportingStore + EscalationStore,
    N: Notifier,
    D: DestinationMac,
    M: Metrics,
    C: Commander,
{
    let Ports {
        store,
        commander,
        metrics,
        ..
    } = ports;
    let event_id = event.event_id.as_str();
    let devices = pursuit::devices_of(event, store).await?;
    let commands = pursuit::reconcile(event, &devices, store, commander, metrics, now_ms).await?;
    if commands.is_empty() {
        store.finish(event_id, now_ms).await?;
        return Ok(Outcome::Handled {
            victim: VictimDecision::Nothing,
            urgency: Urgency::Info,
            kinds: Vec::new(),
        });
    }
    let decision = Decision {
        victim: VictimDecision::Nothing,
        urgency: Urgency::Info,
    };
    let mut operator = OperatorEvent::new(event, &decision, false, None);
    operator.force_id = store.order(&event.order_id).await?.and_then(|o| o.force_id);
    operator.kinds.clear();
    let mut entries = vec![audit::event_record(event, digest)];
    entries.extend(with_commands(&mut operator, event_id, commands));
    if operator.kinds.is_empty() {
        // Every publish failed: operators hear of it in the event's commands.
        operator.kinds.push(OperatorKind::ReportingCommand);
    }
    operator.kind = operator.kinds[0].clone();
    store.append(&event.order_id, &entries, now_ms).await?;
    // Never urgent (a device that ignores commands is high): nothing to escalate.
    let told = tell_operators(ports, event, &operator, None, "none", false, now_ms).await?;
    store.append(&event.order_id, &[told], now_ms).await?;
    store.finish(event_id, now_ms).await?;
    let kinds: Vec<String> = operator.kinds.iter().map(ToString::to_string).collect();
    info!(event_id, order_id = %event.order_id, kinds = ?kinds, "reporting ask handled");
    Ok(Outcome::Handled {
        victim: VictimDecision::Nothing,
        urgency: operator.urgency,
        kinds,
    })
}

/// An escalation the watchdog queued: if an acknowledgement in the order's audit chain covers
/// the urgent event, it stops (nothing is sent); otherwise operators are told again
/// (`unacknowledged`, urgent), it is audited, and the next one is armed `renotify_every_s`
/// later.
async fn handle_escalation<S, N, D, M, C>(
    event: &AlertEvent,
    digest: &str,
    ports: &Ports<S, N, D, M, C>,
    now_ms: i64,
) -> Result<Outcome, AlertError>
where
    S: AlertStore + AuditLog + ReportingStore + EscalationStore,
    N: Notifier,
    D: DestinationMac,
    M: Metrics,
    C: Commander,
{
    let Ports { store, metrics, .. } = ports;
    let event_id = event.event_id.as_str();
    let order_id = &event.order_id;
    let AlertBody::Escalation {
        original_id,
        zone_id,
        count,
        ..
    } = &event.body
    else {
        unreachable!("handle_escalation takes escalations")
    };
    let order = store
        .order(order_id)
        .await?
        .ok_or_else(|| AlertError::UnknownOrder(order_id.clone()))?;
    let chain = store.read(order_id).await?;
    if let Some(ack) = escalation::acknowledgement(&chain, original_id, zone_id.as_ref()) {
        metrics.count("EscalationStopped", ("Function", "alert"), 1);
        store.finish(event_id, now_ms).await?;
        info!(event_id, order_id = %order_id, acknowledged_in = ack.seq, "acknowledged: escalation stops");
        return Ok(Outcome::Handled {
            victim: VictimDecision::Nothing,
            urgency: Urgency::Info,
            kinds: Vec::new(),
        });
    }
    let decision = Decision {
        victim: VictimDecision::Nothing,
        urgency: Urgency::Urgent,
    };
    let late = now_ms - event.received_at_ms > order.policy.max_event_age_s as i64 * 1000;
    let mut operator = OperatorEvent::new(event, &decision, late, None);
    operator.force_id = order.force_id.clone();
    store
        .append(order_id, &[audit::event_record(event, digest)], now_ms)
        .await?;
    let told = tell_operators(
        ports,
        event,
        &operator,
        Some(&order.policy),
        "none",
        late,
        now_ms,
    )
    .await?;
    metrics.count("Escalations", ("Function", "alert"), 1);
    store.append(order_id, &[told], now_ms).await?;
    store.finish(event_id, now_ms).await?;
    warn!(event_id, order_id = %order_id, original = %original_id, count, "urgent alert not acknowledged: operators told again");
    Ok(Outcome::Handled {
        victim: VictimDecision::Nothing,
        urgency: operator.urgency,
        kinds: vec![OperatorKind::Unacknowledged.to_string()],
    })
}
