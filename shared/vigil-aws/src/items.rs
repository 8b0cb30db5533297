//! Item mapping, in one place: every attribute name and every conversion between domain types
//! and DynamoDB items. See docs/TABLES.md for the design.

use crate::error::StoreError;
use crate::ports::QuarantineRecord;
use aws_sdk_dynamodb::types::AttributeValue;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use vigil_core::audit::AuditRecord;
use vigil_core::events::AlertEvent;
use vigil_core::ingest::ZoneRecord;
use vigil_core::policy::VictimNotices;
use vigil_core::proximity::VictimPosition;
use vigil_core::reporting::ReportingCommand;
use vigil_core::watchdog::{Condition, Told};
use vigil_core::{
    DeviceId, ForceId, OrderId, OrderTerms, ProtectionOrder, TagHistory, TagId, Zone, ZoneId,
    ZoneKey,
};

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// Logical table names (see infra/resources.json).
pub mod table {
    /// Zones by geohash cell.
    pub const ZONE_CELLS: &str = "zone-cells";
    /// Zones by id.
    pub const ZONES: &str = "zones";
    /// Orders with victims.
    pub const ORDERS: &str = "orders";
    /// Tags: order summaries and open zones.
    pub const TAGS: &str = "tags";
    /// Zone state per (order, zone).
    pub const ZONE_STATE: &str = "zone-state";
    /// What each victim has been told.
    pub const NOTICES: &str = "notices";
    /// Idempotency records.
    pub const IDEMPOTENCY: &str = "idempotency";
    /// Audit chains.
    pub const AUDIT: &str = "audit";
    /// Rejected messages.
    pub const QUARANTINE: &str = "quarantine";
    /// Tags' histories of accepted fixes, written by ingest.
    pub const LAST_SEEN: &str = "last-seen";
    /// Victims' own devices: which orders each belongs to.
    pub const DEVICES: &str = "devices";
    /// Each victim device's newest position (her coordinates: ingest only).
    pub const VICTIM_POSITIONS: &str = "victim-positions";
    /// The watchdog's deadline index: which tags are due at which minute, and its cursor.
    pub const WATCH: &str = "watch";

    /// Every table, for configuration checks.
    pub const ALL: [&str; 13] = [
        ZONE_CELLS,
        ZONES,
        ORDERS,
        TAGS,
        ZONE_STATE,
        NOTICES,
        IDEMPOTENCY,
        AUDIT,
        QUARANTINE,
        LAST_SEEN,
        DEVICES,
        VICTIM_POSITIONS,
        WATCH,
    ];
}

/// Prefix of a zone's attribute in a `zone-cells` item.
pub const ZONE_ATTR: &str = "z#";
/// Prefix of an order's terms' attribute in a `tags` item.
pub const ORDER_ATTR: &str = "o#";
/// Prefix of an order's "her device is silent" mark in a `tags` item: the value is the time of
/// her last position before the silence, or -1 when her device never reported.
pub const SILENT_ATTR: &str = "silent#";
/// Prefix of an open `<order_id>/<zone_id>` pair's attribute in a `tags` item.
pub const OPEN_ATTR: &str = "open#";

/// Prefix of a watchdog mark in a `tags` item: `watch#<order_id>#<condition>` = the episode
/// (the time the condition was measured from, -1 when unknown) while operators know of it.
pub const WATCH_ATTR: &str = "watch#";

/// The attribute of a watchdog mark.
pub fn watch_attr(order_id: &OrderId, condition: Condition) -> String {
    format!("{WATCH_ATTR}{order_id}#{}", condition.name())
}

/// The watchdog marks of a `tags` item.
pub fn watch_marks(item: &Item) -> Result<Told, StoreError> {
    let mut told = Told::new();
    for (k, v) in item.iter() {
        let Some(rest) = k.strip_prefix(WATCH_ATTR) else {
            continue;
        };
        let (order, condition) = rest
            .rsplit_once('#')
            .ok_or_else(|| StoreError::corrupt(k, "expected watch#<order>#<condition>"))?;
        let order = OrderId::new(order).map_err(|e| StoreError::corrupt(k, e))?;
        let condition = Condition::ALL
            .into_iter()
            .find(|c| c.name() == condition)
            .ok_or_else(|| StoreError::corrupt(k, "unknown condition"))?;
        let ms: i64 = v
            .as_n()
            .ok()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| StoreError::corrupt(k, "expected a number"))?;
        told.insert((order, condition), (ms >= 0).then_some(ms));
    }
    Ok(told)
}

/// The `watch` table's cursor item's key: minute 0, part `cursor`.
pub const WATCH_CURSOR_PART: &str = "cursor";

/// The prefix of an escalation's part in the `watch` table: `e#<event_id>`.
pub const WATCH_ESCALATION_PREFIX: &str = "e#";

/// The attribute of a `tags` or `devices` item holding the reporting command the device was
/// last sent (pursuit mode), as JSON.
pub const CMD_ATTR: &str = "cmd";

/// The reporting command of a `tags` or `devices` item, if any.
pub fn command_of(item: &Item) -> Result<Option<ReportingCommand>, StoreError> {
    item.get(CMD_ATTR)
        .map(|v| {
            let text = v
                .as_s()
                .map_err(|_| StoreError::corrupt(CMD_ATTR, "expected command JSON"))?;
            json(CMD_ATTR, text)
        })
        .transpose()
}

/// A reporting command as stored.
pub fn command_value(command: &ReportingCommand) -> AttributeValue {
    s(to_json(command))
}

/// A string attribute.
pub fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// A number attribute.
pub fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Typed reads of item attributes.
pub trait ItemExt {
    /// A string attribute, or a corrupt-item error naming it.
    fn get_s(&self, name: &str) -> Result<&str, StoreError>;
    /// A number attribute parsed as `T`, or a corrupt-item error naming it.
    fn get_n<T: std::str::FromStr>(&self, name: &str) -> Result<T, StoreError>;
}

impl ItemExt for Item {
    fn get_s(&self, name: &str) -> Result<&str, StoreError> {
        match self.get(name) {
            Some(AttributeValue::S(v)) => Ok(v),
            other => Err(StoreError::corrupt(
                name,
                format!("expected a string, found {other:?}"),
            )),
        }
    }

    fn get_n<T: std::str::FromStr>(&self, name: &str) -> Result<T, StoreError> {
        match self.get(name) {
            Some(AttributeValue::N(v)) => v
                .parse()
                .map_err(|_| StoreError::corrupt(name, format!("number {v} out of range"))),
            other => Err(StoreError::corrupt(
                name,
                format!("expected a number, found {other:?}"),
            )),
        }
    }
}

fn json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::corrupt(what, e))
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("domain types serialize")
}

/// DynamoDB's largest item: 400 KB, names and values together.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// One read unit covers an item of up to 4 KB (strongly consistent: one unit; eventually
/// consistent: half of one).
pub const READ_UNIT_BYTES: usize = 4 * 1024;

/// One write unit covers an item of up to 1 KB.
pub const WRITE_UNIT_BYTES: usize = 1024;

/// The size DynamoDB counts for one attribute (against [`MAX_ITEM_BYTES`], and for read and
/// write units), by the rules of "DynamoDB item sizes and formats"
/// (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html>):
/// the UTF-8 bytes of the name, plus the value's: a string's UTF-8 bytes, a binary's raw
/// bytes, a number's 1 byte per two significant digits plus 1, a Boolean or null 1 byte, a set
/// the sum of its members, and a list or map 3 bytes plus 1 byte and the size of each element
/// (a map's element with its name).
pub fn attribute_size_bytes(name: &str, value: &AttributeValue) -> usize {
    name.len() + value_size_bytes(value)
}

/// The size DynamoDB counts for an item: the sum of its attributes' ([`attribute_size_bytes`]).
pub fn item_size_bytes(item: &Item) -> usize {
    item.iter().map(|(k, v)| attribute_size_bytes(k, v)).sum()
}

/// The read units one read of an item of `size_bytes` costs: rounded up to whole 4 KB, as
/// `GetItem` and each item of a `BatchGetItem` are; half for an eventually consistent read.
pub fn read_units(size_bytes: usize, consistent: bool) -> f64 {
    let units = size_bytes.div_ceil(READ_UNIT_BYTES).max(1) as f64;
    if consistent { units } else { units / 2.0 }
}

/// The write units one write of an item of `size_bytes` costs: 1 KB each, rounded up. An
/// `UpdateItem` is charged for the larger of the item before and after it, so adding one
/// attribute to a large item costs the whole item.
pub fn write_units(size_bytes: usize) -> usize {
    size_bytes.div_ceil(WRITE_UNIT_BYTES).max(1)
}

fn value_size_bytes(value: &AttributeValue) -> usize {
    use AttributeValue as V;
    match value {
        V::S(text) => text.len(),
        V::N(number) => number_size_bytes(number),
        V::B(bytes) => bytes.as_ref().len(),
        V::Bool(_) | V::Null(_) => 1,
        V::Ss(texts) => texts.iter().map(String::len).sum(),
        V::Ns(numbers) => numbers.iter().map(|n| number_size_bytes(n)).sum(),
        V::Bs(blobs) => blobs.iter().map(|b| b.as_ref().len()).sum(),
        V::L(list) => 3 + list.iter().map(|v| 1 + value_size_bytes(v)).sum::<usize>(),
        V::M(map) => {
            3 + map
                .iter()
                .map(|(k, v)| 1 + attribute_size_bytes(k, v))
                .sum::<usize>()
        }
        // A type newer than this SDK: none of ours.
        _ => 0,
    }
}

/// A number's size: its significant digits (leading and trailing zeroes trimmed), 1 byte per
/// two, plus 1.
/// A number's size: a byte per two significant digits, plus one.
pub fn number_size_bytes(number: &str) -> usize {
    let mantissa = number.split(['e', 'E']).next().unwrap_or_default();
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
    significant.div_ceil(2) + 1
}

/// The attribute name of a zone in a cell item: `z#<order_id>/<zone_id>`.
pub fn zone_attr(key: &ZoneKey) -> String {
    format!("{ZONE_ATTR}{key}")
}

/// A zone as stored (its specification as JSON).
pub fn zone_value(zone: &Zone) -> AttributeValue {
    s(to_json(zone))
}

/// The zones held in a `zone-cells` item.
pub fn zones_of_cell(item: &Item) -> Result<Vec<Zone>, StoreError> {
    item.iter()
        .filter(|(k, _)| k.starts_with(ZONE_ATTR))
        .map(|(k, v)| match v {
            AttributeValue::S(text) => json::<Zone>(k, text),
            other => Err(StoreError::corrupt(
                k,
                format!("expected zone JSON, found {other:?}"),
            )),
        })
        .collect()
}

/// A `zones` item (partition key `order_id`, sort key `zone_id`).
pub fn zone_item(zone: &Zone, cells: &[String]) -> Item {
    Item::from([
        ("order_id".into(), s(zone.order_id().as_str())),
        ("zone_id".into(), s(zone.id().as_str())),
        ("spec".into(), zone_value(zone)),
        (
            "cells".into(),
            AttributeValue::L(cells.iter().map(|c| s(c.as_str())).collect()),
        ),
    ])
}

/// The zone and its cell keys from a `zones` item.
pub fn zone_from_item(item: &Item) -> Result<(Zone, Vec<String>), StoreError> {
    let zone = json::<Zone>("zones.spec", item.get_s("spec")?)?;
    let cells = match item.get("cells") {
        Some(AttributeValue::L(list)) => list
            .iter()
            .map(|v| {
                v.as_s()
                    .cloned()
                    .map_err(|_| StoreError::corrupt("zones.cells", "not a string"))
            })
            .collect::<Result<_, _>>()?,
        _ => vec![],
    };
    Ok((zone, cells))
}

/// The attribute name of an order's terms in a tag item.
pub fn order_attr(order_id: &OrderId) -> String {
    format!("{ORDER_ATTR}{order_id}")
}

/// An order's terms as stored in a tag item.
pub fn order_terms_value(terms: &OrderTerms) -> AttributeValue {
    s(to_json(terms))
}

/// The attribute of an order's "her device is silent" mark in a `tags` item.
pub fn silent_attr(order_id: &OrderId) -> String {
    format!("{SILENT_ATTR}{order_id}")
}

/// The "her device is silent" marks of a `tags` item: order -> the time of her last position
/// before the silence (`None`: her device never reported).
pub fn silent_marks(item: &Item) -> Result<BTreeMap<OrderId, Option<i64>>, StoreError> {
    let mut marks = BTreeMap::new();
    for (k, v) in item.iter() {
        let Some(order) = k.strip_prefix(SILENT_ATTR) else {
            continue;
        };
        let order = OrderId::new(order).map_err(|e| StoreError::corrupt(k, e))?;
        let ms: i64 = v
            .as_n()
            .ok()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| StoreError::corrupt(k, "expected a number"))?;
        marks.insert(order, (ms >= 0).then_some(ms));
    }
    Ok(marks)
}

/// The `(order, tag)` pairs of a `devices` item (`o#<order_id>` = the order's tag id).
pub fn device_orders(item: &Item) -> Result<Vec<(OrderId, TagId)>, StoreError> {
    let mut out = Vec::new();
    for (k, v) in item.iter() {
        let Some(order) = k.strip_prefix(ORDER_ATTR) else {
            continue;
        };
        let order = OrderId::new(order).map_err(|e| StoreError::corrupt(k, e))?;
        let tag = v
            .as_s()
            .ok()
            .and_then(|t| TagId::new(t.as_str()).ok())
            .ok_or_else(|| StoreError::corrupt(k, "expected a tag id"))?;
        out.push((order, tag));
    }
    out.sort();
    Ok(out)
}

/// A `victim-positions` item: her device's newest position, its time (for the "newer only"
/// condition) and the TTL.
pub fn position_item(device_id: &DeviceId, position: &VictimPosition, expires_at_s: i64) -> Item {
    Item::from([
        ("device_id".into(), s(device_id.as_str())),
        ("position".into(), s(to_json(position))),
        ("t".into(), n(position.time_ms())),
        ("seq".into(), n(position.seq)),
        ("expires_at".into(), n(expires_at_s)),
    ])
}

/// The position of a `victim-positions` item.
pub fn position_from_item(item: &Item) -> Result<VictimPosition, StoreError> {
    json("victim-positions.position", item.get_s("position")?)
}

/// The order terms and open zones of a `tags` item.
pub fn tag_context(item: &Item) -> Result<(Vec<OrderTerms>, Vec<ZoneKey>), StoreError> {
    let mut orders = Vec::new();
    for (k, v) in item.iter().filter(|(k, _)| k.starts_with(ORDER_ATTR)) {
        let text = v
            .as_s()
            .map_err(|_| StoreError::corrupt(k, "expected order terms JSON"))?;
        orders.push(json::<OrderTerms>(k, text)?);
    }
    orders.sort_by(|a, b| a.order_id.cmp(&b.order_id));
    let mut open: Vec<ZoneKey> = item
        .keys()
        .filter_map(|k| k.strip_prefix(OPEN_ATTR))
        .map(|m| ZoneKey::parse(m).map_err(|e| StoreError::corrupt("tags.open#", e)))
        .collect::<Result<_, _>>()?;
    open.sort();
    Ok((orders, open))
}

/// The tag id of a `tags` item.
pub fn tag_id_of(item: &Item) -> Result<TagId, StoreError> {
    TagId::new(item.get_s("tag_id")?).map_err(|e| StoreError::corrupt("tags.tag_id", e))
}

/// The attribute name marking an (order, zone) open in a tag item.
pub fn open_attr(order_id: &OrderId, zone_id: &ZoneId) -> String {
    format!("{OPEN_ATTR}{order_id}/{zone_id}")
}

/// An `orders` item (with the victim).
pub fn order_item(order: &ProtectionOrder) -> Item {
    let mut item = Item::from([
        ("order_id".into(), s(order.order_id.as_str())),
        ("tag_id".into(), s(order.tag_id.as_str())),
        ("order".into(), s(to_json(order))),
    ]);
    // Beside the JSON, so that a condition (`vigil admin migrate-forces`) can name it.
    if let Some(f) = &order.force_id {
        item.insert("force_id".into(), s(f.as_str()));
    }
    item
}

/// The `force_id` of an `orders`, `tags` or `devices` item, `None` when it has none.
pub fn force_of(item: &Item) -> Result<Option<ForceId>, StoreError> {
    item.get("force_id")
        .map(|v| {
            v.as_s()
                .ok()
                .and_then(|f| ForceId::new(f.as_str()).ok())
                .ok_or_else(|| StoreError::corrupt("force_id", "expected a force id"))
        })
        .transpose()
}

/// The order of an `orders` item.
pub fn order_from_item(item: &Item) -> Result<ProtectionOrder, StoreError> {
    json("orders.order", item.get_s("order")?)
}

/// A `zone-state` item.
pub fn state_item(order_id: &OrderId, zone_id: &ZoneId, stored: &ZoneRecord) -> Item {
    let mut item = Item::from([
        ("order_id".into(), s(order_id.as_str())),
        ("zone_id".into(), s(zone_id.as_str())),
        ("state".into(), s(to_json(&stored.state))),
        ("rev".into(), n(stored.rev)),
    ]);
    if !stored.pending.is_empty() {
        item.insert("pending".into(), s(to_json(&stored.pending)));
    }
    item
}

/// The zone id and stored state of a `zone-state` item.
pub fn state_from_item(item: &Item) -> Result<(ZoneId, ZoneRecord), StoreError> {
    let zone_id = ZoneId::new(item.get_s("zone_id")?)
        .map_err(|e| StoreError::corrupt("zone-state.zone_id", e))?;
    let state = json("zone-state.state", item.get_s("state")?)?;
    let rev = item.get_n("rev")?;
    let pending: Vec<AlertEvent> = match item.get("pending") {
        Some(AttributeValue::S(text)) => json("zone-state.pending", text)?,
        _ => vec![],
    };
    Ok((
        zone_id,
        ZoneRecord {
            state,
            rev,
            pending,
        },
    ))
}

/// A `notices` item.
pub fn notices_item(order_id: &OrderId, notices: &VictimNotices, rev: u64) -> Item {
    Item::from([
        ("order_id".into(), s(order_id.as_str())),
        ("notices".into(), s(to_json(notices))),
        ("rev".into(), n(rev)),
    ])
}

/// The notices and revision of a `notices` item.
pub fn notices_from_item(item: &Item) -> Result<(VictimNotices, u64), StoreError> {
    Ok((
        json("notices.notices", item.get_s("notices")?)?,
        item.get_n("rev")?,
    ))
}

/// An `audit` item.
pub fn audit_item(record: &AuditRecord) -> Item {
    Item::from([
        ("order_id".into(), s(record.order_id.as_str())),
        ("seq".into(), n(record.seq)),
        ("record".into(), s(to_json(record))),
    ])
}

/// The record of an `audit` item.
pub fn audit_from_item(item: &Item) -> Result<AuditRecord, StoreError> {
    json("audit.record", item.get_s("record")?)
}

/// A `last-seen` item: one per tag, the tag's history of accepted fixes (written by ingest).
pub fn history_item(tag_id: &TagId, history: &TagHistory, expires_at_s: i64) -> Item {
    Item::from([
        ("tag_id".into(), s(tag_id.as_str())),
        ("history".into(), s(to_json(history))),
        ("rev".into(), n(history.rev)),
        ("expires_at".into(), n(expires_at_s)),
    ])
}

/// The history of a `last-seen` item, with the item's revision.
pub fn history_from_item(item: &Item) -> Result<TagHistory, StoreError> {
    let mut history: TagHistory = json("last-seen.history", item.get_s("history")?)?;
    history.rev = item.get_n("rev")?;
    Ok(history)
}

/// The `idempotency` key of an alert event's claim.
pub fn claim_id(event_id: &str) -> String {
    format!("alert#{event_id}")
}

/// The `idempotency` key of the digest a tag sent under an event counter.
pub fn event_digest_id(tag_id: &TagId, seq: u64) -> String {
    format!("msg#{tag_id}#event#{seq}")
}

/// The sort key of a quarantine record: receive time, then a digest of the record, so two
/// records of one tag in the same millisecond never overwrite each other (and the same
/// record kept twice is one item).
pub fn quarantine_key(record: &QuarantineRecord) -> String {
    let mut h = Sha256::new();
    for part in [&record.reason, &record.detail, &record.payload] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    format!(
        "{:013}#{}",
        record.received_at_ms,
        hex::encode(&h.finalize()[..8])
    )
}

/// A `quarantine` item.
pub fn quarantine_item(record: &QuarantineRecord, expires_at_s: i64) -> Item {
    Item::from([
        ("tag_id".into(), s(record.tag_id.as_str())),
        ("received_key".into(), s(quarantine_key(record))),
        ("received_at".into(), n(record.received_at_ms)),
        ("reason".into(), s(record.reason.as_str())),
        ("detail".into(), s(record.detail.as_str())),
        ("payload".into(), s(record.payload.as_str())),
        ("expires_at".into(), n(expires_at_s)),
    ])
}

/// The record of a `quarantine` item.
pub fn quarantine_from_item(item: &Item) -> Result<QuarantineRecord, StoreError> {
    Ok(QuarantineRecord {
        tag_id: item.get_s("tag_id")?.to_owned(),
        received_at_ms: item.get_n("received_at")?,
        reason: item.get_s("reason")?.to_owned(),
        detail: item.get_s("detail")?.to_owned(),
        payload: item.get_s("payload")?.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_core::state::ZoneState;

    fn zone() -> Zone {
        serde_json::from_str(r#"{"zone_id":"home","circle":{"lat":51.5,"lon":-0.12,"radius_m":100},"buffer_m":500,"order_id":"o1"}"#).unwrap()
    }

    #[test]
    fn cell_items_round_trip() {
        let z = zone();
        let item = Item::from([
            ("cell".into(), s("gcpvj0")),
            (zone_attr(&z.key()), zone_value(&z)),
        ]);
        assert_eq!(zones_of_cell(&item).unwrap(), vec![z]);
    }

    #[test]
    fn item_sizes_follow_dynamodbs_rules() {
        // A string: name and value bytes (UTF-8: "é" is two).
        assert_eq!(attribute_size_bytes("cell", &s("gcpvj0")), 10);
        assert_eq!(attribute_size_bytes("n", &s("é")), 3);
        // Numbers: 1 byte per two significant digits, plus 1; zeroes at either end trimmed.
        assert_eq!(attribute_size_bytes("rev", &n(7)), 3 + 2);
        assert_eq!(attribute_size_bytes("rev", &n(1234567)), 3 + 5);
        assert_eq!(attribute_size_bytes("t", &n("-0012.500")), 1 + 3);
        assert_eq!(attribute_size_bytes("b", &AttributeValue::Bool(true)), 2);
        // A list: 3 bytes, plus 1 byte and the size of each element.
        let list = AttributeValue::L(vec![s("ab"), s("c")]);
        assert_eq!(
            attribute_size_bytes("cells", &list),
            5 + 3 + (1 + 2) + (1 + 1)
        );
        assert_eq!(attribute_size_bytes("e", &AttributeValue::L(vec![])), 1 + 3);
        let map = AttributeValue::M(HashMap::from([("k".to_owned(), s("vv"))]));
        assert_eq!(attribute_size_bytes("m", &map), 1 + 3 + (1 + 1 + 2));
        let set = AttributeValue::Ss(vec!["t1".into(), "t22".into()]);
        assert_eq!(attribute_size_bytes("tags", &set), 4 + 5);
        let item = Item::from([("cell".into(), s("gcpvj0")), ("rev".into(), n(7))]);
        assert_eq!(item_size_bytes(&item), 10 + 5);
    }

    #[test]
    fn read_and_write_units_round_each_item_up() {
        assert_eq!(read_units(1, true), 1.0);
        assert_eq!(read_units(4_096, true), 1.0);
        assert_eq!(read_units(4_097, true), 2.0);
        assert_eq!(read_units(4_097, false), 1.0);
        assert_eq!(read_units(MAX_ITEM_BYTES, false), 50.0);
        assert_eq!(write_units(10), 1);
        assert_eq!(write_units(1_025), 2);
        assert_eq!(write_units(MAX_ITEM_BYTES), 400);
    }

    #[test]
    fn state_items_round_trip() {
        let stored = ZoneRecord {
            state: ZoneState {
                level: vigil_core::AlertLevel::Warning,
                ..ZoneState::default()
            },
            rev: 3,
            pending: vec![],
        };
        let item = state_item(
            &OrderId::new("o1").unwrap(),
            &ZoneId::new("home").unwrap(),
            &stored,
        );
        assert!(!item.contains_key("pending"));
        assert_eq!(
            state_from_item(&item).unwrap(),
            (ZoneId::new("home").unwrap(), stored)
        );
    }

    #[test]
    fn corrupt_items_name_the_attribute() {
        let item = Item::from([
            ("zone_id".into(), s("z")),
            ("state".into(), s("{")),
            ("rev".into(), n(1)),
        ]);
        let e = state_from_item(&item).unwrap_err();
        assert!(e.to_string().contains("zone-state.state"), "{e}");
        assert!(!e.is_retryable());
        let item = Item::from([("rev".into(), s("x"))]);
        assert!(
            item.get_n::<u64>("rev")
                .unwrap_err()
                .to_string()
                .contains("rev")
        );
    }

    #[test]
    fn open_pairs() {
        let (o, z) = (OrderId::new("o1").unwrap(), ZoneId::new("home").unwrap());
        let item = Item::from([(open_attr(&o, &z), n(1))]);
        let (_, open) = tag_context(&item).unwrap();
        assert_eq!(open, vec![ZoneKey::new(o, z)]);
        let item = Item::from([("open#nonsense".into(), n(1))]);
        assert!(tag_context(&item).is_err());
    }

    #[test]
    fn history_round_trip() {
        let tag = TagId::new("t1").unwrap();
        let fix = vigil_core::Fix {
            tag_id: tag.clone(),
            seq: 4,
            at_ms: 1000,
            lat: 51.5,
            lon: -0.1,
            accuracy_m: 8.5,
            speed_mps: None,
            heading_deg: None,
            battery_pct: Some(70),
        };
        let mut h = TagHistory::default().with_fix(&fix, 1001);
        h.rev = 3;
        assert_eq!(history_from_item(&history_item(&tag, &h, 99)).unwrap(), h);
    }

    #[test]
    fn quarantine_keys_are_unique_per_record_not_per_process() {
        let r = QuarantineRecord {
            tag_id: "t1".into(),
            received_at_ms: 1_000,
            reason: "malformed".into(),
            detail: "x".into(),
            payload: "{".into(),
        };
        let other = QuarantineRecord {
            payload: "[".into(),
            ..r.clone()
        };
        assert_ne!(quarantine_key(&r), quarantine_key(&other));
        assert_eq!(quarantine_key(&r), quarantine_key(&r.clone()));
        assert!(quarantine_key(&r).starts_with("0000000001000#"));
    }
}
