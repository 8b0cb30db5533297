//! Executors run a scenario and record what happened, in a form the comparison and the reports
//! read whatever ran it.
//!
//! [`crate::in_process::InProcessExecutor`] runs the scenario over vigil-core in this process;
//! [`crate::local_stack::LocalStackExecutor`] drives the whole local pipeline (publishing over
//! MQTT, reading SMS back from the emulator). Both fill the same [`Run`], which the comparison
//! and the reports read whatever ran it.

use crate::scenario::{Channel, Scenario};
use serde::Serialize;
use vigil_core::{AlertLevel, OrderId, PhoneNumber, TagEventKind, Urgency, VictimAlert, ZoneId};

/// Something that can run a scenario: deliver its messages in order and record the outcome.
pub trait ScenarioExecutor {
    /// A short name for reports, e.g. `in-process`.
    fn name(&self) -> &str;

    /// Delivers every message of `scenario` in order and returns one [`StepRecord`] per
    /// message. Fails only when the executor itself cannot work (a broker or emulator that
    /// does not answer); what the pipeline does with bad input is recorded, not an error.
    fn execute(&mut self, scenario: &Scenario) -> Result<Run, ExecutorError>;
}

/// An executor could not run a scenario.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the {executor} executor failed: {message}")]
pub struct ExecutorError {
    /// Which executor.
    pub executor: String,
    /// What went wrong and what to check.
    pub message: String,
}

/// Everything one scenario run produced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Run {
    /// The executor's name.
    pub executor: String,
    /// One record per message, in delivery order.
    pub steps: Vec<StepRecord>,
}

/// What one delivered message did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepRecord {
    /// Index of the message in [`Scenario::messages`].
    pub message: usize,
    /// Seconds after the scenario's start.
    pub at_s: f64,
    /// The publishing tag.
    pub tag_id: vigil_core::TagId,
    /// Fix or event.
    pub channel: Channel,
    /// Accepted, rejected or dropped.
    pub outcome: Outcome,
    /// The level of each order of the tag after the message.
    pub levels: Vec<OrderLevel>,
    /// Victim SMS sent because of it.
    pub sms: Vec<SentSms>,
    /// Operator events published because of it.
    pub operator_events: Vec<SeenEvent>,
    /// Reporting commands sent to devices because of it (pursuit mode).
    pub commands: Vec<SentCommand>,
}

/// A reporting command a device received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SentCommand {
    /// The thing commanded: a tag id, or her device's id.
    pub thing: String,
    /// Whether it is her device (`victims/{id}/cmd`) rather than a tag (`tags/{id}/cmd`).
    pub victim_device: bool,
    /// The interval it was told, seconds.
    pub report_interval_s: u32,
    /// The batching window it was told, seconds (0: none).
    pub batch_s: u32,
}

impl SentCommand {
    /// A command from its topic and payload as published.
    ///
    /// Fails on a topic that is not a command topic or a payload without an interval.
    pub fn parse(topic: &str, payload: &[u8]) -> Result<SentCommand, String> {
        let parts: Vec<&str> = topic.split('/').collect();
        let (victim_device, thing) = match parts.as_slice() {
            ["tags", id, "cmd"] => (false, *id),
            ["victims", id, "cmd"] => (true, *id),
            _ => return Err(format!("{topic} is not a command topic")),
        };
        let value: serde_json::Value = serde_json::from_slice(payload)
            .map_err(|e| format!("the command on {topic} is not JSON: {e}"))?;
        let report_interval_s = value["report_interval_s"]
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| format!("the command on {topic} has no report_interval_s"))?;
        let batch_s = value["batch_s"]
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0);
        Ok(SentCommand {
            thing: thing.to_owned(),
            victim_device,
            report_interval_s,
            batch_s,
        })
    }
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

/// What the pipeline did with a message.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Outcome {
    /// A fix passed validation and was evaluated.
    Fix {
        /// The tag's message counter.
        seq: u64,
        /// Device time, Unix ms.
        at_ms: i64,
        /// Latitude, degrees.
        lat: f64,
        /// Longitude, degrees.
        lon: f64,
        /// Accuracy radius, metres.
        accuracy_m: f64,
        /// How much older than the tag's newest fix it was, ms, when it arrived late.
        late_by_ms: Option<i64>,
        /// Fixes the message carried: more than one in a v2 batch (adaptive reporting),
        /// whose newest the fields above describe.
        #[serde(skip_serializing_if = "is_one")]
        fixes: usize,
    },
    /// A tag event passed validation and was applied.
    Event {
        /// The tag's message counter.
        seq: u64,
        /// What the tag reported.
        kind: TagEventKind,
    },
    /// The message failed validation.
    Rejected {
        /// The stable reason code (`vigil_core::FixError::reason`).
        reason: String,
        /// The full explanation.
        detail: String,
    },
    /// A position from a victim's device passed validation and was judged (its coordinates
    /// are not kept here: reports never show where she was).
    Position {
        /// The device's message counter.
        seq: u64,
        /// Device time, Unix ms.
        at_ms: i64,
    },
    /// The message repeats a (tag, seq) already accepted and was dropped.
    Duplicate {
        /// The repeated counter.
        seq: u64,
    },
    /// Not a message: the watchdog ran at this minute (`until_s`).
    Tick,
    /// Not a message: an operator acknowledged (`acks`).
    Ack,
}

/// An order's level at some point.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderLevel {
    /// The order.
    pub order_id: OrderId,
    /// Its level: the highest of its zones'.
    pub level: AlertLevel,
}

/// One SMS sent to a victim.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SentSms {
    /// The order it was sent under.
    pub order_id: OrderId,
    /// The victim's phone. Reports show it only redacted, and it serialises redacted too.
    #[serde(serialize_with = "redacted")]
    pub to: PhoneNumber,
    /// The kind of message.
    pub level: VictimAlert,
    /// The text sent.
    pub text: String,
}

fn redacted<S: serde::Serializer>(phone: &PhoneNumber, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&phone.redacted())
}

/// One event published to the operators.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeenEvent {
    /// The kind, from vigil-core's one vocabulary (`vigil_core::events`): `zone_warning`,
    /// `zone_breach`, `zone_step_down`, `zone_clear`, `zone_out_of_force`, `late_fix`,
    /// `breach_persisting`, `breach_repeated`, `tag_event:<kind>`, `fix_rejected:<reason>`.
    pub kind: String,
    /// The order concerned; none for a message rejected before its tag's orders are known.
    pub order_id: Option<OrderId>,
    /// The zone concerned, for zone events.
    pub zone_id: Option<ZoneId>,
    /// How urgent the policy judged it; none for rejected messages.
    pub urgency: Option<Urgency>,
    /// A one-line description for people.
    pub detail: String,
}

/// Totals of a run, for summaries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RunCounts {
    /// Fixes accepted.
    pub fixes_accepted: usize,
    /// Events accepted.
    pub events_accepted: usize,
    /// Victims' device positions accepted.
    pub positions_accepted: usize,
    /// Messages rejected by validation.
    pub rejected: usize,
    /// Duplicate messages dropped.
    pub duplicates: usize,
    /// SMS sent.
    pub sms: usize,
    /// Operator events published.
    pub operator_events: usize,
}

impl Run {
    /// Every SMS sent, in order, with the step that caused it.
    pub fn sms(&self) -> impl Iterator<Item = (&StepRecord, &SentSms)> {
        self.steps
            .iter()
            .flat_map(|s| s.sms.iter().map(move |m| (s, m)))
    }

    /// Every command to a device, in order, with the step that caused it.
    pub fn commands(&self) -> impl Iterator<Item = (&StepRecord, &SentCommand)> {
        self.steps
            .iter()
            .flat_map(|s| s.commands.iter().map(move |c| (s, c)))
    }

    /// Every operator event, in order, with the step that caused it.
    pub fn operator_events(&self) -> impl Iterator<Item = (&StepRecord, &SeenEvent)> {
        self.steps
            .iter()
            .flat_map(|s| s.operator_events.iter().map(move |e| (s, e)))
    }

    /// Totals over the run.
    pub fn counts(&self) -> RunCounts {
        let mut c = RunCounts::default();
        for s in &self.steps {
            match s.outcome {
                Outcome::Fix { fixes, .. } => c.fixes_accepted += fixes,
                Outcome::Event { .. } => c.events_accepted += 1,
                Outcome::Position { .. } => c.positions_accepted += 1,
                Outcome::Rejected { .. } => c.rejected += 1,
                Outcome::Duplicate { .. } => c.duplicates += 1,
                Outcome::Tick | Outcome::Ack => {}
            }
            c.sms += s.sms.len();
            c.operator_events += s.operator_events.len();
        }
        c
    }
}

/// An operator's acknowledgement step (`acks`), made through vigil-admin as `vigil alerts
/// ack` makes it, recorded at the scenario clock under operator `local:scenario`: the open
/// alert of the zone when the step names one, else every urgent alert of the order so far.
pub(crate) async fn acknowledge<S>(
    store: &S,
    message: &crate::scenario::Message,
) -> Result<(), String>
where
    S: vigil_aws::ports::AdminStore + vigil_aws::ports::AuditLog,
{
    #[derive(serde::Deserialize)]
    struct Ack {
        order_id: OrderId,
        zone_id: Option<ZoneId>,
    }
    let ack: Ack =
        serde_json::from_str(&message.payload).map_err(|e| format!("{}: {e}", message.source))?;
    let who = vigil_admin::Caller::new(
        vigil_admin::operator::Operator::local(Some(crate::scenario::SCENARIO_OPERATOR))
            .map_err(|e| e.to_string())?,
        vigil_admin::Scope::parse(crate::scenario::SCENARIO_FORCE).map_err(|e| e.to_string())?,
    );
    let now = message.received_at_ms;
    let done = match &ack.zone_id {
        Some(zone) => vigil_admin::alerts::acknowledge(store, &who, &ack.order_id, zone, None, now)
            .await
            .map(|_| ()),
        None => vigil_admin::alerts::acknowledge_order(store, &who, &ack.order_id, None, now)
            .await
            .map(|_| ()),
    };
    done.map_err(|e| format!("{}: the acknowledgement failed: {e}", message.source))
}
