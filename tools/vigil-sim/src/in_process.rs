//! The in-process executor: the scenario's messages go through vigil-core's parsing,
//! validation, zone index, state machines and alert policy in this process, the way the ingest
//! and alert functions will apply them, with no I/O.

use crate::executor::{
    ExecutorError, OperatorEvent, OrderLevel, Outcome, Run, ScenarioExecutor, SentSms, StepRecord,
};
use crate::report::{alert_name, level_name, serde_name};
use crate::scenario::{Channel, Message, Scenario};
use std::collections::{BTreeMap, HashMap, HashSet};
use vigil_core::events::{operator_kinds, rejected_kind, tag_event_kind};
use vigil_core::fix::{check_motion, parse_event, parse_fix};
use vigil_core::policy::VictimDecision;
use vigil_core::watch::{Notice, open_zones};
use vigil_core::{
    BreachRules, Fix, FixError, MemoryZoneIndex, OrderId, OrderWatch, ProtectionOrder, TagEvent,
    TagEventKind, TagId, ValidationLimits, Zone,
};

/// Runs scenarios over vigil-core in this process.
#[derive(Debug, Clone, Default)]
pub struct InProcessExecutor {
    /// Validation limits, as the ingest function applies them.
    pub limits: ValidationLimits,
    /// Breach detection and hysteresis thresholds.
    pub rules: BreachRules,
}

impl InProcessExecutor {
    /// An executor with the production defaults.
    pub fn new() -> Self {
        Self::default()
    }
}

impl ScenarioExecutor for InProcessExecutor {
    fn name(&self) -> &str {
        "in-process"
    }

    fn execute(&mut self, scenario: &Scenario) -> Result<Run, ExecutorError> {
        let mut pipeline = Pipeline::new(scenario, self);
        let steps = scenario
            .messages
            .iter()
            .enumerate()
            .map(|(i, m)| pipeline.deliver(i, m))
            .collect();
        Ok(Run {
            executor: self.name().to_owned(),
            steps,
        })
    }
}

/// The state the live pipeline keeps in its tables, held in memory for one run.
struct Pipeline<'a> {
    scenario: &'a Scenario,
    limits: &'a ValidationLimits,
    rules: &'a BreachRules,
    index: MemoryZoneIndex,
    watches: BTreeMap<OrderId, OrderWatch>,
    /// Each tag's newest accepted fix: the reference of the speed check.
    newest_fix: HashMap<TagId, Fix>,
    /// (tag, seq) of every accepted message.
    seen: HashSet<(TagId, u64)>,
}

impl<'a> Pipeline<'a> {
    fn new(scenario: &'a Scenario, executor: &'a InProcessExecutor) -> Self {
        let mut index = MemoryZoneIndex::new();
        for zone in &scenario.zones {
            index.insert(zone.clone());
        }
        Self {
            scenario,
            limits: &executor.limits,
            rules: &executor.rules,
            index,
            watches: BTreeMap::new(),
            newest_fix: HashMap::new(),
            seen: HashSet::new(),
        }
    }

    fn deliver(&mut self, index: usize, message: &Message) -> StepRecord {
        let mut effects = Effects::default();
        let payload = message.payload.as_bytes();
        let (tag, at) = (&message.tag_id, message.received_at_ms);
        let outcome = match message.channel {
            Channel::Fix => match parse_fix(payload, tag, at, self.limits) {
                Ok(fix) => self.on_fix(fix, &mut effects),
                Err(e) => effects.reject(&e),
            },
            Channel::Event => match parse_event(payload, tag, at, self.limits) {
                Ok(event) => self.on_event(event, &mut effects),
                Err(e) => effects.reject(&e),
            },
        };
        let levels = self
            .scenario
            .orders_of(tag)
            .map(|o| OrderLevel {
                order_id: o.order_id.clone(),
                level: self
                    .watches
                    .get(&o.order_id)
                    .map(OrderWatch::level)
                    .unwrap_or_default(),
            })
            .collect();
        StepRecord {
            message: index,
            at_s: message.at_s,
            tag_id: message.tag_id.clone(),
            channel: message.channel,
            outcome,
            levels,
            sms: effects.sms,
            operator_events: effects.operator_events,
        }
    }

    /// Dedupe, speed check, then every order of the tag judges the fix against the zones
    /// near it and its open zones.
    fn on_fix(&mut self, fix: Fix, effects: &mut Effects) -> Outcome {
        if self.seen.contains(&(fix.tag_id.clone(), fix.seq)) {
            return Outcome::Duplicate { seq: fix.seq };
        }
        let newest = self.newest_fix.get(&fix.tag_id);
        if let Some(previous) = newest
            && let Err(e) = check_motion(previous, &fix, self.limits)
        {
            return effects.reject(&e);
        }
        let late_by_ms = newest
            .filter(|n| (n.at_ms, n.seq) > (fix.at_ms, fix.seq))
            .map(|n| n.at_ms - fix.at_ms);
        self.seen.insert((fix.tag_id.clone(), fix.seq));
        if late_by_ms.is_none() {
            self.newest_fix.insert(fix.tag_id.clone(), fix.clone());
        }
        let near: Vec<&Zone> =
            self.index
                .candidates(fix.lat, fix.lon, self.rules.lookup_radius_m(fix.accuracy_m));
        for order in self.scenario.orders_of(&fix.tag_id) {
            let watch = self.watches.entry(order.order_id.clone()).or_default();
            let mut zones = near.clone();
            zones.extend(
                open_zones(&watch.states)
                    .iter()
                    .filter_map(|id| self.index.get(id)),
            );
            for notice in watch.on_fix(order, &zones, &fix, self.rules) {
                effects.zone_notice(order, &notice);
            }
        }
        Outcome::Fix {
            seq: fix.seq,
            at_ms: fix.at_ms,
            lat: fix.lat,
            lon: fix.lon,
            accuracy_m: fix.accuracy_m,
            late_by_ms,
        }
    }

    /// Dedupe, then every order of the tag applies the event.
    fn on_event(&mut self, event: TagEvent, effects: &mut Effects) -> Outcome {
        if !self.seen.insert((event.tag_id.clone(), event.seq)) {
            return Outcome::Duplicate { seq: event.seq };
        }
        for order in self.scenario.orders_of(&event.tag_id) {
            let watch = self.watches.entry(order.order_id.clone()).or_default();
            let notice = watch.on_event(order, &event);
            effects.event_notice(order, event.kind, &notice);
        }
        Outcome::Event {
            seq: event.seq,
            kind: event.kind,
        }
    }
}

/// What one message caused: SMS sent and operator events published.
#[derive(Default)]
struct Effects {
    sms: Vec<SentSms>,
    operator_events: Vec<OperatorEvent>,
}

impl Effects {
    /// A rejected message: one operator event with the reason.
    fn reject(&mut self, e: &FixError) -> Outcome {
        self.operator_events.push(OperatorEvent {
            kind: rejected_kind(e.reason()),
            order_id: None,
            zone_id: None,
            urgency: None,
            detail: e.to_string(),
        });
        Outcome::Rejected {
            reason: e.reason().to_owned(),
            detail: e.to_string(),
        }
    }

    /// A zone change: its operator event kinds, and the SMS if the policy sends one.
    fn zone_notice(&mut self, order: &ProtectionOrder, notice: &Notice) {
        if let Some(zc) = &notice.zone_change {
            let what = match &zc.change.transition {
                Some(t) => format!(
                    "{} -> {} ({})",
                    level_name(t.from),
                    level_name(t.to),
                    serde_name(&t.cause)
                ),
                None => format!("stays {}", level_name(zc.change.order_after)),
            };
            let d = zc.assessment.distance_m;
            let place = if d <= 0.0 {
                format!("{:.0} m inside", -d)
            } else {
                format!("{d:.0} m from the edge")
            };
            let held = held_note(notice);
            for kind in operator_kinds(&zc.change) {
                self.operator_events.push(OperatorEvent {
                    kind,
                    order_id: Some(order.order_id.clone()),
                    zone_id: Some(zc.zone_id.clone()),
                    urgency: Some(notice.decision.urgency),
                    detail: format!("{}: {what}, {place}{held}", zc.zone_id),
                });
            }
        }
        self.sms(order, notice);
    }

    /// A tag event: its operator event, and the SMS if the policy sends one.
    fn event_notice(&mut self, order: &ProtectionOrder, kind: TagEventKind, notice: &Notice) {
        self.operator_events.push(OperatorEvent {
            kind: tag_event_kind(kind),
            order_id: Some(order.order_id.clone()),
            zone_id: None,
            urgency: Some(notice.decision.urgency),
            detail: format!("tag reported {}{}", serde_name(&kind), held_note(notice)),
        });
        self.sms(order, notice);
    }

    fn sms(&mut self, order: &ProtectionOrder, notice: &Notice) {
        if let (VictimDecision::Send(alert), Some(text)) =
            (notice.decision.victim, &notice.sms_text)
        {
            self.sms.push(SentSms {
                order_id: order.order_id.clone(),
                to: order.victim.phone.clone(),
                level: alert,
                text: text.clone(),
            });
        }
    }
}

/// "; victim SMS ... held by the cooldown" when the policy held one back.
fn held_note(notice: &Notice) -> String {
    match notice.decision.victim {
        VictimDecision::HeldByCooldown(alert) => {
            format!("; victim SMS {} held by the cooldown", alert_name(alert))
        }
        _ => String::new(),
    }
}
