//! The ingest Lambda: every message a tag publishes arrives here through the IoT rule.
//!
//! # Layout
//! - [`RuleEvent`]: the event the rule (`infra/rules/ingest.sql`) gives the Lambda.
//! - [`handle`]: the handler, generic over the ports ([`IngestStore`], [`AlertQueue`],
//!   [`Metrics`]); returns what happened or an error that says whether a retry can help.
//! - Steps of a fix: decode and validate; read the tag's orders and the zones of the fix's cells
//!   in one request; judge the zones in memory; stop there when nothing is near (the quiet path:
//!   one read, no write); otherwise check the speed against the tag's previous fixes, then per
//!   order move the zone states with a conditional, atomic commit (states, open set, audit,
//!   outbox), queue the alert events and clear the outbox.
//!
//! Bad input (undecodable event, malformed payload, out-of-range values, impossible speed,
//! unknown tag) is logged with its reason (no personal data), counted as the metric
//! `MessageRejected{Reason}`, kept in the quarantine table, and acknowledged: IoT must not retry
//! a poison message. Throttling and outages are returned as retryable errors.

use base64::Engine;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use tracing::{info, warn};
use vigil_aws::StoreError;
use vigil_aws::ports::{
    AlertQueue, AuditEntry, Commit, IngestStore, Metrics, OrderSummary, QuarantineRecord,
    StateWrite,
};
use vigil_core::cells::cover_disc;
use vigil_core::evaluate::{AlertLevel, BreachRules, assess};
use vigil_core::events::{AlertBody, AlertEvent};
use vigil_core::fix::{self, FixError, check_motion, parse_event, parse_fix};
use vigil_core::state::ZoneState;
use vigil_core::watch::apply_fix;
use vigil_core::{Fix, OrderId, TagEvent, TagId, ValidationLimits, Zone, ZoneId};

/// Attempts at an order's commit before giving up as a conflict (Lambda retries the event).
const COMMIT_ATTEMPTS: usize = 5;
/// How much of a rejected payload is kept.
const QUARANTINE_PAYLOAD_BYTES: usize = 4096;

/// The event the IoT rule sends (see `infra/rules/ingest.sql`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RuleEvent {
    /// The raw MQTT payload, base64.
    pub payload: String,
    /// `topic(2)`: the tag's thing name.
    pub tag_id: String,
    /// `topic(3)`: `fix` or `event`.
    pub channel: String,
    /// `timestamp()`: when IoT Core received the message, Unix ms.
    pub received_at: i64,
}

/// The ports the handler uses, and its settings.
pub struct Ports<S, Q, M> {
    /// Tables.
    pub store: S,
    /// The alert queue.
    pub queue: Q,
    /// Counters.
    pub metrics: M,
    /// Validation limits.
    pub limits: ValidationLimits,
    /// Breach thresholds.
    pub rules: BreachRules,
}

/// What one message led to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A fix near nothing: one read, no write.
    Quiet,
    /// A fix near a zone or with an open alert: states written, `events` alert events queued.
    Evaluated {
        /// Alert events queued.
        events: usize,
    },
    /// A tag event queued for `orders` orders.
    TagEvent {
        /// Orders it was queued for.
        orders: usize,
    },
    /// Rejected and quarantined.
    Rejected {
        /// The reason code.
        reason: String,
    },
}

/// An error the Lambda returns; [`IngestError::is_retryable`] tells the runtime's caller.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// A port failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IngestError {
    /// Whether IoT/Lambda should retry the event.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store(e) => e.is_retryable(),
        }
    }

    /// The Lambda error type: `Retryable` or `Permanent`.
    pub fn error_type(&self) -> &'static str {
        if self.is_retryable() {
            "Retryable"
        } else {
            "Permanent"
        }
    }
}

struct Rejection {
    reason: String,
    detail: String,
}

impl From<FixError> for Rejection {
    fn from(e: FixError) -> Self {
        Rejection {
            reason: e.reason().to_owned(),
            detail: e.to_string(),
        }
    }
}

fn truncate_utf8(bytes: &[u8]) -> String {
    let end = bytes.len().min(QUARANTINE_PAYLOAD_BYTES);
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

async fn reject<S: IngestStore, Q, M: Metrics>(
    ports: &Ports<S, Q, M>,
    tag_id: &str,
    received_at_ms: i64,
    rejection: Rejection,
    payload: &[u8],
) -> Result<Outcome, IngestError> {
    // The tag id comes from the topic: an offender-side identifier, never victim data.
    warn!(tag_id, reason = %rejection.reason, detail = %rejection.detail, "message rejected");
    ports
        .metrics
        .count("MessageRejected", ("Reason", &rejection.reason), 1);
    ports
        .store
        .quarantine(&QuarantineRecord {
            tag_id: tag_id.chars().take(128).collect(),
            received_at_ms,
            reason: rejection.reason.clone(),
            detail: rejection.detail,
            payload: truncate_utf8(payload),
        })
        .await?;
    Ok(Outcome::Rejected {
        reason: rejection.reason,
    })
}

/// Handles one event from the IoT rule. `event` is the raw JSON, so that an event that does not
/// even have the rule's shape is quarantined rather than failing the invocation.
pub async fn handle<S: IngestStore, Q: AlertQueue, M: Metrics>(
    event: serde_json::Value,
    ports: &Ports<S, Q, M>,
) -> Result<Outcome, IngestError> {
    let raw_tag = event
        .get("tag_id")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_owned();
    let received_at_ms = event
        .get("received_at")
        .and_then(|v| v.as_i64())
        .unwrap_or(0);
    let rule_event: RuleEvent = match serde_json::from_value(event) {
        Ok(e) => e,
        Err(e) => {
            let r = Rejection {
                reason: "bad_event".into(),
                detail: format!("event is not the rule's shape: {e}"),
            };
            return reject(ports, &raw_tag, received_at_ms, r, b"").await;
        }
    };
    // Base64 is 4/3 of the payload: refuse oversized ones before decoding.
    if rule_event.payload.len() > ports.limits.max_payload_bytes.div_ceil(3) * 4 + 4 {
        let e = FixError::PayloadTooLarge {
            bytes: rule_event.payload.len() / 4 * 3,
            limit: ports.limits.max_payload_bytes,
        };
        return reject(ports, &raw_tag, received_at_ms, e.into(), b"").await;
    }
    let payload =
        match base64::engine::general_purpose::STANDARD.decode(rule_event.payload.as_bytes()) {
            Ok(p) => p,
            Err(e) => {
                let r = Rejection {
                    reason: "malformed".into(),
                    detail: format!("payload is not base64: {e}"),
                };
                return reject(
                    ports,
                    &raw_tag,
                    received_at_ms,
                    r,
                    rule_event.payload.as_bytes(),
                )
                .await;
            }
        };
    let tag_id = match TagId::new(rule_event.tag_id.as_str()) {
        Ok(t) => t,
        Err(e) => {
            let r = Rejection {
                reason: "bad_tag_id".into(),
                detail: e.to_string(),
            };
            return reject(ports, &raw_tag, received_at_ms, r, &payload).await;
        }
    };
    match rule_event.channel.as_str() {
        "fix" => match parse_fix(&payload, &tag_id, received_at_ms, &ports.limits) {
            Ok(fix) => handle_fix(fix, &payload, received_at_ms, ports).await,
            Err(e) => reject(ports, tag_id.as_str(), received_at_ms, e.into(), &payload).await,
        },
        "event" => match parse_event(&payload, &tag_id, received_at_ms, &ports.limits) {
            Ok(ev) => handle_tag_event(ev, &payload, received_at_ms, ports).await,
            Err(e) => reject(ports, tag_id.as_str(), received_at_ms, e.into(), &payload).await,
        },
        other => {
            let r = Rejection {
                reason: "unknown_channel".into(),
                detail: format!("topic channel {other:?} is neither fix nor event"),
            };
            reject(ports, tag_id.as_str(), received_at_ms, r, &payload).await
        }
    }
}

async fn handle_tag_event<S: IngestStore, Q: AlertQueue, M: Metrics>(
    ev: TagEvent,
    payload: &[u8],
    received_at_ms: i64,
    ports: &Ports<S, Q, M>,
) -> Result<Outcome, IngestError> {
    let Some(ctx) = ports.store.load_context(&ev.tag_id, &[]).await? else {
        let r = Rejection {
            reason: "unknown_tag".into(),
            detail: format!("tag {} has no order", ev.tag_id),
        };
        return reject(ports, ev.tag_id.as_str(), received_at_ms, r, payload).await;
    };
    let events: Vec<AlertEvent> = ctx
        .orders
        .iter()
        .filter(|o| o.as_order(&ev.tag_id).in_force(ev.at_ms))
        .map(|o| AlertEvent {
            event_id: AlertEvent::tag_event_id(&o.order_id, &ev.tag_id, ev.seq),
            order_id: o.order_id.clone(),
            tag_id: ev.tag_id.clone(),
            at_ms: ev.at_ms,
            body: AlertBody::TagEvent {
                kind: ev.kind,
                seq: ev.seq,
                battery_pct: ev.battery_pct,
            },
        })
        .collect();
    ports.queue.send(&events).await?;
    ports.metrics.count(
        "TagEvents",
        ("Kind", &vigil_core::events::tag_event_kind(ev.kind)),
        1,
    );
    info!(tag_id = %ev.tag_id, kind = ?ev.kind, orders = events.len(), "tag event queued");
    Ok(Outcome::TagEvent {
        orders: events.len(),
    })
}

/// The zones to judge for one order: near the fix, or open.
struct OrderWork<'a> {
    summary: &'a OrderSummary,
    near: Vec<&'a Zone>,
    open: BTreeSet<ZoneId>,
}

async fn handle_fix<S: IngestStore, Q: AlertQueue, M: Metrics>(
    fix: Fix,
    payload: &[u8],
    received_at_ms: i64,
    ports: &Ports<S, Q, M>,
) -> Result<Outcome, IngestError> {
    let mut cells = Vec::with_capacity(4);
    cover_disc(
        fix.lat,
        fix.lon,
        ports.rules.lookup_radius_m(fix.accuracy_m),
        &mut cells,
    );
    let Some(ctx) = ports.store.load_context(&fix.tag_id, &cells).await? else {
        let r = Rejection {
            reason: "unknown_tag".into(),
            detail: format!("tag {} has no order", fix.tag_id),
        };
        return reject(ports, fix.tag_id.as_str(), received_at_ms, r, payload).await;
    };
    // Judge in memory first: only zones whose level for this fix is above CLEAR, or zones with
    // an open alert, need the states. Everything else is the quiet path.
    let mut work = Vec::new();
    for summary in &ctx.orders {
        let in_force = summary.as_order(&fix.tag_id).in_force(fix.at_ms);
        let near: Vec<&Zone> = ctx
            .zones
            .iter()
            .filter(|z| z.orders().contains(&summary.order_id))
            .filter(|z| assess(&fix, z, in_force, &ports.rules).exit > AlertLevel::Clear)
            .collect();
        let open: BTreeSet<ZoneId> = ctx
            .open
            .iter()
            .filter(|(o, _)| *o == summary.order_id)
            .map(|(_, z)| z.clone())
            .collect();
        if !near.is_empty() || !open.is_empty() {
            work.push(OrderWork {
                summary,
                near,
                open,
            });
        }
    }
    if work.is_empty() {
        return Ok(Outcome::Quiet);
    }
    // The tag's recent reports (written by the IoT rule, so possibly this very fix): for
    // lateness, the newest one; for the speed check, the nearest two. Bounded by the receive
    // time plus the allowed clock skew, so a report with a bogus future time is never "newest".
    let recent: Vec<Fix> = ports
        .store
        .recent_fixes(&fix.tag_id, received_at_ms + ports.limits.max_future_ms, 3)
        .await?
        .into_iter()
        .filter(|p| (p.at_ms, p.seq) != (fix.at_ms, fix.seq))
        .filter(|p| {
            p.lat.is_finite()
                && p.lon.is_finite()
                && p.lat.abs() <= 90.0
                && p.lon.abs() <= 180.0
                && p.accuracy_m.is_finite()
        })
        .collect();
    // Near a zone an impossible jump would be a false alarm. Plausible from either of the two
    // nearest reports is enough, so one glitch does not also reject the next good fix.
    let checks: Vec<Result<(), FixError>> = recent
        .iter()
        .take(2)
        .map(|p| check_motion(p, &fix, &ports.limits))
        .collect();
    if !checks.is_empty() && checks.iter().all(Result::is_err) {
        let e = checks.into_iter().find_map(Result::err).expect("non-empty");
        return reject(
            ports,
            fix.tag_id.as_str(),
            received_at_ms,
            e.into(),
            payload,
        )
        .await;
    }
    let newest_seen = recent.iter().map(|p| (p.at_ms, p.seq)).max();
    let mut queued = 0;
    for w in &work {
        queued += evaluate_order(&fix, newest_seen, w, ports, received_at_ms).await?;
    }
    ports.metrics.count("FixesEvaluated", ("Path", "near"), 1);
    Ok(Outcome::Evaluated { events: queued })
}

/// Moves one order's zone states with the fix; returns the number of alert events queued.
async fn evaluate_order<S: IngestStore, Q: AlertQueue, M: Metrics>(
    fix: &Fix,
    newest_seen: Option<(i64, u64)>,
    w: &OrderWork<'_>,
    ports: &Ports<S, Q, M>,
    now_ms: i64,
) -> Result<usize, IngestError> {
    let order_id: &OrderId = &w.summary.order_id;
    let order = w.summary.as_order(&fix.tag_id);
    let mut last_conflict = None;
    for _ in 0..COMMIT_ATTEMPTS {
        let stored = ports.store.states(order_id).await?;
        // Deliver what an earlier invocation committed but may not have queued.
        for (zone_id, st) in stored.iter().filter(|(_, s)| !s.pending.is_empty()) {
            ports.queue.send(&st.pending).await?;
            ports.store.clear_pending(order_id, zone_id, st.rev).await?;
        }
        let mut zones: Vec<Zone> = w.near.iter().map(|z| (*z).clone()).collect();
        let open: BTreeSet<ZoneId> = w
            .open
            .iter()
            .cloned()
            .chain(
                stored
                    .iter()
                    .filter(|(_, s)| s.state.level > AlertLevel::Clear)
                    .map(|(z, _)| z.clone()),
            )
            .filter(|z| !zones.iter().any(|n| n.id() == z))
            .collect();
        if !open.is_empty() {
            zones.extend(
                ports
                    .store
                    .zones(&open.into_iter().collect::<Vec<_>>())
                    .await?,
            );
        }
        let before: BTreeMap<ZoneId, ZoneState> = stored
            .iter()
            .map(|(z, s)| (z.clone(), s.state.clone()))
            .collect();
        let mut states = before.clone();
        let zone_refs: Vec<&Zone> = zones.iter().collect();
        let changes = apply_fix(
            &mut states,
            newest_seen,
            &order,
            &zone_refs,
            fix,
            &ports.rules,
        );

        let mut writes = Vec::new();
        let mut events = Vec::new();
        let (mut opened, mut closed) = (Vec::new(), Vec::new());
        for (zone_id, state) in &states {
            let old = before.get(zone_id);
            // A state whose only change is the newest fix seen need not be written: lateness
            // is judged against the tag's last-seen history, and re-applying such a fix yields
            // the same state again. This saves a write per fix while hovering near a zone.
            let unchanged = match old {
                Some(o) => {
                    ZoneState {
                        newest: state.newest,
                        ..o.clone()
                    } == *state
                }
                None => {
                    ZoneState {
                        newest: state.newest,
                        ..ZoneState::default()
                    } == *state
                }
            };
            if unchanged {
                continue;
            }
            let expected_rev = stored.get(zone_id).map_or(0, |s| s.rev);
            let was = old.map_or(AlertLevel::Clear, |s| s.level);
            if was == AlertLevel::Clear && state.level > AlertLevel::Clear {
                opened.push(zone_id.clone());
            } else if was > AlertLevel::Clear && state.level == AlertLevel::Clear {
                closed.push(zone_id.clone());
            }
            let zone_events: Vec<AlertEvent> = changes
                .iter()
                .filter(|c| &c.zone_id == zone_id)
                .map(|c| AlertEvent {
                    event_id: AlertEvent::zone_change_id(order_id, zone_id, expected_rev + 1),
                    order_id: order_id.clone(),
                    tag_id: fix.tag_id.clone(),
                    at_ms: fix.at_ms,
                    body: AlertBody::ZoneChange {
                        zone_id: c.zone_id.clone(),
                        zone_kind: c.zone_kind,
                        assessment: c.assessment.clone(),
                        change: c.change.clone(),
                        fix: fix.clone(),
                    },
                })
                .collect();
            events.extend(
                zone_events
                    .iter()
                    .cloned()
                    .map(|e| (zone_id.clone(), expected_rev + 1, e)),
            );
            writes.push(StateWrite {
                zone_id: zone_id.clone(),
                expected_rev,
                state: state.clone(),
                pending: zone_events,
            });
        }
        if writes.is_empty() {
            return Ok(0);
        }
        let audit = events
            .iter()
            .map(|(_, _, e)| AuditEntry {
                kind: "zone_change".into(),
                detail: audit_detail(e),
            })
            .collect();
        let commit = Commit {
            order_id: order_id.clone(),
            tag_id: fix.tag_id.clone(),
            writes,
            opened,
            closed,
            audit,
        };
        match ports.store.commit(&commit, now_ms).await {
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
            return Ok(0);
        }
        let to_send: Vec<AlertEvent> = events.iter().map(|(_, _, e)| e.clone()).collect();
        ports.queue.send(&to_send).await?;
        let cleared: BTreeSet<(ZoneId, u64)> =
            events.iter().map(|(z, rev, _)| (z.clone(), *rev)).collect();
        for (zone_id, rev) in cleared {
            ports.store.clear_pending(order_id, &zone_id, rev).await?;
        }
        for e in &to_send {
            for kind in e.operator_kinds() {
                ports.metrics.count("Transitions", ("Kind", &kind), 1);
            }
            info!(event_id = %e.event_id, order_id = %order_id, kinds = ?e.operator_kinds(), "alert event queued");
        }
        return Ok(to_send.len());
    }
    Err(last_conflict
        .unwrap_or(StoreError::Conflict {
            what: format!("order {order_id}"),
        })
        .into())
}

/// The audit detail of a zone change: what happened and why; the offender's position (operators
/// and courts see it), never the victim's.
fn audit_detail(e: &AlertEvent) -> serde_json::Value {
    match &e.body {
        AlertBody::ZoneChange {
            zone_id,
            zone_kind,
            assessment,
            change,
            fix,
        } => serde_json::json!({
            "event_id": e.event_id,
            "zone_id": zone_id,
            "zone_kind": zone_kind,
            "kinds": e.operator_kinds(),
            "transition": change.transition,
            "escalation": change.escalation,
            "order_level_before": change.order_before,
            "order_level_after": change.order_after,
            "distance_m": assessment.distance_m,
            "fix": { "seq": fix.seq, "at_ms": fix.at_ms, "lat": fix.lat, "lon": fix.lon, "accuracy_m": fix.accuracy_m },
        }),
        AlertBody::TagEvent { kind, seq, .. } => {
            serde_json::json!({ "event_id": e.event_id, "kind": kind, "seq": seq })
        }
    }
}

/// Encodes a payload as the rule does, for tests and the local bridge.
pub fn rule_event(
    tag_id: &str,
    channel: &str,
    payload: &[u8],
    received_at_ms: i64,
) -> serde_json::Value {
    serde_json::json!({
        "payload": base64::engine::general_purpose::STANDARD.encode(payload),
        "tag_id": tag_id,
        "channel": channel,
        "received_at": received_at_ms,
    })
}

/// The v1 wire payload of a fix, for tests and tools.
pub fn fix_payload(fix: &Fix) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "v": fix::WIRE_VERSION, "seq": fix.seq, "at_ms": fix.at_ms, "lat": fix.lat, "lon": fix.lon, "accuracy_m": fix.accuracy_m,
    }))
    .expect("fix serializes")
}
