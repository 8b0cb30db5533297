//! GPS fixes and tag events: the wire format (JSON, versions 1 and 2), parsing and validation.
//!
//! A tag publishes a fix on `tags/{tag_id}/fix` and an event on `tags/{tag_id}/event`; the topic,
//! not the payload, says which tag it is. On the fix channel a version 2 message carries a batch
//! of fixes ([`parse_fixes`]): adaptive reporting lets a tag far from every zone send its fixes a
//! few at a time (docs/WIRE_FORMAT.md). Everything a tag sends is untrusted: parsing and
//! validation give one specific [`FixError`] per problem so that a rejected message can be
//! counted by reason and kept for inspection. The format is documented in `docs/WIRE_FORMAT.md`.

use crate::geodesy;
use crate::ids::TagId;
use serde::{Deserialize, Deserializer, Serialize};

/// The wire version of a single fix, a tag event and a victim's device's position.
pub const WIRE_VERSION: u32 = 1;

/// The wire version of a batch of fixes (tags' fix channel only).
pub const BATCH_VERSION: u32 = 2;

/// Limits applied to everything a tag sends. The defaults suit a UK-style scheme.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationLimits {
    /// Largest payload accepted, in bytes. A v1 fix is under 250 bytes.
    pub max_payload_bytes: usize,
    /// Largest v2 batch accepted, in bytes: one IoT Core billing unit (5 KB), about 30 fixes.
    #[serde(default = "default_batch_bytes")]
    pub max_batch_payload_bytes: usize,
    /// Most fixes one v2 batch may carry.
    #[serde(default = "default_batch_fixes")]
    pub max_batch_fixes: usize,
    /// Worst horizontal accuracy (radius, metres) a fix may report and still be evaluated.
    pub max_accuracy_m: f64,
    /// How far ahead of the receive time a device clock may be.
    pub max_future_ms: i64,
    /// How old a fix may be when it arrives (tags buffer fixes while out of coverage).
    pub max_age_ms: i64,
    /// Fastest plausible ground speed, metres per second (250 km/h).
    pub max_speed_mps: f64,
    /// The speed check compares with the previous fix only if it is at most this far apart in
    /// time, so that one bad accepted fix cannot block a tag's good fixes for long.
    pub motion_window_ms: i64,
}

fn default_batch_bytes() -> usize {
    5 * 1024
}

fn default_batch_fixes() -> usize {
    30
}

impl Default for ValidationLimits {
    fn default() -> Self {
        Self {
            max_payload_bytes: 2048,
            max_batch_payload_bytes: default_batch_bytes(),
            max_batch_fixes: default_batch_fixes(),
            max_accuracy_m: 250.0,
            max_future_ms: 2 * 60_000,
            max_age_ms: 6 * 3_600_000,
            max_speed_mps: 70.0,
            motion_window_ms: 10 * 60_000,
        }
    }
}

/// One position report from a tag, validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fix {
    /// The tag that reported it (from the MQTT topic).
    pub tag_id: TagId,
    /// The tag's message counter; with `tag_id` it identifies the message.
    pub seq: u64,
    /// Device time of the fix, Unix milliseconds.
    pub at_ms: i64,
    /// Latitude, degrees WGS84, in [-90, 90].
    pub lat: f64,
    /// Longitude, degrees WGS84, in [-180, 180].
    pub lon: f64,
    /// Horizontal accuracy: radius of the uncertainty disc, metres.
    pub accuracy_m: f64,
    /// Ground speed the receiver reported, metres per second.
    pub speed_mps: Option<f64>,
    /// Course over ground, degrees clockwise from north.
    pub heading_deg: Option<f64>,
    /// Battery charge, percent.
    pub battery_pct: Option<u8>,
}

/// What a tag reports besides its position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TagEventKind {
    /// The strap was cut or opened.
    StrapTamper,
    /// The strap is closed again.
    StrapRestored,
    /// The battery is below the tag's warning level.
    BatteryLow,
    /// The receiver has had no usable GPS signal for a while.
    NoGps,
    /// External power or the device is going down.
    PowerOff,
    /// The device started.
    PowerOn,
}

impl TagEventKind {
    /// Every kind, for templates and tests.
    pub const ALL: [TagEventKind; 6] = [
        Self::StrapTamper,
        Self::StrapRestored,
        Self::BatteryLow,
        Self::NoGps,
        Self::PowerOff,
        Self::PowerOn,
    ];
}

/// One non-position report from a tag, validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TagEvent {
    /// The tag that reported it (from the MQTT topic).
    pub tag_id: TagId,
    /// The tag's message counter.
    pub seq: u64,
    /// Device time, Unix milliseconds.
    pub at_ms: i64,
    /// What happened.
    pub kind: TagEventKind,
    /// Battery charge, percent, when the tag sent it.
    pub battery_pct: Option<u8>,
}

/// Why a message from a tag was rejected. Each variant is one problem; [`FixError::reason`]
/// gives a stable code for metrics and the quarantine store.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FixError {
    /// The payload is larger than the limit.
    #[error("payload is {bytes} bytes; at most {limit} are accepted")]
    PayloadTooLarge {
        /// Payload size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// The payload is not the JSON object the wire format describes.
    #[error("payload is not a valid message: {detail}")]
    Malformed {
        /// What the JSON parser reported (position and expectation; no payload content).
        detail: String,
    },
    /// The payload's `v` is not a version this build understands.
    #[error("wire version {v} is not supported here; this build reads {reads}")]
    UnknownVersion {
        /// The version sent.
        v: u64,
        /// What is read on this channel: `version 1`, or `versions 1 and 2` on a tag's fixes.
        reads: &'static str,
    },
    /// A numeric field is NaN or infinite.
    #[error("{field} is not a finite number")]
    NotFinite {
        /// The field.
        field: &'static str,
    },
    /// Latitude outside [-90, 90].
    #[error("latitude {} is outside [-90, 90]", short(*lat))]
    LatitudeOutOfRange {
        /// The value sent.
        lat: f64,
    },
    /// Longitude outside [-180, 180].
    #[error("longitude {} is outside [-180, 180]", short(*lon))]
    LongitudeOutOfRange {
        /// The value sent.
        lon: f64,
    },
    /// Accuracy negative or worse than the limit.
    #[error("accuracy {} m is outside [0, {limit_m}] m", short(*accuracy_m))]
    AccuracyOutOfRange {
        /// The value sent.
        accuracy_m: f64,
        /// The worst accuracy accepted.
        limit_m: f64,
    },
    /// An optional field holds a value it cannot have.
    #[error("{field} is {}, outside [{min}, {max}]", short(*value))]
    FieldOutOfRange {
        /// The field.
        field: &'static str,
        /// The value sent.
        value: f64,
        /// Smallest valid value.
        min: f64,
        /// Largest valid value.
        max: f64,
    },
    /// Device time is ahead of the receive time by more than the limit.
    #[error("device time is {ahead_ms} ms ahead of receive time; at most {limit_ms} ms allowed")]
    DeviceTimeInFuture {
        /// How far ahead.
        ahead_ms: i64,
        /// The limit.
        limit_ms: i64,
    },
    /// Device time is older than the limit when the message arrives.
    #[error("device time is {behind_ms} ms before receive time; at most {limit_ms} ms allowed")]
    DeviceTimeTooOld {
        /// How far behind.
        behind_ms: i64,
        /// The limit.
        limit_ms: i64,
    },
    /// Reaching this fix from the previous one needs an impossible speed.
    #[error(
        "moving here from the previous fix needs {} m/s; at most {limit_mps:.0} m/s is plausible",
        short(speed_mps.round())
    )]
    ImpossibleSpeed {
        /// Speed needed, after allowing for both fixes' accuracy.
        speed_mps: f64,
        /// The limit.
        limit_mps: f64,
    },
}

impl FixError {
    /// A stable snake_case code for this kind of problem: the metric dimension and the
    /// quarantine record's `reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::Malformed { .. } => "malformed",
            Self::UnknownVersion { .. } => "unknown_version",
            Self::NotFinite { .. } => "not_finite",
            Self::LatitudeOutOfRange { .. } => "latitude_out_of_range",
            Self::LongitudeOutOfRange { .. } => "longitude_out_of_range",
            Self::AccuracyOutOfRange { .. } => "accuracy_out_of_range",
            Self::FieldOutOfRange { .. } => "field_out_of_range",
            Self::DeviceTimeInFuture { .. } => "device_time_in_future",
            Self::DeviceTimeTooOld { .. } => "device_time_too_old",
            Self::ImpossibleSpeed { .. } => "impossible_speed",
        }
    }
}

/// A JSON number that may also arrive as the strings "NaN", "Infinity" or "-Infinity", which some
/// firmware emits; they parse so that validation can name the field instead of failing the parse.
#[derive(Debug, Clone, Copy)]
struct WireNumber(f64);

impl<'de> Deserialize<'de> for WireNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw<'a> {
            Number(f64),
            Text(&'a str),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(WireNumber(n)),
            Raw::Text(s) => match s.to_ascii_lowercase().as_str() {
                "nan" => Ok(WireNumber(f64::NAN)),
                "infinity" | "inf" | "+infinity" => Ok(WireNumber(f64::INFINITY)),
                "-infinity" | "-inf" => Ok(WireNumber(f64::NEG_INFINITY)),
                _ => Err(serde::de::Error::custom("expected a number")),
            },
        }
    }
}

#[derive(Deserialize)]
struct VersionOnly {
    v: u64,
}

#[derive(Deserialize)]
struct WireFixV1 {
    seq: u64,
    at_ms: i64,
    lat: WireNumber,
    lon: WireNumber,
    accuracy_m: WireNumber,
    speed_mps: Option<WireNumber>,
    heading_deg: Option<WireNumber>,
    battery_pct: Option<u8>,
}

#[derive(Deserialize)]
struct WireBatch {
    fixes: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct WireEventV1 {
    seq: u64,
    at_ms: i64,
    kind: TagEventKind,
    battery_pct: Option<u8>,
}

/// A number for an error message: as sent when short, in scientific notation when it would
/// print more than a dozen characters (a `1e308` latitude must not print 309 digits).
pub fn short(value: f64) -> String {
    let plain = format!("{value}");
    if plain.len() <= 12 {
        plain
    } else {
        format!("{value:.3e}")
    }
}

/// Longest detail kept from the JSON parser's message.
const MAX_DETAIL_CHARS: usize = 160;

fn malformed(e: serde_json::Error) -> FixError {
    // serde_json's message names the field or position; an unknown variant quotes what was
    // sent, so the detail is cut short.
    let mut detail = e.to_string();
    if detail.chars().count() > MAX_DETAIL_CHARS {
        detail = detail.chars().take(MAX_DETAIL_CHARS).collect::<String>() + "…";
    }
    FixError::Malformed { detail }
}

/// What the payload is, when it is JSON but not an object: the one-word reason a tag's
/// firmware author needs ("found an array"), instead of a parser position.
fn not_an_object(payload: &[u8]) -> Option<FixError> {
    let first = payload.iter().find(|b| !b.is_ascii_whitespace())?;
    let found = match first {
        b'{' => return None,
        b'[' => "an array",
        b'"' => "a string",
        b't' | b'f' => "a boolean",
        b'n' => "null",
        b'-' | b'0'..=b'9' => "a number",
        _ => return None,
    };
    Some(FixError::Malformed {
        detail: format!("payload must be a JSON object; found {found}"),
    })
}

fn too_large(payload: &[u8], limit: usize) -> Result<(), FixError> {
    if payload.len() > limit {
        return Err(FixError::PayloadTooLarge {
            bytes: payload.len(),
            limit,
        });
    }
    Ok(())
}

/// The message's `v`, after the size and shape checks every version shares.
fn version(payload: &[u8], size_limit: usize) -> Result<u64, FixError> {
    too_large(payload, size_limit)?;
    if let Some(e) = not_an_object(payload) {
        return Err(e);
    }
    let VersionOnly { v } = serde_json::from_slice(payload).map_err(malformed)?;
    Ok(v)
}

fn check_version(payload: &[u8], limits: &ValidationLimits) -> Result<(), FixError> {
    let v = version(payload, limits.max_payload_bytes)?;
    if v != u64::from(WIRE_VERSION) {
        return Err(FixError::UnknownVersion {
            v,
            reads: "version 1",
        });
    }
    Ok(())
}

fn finite(field: &'static str, n: WireNumber) -> Result<f64, FixError> {
    if n.0.is_finite() {
        Ok(n.0)
    } else {
        Err(FixError::NotFinite { field })
    }
}

fn in_range(field: &'static str, value: f64, min: f64, max: f64) -> Result<f64, FixError> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(FixError::FieldOutOfRange {
            field,
            value,
            min,
            max,
        })
    }
}

fn check_device_time(
    at_ms: i64,
    received_at_ms: i64,
    limits: &ValidationLimits,
) -> Result<(), FixError> {
    let ahead_ms = at_ms.saturating_sub(received_at_ms);
    if ahead_ms > limits.max_future_ms {
        return Err(FixError::DeviceTimeInFuture {
            ahead_ms,
            limit_ms: limits.max_future_ms,
        });
    }
    let behind_ms = received_at_ms.saturating_sub(at_ms);
    if behind_ms > limits.max_age_ms {
        return Err(FixError::DeviceTimeTooOld {
            behind_ms,
            limit_ms: limits.max_age_ms,
        });
    }
    Ok(())
}

/// Parses and validates a fix payload published by `tag_id` and received at `received_at_ms`.
///
/// Returns the fix, or the first problem found, checked in this order: size, JSON shape,
/// version, finiteness, ranges, device time. Unknown fields are ignored so that the IoT rule
/// can add its own (`tag_id`, `received_at`); the tag id is always the one from the topic.
/// The speed check needs the previous fix: see [`check_motion`].
pub fn parse_fix(
    payload: &[u8],
    tag_id: &TagId,
    received_at_ms: i64,
    limits: &ValidationLimits,
) -> Result<Fix, FixError> {
    check_version(payload, limits)?;
    let w: WireFixV1 = serde_json::from_slice(payload).map_err(malformed)?;
    validate_fix(w, tag_id, received_at_ms, limits)
}

/// One fix of a message on a tag's fix channel: the fix, or why it was refused with the bytes
/// it came in (a v2 batch's element, kept for inspection like a whole refused message).
pub type BatchItem = Result<Fix, (FixError, Vec<u8>)>;

/// Parses a message on a tag's fix channel: a v1 fix, or a v2 batch of fixes
/// (`{"v":2,"fixes":[{...}, ...]}`, each element a v1 fix without `v`).
///
/// The message as a whole fails on the checks every message gets (size: 2 KiB for v1,
/// [`ValidationLimits::max_batch_payload_bytes`] for v2; JSON shape; version) and, for a
/// batch, on holding no fix or more than [`ValidationLimits::max_batch_fixes`]. Each fix of a
/// batch is then validated on its own, as [`parse_fix`] validates a v1 fix: a bad fix is
/// refused alone, so one corrupt element never costs the others (a real approach must not go
/// unseen because a neighbour in its batch was garbled). The fixes come back in counter
/// order, the order a tag sending them one by one would have used.
pub fn parse_fixes(
    payload: &[u8],
    tag_id: &TagId,
    received_at_ms: i64,
    limits: &ValidationLimits,
) -> Result<Vec<BatchItem>, FixError> {
    let size_limit = limits.max_payload_bytes.max(limits.max_batch_payload_bytes);
    match version(payload, size_limit)? {
        v if v == u64::from(WIRE_VERSION) => {
            too_large(payload, limits.max_payload_bytes)?;
            let fix = parse_fix(payload, tag_id, received_at_ms, limits)?;
            Ok(vec![Ok(fix)])
        }
        v if v == u64::from(BATCH_VERSION) => {
            let batch: WireBatch = serde_json::from_slice(payload).map_err(malformed)?;
            let n = batch.fixes.len();
            if n == 0 || n > limits.max_batch_fixes {
                return Err(FixError::Malformed {
                    detail: format!(
                        "a v2 batch holds 1 to {} fixes; this one holds {n}",
                        limits.max_batch_fixes
                    ),
                });
            }
            let mut items: Vec<(u64, BatchItem)> = batch
                .fixes
                .into_iter()
                .map(|element| {
                    let bytes = serde_json::to_vec(&element).expect("a JSON value serializes");
                    let seq = element.get("seq").and_then(serde_json::Value::as_u64);
                    let item = batch_element(&bytes, tag_id, received_at_ms, limits)
                        .map_err(|e| (e, bytes));
                    (seq.unwrap_or(u64::MAX), item)
                })
                .collect();
            items.sort_by_key(|(seq, _)| *seq);
            Ok(items.into_iter().map(|(_, item)| item).collect())
        }
        v => Err(FixError::UnknownVersion {
            v,
            reads: "versions 1 and 2",
        }),
    }
}

/// One element of a v2 batch: a v1 fix without `v` (a `v` present is ignored).
fn batch_element(
    bytes: &[u8],
    tag_id: &TagId,
    received_at_ms: i64,
    limits: &ValidationLimits,
) -> Result<Fix, FixError> {
    if let Some(e) = not_an_object(bytes) {
        return Err(e);
    }
    let w: WireFixV1 = serde_json::from_slice(bytes).map_err(malformed)?;
    validate_fix(w, tag_id, received_at_ms, limits)
}

/// The checks of a fix's values, in the documented order: finiteness, ranges, device time.
fn validate_fix(
    w: WireFixV1,
    tag_id: &TagId,
    received_at_ms: i64,
    limits: &ValidationLimits,
) -> Result<Fix, FixError> {
    let lat = finite("lat", w.lat)?;
    let lon = finite("lon", w.lon)?;
    let accuracy_m = finite("accuracy_m", w.accuracy_m)?;
    let speed_mps = w.speed_mps.map(|n| finite("speed_mps", n)).transpose()?;
    let heading_deg = w
        .heading_deg
        .map(|n| finite("heading_deg", n))
        .transpose()?;
    if !(-90.0..=90.0).contains(&lat) {
        return Err(FixError::LatitudeOutOfRange { lat });
    }
    if !(-180.0..=180.0).contains(&lon) {
        return Err(FixError::LongitudeOutOfRange { lon });
    }
    if !(0.0..=limits.max_accuracy_m).contains(&accuracy_m) {
        return Err(FixError::AccuracyOutOfRange {
            accuracy_m,
            limit_m: limits.max_accuracy_m,
        });
    }
    let speed_mps = speed_mps
        .map(|s| in_range("speed_mps", s, 0.0, limits.max_speed_mps))
        .transpose()?;
    let heading_deg = heading_deg
        .map(|h| in_range("heading_deg", h, 0.0, 360.0))
        .transpose()?;
    let battery_pct = w
        .battery_pct
        .map(|b| in_range("battery_pct", f64::from(b), 0.0, 100.0).map(|_| b))
        .transpose()?;
    check_device_time(w.at_ms, received_at_ms, limits)?;
    Ok(Fix {
        tag_id: tag_id.clone(),
        seq: w.seq,
        at_ms: w.at_ms,
        lat,
        lon,
        accuracy_m,
        speed_mps,
        heading_deg,
        battery_pct,
    })
}

/// Parses and validates an event payload published by `tag_id` and received at `received_at_ms`.
///
/// Fails with the first problem found, as [`parse_fix`] does.
pub fn parse_event(
    payload: &[u8],
    tag_id: &TagId,
    received_at_ms: i64,
    limits: &ValidationLimits,
) -> Result<TagEvent, FixError> {
    check_version(payload, limits)?;
    let w: WireEventV1 = serde_json::from_slice(payload).map_err(malformed)?;
    let battery_pct = w
        .battery_pct
        .map(|b| in_range("battery_pct", f64::from(b), 0.0, 100.0).map(|_| b))
        .transpose()?;
    check_device_time(w.at_ms, received_at_ms, limits)?;
    Ok(TagEvent {
        tag_id: tag_id.clone(),
        seq: w.seq,
        at_ms: w.at_ms,
        kind: w.kind,
        battery_pct,
    })
}

/// Fails with [`FixError::ImpossibleSpeed`] when `fix` cannot follow `previous` (the tag's last
/// accepted fix) at the plausible speed limit, after allowing for both fixes' accuracy.
///
/// Fixes further apart in time than `limits.motion_window_ms` are not compared: after a long
/// gap anything is plausible, and one bad accepted fix must not block a tag for long.
pub fn check_motion(previous: &Fix, fix: &Fix, limits: &ValidationLimits) -> Result<(), FixError> {
    let dt_ms = (fix.at_ms - previous.at_ms).abs();
    if dt_ms > limits.motion_window_ms {
        return Ok(());
    }
    let distance_m = geodesy::geodesic_m(previous.lat, previous.lon, fix.lat, fix.lon);
    let unexplained_m = (distance_m - previous.accuracy_m - fix.accuracy_m).max(0.0);
    // A one-second floor keeps two fixes stamped in the same second comparable.
    let speed_mps = unexplained_m / (dt_ms.max(1000) as f64 / 1000.0);
    if speed_mps > limits.max_speed_mps {
        return Err(FixError::ImpossibleSpeed {
            speed_mps,
            limit_mps: limits.max_speed_mps,
        });
    }
    Ok(())
}

/// The v1 wire payload of a fix: what a tag publishes. [`parse_fix`] of it gives the fix back
/// exactly (numbers print in their shortest round-trip form).
pub fn encode_fix(fix: &Fix) -> Vec<u8> {
    let mut m = serde_json::Map::new();
    m.insert("v".into(), WIRE_VERSION.into());
    m.insert("seq".into(), fix.seq.into());
    m.insert("at_ms".into(), fix.at_ms.into());
    m.insert("lat".into(), fix.lat.into());
    m.insert("lon".into(), fix.lon.into());
    m.insert("accuracy_m".into(), fix.accuracy_m.into());
    if let Some(v) = fix.speed_mps {
        m.insert("speed_mps".into(), v.into());
    }
    if let Some(v) = fix.heading_deg {
        m.insert("heading_deg".into(), v.into());
    }
    if let Some(v) = fix.battery_pct {
        m.insert("battery_pct".into(), v.into());
    }
    serde_json::to_vec(&m).expect("a JSON map serializes")
}

/// The v2 wire payload of a batch of fixes, in the order given. [`parse_fixes`] of it gives
/// the fixes back exactly, in counter order.
pub fn encode_batch(fixes: &[Fix]) -> Vec<u8> {
    let elements: Vec<serde_json::Value> = fixes
        .iter()
        .map(|f| {
            let mut v: serde_json::Value =
                serde_json::from_slice(&encode_fix(f)).expect("encode_fix writes JSON");
            v.as_object_mut().expect("an object").remove("v");
            v
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({"v": BATCH_VERSION, "fixes": elements}))
        .expect("a JSON value serializes")
}

/// The v1 wire payload of a tag event. [`parse_event`] of it gives the event back exactly.
pub fn encode_event(event: &TagEvent) -> Vec<u8> {
    let mut m = serde_json::Map::new();
    m.insert("v".into(), WIRE_VERSION.into());
    m.insert("seq".into(), event.seq.into());
    m.insert("at_ms".into(), event.at_ms.into());
    m.insert(
        "kind".into(),
        serde_json::to_value(event.kind).expect("kinds serialize"),
    );
    if let Some(v) = event.battery_pct {
        m.insert("battery_pct".into(), v.into());
    }
    serde_json::to_vec(&m).expect("a JSON map serializes")
}

/// A short digest of what a message says (16 hex digits of SHA-256 over its wire encoding,
/// tag id included): a message is identified by its content, not by its counter, so a tag
/// that restarts and repeats a counter is seen as sending a new message (a conflict), never as
/// a duplicate.
fn digest(tag_id: &TagId, channel: &str, wire: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(tag_id.as_str().as_bytes());
    h.update([0]);
    h.update(channel.as_bytes());
    h.update([0]);
    h.update(wire);
    hex::encode(&h.finalize()[..8])
}

impl Fix {
    /// The fix's content digest (see [`encode_fix`]).
    pub fn content_hash(&self) -> String {
        digest(&self.tag_id, "fix", &encode_fix(self))
    }
}

impl TagEvent {
    /// The event's content digest: seq, device time, kind and body.
    pub fn content_hash(&self) -> String {
        digest(&self.tag_id, "event", &encode_event(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_432_000_000;

    fn tag() -> TagId {
        TagId::new("tag-1").unwrap()
    }

    fn parse(json: &str) -> Result<Fix, FixError> {
        parse_fix(json.as_bytes(), &tag(), NOW, &ValidationLimits::default())
    }

    fn fix_json(fields: &str) -> String {
        format!(r#"{{"v":1,"seq":7,"at_ms":{NOW},"lat":51.5,"lon":-0.12,"accuracy_m":10{fields}}}"#)
    }

    #[test]
    fn parses_a_full_fix() {
        let fix = parse(&fix_json(r#","speed_mps":1.5,"heading_deg":90,"battery_pct":80,"tag_id":"spoof","received_at":1"#)).unwrap();
        assert_eq!(
            fix.tag_id,
            tag(),
            "the topic's tag id wins over the payload's"
        );
        assert_eq!(
            (fix.seq, fix.at_ms, fix.lat, fix.lon),
            (7, NOW, 51.5, -0.12)
        );
        assert_eq!(
            (fix.speed_mps, fix.heading_deg, fix.battery_pct),
            (Some(1.5), Some(90.0), Some(80))
        );
    }

    #[test]
    fn oversized_payload() {
        let big = fix_json(&format!(r#","pad":"{}""#, "x".repeat(3000)));
        assert!(matches!(
            parse(&big),
            Err(FixError::PayloadTooLarge { limit: 2048, .. })
        ));
    }

    #[test]
    fn malformed_json_and_missing_fields() {
        assert_eq!(parse("{not json").unwrap_err().reason(), "malformed");
        let err = parse(r#"{"v":1,"seq":1,"at_ms":1,"lat":1,"lon":1}"#).unwrap_err();
        assert!(err.to_string().contains("accuracy_m"), "{err}");
        assert_eq!(parse(r#"[1,2]"#).unwrap_err().reason(), "malformed");
        let err = parse(&fix_json("").replace("51.5", "\"north\"")).unwrap_err();
        assert_eq!(err.reason(), "malformed");
    }

    #[test]
    fn unknown_version() {
        let err = parse(&fix_json("").replace("\"v\":1", "\"v\":2")).unwrap_err();
        assert_eq!(
            err,
            FixError::UnknownVersion {
                v: 2,
                reads: "version 1"
            }
        );
        assert!(err.to_string().contains("reads version 1"));
    }

    #[test]
    fn not_finite_values_name_the_field() {
        let err = parse(&fix_json("").replace("51.5", "\"NaN\"")).unwrap_err();
        assert_eq!(err, FixError::NotFinite { field: "lat" });
        let err = parse(&fix_json("").replace("-0.12", "\"-Infinity\"")).unwrap_err();
        assert_eq!(err, FixError::NotFinite { field: "lon" });
        let err = parse(&fix_json(r#","speed_mps":"Infinity""#)).unwrap_err();
        assert_eq!(err, FixError::NotFinite { field: "speed_mps" });
        // 1e999 overflows f64: serde_json refuses it as a number out of range.
        assert_eq!(
            parse(&fix_json("").replace("51.5", "1e999"))
                .unwrap_err()
                .reason(),
            "malformed"
        );
    }

    #[test]
    fn coordinates_out_of_range() {
        assert_eq!(
            parse(&fix_json("").replace("51.5", "90.0001")).unwrap_err(),
            FixError::LatitudeOutOfRange { lat: 90.0001 }
        );
        assert_eq!(
            parse(&fix_json("").replace("-0.12", "-180.5")).unwrap_err(),
            FixError::LongitudeOutOfRange { lon: -180.5 }
        );
        assert!(parse(&fix_json("").replace("51.5", "-90").replace("-0.12", "180")).is_ok());
    }

    #[test]
    fn accuracy_limits() {
        let err =
            parse(&fix_json("").replace("\"accuracy_m\":10", "\"accuracy_m\":250.5")).unwrap_err();
        assert_eq!(
            err,
            FixError::AccuracyOutOfRange {
                accuracy_m: 250.5,
                limit_m: 250.0
            }
        );
        let err =
            parse(&fix_json("").replace("\"accuracy_m\":10", "\"accuracy_m\":-1")).unwrap_err();
        assert_eq!(err.reason(), "accuracy_out_of_range");
    }

    #[test]
    fn optional_fields_out_of_range() {
        let err = parse(&fix_json(r#","heading_deg":361"#)).unwrap_err();
        assert_eq!(
            err,
            FixError::FieldOutOfRange {
                field: "heading_deg",
                value: 361.0,
                min: 0.0,
                max: 360.0
            }
        );
        assert_eq!(
            parse(&fix_json(r#","battery_pct":101"#))
                .unwrap_err()
                .reason(),
            "field_out_of_range"
        );
        assert_eq!(
            parse(&fix_json(r#","battery_pct":300"#))
                .unwrap_err()
                .reason(),
            "malformed"
        );
        assert_eq!(
            parse(&fix_json(r#","speed_mps":-3"#)).unwrap_err().reason(),
            "field_out_of_range"
        );
    }

    #[test]
    fn device_time_window() {
        let limits = ValidationLimits::default();
        let at =
            |ms: i64| fix_json("").replace(&format!("\"at_ms\":{NOW}"), &format!("\"at_ms\":{ms}"));
        assert!(parse(&at(NOW + limits.max_future_ms)).is_ok());
        assert_eq!(
            parse(&at(NOW + limits.max_future_ms + 1)).unwrap_err(),
            FixError::DeviceTimeInFuture {
                ahead_ms: limits.max_future_ms + 1,
                limit_ms: limits.max_future_ms
            }
        );
        assert!(parse(&at(NOW - limits.max_age_ms)).is_ok());
        assert_eq!(
            parse(&at(NOW - limits.max_age_ms - 1))
                .unwrap_err()
                .reason(),
            "device_time_too_old"
        );
        assert_eq!(
            parse(&at(i64::MIN)).unwrap_err().reason(),
            "device_time_too_old"
        );
    }

    #[test]
    fn events_parse_and_validate() {
        let limits = ValidationLimits::default();
        let ev = parse_event(
            format!(r#"{{"v":1,"seq":3,"at_ms":{NOW},"kind":"strap_tamper"}}"#).as_bytes(),
            &tag(),
            NOW,
            &limits,
        )
        .unwrap();
        assert_eq!(
            (ev.kind, ev.seq, ev.battery_pct),
            (TagEventKind::StrapTamper, 3, None)
        );
        let err = parse_event(
            format!(r#"{{"v":1,"seq":3,"at_ms":{NOW},"kind":"explode"}}"#).as_bytes(),
            &tag(),
            NOW,
            &limits,
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown variant"), "{err}");
        let err = parse_event(
            br#"{"v":9,"seq":3,"at_ms":0,"kind":"no_gps"}"#,
            &tag(),
            NOW,
            &limits,
        )
        .unwrap_err();
        assert_eq!(
            err,
            FixError::UnknownVersion {
                v: 9,
                reads: "version 1"
            }
        );
    }

    fn batch(json: &str) -> Result<Vec<BatchItem>, FixError> {
        parse_fixes(json.as_bytes(), &tag(), NOW, &ValidationLimits::default())
    }

    fn element(seq: u64, lat: &str) -> String {
        format!(
            r#"{{"seq":{seq},"at_ms":{},"lat":{lat},"lon":-0.12,"accuracy_m":10}}"#,
            NOW - 60_000 * (10 - seq as i64)
        )
    }

    #[test]
    fn a_v1_fix_on_the_fix_channel_is_a_batch_of_one() {
        let items = batch(&fix_json("")).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].as_ref().unwrap(), &parse(&fix_json("")).unwrap());
        // v1 keeps its own size limit.
        let big = fix_json(&format!(r#","pad":"{}""#, "x".repeat(3000)));
        assert!(matches!(
            batch(&big),
            Err(FixError::PayloadTooLarge { limit: 2048, .. })
        ));
    }

    #[test]
    fn a_v2_batch_gives_each_fix_in_counter_order() {
        let json = format!(
            r#"{{"v":2,"fixes":[{},{},{}]}}"#,
            element(9, "51.52"),
            element(7, "51.50"),
            element(8, "51.51")
        );
        let fixes: Vec<Fix> = batch(&json)
            .unwrap()
            .into_iter()
            .map(|i| i.unwrap())
            .collect();
        assert_eq!(
            fixes.iter().map(|f| (f.seq, f.lat)).collect::<Vec<_>>(),
            [(7, 51.50), (8, 51.51), (9, 51.52)]
        );
        assert!(fixes.iter().all(|f| f.tag_id == tag()));
        // Encoded and parsed again: the same fixes.
        let again: Vec<Fix> = batch(std::str::from_utf8(&encode_batch(&fixes)).unwrap())
            .unwrap()
            .into_iter()
            .map(|i| i.unwrap())
            .collect();
        assert_eq!(again, fixes);
    }

    #[test]
    fn a_bad_fix_in_a_batch_is_refused_alone_with_its_own_bytes() {
        let json = format!(
            r#"{{"v":2,"fixes":[{},{},{},[1]]}}"#,
            element(7, "51.50"),
            element(8, "\"NaN\""),
            element(9, "91")
        );
        let items = batch(&json).unwrap();
        assert_eq!(items.len(), 4);
        assert_eq!(items[0].as_ref().unwrap().seq, 7);
        let (e, bytes) = items[1].as_ref().unwrap_err();
        assert_eq!(e, &FixError::NotFinite { field: "lat" });
        assert!(String::from_utf8_lossy(bytes).contains(r#""seq":8"#));
        assert_eq!(
            items[2].as_ref().unwrap_err().0.reason(),
            "latitude_out_of_range"
        );
        // An element that is not an object has no counter: it comes last, refused.
        let (e, _) = items[3].as_ref().unwrap_err();
        assert!(e.to_string().contains("found an array"), "{e}");
    }

    #[test]
    fn a_batch_as_a_whole_is_refused_for_size_count_shape_and_version() {
        let limits = ValidationLimits::default();
        assert!(
            batch(r#"{"v":2,"fixes":[]}"#)
                .unwrap_err()
                .to_string()
                .contains("holds 1 to 30 fixes; this one holds 0")
        );
        let many: Vec<String> = (0..31).map(|i| element(i, "51.5")).collect();
        let json = format!(r#"{{"v":2,"fixes":[{}]}}"#, many.join(","));
        assert!(json.len() < limits.max_batch_payload_bytes);
        assert!(
            batch(&json)
                .unwrap_err()
                .to_string()
                .contains("this one holds 31")
        );
        let pad = "x".repeat(limits.max_batch_payload_bytes);
        let json = format!(
            r#"{{"v":2,"fixes":[{}],"pad":"{pad}"}}"#,
            element(1, "51.5")
        );
        assert!(matches!(
            batch(&json),
            Err(FixError::PayloadTooLarge { limit: 5120, .. })
        ));
        assert_eq!(
            batch(r#"{"v":2,"fixes":{}}"#).unwrap_err().reason(),
            "malformed"
        );
        assert_eq!(batch(r#"{"v":2}"#).unwrap_err().reason(), "malformed");
        let err = batch(r#"{"v":3,"fixes":[]}"#).unwrap_err();
        assert!(err.to_string().contains("reads versions 1 and 2"), "{err}");
        // A v2 payload is never a single fix elsewhere (her device, an event).
        let err = parse_fix(br#"{"v":2,"fixes":[]}"#, &tag(), NOW, &limits).unwrap_err();
        assert_eq!(err.reason(), "unknown_version");
    }

    #[test]
    fn impossible_speed_allows_for_accuracy_and_gaps() {
        let limits = ValidationLimits::default();
        let a = parse(&fix_json("")).unwrap();
        // About 1.1 km north, 10 s later: 110 m/s, impossible.
        let mut b = a.clone();
        b.lat += 0.01;
        b.at_ms += 10_000;
        let err = check_motion(&a, &b, &limits).unwrap_err();
        assert!(
            matches!(err, FixError::ImpossibleSpeed { speed_mps, .. } if speed_mps > 100.0 && speed_mps < 115.0),
            "{err}"
        );
        // The same jump in 60 s is 18 m/s: a car.
        b.at_ms = a.at_ms + 60_000;
        assert!(check_motion(&a, &b, &limits).is_ok());
        // A jump explained by the two accuracies is never impossible.
        let mut c = a.clone();
        c.lat += 0.0002; // ~22 m
        c.accuracy_m = 15.0;
        assert!(check_motion(&a, &c, &limits).is_ok());
        // After a long gap anything goes.
        let mut d = a.clone();
        d.lat += 1.0;
        d.at_ms += limits.motion_window_ms + 1;
        assert!(check_motion(&a, &d, &limits).is_ok());
    }
}
