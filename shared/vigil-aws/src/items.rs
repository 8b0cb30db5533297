//! Item mapping, in one place: every attribute name and every conversion between domain types
//! and DynamoDB items. See docs/TABLES.md for the design.

use crate::error::StoreError;
use crate::ports::{OrderSummary, OrderZone, QuarantineRecord, StoredState};
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;
use vigil_core::audit::AuditRecord;
use vigil_core::events::AlertEvent;
use vigil_core::policy::VictimNotices;
use vigil_core::{Fix, OrderId, ProtectionOrder, TagId, Zone, ZoneId};

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
    /// Tags' recent fixes, written by the IoT rule.
    pub const LAST_SEEN: &str = "last-seen";
}

/// Prefix of a zone's attribute in a `zone-cells` item.
pub const ZONE_ATTR: &str = "z#";
/// Prefix of an order summary's attribute in a `tags` item.
pub const ORDER_ATTR: &str = "o#";
/// Prefix of an open `<order_id>/<zone_id>` pair's attribute in a `tags` item.
pub const OPEN_ATTR: &str = "open#";

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

/// The attribute name of a zone in a cell item.
pub fn zone_attr(zone_id: &ZoneId) -> String {
    format!("{ZONE_ATTR}{zone_id}")
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

/// A `zones` item.
pub fn zone_item(zone: &Zone, cells: &[String]) -> Item {
    Item::from([
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

/// The attribute name of an order summary in a tag item.
pub fn order_attr(order_id: &OrderId) -> String {
    format!("{ORDER_ATTR}{order_id}")
}

/// An order summary as stored in a tag item.
pub fn order_summary_value(summary: &OrderSummary) -> AttributeValue {
    s(to_json(summary))
}

/// The order summaries and open pairs of a `tags` item.
pub fn tag_context(item: &Item) -> Result<(Vec<OrderSummary>, Vec<OrderZone>), StoreError> {
    let mut orders = Vec::new();
    for (k, v) in item.iter().filter(|(k, _)| k.starts_with(ORDER_ATTR)) {
        let text = v
            .as_s()
            .map_err(|_| StoreError::corrupt(k, "expected order summary JSON"))?;
        orders.push(json::<OrderSummary>(k, text)?);
    }
    orders.sort_by(|a, b| a.order_id.cmp(&b.order_id));
    let mut open: Vec<OrderZone> = item
        .keys()
        .filter_map(|k| k.strip_prefix(OPEN_ATTR))
        .map(open_pair)
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

fn open_pair(member: &str) -> Result<(OrderId, ZoneId), StoreError> {
    let bad = || StoreError::corrupt("tags.open#", format!("{member:?} is not <order>/<zone>"));
    let (o, z) = member.split_once('/').ok_or_else(bad)?;
    Ok((
        OrderId::new(o).map_err(|_| bad())?,
        ZoneId::new(z).map_err(|_| bad())?,
    ))
}

/// An `orders` item (with the victim).
pub fn order_item(order: &ProtectionOrder) -> Item {
    Item::from([
        ("order_id".into(), s(order.order_id.as_str())),
        ("tag_id".into(), s(order.tag_id.as_str())),
        ("order".into(), s(to_json(order))),
    ])
}

/// The order of an `orders` item.
pub fn order_from_item(item: &Item) -> Result<ProtectionOrder, StoreError> {
    json("orders.order", item.get_s("order")?)
}

/// A `zone-state` item.
pub fn state_item(order_id: &OrderId, zone_id: &ZoneId, stored: &StoredState) -> Item {
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
pub fn state_from_item(item: &Item) -> Result<(ZoneId, StoredState), StoreError> {
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
        StoredState {
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

/// A `last-seen` item as the IoT rule's DynamoDB action writes it: the selected payload fields
/// as attributes, plus `tag_id`, `received_at` and `expires_at`.
pub fn last_seen_item(fix: &Fix, received_at_ms: i64, expires_at_s: i64) -> Item {
    let mut item = Item::from([
        ("tag_id".into(), s(fix.tag_id.as_str())),
        ("at_ms".into(), n(fix.at_ms)),
        ("seq".into(), n(fix.seq)),
        ("lat".into(), n(fix.lat)),
        ("lon".into(), n(fix.lon)),
        ("accuracy_m".into(), n(fix.accuracy_m)),
        ("received_at".into(), n(received_at_ms)),
        ("expires_at".into(), n(expires_at_s)),
        ("v".into(), n(1)),
    ]);
    if let Some(b) = fix.battery_pct {
        item.insert("battery_pct".into(), n(b));
    }
    item
}

/// The fix of a `last-seen` item.
pub fn fix_from_last_seen(item: &Item) -> Result<Fix, StoreError> {
    let tag_id = TagId::new(item.get_s("tag_id")?)
        .map_err(|e| StoreError::corrupt("last-seen.tag_id", e))?;
    Ok(Fix {
        tag_id,
        seq: item.get_n("seq")?,
        at_ms: item.get_n("at_ms")?,
        lat: item.get_n("lat")?,
        lon: item.get_n("lon")?,
        accuracy_m: item.get_n("accuracy_m")?,
        speed_mps: None,
        heading_deg: None,
        battery_pct: item.get_n("battery_pct").ok(),
    })
}

/// A `quarantine` item; `n` makes the sort key unique within a millisecond.
pub fn quarantine_item(record: &QuarantineRecord, n_in_ms: u32, expires_at_s: i64) -> Item {
    Item::from([
        ("tag_id".into(), s(record.tag_id.as_str())),
        (
            "received_key".into(),
            s(format!("{:013}#{n_in_ms}", record.received_at_ms)),
        ),
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
        serde_json::from_str(r#"{"zone_id":"home","circle":{"lat":51.5,"lon":-0.12,"radius_m":100},"buffer_m":500,"orders":["o1"]}"#).unwrap()
    }

    #[test]
    fn cell_items_round_trip() {
        let z = zone();
        let item = Item::from([
            ("cell".into(), s("gcpvj0")),
            (zone_attr(z.id()), zone_value(&z)),
        ]);
        assert_eq!(zones_of_cell(&item).unwrap(), vec![z]);
    }

    #[test]
    fn state_items_round_trip() {
        let stored = StoredState {
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
        assert_eq!(open, vec![(o, z)]);
        let item = Item::from([("open#nonsense".into(), n(1))]);
        assert!(tag_context(&item).is_err());
    }

    #[test]
    fn last_seen_round_trip() {
        let fix = Fix {
            tag_id: TagId::new("t1").unwrap(),
            seq: 4,
            at_ms: 1000,
            lat: 51.5,
            lon: -0.1,
            accuracy_m: 8.5,
            speed_mps: None,
            heading_deg: None,
            battery_pct: Some(70),
        };
        assert_eq!(
            fix_from_last_seen(&last_seen_item(&fix, 1001, 99)).unwrap(),
            fix
        );
    }
}
