//! Every operator change leaves a trace: an `admin_change` record in the hash-chained audit
//! log of the order it touches, saying who made it ([`Operator`]), what changed, and (for a
//! victim's phone) a keyed hash of the new destination, so that a redirected SMS can be
//! detected later without the audit holding the number. CloudTrail data events on the
//! orders, zones and tags tables record the real principal independently.

use crate::error::{AdminError, Result};
use crate::operator::Operator;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use vigil_aws::ports::{AuditEntry, AuditLog, DestinationMac};
use vigil_core::audit::AuditRecord;
use vigil_core::{OrderId, PhoneNumber, Zone};

/// The audit kind of an operator change.
pub const CHANGE_KIND: &str = "admin_change";

/// One change: its action name (`order_created`, `zone_removed`, ...) and details. Details
/// never hold a phone number or coordinates: a zone's geometry is recorded as a hash.
#[derive(Debug, Clone)]
pub struct Change {
    /// What was done.
    pub action: &'static str,
    /// What it was done to, and how.
    pub detail: Value,
}

impl Change {
    /// A change with `detail`.
    pub fn new(action: &'static str, detail: Value) -> Change {
        Change { action, detail }
    }

    /// A zone added or replaced: its id, kind, buffer, validity and a hash of its whole
    /// specification (the geometry is the victim's location: it is not copied here).
    pub fn zone(action: &'static str, zone: &Zone) -> Change {
        let spec = serde_json::to_vec(zone.spec()).expect("zones serialize");
        Change::new(
            action,
            json!({
                "zone_id": zone.id().as_str(),
                "kind": zone.kind(),
                "buffer_m": zone.spec().buffer_m,
                "valid_from": zone.spec().valid_from,
                "valid_until": zone.spec().valid_until,
                "spec_sha256": hex::encode(Sha256::digest(&spec)),
            }),
        )
    }
}

/// The keyed hash of a victim's phone, for the audit of a change that sets it.
///
/// Fails with [`AdminError::Store`] if the key service fails.
pub async fn phone_mac(mac: &impl DestinationMac, phone: &PhoneNumber) -> Result<String> {
    mac.mac(phone)
        .await
        .map_err(AdminError::store("hashing the SMS destination"))
}

/// Appends `changes` to `order`'s audit chain as `admin_change` records made by `operator`.
///
/// Fails with [`AdminError::Store`] if the append fails; the change itself has been made by
/// then, so the error says so and the operator can see it in the chain's absence.
pub async fn record(
    log: &impl AuditLog,
    order: &OrderId,
    operator: &Operator,
    changes: &[Change],
    now_ms: i64,
) -> Result<Vec<AuditRecord>> {
    let entries: Vec<AuditEntry> = changes
        .iter()
        .map(|c| AuditEntry {
            kind: CHANGE_KIND.into(),
            detail: json!({
                "action": c.action,
                "operator": operator.label(),
                "change": c.detail,
            }),
        })
        .collect();
    log.append(order, &entries, now_ms)
        .await
        .map_err(AdminError::store(format!(
            "recording the change in the audit log of {order} (the change itself was made)"
        )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_aws::memory::{MemoryMac, MemoryStore};

    #[tokio::test]
    async fn a_change_is_chained_with_its_operator_and_no_phone_or_coordinates() {
        let store = MemoryStore::default();
        let order = OrderId::new("o1").unwrap();
        let zone = vigil_testkit::home_zone();
        let phone = PhoneNumber::new("+447700900123").unwrap();
        let mac = phone_mac(&MemoryMac::default(), &phone).await.unwrap();
        let op = Operator::Local("op-7".into());
        let records = record(
            &store,
            &order,
            &op,
            &[
                Change::new("order_created", json!({"phone_mac": mac})),
                Change::zone("zone_added", &zone),
            ],
            1_000,
        )
        .await
        .unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].prev_hash, records[0].hash);
        let text = serde_json::to_string(&records).unwrap();
        assert!(text.contains("local:op-7") && text.contains("zone_added"));
        assert!(!text.contains("7700900123"), "{text}");
        let (lat, lon) = vigil_testkit::HOME;
        assert!(!text.contains(&lat.to_string()), "{text}");
        assert!(!text.contains(&lon.to_string()), "{text}");
    }
}
