//! The ingest function's decisions, pure: given a validated message, what the tag's orders
//! know (their terms, never the victim), the zones near it, the stored states and the tag's
//! history, what must be written and what must be queued. The function does the I/O around
//! these (one read, a conditional commit with retries, the queue) and nothing else; the
//! simulator and the tests run the same function over in-memory ports.

use crate::evaluate::{AlertLevel, BreachRules, assess};
use crate::events::{AlertBody, AlertEvent};
use crate::fix::{Fix, FixError, TagEvent};
use crate::ids::{OrderId, ZoneId, ZoneKey};
use crate::order::OrderTerms;
use crate::state::ZoneState;
use crate::watch::apply_fix;
use crate::zone::Zone;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A zone state as stored, with its revision and outbox.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ZoneRecord {
    /// The state.
    pub state: ZoneState,
    /// Revision; 0 when never written.
    pub rev: u64,
    /// Alert events committed with the state but not yet confirmed on the queue.
    pub pending: Vec<AlertEvent>,
}

/// One state write of an order's commit.
#[derive(Debug, Clone, PartialEq)]
pub struct StateWrite {
    /// The zone.
    pub zone_id: ZoneId,
    /// The revision read; the write fails if the stored one differs (0: must not exist).
    pub expected_rev: u64,
    /// The new state.
    pub state: ZoneState,
    /// Outbox: the alert events of this change.
    pub pending: Vec<AlertEvent>,
}

/// Everything one fix changes for one order: written atomically, then queued.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OrderPlan {
    /// State writes, conditional on the revisions read.
    pub writes: Vec<StateWrite>,
    /// Zones that became open (not CLEAR).
    pub opened: Vec<ZoneId>,
    /// Zones that became CLEAR.
    pub closed: Vec<ZoneId>,
}

impl OrderPlan {
    /// Whether nothing needs writing.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// The alert events the plan queues, in zone order.
    pub fn events(&self) -> impl Iterator<Item = &AlertEvent> {
        self.writes.iter().flat_map(|w| w.pending.iter())
    }
}

/// One order of the tag that must judge the fix: it has zones near it or open alerts.
#[derive(Debug, Clone)]
pub struct OrderWork<'a> {
    /// The order's terms.
    pub terms: &'a OrderTerms,
    /// Its zones whose exit level for this fix is above CLEAR.
    pub near: Vec<&'a Zone>,
    /// Its zones with an open alert (from the tag's open marks).
    pub open: BTreeSet<ZoneId>,
}

/// Judges a fix in memory against the zones found near it, per order, and keeps only the
/// orders that need their states read: the rest is the quiet path (no state read, no write).
pub fn orders_to_evaluate<'a>(
    orders: &'a [OrderTerms],
    zones: &'a [Zone],
    open: &[ZoneKey],
    fix: &Fix,
    rules: &BreachRules,
) -> Vec<OrderWork<'a>> {
    let mut work = Vec::new();
    for terms in orders {
        let in_force = terms.in_force(fix.at_ms);
        let near: Vec<&Zone> = zones
            .iter()
            .filter(|z| z.order_id() == &terms.order_id)
            .filter(|z| assess(fix, z, in_force, rules).exit > AlertLevel::Clear)
            .collect();
        let open: BTreeSet<ZoneId> = open
            .iter()
            .filter(|k| k.order_id == terms.order_id)
            .map(|k| k.zone_id.clone())
            .collect();
        if !near.is_empty() || !open.is_empty() {
            work.push(OrderWork { terms, near, open });
        }
    }
    work
}

/// The zones of an order that must be judged besides those near the fix: every fixed zone
/// whose state is not CLEAR (from the open marks and the states read), so an open alert can
/// close. The moving zone ([`crate::proximity`]) is judged with her position, not here.
pub fn zones_to_fetch(
    work: &OrderWork<'_>,
    records: &BTreeMap<ZoneId, ZoneRecord>,
) -> Vec<ZoneKey> {
    let near: BTreeSet<&ZoneId> = work.near.iter().map(|z| z.id()).collect();
    work.open
        .iter()
        .cloned()
        .chain(
            records
                .iter()
                .filter(|(_, r)| r.state.level > AlertLevel::Clear)
                .map(|(z, _)| z.clone()),
        )
        .filter(|z| !near.contains(z))
        // The moving zone has no fixed place to fetch: it is judged against her position.
        .filter(|z| z.as_str() != crate::zone::VICTIM_ZONE_ID)
        .collect::<BTreeSet<ZoneId>>()
        .into_iter()
        .map(|z| ZoneKey::new(work.terms.order_id.clone(), z))
        .collect()
}

/// Moves one order's zone states with a fix and plans the commit: which states to write
/// (conditional on the revisions read), which zones open and close, and the alert events of
/// each change (in the written state's outbox, with ids from the new revision).
///
/// `zones` must hold the order's zones near the fix and those [`zones_to_fetch`] named.
/// `newest_seen` is the tag's newest accepted fix before this one (its history).
pub fn plan_order(
    terms: &OrderTerms,
    records: &BTreeMap<ZoneId, ZoneRecord>,
    zones: &[&Zone],
    fix: &Fix,
    newest_seen: Option<(i64, u64)>,
    received_at_ms: i64,
    rules: &BreachRules,
) -> OrderPlan {
    let order_id: &OrderId = &terms.order_id;
    let before: BTreeMap<ZoneId, ZoneState> = records
        .iter()
        .map(|(z, r)| (z.clone(), r.state.clone()))
        .collect();
    let mut states = before.clone();
    let changes = apply_fix(&mut states, newest_seen, terms, zones, fix, rules);
    let mut plan = OrderPlan::default();
    for (zone_id, state) in &states {
        let old = before.get(zone_id).cloned().unwrap_or_default();
        // A state whose only change is the newest fix seen need not be written: lateness is
        // judged against the tag's history, and re-applying such a fix yields the same state
        // again. This saves a write per fix while hovering near a zone.
        let only_newest_moved = ZoneState {
            newest: state.newest,
            ..old.clone()
        } == *state;
        if only_newest_moved {
            continue;
        }
        let expected_rev = records.get(zone_id).map_or(0, |r| r.rev);
        if old.level == AlertLevel::Clear && state.level > AlertLevel::Clear {
            plan.opened.push(zone_id.clone());
        } else if old.level > AlertLevel::Clear && state.level == AlertLevel::Clear {
            plan.closed.push(zone_id.clone());
        }
        let pending = changes
            .iter()
            .filter(|c| &c.zone_id == zone_id)
            .map(|c| AlertEvent {
                event_id: AlertEvent::zone_change_id(order_id, zone_id, expected_rev + 1),
                order_id: order_id.clone(),
                tag_id: fix.tag_id.clone(),
                at_ms: fix.at_ms,
                received_at_ms,
                body: AlertBody::ZoneChange {
                    zone_id: c.zone_id.clone(),
                    zone_kind: c.zone_kind,
                    assessment: c.assessment.clone(),
                    change: c.change.clone(),
                    fix: fix.clone(),
                    state_rev: expected_rev + 1,
                },
            })
            .collect();
        plan.writes.push(StateWrite {
            zone_id: zone_id.clone(),
            expected_rev,
            state: state.clone(),
            pending,
        });
    }
    plan
}

/// For a fix the speed check rejected: an alert event for every zone of an order in force
/// that the fix, had it been accepted, would have raised (entry level above CLEAR). A
/// monitoring centre must hear of a possible breach even when the position looks impossible:
/// the previous fix may be the wrong one. Operators only; nothing about the victim changes.
pub fn rejected_near_zones(
    orders: &[OrderTerms],
    zones: &[Zone],
    fix: &Fix,
    rejection: &FixError,
    received_at_ms: i64,
    rules: &BreachRules,
) -> Vec<AlertEvent> {
    let hash = fix.content_hash();
    let mut out = Vec::new();
    // A zone that spans several cells arrives once per cell: one event per zone.
    let mut seen = std::collections::BTreeSet::new();
    for terms in orders.iter().filter(|t| t.in_force(fix.at_ms)) {
        for zone in zones.iter().filter(|z| z.order_id() == &terms.order_id) {
            if !seen.insert(zone.id()) {
                continue;
            }
            let a = assess(fix, zone, true, rules);
            if !a.in_force || a.entry == AlertLevel::Clear {
                continue;
            }
            out.push(AlertEvent {
                event_id: AlertEvent::rejected_near_zone_id(
                    &terms.order_id,
                    zone.id(),
                    fix.seq,
                    &hash,
                ),
                order_id: terms.order_id.clone(),
                tag_id: fix.tag_id.clone(),
                at_ms: fix.at_ms,
                received_at_ms,
                body: AlertBody::RejectedNearZone {
                    reason: rejection.reason().to_owned(),
                    detail: rejection.to_string(),
                    fix: fix.clone(),
                    zone_id: zone.id().clone(),
                    zone_kind: zone.kind(),
                    entry: a.entry,
                    distance_m: zone.distance_to_edge_m(fix.lat, fix.lon, f64::INFINITY),
                },
            });
        }
    }
    out
}

/// The alert events of a tag event: one per order in force at its time.
pub fn tag_event_events(
    orders: &[OrderTerms],
    event: &TagEvent,
    received_at_ms: i64,
) -> Vec<AlertEvent> {
    let hash = event.content_hash();
    orders
        .iter()
        .filter(|t| t.in_force(event.at_ms))
        .map(|t| AlertEvent {
            event_id: AlertEvent::tag_event_id(&t.order_id, &event.tag_id, event.seq, &hash),
            order_id: t.order_id.clone(),
            tag_id: event.tag_id.clone(),
            at_ms: event.at_ms,
            received_at_ms,
            body: AlertBody::TagEvent {
                kind: event.kind,
                seq: event.seq,
                battery_pct: event.battery_pct,
                content_hash: hash.clone(),
            },
        })
        .collect()
}

/// A message whose counter the tag used before for other content.
#[derive(Debug, Clone, Copy)]
pub enum Repeated<'a> {
    /// A fix.
    Fix(&'a Fix),
    /// A tag event.
    Event(&'a TagEvent),
}

/// The alert events telling each order's operators that a message repeated a counter with
/// other content (`previous_hash`).
pub fn conflict_events(
    orders: &[OrderTerms],
    message: Repeated<'_>,
    previous_hash: &str,
    received_at_ms: i64,
) -> Vec<AlertEvent> {
    let (channel, tag_id, seq, at_ms, hash, fix, kind) = match message {
        Repeated::Fix(f) => (
            "fix",
            &f.tag_id,
            f.seq,
            f.at_ms,
            f.content_hash(),
            Some(f),
            None,
        ),
        Repeated::Event(e) => (
            "event",
            &e.tag_id,
            e.seq,
            e.at_ms,
            e.content_hash(),
            None,
            Some(e.kind),
        ),
    };
    orders
        .iter()
        .map(|t| AlertEvent {
            event_id: AlertEvent::message_conflict_id(&t.order_id, tag_id, channel, seq, &hash),
            order_id: t.order_id.clone(),
            tag_id: tag_id.clone(),
            at_ms,
            received_at_ms,
            body: AlertBody::MessageConflict {
                channel: channel.to_owned(),
                seq,
                previous_hash: previous_hash.to_owned(),
                hash: hash.clone(),
                fix: fix.cloned(),
                kind,
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TagId;
    use serde_json::json;

    fn terms(id: &str) -> OrderTerms {
        OrderTerms {
            force_id: None,
            order_id: OrderId::new(id).unwrap(),
            valid_from: None,
            valid_until: None,
            policy: Default::default(),
            victim_device: None,
        }
    }

    fn zone(order: &str, id: &str) -> Zone {
        serde_json::from_value(json!({"zone_id":id,"kind":"home","circle":{"lat":51.5,"lon":-0.12,"radius_m":100},"buffer_m":400,"order_id":order})).unwrap()
    }

    fn fix(seq: u64, at_s: i64, lat: f64) -> Fix {
        Fix {
            tag_id: TagId::new("t1").unwrap(),
            seq,
            at_ms: at_s * 1000,
            lat,
            lon: -0.12,
            accuracy_m: 10.0,
            speed_mps: None,
            heading_deg: None,
            battery_pct: None,
        }
    }

    #[test]
    fn quiet_fixes_need_no_state() {
        let orders = [terms("o1")];
        let zones = [zone("o1", "home")];
        let rules = BreachRules::default();
        assert!(orders_to_evaluate(&orders, &zones, &[], &fix(1, 0, 51.6), &rules).is_empty());
        let w = orders_to_evaluate(&orders, &zones, &[], &fix(1, 0, 51.5), &rules);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].near.len(), 1);
    }

    #[test]
    fn another_orders_zone_with_the_same_id_is_not_this_orders() {
        let orders = [terms("o1")];
        let zones = [zone("o2", "home")];
        let w = orders_to_evaluate(
            &orders,
            &zones,
            &[],
            &fix(1, 0, 51.5),
            &BreachRules::default(),
        );
        assert!(w.is_empty());
    }

    #[test]
    fn open_fixed_zones_are_fetched_and_the_moving_zone_never() {
        let t = terms("o1");
        let open = |level| ZoneRecord {
            state: ZoneState {
                level,
                ..Default::default()
            },
            ..Default::default()
        };
        let moving = ZoneId::new(crate::zone::VICTIM_ZONE_ID).unwrap();
        let work = OrderWork {
            terms: &t,
            near: Vec::new(),
            open: BTreeSet::from([moving.clone(), ZoneId::new("work").unwrap()]),
        };
        let records = BTreeMap::from([
            (ZoneId::new("home").unwrap(), open(AlertLevel::Warning)),
            (moving, open(AlertLevel::Breach)),
            (ZoneId::new("school").unwrap(), open(AlertLevel::Clear)),
        ]);
        let fetched: Vec<String> = zones_to_fetch(&work, &records)
            .iter()
            .map(|k| k.zone_id.to_string())
            .collect();
        assert_eq!(fetched, ["home", "work"]);
    }

    #[test]
    fn a_plan_writes_changed_states_with_their_events() {
        let t = terms("o1");
        let z = zone("o1", "home");
        let plan = plan_order(
            &t,
            &BTreeMap::new(),
            &[&z],
            &fix(1, 0, 51.5),
            None,
            500,
            &BreachRules::default(),
        );
        assert_eq!(plan.opened, vec![ZoneId::new("home").unwrap()]);
        let events: Vec<&AlertEvent> = plan.events().collect();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event_id, "zc:o1:home:1");
        assert_eq!(events[0].received_at_ms, 500);
        // The same fix again, on the state it produced: nothing to write.
        let records: BTreeMap<ZoneId, ZoneRecord> = plan
            .writes
            .iter()
            .map(|w| {
                (
                    w.zone_id.clone(),
                    ZoneRecord {
                        state: w.state.clone(),
                        rev: 1,
                        pending: vec![],
                    },
                )
            })
            .collect();
        let again = plan_order(
            &t,
            &records,
            &[&z],
            &fix(1, 0, 51.5),
            Some((0, 1)),
            900,
            &BreachRules::default(),
        );
        assert!(again.is_empty());
    }

    #[test]
    fn a_rejected_fix_inside_names_the_possible_breach() {
        let orders = [terms("o1")];
        let zones = [zone("o1", "home")];
        let e = FixError::ImpossibleSpeed {
            speed_mps: 400.0,
            limit_mps: 70.0,
        };
        let events = rejected_near_zones(
            &orders,
            &zones,
            &fix(4, 0, 51.5),
            &e,
            10,
            &BreachRules::default(),
        );
        assert_eq!(events.len(), 1);
        match &events[0].body {
            AlertBody::RejectedNearZone { entry, reason, .. } => {
                assert_eq!(
                    (*entry, reason.as_str()),
                    (AlertLevel::Breach, "impossible_speed")
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(
            rejected_near_zones(
                &orders,
                &zones,
                &fix(4, 0, 51.6),
                &e,
                10,
                &BreachRules::default()
            )
            .is_empty()
        );
    }
}
