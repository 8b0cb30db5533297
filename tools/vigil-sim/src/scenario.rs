//! The scenario file format (JSON) and its checked, ready-to-run form.
//!
//! A [`ScenarioFile`] mirrors the JSON exactly (`tests/scenarios/scenario.schema.json` is its
//! schema); every object refuses unknown fields, and a parse error names the field's path.
//! [`Scenario::from_json`] turns it into a [`Scenario`]: vigil-core orders and zones, and the
//! messages a tag would publish, as wire payloads, in delivery order.
//!
//! Field values of fixes are deliberately not checked here: they become a v1 wire payload and
//! go through `vigil_core::fix::parse_fix` as in the live pipeline, so a scenario can test
//! validation with out-of-range values, `"NaN"` strings or a `raw` payload.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use vigil_core::proximity::{VictimDevice, VictimZoneTerms};
use vigil_core::zone::ScheduleSpec;
use vigil_core::{
    DeviceId, OrderId, OrderPolicy, PhoneNumber, ProtectionOrder, TagId, Victim, VictimAlert,
    VictimId, Zone, ZoneId, ZoneKind, ZoneShape, ZoneSpec,
};

/// A scenario file, as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Where an editor finds the schema (e.g. `./scenario.schema.json`); ignored by the runner.
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Short name, shown in reports.
    pub name: String,
    /// What the scenario shows and why it matters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The instant `at_s = 0` stands for (RFC 3339).
    pub start: DateTime<Utc>,
    /// The protection orders, each with its victim and zones.
    pub orders: Vec<OrderEntry>,
    /// Position reports, in any order (they are delivered by `at_s`).
    pub fixes: Vec<FixEntry>,
    /// Tag events (tamper, battery, ...), delivered by `at_s` after fixes of the same second.
    #[serde(default)]
    pub events: Vec<EventEntry>,
    /// Positions from victims' own devices (orders with `victim_zone`), delivered by `at_s`
    /// after the fixes and events of the same second, as her device publishes them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub victim_positions: Vec<VictimPositionEntry>,
    /// Run the scenario clock to this many seconds after `start`, the watchdog running once a
    /// scenario minute (at each whole minute, after the messages of that instant), as
    /// EventBridge runs it. Without it the watchdog does not run (scenarios about single
    /// messages stay about them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_s: Option<f64>,
    /// Operators' acknowledgements, delivered by `at_s` after everything else of the same
    /// second, through vigil-admin as `vigil alerts ack` makes them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acks: Vec<AckEntry>,
    /// What must happen.
    pub expect: Expectations,
}

/// An operator's acknowledgement: of the open alert of a zone, or (without `zone_id`) of
/// every urgent alert of the order so far (docs/WATCHDOG.md, escalation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckEntry {
    /// Seconds after `start`.
    pub at_s: f64,
    /// The order.
    pub order_id: OrderId,
    /// The zone whose open alert is acknowledged; the whole order when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_id: Option<ZoneId>,
    /// A narration line for reports and the demo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The force scenario orders belong to, and the scenario's operator acts for.
pub const SCENARIO_FORCE: &str = "met";

/// The operator a scenario's acknowledgements are recorded under (`local:scenario`).
pub const SCENARIO_OPERATOR: &str = "scenario";

/// The name an [`Channel::Ack`] step carries in place of a tag.
pub const OPERATOR: &str = "operator";

/// One protection order of a scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderEntry {
    /// The order's id.
    pub order_id: OrderId,
    /// The offender's tag.
    pub tag_id: TagId,
    /// The protected person: id, E.164 phone and language.
    pub victim: Victim,
    /// Alert behaviour; the defaults when absent.
    #[serde(default)]
    pub policy: OrderPolicy,
    /// In force from this instant; at once when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<DateTime<Utc>>,
    /// In force until this instant; for ever when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<DateTime<Utc>>,
    /// The zones that protect this victim from this offender.
    pub zones: Vec<ZoneEntry>,
    /// She carries a device: the zone around it (docs/PROXIMITY.md). Her device's id is
    /// `dev-<victim_id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub victim_zone: Option<VictimZoneTerms>,
}

/// One position from a victim's own device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VictimPositionEntry {
    /// The victim whose device reports (an order of hers has `victim_zone`).
    pub victim_id: VictimId,
    /// Seconds after `start`: the device time of the position and the time it is received.
    pub at_s: f64,
    /// Latitude, degrees.
    pub lat: WireValue,
    /// Longitude, degrees.
    pub lon: WireValue,
    /// Accuracy radius, metres.
    pub accuracy_m: WireValue,
    /// The device's message counter; its position among her device's positions, from 1,
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// A narration line for reports and the demo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The device id a scenario gives a victim's own device.
pub fn device_of(victim: &VictimId) -> DeviceId {
    DeviceId::new(format!("dev-{victim}")).expect("a victim id makes a valid device id")
}

/// A zone, nested under the order it belongs to (the order is implied).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneEntry {
    /// The zone's id within its order. Two orders may each have a zone `home`: they are two
    /// zones, each protecting its own order.
    pub zone_id: ZoneId,
    /// What it protects; `other` when absent.
    #[serde(default)]
    pub kind: ZoneKind,
    /// A circle; give exactly one of `circle` and `polygon`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circle: Option<CircleEntry>,
    /// A polygon ring of `[lon, lat]` pairs (GeoJSON order); closing it is optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polygon: Option<Vec<[f64; 2]>>,
    /// Warning buffer around the shape, metres.
    pub buffer_m: f64,
    /// Weekly hours when the zone is in force; always when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleSpec>,
    /// In force from this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<DateTime<Utc>>,
    /// In force until this instant (exclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<DateTime<Utc>>,
}

/// A circular zone's geometry.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircleEntry {
    /// Centre latitude, degrees.
    pub lat: f64,
    /// Centre longitude, degrees.
    pub lon: f64,
    /// Radius, metres.
    pub radius_m: f64,
}

/// A number as a tag may send it: a JSON number, or a string such as `"NaN"` that some
/// firmware emits. Copied into the wire payload unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum WireValue {
    /// A JSON number.
    Number(f64),
    /// A JSON string.
    Text(String),
}

/// One position report of a tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixEntry {
    /// The publishing tag (the MQTT topic's second level).
    pub tag_id: TagId,
    /// Seconds after `start`: the device time of the fix and the time it is received.
    pub at_s: f64,
    /// Latitude, degrees; required unless `raw` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lat: Option<WireValue>,
    /// Longitude, degrees; required unless `raw` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lon: Option<WireValue>,
    /// Accuracy radius, metres; required unless `raw` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy_m: Option<WireValue>,
    /// The tag's message counter; see [`Scenario::from_json`] for the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// A payload published verbatim instead of one built from the fields above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    /// A narration line for reports and the demo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One tag event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventEntry {
    /// The publishing tag.
    pub tag_id: TagId,
    /// Seconds after `start`: device time and receive time.
    pub at_s: f64,
    /// The event kind as sent on the wire (`strap_tamper`, `battery_low`, ...); not checked
    /// here, so an unknown kind tests validation.
    pub kind: String,
    /// The tag's message counter; see [`Scenario::from_json`] for the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// A narration line for reports and the demo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What a scenario expects to happen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectations {
    /// The victim SMS, in the order each phone receives them.
    pub sms: Vec<ExpectedSms>,
    /// Operator events that must occur (at least as often as listed; any order).
    #[serde(default)]
    pub operator_events: Vec<ExpectedOperatorEvent>,
    /// When true, any SMS not listed in `sms` is a failure.
    pub no_other_sms: bool,
    /// The reporting commands (pursuit mode) each device receives, in order; when present,
    /// exactly these and no others, for every tag and victim's device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commands: Option<Vec<ExpectedCommand>>,
}

/// One expected reporting command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedCommand {
    /// The device: a tag id, or a victim's device id (`dev-<victim_id>`).
    pub tag_id: String,
    /// The interval it is told, seconds.
    pub report_interval_s: u32,
    /// The batching window it is told, seconds (adaptive reporting; 0, the default: none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub batch_s: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One expected victim SMS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedSms {
    /// The victim's phone (E.164).
    pub to: PhoneNumber,
    /// The kind of message.
    pub level: VictimAlert,
}

/// One expected operator event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedOperatorEvent {
    /// The kind, e.g. `zone_breach` or `fix_rejected:not_finite`. A kind without a `:` part
    /// also matches every kind that adds one (`fix_rejected` matches `fix_rejected:malformed`).
    pub kind: String,
    /// Exactly this many events of this kind, no more (and the kind is listed once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<usize>,
}

/// Which MQTT topic a message goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// `tags/{tag_id}/fix`.
    Fix,
    /// `tags/{tag_id}/event`.
    Event,
    /// `victims/{device_id}/position`: a victim's own device.
    Position,
    /// Not a message: the scenario clock reached a whole minute and the watchdog ran (only
    /// with `until_s`). Its `tag_id` is [`WATCHDOG`].
    Tick,
    /// Not a message: an operator acknowledged (`acks`). Its `tag_id` is [`OPERATOR`]; its
    /// payload `{"order_id", "zone_id"?}`.
    Ack,
}

/// The longest `until_s`: a week of scenario minutes.
const MAX_UNTIL_S: f64 = 7.0 * 24.0 * 3600.0;

/// The name a [`Channel::Tick`] step carries in place of a tag.
pub const WATCHDOG: &str = "watchdog";

/// One message a tag publishes during a scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Where it came from in the file, e.g. `fixes[3]`.
    pub source: String,
    /// Seconds after the scenario's start.
    pub at_s: f64,
    /// The scenario clock when it is received, Unix ms (the bridge's `received_at`).
    pub received_at_ms: i64,
    /// The publishing thing: the tag, or for [`Channel::Position`] her device (device ids
    /// follow the same rules as thing names).
    pub tag_id: TagId,
    /// Fix, event or position.
    pub channel: Channel,
    /// The payload, exactly as published.
    pub payload: String,
    /// The narration line, if any.
    pub note: Option<String>,
}

impl Message {
    /// The MQTT topic the message is published on.
    pub fn topic(&self) -> String {
        match self.channel {
            Channel::Fix => format!("tags/{}/fix", self.tag_id),
            Channel::Event => format!("tags/{}/event", self.tag_id),
            Channel::Position => format!("victims/{}/position", self.tag_id),
            Channel::Tick => "(the watchdog's schedule)".to_owned(),
            Channel::Ack => "(an operator's acknowledgement)".to_owned(),
        }
    }
}

/// A checked scenario: vigil-core orders and zones, and the messages in delivery order.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Short name.
    pub name: String,
    /// What it shows.
    pub description: Option<String>,
    /// The instant `at_s = 0` stands for.
    pub start: DateTime<Utc>,
    /// The orders, in file order.
    pub orders: Vec<ProtectionOrder>,
    /// Every order's zones (a zone belongs to the order that declares it).
    pub zones: Vec<Zone>,
    /// The messages, in delivery order: by `at_s`; at the same second fixes first, each kind
    /// in file order.
    pub messages: Vec<Message>,
    /// What must happen.
    pub expect: Expectations,
}

/// Why a scenario could not be used: what was wrong and where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ScenarioError {
    /// The field's path in the file, e.g. `orders[0].zones[1].circle`; `.` for the whole file.
    pub path: String,
    /// What is wrong, and what to do.
    pub message: String,
}

impl ScenarioError {
    fn at(path: impl fmt::Display, message: impl Into<String>) -> Self {
        Self {
            path: path.to_string(),
            message: message.into(),
        }
    }
}

/// Why a scenario file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file cannot be read.
    #[error("cannot read {}: {source}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// The reason.
        source: std::io::Error,
    },
    /// The file is not a valid scenario.
    #[error("{}: invalid scenario at {}", file.display(), error)]
    Invalid {
        /// The file.
        file: PathBuf,
        /// What is wrong, and where.
        error: ScenarioError,
    },
}

/// Reads and checks a scenario file.
///
/// Fails when the file cannot be read or is not a valid scenario; the error names the file and
/// the field's path.
pub fn load(file: &Path) -> Result<Scenario, LoadError> {
    let text = std::fs::read_to_string(file).map_err(|source| LoadError::Read {
        file: file.to_owned(),
        source,
    })?;
    Scenario::from_json(&text).map_err(|error| LoadError::Invalid {
        file: file.to_owned(),
        error,
    })
}

/// Parses scenario JSON into a [`ScenarioFile`]; the error carries the failing field's path.
pub fn parse_file(json: &str) -> Result<ScenarioFile, ScenarioError> {
    let de = &mut serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        ScenarioError::at(path, e.into_inner().to_string())
    })
}

/// Milliseconds of a scenario offset in seconds.
/// The longest offset from a scenario's start: ten years, in seconds.
const MAX_OFFSET_S: f64 = 10.0 * 365.25 * 86_400.0;

/// The device time of a message `at_s` after `start_ms`, refusing an offset that is not a
/// finite number within [`MAX_OFFSET_S`] of the start (found by fuzzing: a huge `at_s`
/// overflowed the addition).
fn device_ms(start_ms: i64, at_s: f64, path: &str) -> Result<i64, ScenarioError> {
    if !at_s.is_finite() || at_s.abs() > MAX_OFFSET_S {
        return Err(ScenarioError::at(
            format!("{path}.at_s"),
            format!("{at_s} is not a number of seconds within ten years of the start"),
        ));
    }
    start_ms
        .checked_add(offset_ms(at_s))
        .ok_or_else(|| ScenarioError::at(format!("{path}.at_s"), "the time overflows"))
}

fn offset_ms(at_s: f64) -> i64 {
    (at_s * 1000.0).round() as i64
}

impl Scenario {
    /// The zones `order` declares. Zone ids are unique within an order only, so they are
    /// matched by the order they belong to.
    pub fn zones_of(&self, order: &ProtectionOrder) -> Vec<Zone> {
        self.zones
            .iter()
            .filter(|z| z.order_id() == &order.order_id)
            .cloned()
            .collect()
    }

    /// Parses and checks scenario JSON.
    ///
    /// Defaults: a fix's `seq` is its position among its tag's fixes, from 1; an event's `seq`
    /// follows its tag's fixes (the tag's number of fixes plus its position among the tag's
    /// events), so defaulted counters never collide across the two topics.
    ///
    /// Fails, naming the field's path, on unknown fields, wrong types, invalid identifiers or
    /// phone numbers, a zone refused by vigil-core, a zone id declared twice in one order, a
    /// fix with neither position fields nor `raw` (or with both), or an expected SMS to a
    /// phone no victim has.
    pub fn from_json(json: &str) -> Result<Scenario, ScenarioError> {
        Self::from_file(parse_file(json)?)
    }

    /// Checks a parsed scenario file; see [`Scenario::from_json`].
    pub fn from_file(file: ScenarioFile) -> Result<Scenario, ScenarioError> {
        if file.orders.is_empty() {
            return Err(ScenarioError::at(
                "orders",
                "a scenario needs at least one order",
            ));
        }
        let mut order_ids = HashSet::new();
        let mut orders = Vec::with_capacity(file.orders.len());
        let mut zones = Vec::new();
        for (i, entry) in file.orders.iter().enumerate() {
            if !order_ids.insert(entry.order_id.clone()) {
                return Err(ScenarioError::at(
                    format!("orders[{i}].order_id"),
                    format!("order {} is declared twice", entry.order_id),
                ));
            }
            let mut ids: HashSet<&ZoneId> = HashSet::new();
            for (j, z) in entry.zones.iter().enumerate() {
                let path = format!("orders[{i}].zones[{j}]");
                if !ids.insert(&z.zone_id) {
                    return Err(ScenarioError::at(
                        path,
                        format!(
                            "zone {} is declared twice in order {}",
                            z.zone_id, entry.order_id
                        ),
                    ));
                }
                let spec = zone_spec(z, &entry.order_id, &path)?;
                zones.push(Zone::new(spec).map_err(|e| ScenarioError::at(path, e.to_string()))?);
            }
            orders.push(ProtectionOrder {
                // Scenarios play in the deployment's default force (infra/forces.json).
                force_id: Some(
                    vigil_core::ForceId::new(SCENARIO_FORCE).expect("the scenario force is an id"),
                ),
                order_id: entry.order_id.clone(),
                tag_id: entry.tag_id.clone(),
                victim: entry.victim.clone(),
                zone_ids: entry.zones.iter().map(|z| z.zone_id.clone()).collect(),
                valid_from: entry.valid_from,
                valid_until: entry.valid_until,
                policy: entry.policy.clone(),
                victim_device: entry
                    .victim_zone
                    .clone()
                    .map(|zone| {
                        zone.check().map_err(|e| {
                            ScenarioError::at(format!("orders[{i}].victim_zone"), e)
                        })?;
                        Ok(VictimDevice {
                            device_id: device_of(&entry.victim.victim_id),
                            zone,
                        })
                    })
                    .transpose()?,
            });
        }

        let phones: HashSet<&PhoneNumber> = orders.iter().map(|o| &o.victim.phone).collect();
        for (k, sms) in file.expect.sms.iter().enumerate() {
            if !phones.contains(&sms.to) {
                return Err(ScenarioError::at(
                    format!("expect.sms[{k}].to"),
                    format!(
                        "no victim in this scenario has the number {}; expect SMS only to a victim's phone",
                        sms.to
                    ),
                ));
            }
        }

        for (k, e) in file.expect.operator_events.iter().enumerate() {
            let listed = file
                .expect
                .operator_events
                .iter()
                .filter(|o| o.kind == e.kind)
                .count();
            if e.times.is_some() && listed > 1 {
                return Err(ScenarioError::at(
                    format!("expect.operator_events[{k}].times"),
                    format!(
                        "{} is listed {listed} times: with times, list a kind once",
                        e.kind
                    ),
                ));
            }
        }
        for (k, a) in file.acks.iter().enumerate() {
            let path = format!("acks[{k}]");
            let Some(order) = orders.iter().find(|o| o.order_id == a.order_id) else {
                return Err(ScenarioError::at(
                    format!("{path}.order_id"),
                    format!("no order {} in this scenario", a.order_id),
                ));
            };
            if let Some(z) = &a.zone_id
                && !order.zone_ids.contains(z)
            {
                return Err(ScenarioError::at(
                    format!("{path}.zone_id"),
                    format!("order {} has no zone {z}", a.order_id),
                ));
            }
        }

        let messages = messages(&file)?;
        Ok(Scenario {
            name: file.name,
            description: file.description,
            start: file.start,
            orders,
            zones,
            messages,
            expect: file.expect,
        })
    }

    /// The orders of a publishing thing, in file order: those restraining the tag, or those
    /// whose victim carries this device.
    pub fn orders_of<'a>(&'a self, thing: &'a TagId) -> impl Iterator<Item = &'a ProtectionOrder> {
        self.orders.iter().filter(move |o| {
            &o.tag_id == thing
                || o.victim_device
                    .as_ref()
                    .is_some_and(|d| d.device_id.as_str() == thing.as_str())
        })
    }

    /// The device time of a scenario offset, Unix ms.
    pub fn at_ms(&self, at_s: f64) -> i64 {
        self.start
            .timestamp_millis()
            .saturating_add(offset_ms(at_s))
    }
}

fn zone_spec(z: &ZoneEntry, order: &OrderId, path: &str) -> Result<ZoneSpec, ScenarioError> {
    let shape = match (&z.circle, &z.polygon) {
        (Some(c), None) => ZoneShape::Circle {
            lat: c.lat,
            lon: c.lon,
            radius_m: c.radius_m,
        },
        (None, Some(ring)) => ZoneShape::Polygon(ring.clone()),
        (Some(_), Some(_)) => {
            return Err(ScenarioError::at(
                path,
                "give either circle or polygon, not both",
            ));
        }
        (None, None) => {
            return Err(ScenarioError::at(
                path,
                "a zone needs a shape: add circle {lat, lon, radius_m} or polygon [[lon, lat], ...]",
            ));
        }
    };
    Ok(ZoneSpec {
        zone_id: z.zone_id.clone(),
        kind: z.kind,
        shape,
        buffer_m: z.buffer_m,
        schedule: z.schedule.clone(),
        valid_from: z.valid_from,
        valid_until: z.valid_until,
        order_id: order.clone(),
    })
}

fn wire(v: &WireValue) -> serde_json::Value {
    match v {
        WireValue::Number(n) => json!(n),
        WireValue::Text(s) => json!(s),
    }
}

/// The messages of a scenario file, with payloads built and in delivery order.
fn messages(file: &ScenarioFile) -> Result<Vec<Message>, ScenarioError> {
    let start_ms = file.start.timestamp_millis();
    let mut fixes_per_tag: HashMap<&TagId, u64> = HashMap::new();
    let mut out: Vec<(i64, u8, usize, Message)> = Vec::new();
    for (i, f) in file.fixes.iter().enumerate() {
        let path = format!("fixes[{i}]");
        let index = fixes_per_tag.entry(&f.tag_id).or_default();
        *index += 1;
        let seq = f.seq.unwrap_or(*index);
        let at_ms = device_ms(start_ms, f.at_s, &path)?;
        let payload = match (&f.raw, &f.lat, &f.lon, &f.accuracy_m) {
            (Some(raw), None, None, None) => raw.clone(),
            (Some(_), ..) => {
                return Err(ScenarioError::at(
                    path,
                    "a fix with raw is published verbatim: leave out lat, lon and accuracy_m",
                ));
            }
            (None, Some(lat), Some(lon), Some(acc)) => json!({
                "v": vigil_core::fix::WIRE_VERSION,
                "seq": seq,
                "at_ms": at_ms,
                "lat": wire(lat),
                "lon": wire(lon),
                "accuracy_m": wire(acc),
            })
            .to_string(),
            (None, ..) => {
                return Err(ScenarioError::at(
                    path,
                    "a fix needs lat, lon and accuracy_m (or a raw payload)",
                ));
            }
        };
        out.push((
            at_ms,
            0,
            i,
            Message {
                source: path,
                at_s: f.at_s,
                received_at_ms: at_ms,
                tag_id: f.tag_id.clone(),
                channel: Channel::Fix,
                payload,
                note: f.note.clone(),
            },
        ));
    }
    let mut events_per_tag: HashMap<&TagId, u64> = HashMap::new();
    for (i, e) in file.events.iter().enumerate() {
        let index = events_per_tag.entry(&e.tag_id).or_default();
        *index += 1;
        let seq = e
            .seq
            .unwrap_or(fixes_per_tag.get(&e.tag_id).copied().unwrap_or(0) + *index);
        let at_ms = device_ms(start_ms, e.at_s, &format!("events[{i}]"))?;
        let payload = json!({
            "v": vigil_core::fix::WIRE_VERSION,
            "seq": seq,
            "at_ms": at_ms,
            "kind": e.kind,
        })
        .to_string();
        out.push((
            at_ms,
            1,
            i,
            Message {
                source: format!("events[{i}]"),
                at_s: e.at_s,
                received_at_ms: at_ms,
                tag_id: e.tag_id.clone(),
                channel: Channel::Event,
                payload,
                note: e.note.clone(),
            },
        ));
    }
    let carriers: HashSet<&VictimId> = file
        .orders
        .iter()
        .filter(|o| o.victim_zone.is_some())
        .map(|o| &o.victim.victim_id)
        .collect();
    let mut positions_per_device: HashMap<&VictimId, u64> = HashMap::new();
    for (i, p) in file.victim_positions.iter().enumerate() {
        let path = format!("victim_positions[{i}]");
        if !carriers.contains(&p.victim_id) {
            return Err(ScenarioError::at(
                format!("{path}.victim_id"),
                format!(
                    "victim {} carries no device: give one of her orders a victim_zone",
                    p.victim_id
                ),
            ));
        }
        let index = positions_per_device.entry(&p.victim_id).or_default();
        *index += 1;
        let at_ms = device_ms(start_ms, p.at_s, &path)?;
        let payload = json!({
            "v": vigil_core::fix::WIRE_VERSION,
            "seq": p.seq.unwrap_or(*index),
            "at_ms": at_ms,
            "lat": wire(&p.lat),
            "lon": wire(&p.lon),
            "accuracy_m": wire(&p.accuracy_m),
        })
        .to_string();
        let device = device_of(&p.victim_id);
        out.push((
            at_ms,
            2,
            i,
            Message {
                source: path,
                at_s: p.at_s,
                received_at_ms: at_ms,
                tag_id: TagId::new(device.as_str()).expect("device ids are thing names"),
                channel: Channel::Position,
                payload,
                note: p.note.clone(),
            },
        ));
    }
    if let Some(until_s) = file.until_s {
        if !(0.0..=MAX_UNTIL_S).contains(&until_s) {
            return Err(ScenarioError::at(
                "until_s",
                format!(
                    "{until_s} is not a number of seconds between 0 and {MAX_UNTIL_S} (a week)"
                ),
            ));
        }
        let until_ms = start_ms + offset_ms(until_s);
        // EventBridge fires at each whole minute; the first after the start.
        let mut at_ms = (start_ms.div_euclid(60_000) + 1) * 60_000;
        let mut i = 0;
        while at_ms <= until_ms {
            out.push((
                at_ms,
                3,
                i,
                Message {
                    source: format!("until_s (minute {})", i + 1),
                    at_s: (at_ms - start_ms) as f64 / 1000.0,
                    received_at_ms: at_ms,
                    tag_id: TagId::new(WATCHDOG).expect("a valid thing name"),
                    channel: Channel::Tick,
                    payload: String::new(),
                    note: None,
                },
            ));
            at_ms += 60_000;
            i += 1;
        }
    }
    for (i, a) in file.acks.iter().enumerate() {
        let path = format!("acks[{i}]");
        let at_ms = device_ms(start_ms, a.at_s, &path)?;
        out.push((
            at_ms,
            4,
            i,
            Message {
                source: path,
                at_s: a.at_s,
                received_at_ms: at_ms,
                tag_id: TagId::new(OPERATOR).expect("a valid thing name"),
                channel: Channel::Ack,
                payload: json!({ "order_id": a.order_id, "zone_id": a.zone_id }).to_string(),
                note: a.note.clone(),
            },
        ));
    }
    out.sort_by_key(|&(at_ms, channel, index, _)| (at_ms, channel, index));
    Ok(out.into_iter().map(|(.., m)| m).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> serde_json::Value {
        json!({
            "name": "t",
            "start": "2026-03-02T08:00:00Z",
            "orders": [{
                "order_id": "o-1", "tag_id": "tag-1",
                "victim": {"victim_id": "v-1", "phone": "+447700900123", "language": "en"},
                "zones": [{"zone_id": "home", "kind": "home",
                           "circle": {"lat": 51.5, "lon": -0.12, "radius_m": 100}, "buffer_m": 500}]
            }],
            "fixes": [],
            "expect": {"sms": [], "no_other_sms": true}
        })
    }

    fn err(v: serde_json::Value) -> ScenarioError {
        Scenario::from_json(&v.to_string()).unwrap_err()
    }

    #[test]
    fn an_offset_beyond_ten_years_is_refused_not_overflowed() {
        // Found by `tools/fuzz.sh scenario`: `at_s` of 1e300 overflowed the device time.
        for at_s in [1e300, -1e300, 4e8] {
            let mut v = minimal();
            v["fixes"] = json!([{"tag_id": "tag-1", "at_s": at_s, "lat": 51.5, "lon": -0.12, "accuracy_m": 10}]);
            let e = err(v);
            assert_eq!(e.path, "fixes[0].at_s", "{e}");
            assert!(e.message.contains("ten years"), "{e}");
        }
        let mut v = minimal();
        v["events"] = json!([{"tag_id": "tag-1", "at_s": 1e300, "kind": "strap_tamper"}]);
        assert_eq!(err(v).path, "events[0].at_s");
    }

    #[test]
    fn unknown_field_error_names_its_path() {
        let mut v = minimal();
        v["orders"][0]["zones"][0]["circle"]["radius"] = json!(5);
        let e = err(v);
        assert_eq!(e.path, "orders[0].zones[0].circle.radius");
        assert!(e.message.contains("unknown field `radius`"), "{e}");

        let mut v = minimal();
        v["fixes"] = json!([{"tag_id": "tag-1", "at_s": 0, "lat": 51.5, "lon": -0.1, "accuracy_m": 5, "speed": 3}]);
        assert_eq!(err(v).path, "fixes[0].speed");

        let mut v = minimal();
        v["expect"]["sms"] = json!([{"to": "+447700900123", "level": "panic"}]);
        let e = err(v);
        assert_eq!(e.path, "expect.sms[0].level");
        assert!(e.message.contains("unknown variant"), "{e}");
    }

    #[test]
    fn invalid_values_name_their_path() {
        let mut v = minimal();
        v["orders"][0]["victim"]["phone"] = json!("07700 900123");
        let e = err(v);
        assert_eq!(e.path, "orders[0].victim.phone");
        assert!(e.message.contains("E.164"), "{e}");

        let mut v = minimal();
        v["orders"][0]["zones"][0]["buffer_m"] = json!(-5);
        let e = err(v);
        assert_eq!(e.path, "orders[0].zones[0]");
        assert!(e.message.contains("buffer_m"), "{e}");

        let mut v = minimal();
        v["expect"]["sms"] = json!([{"to": "+447700900999", "level": "warning"}]);
        assert_eq!(err(v).path, "expect.sms[0].to");

        let mut v = minimal();
        v["fixes"] = json!([{"tag_id": "tag-1", "at_s": 0, "lat": 51.5}]);
        assert!(err(v).message.contains("needs lat, lon and accuracy_m"));

        let mut v = minimal();
        v["fixes"] = json!([{"tag_id": "tag-1", "at_s": 0, "raw": "x", "lat": 51.5}]);
        assert!(err(v).message.contains("verbatim"));
    }

    #[test]
    fn two_orders_zones_of_one_id_are_two_zones() {
        // Issue 11, defect 3: two victims' zones called `home` must work as two zones, even
        // at different places.
        let mut v = minimal();
        let mut second = v["orders"][0].clone();
        second["order_id"] = json!("o-2");
        second["tag_id"] = json!("tag-2");
        second["zones"][0]["circle"]["lat"] = json!(40.4);
        v["orders"].as_array_mut().unwrap().push(second.clone());
        let s = Scenario::from_json(&v.to_string()).unwrap();
        assert_eq!(s.zones.len(), 2);
        let owners: Vec<&str> = s.zones.iter().map(|z| z.order_id().as_str()).collect();
        assert_eq!(owners, ["o-1", "o-2"]);
        assert_eq!(s.zones[0].id(), s.zones[1].id());

        let mut twice = v["orders"][0].clone();
        let zone = twice["zones"][0].clone();
        twice["zones"].as_array_mut().unwrap().push(zone);
        v["orders"][0] = twice;
        let e = err(v);
        assert_eq!(e.path, "orders[0].zones[1]");
        assert!(e.message.contains("declared twice"), "{e}");
    }

    #[test]
    fn payloads_and_delivery_order() {
        let mut v = minimal();
        v["fixes"] = json!([
            {"tag_id": "tag-1", "at_s": 60, "lat": 51.5, "lon": -0.1, "accuracy_m": 10},
            {"tag_id": "tag-1", "at_s": 0, "lat": "NaN", "lon": -0.1, "accuracy_m": 10},
            {"tag_id": "tag-1", "at_s": 60, "raw": "garbage"},
            {"tag_id": "tag-1", "at_s": 120, "lat": 51.5, "lon": -0.1, "accuracy_m": 10, "seq": 40}
        ]);
        v["events"] = json!([{"tag_id": "tag-1", "at_s": 0, "kind": "strap_tamper"}]);
        let s = Scenario::from_json(&v.to_string()).unwrap();
        let order: Vec<&str> = s.messages.iter().map(|m| m.source.as_str()).collect();
        assert_eq!(
            order,
            ["fixes[1]", "events[0]", "fixes[0]", "fixes[2]", "fixes[3]"]
        );
        let start = s.start.timestamp_millis();
        assert_eq!(
            s.messages[0].payload,
            format!(
                r#"{{"accuracy_m":10.0,"at_ms":{start},"lat":"NaN","lon":-0.1,"seq":2,"v":1}}"#
            )
        );
        assert!(
            s.messages[1].payload.contains(r#""seq":5"#),
            "after 4 fixes"
        );
        assert_eq!(s.messages[3].payload, "garbage");
        assert!(s.messages[4].payload.contains(r#""seq":40"#));
        assert_eq!(s.messages[2].received_at_ms, start + 60_000);
        assert_eq!(s.messages[1].topic(), "tags/tag-1/event");
        assert_eq!(s.messages[0].topic(), "tags/tag-1/fix");
    }
}
