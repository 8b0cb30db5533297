//! What a message caused, read back the same way whatever ran it: both executors run the
//! product's functions (in memory, or on the emulator behind MQTT) and hand this module the
//! same things to read: the SMS recorded, the operator events published (typed, from
//! `vigil_core::operator`), the quarantine records, the ingest's duplicate counter and the
//! order levels in the store. So a difference between the executors is a difference in the
//! stack, never in how a run is recorded.

use crate::executor::{OrderLevel, Outcome, SeenEvent, SentCommand, SentSms, StepRecord};
use crate::scenario::{Channel, Message, Scenario};
use std::collections::HashMap;
use vigil_aws::ports::{AdminStore, QuarantineRecord};
use vigil_core::fix::{parse_event, parse_fix, parse_fixes};
use vigil_core::{
    AlertLevel, OperatorEvent, OperatorKind, OrderId, PhoneNumber, TagId, ValidationLimits,
};

/// What the stack recorded after one message.
#[derive(Debug, Default)]
pub struct Readback {
    /// SMS sent since the previous message, in order: (recipient, text).
    pub sms: Vec<(PhoneNumber, String)>,
    /// Operator events published since the previous message, in order.
    pub events: Vec<OperatorEvent>,
    /// Quarantine records of the message's tag that are new.
    pub quarantined: Vec<QuarantineRecord>,
    /// How many messages ingest counted as duplicates since the previous message.
    pub duplicates: u64,
    /// The level of each order of the message's tag now.
    pub levels: Vec<OrderLevel>,
    /// Commands published to devices since the previous message, in order: (topic, payload).
    pub commands: Vec<(String, Vec<u8>)>,
}

/// What an executor keeps across a scenario to record its steps.
#[derive(Debug, Default)]
pub struct Observer {
    /// Each tag's newest accepted fix (device time, seq): how late a fix was, for reports.
    newest: HashMap<TagId, (i64, u64)>,
    /// Quarantine records already seen, per tag.
    quarantine: HashMap<String, Vec<QuarantineRecord>>,
}

impl Observer {
    /// The quarantine records of `tag` in `all` that were not there at the previous call.
    pub fn new_quarantine(
        &mut self,
        tag: &TagId,
        all: Vec<QuarantineRecord>,
    ) -> Vec<QuarantineRecord> {
        let seen = self.quarantine.entry(tag.to_string()).or_default();
        let mut known = seen.clone();
        let mut fresh = Vec::new();
        for r in all {
            match known.iter().position(|k| *k == r) {
                Some(i) => {
                    known.swap_remove(i);
                }
                None => fresh.push(r),
            }
        }
        seen.extend(fresh.iter().cloned());
        fresh
    }

    /// The step record of message `index`, from what the stack recorded.
    ///
    /// Fails when the record does not add up: an operator event reports an SMS sent that no
    /// recorded SMS matches, or an SMS no operator event reports.
    pub fn step(
        &mut self,
        scenario: &Scenario,
        index: usize,
        message: &Message,
        rb: Readback,
    ) -> Result<StepRecord, String> {
        let (sms, mut operator_events) = pair(scenario, &rb.events, rb.sms)?;
        for r in &rb.quarantined {
            operator_events.push(SeenEvent {
                kind: OperatorKind::FixRejected(r.reason.clone()).to_string(),
                order_id: None,
                zone_id: None,
                urgency: None,
                detail: r.detail.clone(),
            });
        }
        let outcome = match rb.quarantined.first() {
            Some(r) => Outcome::Rejected {
                reason: r.reason.clone(),
                detail: r.detail.clone(),
            },
            None => self.accepted(message, rb.duplicates > 0),
        };
        Ok(StepRecord {
            message: index,
            at_s: message.at_s,
            tag_id: message.tag_id.clone(),
            channel: message.channel,
            outcome,
            levels: rb.levels,
            sms,
            operator_events,
            commands: rb
                .commands
                .iter()
                .map(|(topic, payload)| SentCommand::parse(topic, payload))
                .collect::<Result<_, _>>()?,
        })
    }

    /// The outcome of a message the stack accepted, from the payload as published.
    fn accepted(&mut self, message: &Message, duplicate: bool) -> Outcome {
        let limits = ValidationLimits::default();
        let payload = message.payload.as_bytes();
        let (tag, at) = (&message.tag_id, message.received_at_ms);
        let parsed = match message.channel {
            Channel::Tick => Ok(Outcome::Tick),
            Channel::Ack => Ok(Outcome::Ack),
            // A v1 fix or a v2 batch: described by its newest accepted fix.
            Channel::Fix => parse_fixes(payload, tag, at, &limits).and_then(|items| {
                let fixes = items.len();
                let mut first_error = None;
                let newest = items
                    .into_iter()
                    .filter_map(|i| {
                        i.map_err(|(e, _)| first_error.get_or_insert(e).clone())
                            .ok()
                    })
                    .max_by_key(|f| (f.at_ms, f.seq));
                let Some(fix) = newest else {
                    return Err(first_error.expect("a batch holds a fix"));
                };
                if duplicate {
                    return Ok(Outcome::Duplicate { seq: fix.seq });
                }
                let key = (fix.at_ms, fix.seq);
                let newest = self.newest.entry(tag.clone()).or_insert(key);
                let late_by_ms = (*newest > key).then(|| newest.0 - fix.at_ms);
                *newest = (*newest).max(key);
                Ok(Outcome::Fix {
                    seq: fix.seq,
                    at_ms: fix.at_ms,
                    lat: fix.lat,
                    lon: fix.lon,
                    accuracy_m: fix.accuracy_m,
                    late_by_ms,
                    fixes,
                })
            }),
            Channel::Event => parse_event(payload, tag, at, &limits).map(|event| {
                if duplicate {
                    Outcome::Duplicate { seq: event.seq }
                } else {
                    Outcome::Event {
                        seq: event.seq,
                        kind: event.kind,
                    }
                }
            }),
            // Her position: its counter and time only, never where she was.
            Channel::Position => parse_fix(payload, tag, at, &limits).map(|p| {
                if duplicate {
                    Outcome::Duplicate { seq: p.seq }
                } else {
                    Outcome::Position {
                        seq: p.seq,
                        at_ms: p.at_ms,
                    }
                }
            }),
        };
        parsed.unwrap_or_else(|e| Outcome::Rejected {
            reason: e.reason().to_owned(),
            detail: format!("the stack accepted it, but vigil-core rejects it: {e}"),
        })
    }
}

/// Pairs each operator event that reports an SMS sent with a recorded SMS to that order's
/// victim, in order; returns the SMS and one seen event per kind.
fn pair(
    scenario: &Scenario,
    events: &[OperatorEvent],
    sms: Vec<(PhoneNumber, String)>,
) -> Result<(Vec<SentSms>, Vec<SeenEvent>), String> {
    let mut unpaired = sms;
    let mut sent = Vec::new();
    let mut seen = Vec::new();
    for event in events {
        if let Some(alert) = event.victim_sms.strip_prefix("sent:") {
            let level = serde_json::from_value(serde_json::Value::String(alert.to_owned()))
                .map_err(|_| {
                    format!("operator event {} has victim_sms {alert:?}", event.event_id)
                })?;
            let order = scenario
                .orders
                .iter()
                .find(|o| o.order_id == event.order_id)
                .ok_or_else(|| {
                    format!(
                        "an operator event names order {}, which the scenario does not have",
                        event.order_id
                    )
                })?;
            let i = unpaired
                .iter()
                .position(|(to, _)| to == &order.victim.phone)
                .ok_or_else(|| {
                    format!(
                        "order {} reports SMS {alert} sent, but no SMS to {} was recorded",
                        event.order_id,
                        order.victim.phone.redacted()
                    )
                })?;
            let (to, text) = unpaired.remove(i);
            sent.push(SentSms {
                order_id: event.order_id.clone(),
                to,
                level,
                text,
            });
        }
        let detail = describe(event);
        seen.extend(event.kinds.iter().map(|kind| SeenEvent {
            kind: kind.to_string(),
            order_id: Some(event.order_id.clone()),
            zone_id: event.zone.as_ref().map(|z| z.zone_id.clone()),
            urgency: Some(event.urgency),
            detail: detail.clone(),
        }));
    }
    if let Some((to, _)) = unpaired.first() {
        return Err(format!(
            "an SMS to {} was recorded that no operator event reports as sent",
            to.redacted()
        ));
    }
    Ok((sent, seen))
}

/// A one-line description of an operator event for reports: the zone and the distance, what
/// the victim got.
fn describe(event: &OperatorEvent) -> String {
    if let Some(e) = &event.escalation {
        let zone = e
            .zone_id
            .as_ref()
            .map_or_else(String::new, |z| format!(" on {z}"));
        return format!(
            "{}{zone} not acknowledged: told again ({})",
            e.kind, e.count
        );
    }
    let what = match (&event.zone, &event.tag_event) {
        (Some(z), _) => {
            let d = z.distance_m;
            let place = if d <= 0.0 {
                format!("{:.0} m inside", -d)
            } else {
                format!("{d:.0} m from the edge")
            };
            format!("{}: {place}", z.zone_id)
        }
        (None, Some(t)) => format!("tag reported {}", OperatorKind::TagEvent(t.kind)),
        (None, None) => event.kind.to_string(),
    };
    let late = if event.late { ", late" } else { "" };
    format!("{what}; victim SMS {}{late}", event.victim_sms)
}

/// The level of each order of `tag` in the scenario, as the store's zone states say.
pub async fn order_levels(
    store: &impl AdminStore,
    scenario: &Scenario,
    tag: &TagId,
) -> Result<Vec<OrderLevel>, String> {
    let mut out = Vec::new();
    for o in scenario.orders_of(tag) {
        out.push(OrderLevel {
            order_id: o.order_id.clone(),
            level: order_level(store, &o.order_id).await?,
        });
    }
    Ok(out)
}

async fn order_level(store: &impl AdminStore, order: &OrderId) -> Result<AlertLevel, String> {
    Ok(store
        .zone_records(order)
        .await
        .map_err(|e| format!("reading the zone states of {order}: {e}"))?
        .values()
        .map(|r| r.state.level)
        .max()
        .unwrap_or_default())
}
