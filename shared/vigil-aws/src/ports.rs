//! The ports: the narrow capabilities handlers depend on. Each has a DynamoDB/SQS/SNS adapter
//! and an in-memory adapter ([`crate::memory`]) with the same semantics, conditional writes
//! included.

use crate::error::StoreError;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::future::Future;
use vigil_core::audit::AuditRecord;
use vigil_core::cells::Cell;
use vigil_core::events::AlertEvent;
use vigil_core::policy::VictimNotices;
use vigil_core::state::ZoneState;
use vigil_core::{
    AlertLevel, Fix, OrderId, OrderPolicy, PhoneNumber, ProtectionOrder, TagId, Zone, ZoneId,
};

/// What the offender-facing side knows of an order: validity and policy, never the victim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderSummary {
    /// The order.
    pub order_id: OrderId,
    /// In force from.
    pub valid_from: Option<DateTime<Utc>>,
    /// In force until.
    pub valid_until: Option<DateTime<Utc>>,
    /// Escalation and alert settings.
    pub policy: OrderPolicy,
}

impl OrderSummary {
    /// The summary of a full order: everything but the victim.
    pub fn of(order: &ProtectionOrder) -> Self {
        Self {
            order_id: order.order_id.clone(),
            valid_from: order.valid_from,
            valid_until: order.valid_until,
            policy: order.policy.clone(),
        }
    }

    /// A stand-in order for the core's functions, with no victim data (a placeholder victim
    /// the ingest side can never text: it has no phone of anyone).
    pub fn as_order(&self, tag_id: &TagId) -> ProtectionOrder {
        ProtectionOrder {
            order_id: self.order_id.clone(),
            tag_id: tag_id.clone(),
            victim: vigil_core::Victim {
                victim_id: vigil_core::VictimId::new("redacted").expect("valid id"),
                phone: PhoneNumber::new("+10000000000").expect("valid placeholder"),
                language: vigil_core::Language::En,
            },
            zone_ids: vec![],
            valid_from: self.valid_from,
            valid_until: self.valid_until,
            policy: self.policy.clone(),
        }
    }
}

/// An (order, zone) pair.
pub type OrderZone = (OrderId, ZoneId);

/// What ingest reads for every fix in one request: the tag's orders, its open zones, and the
/// zones of the fix's cells.
#[derive(Debug, Clone, Default)]
pub struct TagContext {
    /// The orders restraining this tag.
    pub orders: Vec<OrderSummary>,
    /// (order, zone) pairs whose state is not CLEAR.
    pub open: Vec<OrderZone>,
    /// Every zone stored under the requested cells (of any order).
    pub zones: Vec<Zone>,
}

/// A zone state as stored, with its revision and outbox.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StoredState {
    /// The state.
    pub state: ZoneState,
    /// Revision; 0 when never written.
    pub rev: u64,
    /// Alert events committed with the state but not yet confirmed on the queue.
    pub pending: Vec<AlertEvent>,
}

/// One state write of a commit.
#[derive(Debug, Clone, PartialEq)]
pub struct StateWrite {
    /// The zone.
    pub zone_id: ZoneId,
    /// The revision read; the write fails if the stored one differs (0: must not exist).
    pub expected_rev: u64,
    /// The new state.
    pub state: ZoneState,
    /// Outbox: pending events read plus those of this change.
    pub pending: Vec<AlertEvent>,
}

/// An audit entry to append.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// Kind (see [`AuditRecord::kind`]).
    pub kind: String,
    /// Details.
    pub detail: serde_json::Value,
}

/// Everything ingest writes for one order after one fix, atomically.
#[derive(Debug, Clone, PartialEq)]
pub struct Commit {
    /// The order.
    pub order_id: OrderId,
    /// The tag (its open-zone set is updated).
    pub tag_id: TagId,
    /// State writes.
    pub writes: Vec<StateWrite>,
    /// Zones that became open.
    pub opened: Vec<ZoneId>,
    /// Zones that became CLEAR.
    pub closed: Vec<ZoneId>,
    /// Audit entries, appended in order to the order's chain.
    pub audit: Vec<AuditEntry>,
}

/// A message kept for inspection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuarantineRecord {
    /// The tag as the topic named it (possibly not a valid id).
    pub tag_id: String,
    /// Receive time, Unix ms.
    pub received_at_ms: i64,
    /// Stable reason code.
    pub reason: String,
    /// Human-readable detail.
    pub detail: String,
    /// The payload, truncated to 4 KiB.
    pub payload: String,
}

/// The store ingest needs.
pub trait IngestStore: Send + Sync {
    /// The tag's context and the zones of `cells`, in one read; `None` for an unknown tag.
    fn load_context(
        &self,
        tag_id: &TagId,
        cells: &[Cell],
    ) -> impl Future<Output = Result<Option<TagContext>, StoreError>> + Send;
    /// The tag's newest `n` reports with device time at most `not_after_ms`, newest first.
    /// They come from the IoT rule's last-seen action: unvalidated, and possibly including the
    /// fix being handled.
    fn recent_fixes(
        &self,
        tag_id: &TagId,
        not_after_ms: i64,
        n: usize,
    ) -> impl Future<Output = Result<Vec<Fix>, StoreError>> + Send;
    /// Zones by id (missing ones are left out).
    fn zones(&self, ids: &[ZoneId]) -> impl Future<Output = Result<Vec<Zone>, StoreError>> + Send;
    /// Every zone state of an order.
    fn states(
        &self,
        order_id: &OrderId,
    ) -> impl Future<Output = Result<BTreeMap<ZoneId, StoredState>, StoreError>> + Send;
    /// Writes a commit atomically; [`StoreError::Conflict`] if any state or the audit chain
    /// moved since it was read.
    fn commit(
        &self,
        commit: &Commit,
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Removes confirmed events from a state's outbox, if the state is still at `rev`.
    fn clear_pending(
        &self,
        order_id: &OrderId,
        zone_id: &ZoneId,
        rev: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Keeps a rejected message.
    fn quarantine(
        &self,
        record: &QuarantineRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The alert queue.
pub trait AlertQueue: Send + Sync {
    /// Sends events; all or an error.
    fn send(&self, events: &[AlertEvent]) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The outcome of claiming an event id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// First time: handle it.
    Claimed,
    /// Already handled: skip it.
    Done,
}

/// The store the alert function needs.
pub trait AlertStore: Send + Sync {
    /// Claims an event id; an earlier claim that never finished (a crash) older than
    /// `stale_after_ms` is taken over.
    fn claim(
        &self,
        event_id: &str,
        now_ms: i64,
        stale_after_ms: i64,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;
    /// Gives up a claim that failed before the event was finished, so the next delivery can
    /// take it at once instead of waiting for it to go stale. A finished claim is kept.
    fn release(&self, event_id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Marks an event id handled.
    fn finish(
        &self,
        event_id: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The full order, with the victim.
    fn order(
        &self,
        order_id: &OrderId,
    ) -> impl Future<Output = Result<Option<ProtectionOrder>, StoreError>> + Send;
    /// What the victim has been told, and its revision (0 when nothing yet).
    fn notices(
        &self,
        order_id: &OrderId,
    ) -> impl Future<Output = Result<(VictimNotices, u64), StoreError>> + Send;
    /// Saves notices if the stored revision is still `expected_rev`.
    fn save_notices(
        &self,
        order_id: &OrderId,
        notices: &VictimNotices,
        expected_rev: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The audit log.
pub trait AuditLog: Send + Sync {
    /// Appends an entry to the order's chain; returns the record written.
    fn append(
        &self,
        order_id: &OrderId,
        entry: &AuditEntry,
        now_ms: i64,
    ) -> impl Future<Output = Result<AuditRecord, StoreError>> + Send;
    /// The order's whole chain, in order.
    fn read(
        &self,
        order_id: &OrderId,
    ) -> impl Future<Output = Result<Vec<AuditRecord>, StoreError>> + Send;
}

/// SMS and the operators' topic.
pub trait Notifier: Send + Sync {
    /// Sends a transactional SMS; returns the provider's message id.
    fn send_sms(
        &self,
        to: &PhoneNumber,
        text: &str,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;
    /// Publishes an event to the operators' topic (JSON); returns the message id.
    fn publish_operator(
        &self,
        event: &serde_json::Value,
        subject: &str,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;
}

/// Counters, as CloudWatch metrics.
pub trait Metrics: Send + Sync {
    /// Adds `n` to the counter `name` with one dimension.
    fn count(&self, name: &str, dimension: (&str, &str), n: u64);
}

/// An open alert: an (order, zone) pair whose state is not CLEAR, as operators see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenAlert {
    /// The offender's tag.
    pub tag_id: TagId,
    /// The order.
    pub order_id: OrderId,
    /// The zone.
    pub zone_id: ZoneId,
    /// The current level (WARNING or BREACH).
    pub level: AlertLevel,
    /// Device time the level began, Unix ms.
    pub since_ms: Option<i64>,
    /// The state's revision: an acknowledgement names the revision it saw.
    pub state_rev: u64,
}

/// Provisioning and operations: what the operator CLI and test set-up read and write.
///
/// Everything here is an admin path, run by an operator or a test, never per fix: the listing
/// methods ([`AdminStore::list_orders`], [`AdminStore::list_zones`],
/// [`AdminStore::open_alerts`]) scan a table, which is acceptable for an operator's command
/// and must never appear on a function's path.
pub trait AdminStore: Send + Sync {
    /// Creates or replaces an order (with its victim) and the tag's summary of it.
    fn put_order(
        &self,
        order: &ProtectionOrder,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Creates or replaces a zone and its cell entries (stale cells are cleared).
    fn put_zone(&self, zone: &Zone) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Removes a zone and every cell entry of it; whether it existed.
    fn remove_zone(
        &self,
        zone_id: &ZoneId,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// The quarantined messages of a tag (as the topic named it).
    fn quarantined(
        &self,
        tag_id: &str,
    ) -> impl Future<Output = Result<Vec<QuarantineRecord>, StoreError>> + Send;
    /// The zone ids stored under a cell key.
    fn zone_cell_entries(
        &self,
        cell: &str,
    ) -> impl Future<Output = Result<Vec<ZoneId>, StoreError>> + Send;
    /// The order with its victim, or `None` when there is no such order.
    fn get_order(
        &self,
        order_id: &OrderId,
    ) -> impl Future<Output = Result<Option<ProtectionOrder>, StoreError>> + Send;
    /// Every order, sorted by id. Admin path: a Scan of the `orders` table.
    fn list_orders(&self) -> impl Future<Output = Result<Vec<ProtectionOrder>, StoreError>> + Send;
    /// Ends an order at `valid_until`: the order and the tag's summary of it both get the new
    /// end. Returns the updated order, or `None` when there is no such order.
    fn end_order(
        &self,
        order_id: &OrderId,
        valid_until: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<ProtectionOrder>, StoreError>> + Send;
    /// Moves an order to another tag: the order's `tag_id`, the new tag item's summary of it,
    /// and its open (order, zone) marks move; the old tag item loses both. Returns the tag the
    /// order had before, or `None` when there is no such order.
    fn assign_tag(
        &self,
        order_id: &OrderId,
        tag_id: &TagId,
    ) -> impl Future<Output = Result<Option<TagId>, StoreError>> + Send;
    /// A zone by id, or `None`.
    fn get_zone(
        &self,
        zone_id: &ZoneId,
    ) -> impl Future<Output = Result<Option<Zone>, StoreError>> + Send;
    /// Every zone, sorted by id. Admin path: a Scan of the `zones` table.
    fn list_zones(&self) -> impl Future<Output = Result<Vec<Zone>, StoreError>> + Send;
    /// The zones that restrain an order's offender (the zone's `orders` is the truth), sorted
    /// by id. Admin path: a Scan of the `zones` table.
    fn zones_of_order(
        &self,
        order_id: &OrderId,
    ) -> impl Future<Output = Result<Vec<Zone>, StoreError>> + Send;
    /// Removes every zone whose `valid_until` is at or before `now`, with all its cell
    /// entries; returns the ids removed, sorted.
    fn prune_expired_zones(
        &self,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<ZoneId>, StoreError>> + Send;
    /// Every open alert, sorted by (order, zone). Admin path: a Scan of the `tags` table for
    /// the open marks ingest keeps there (one small item per tag, written in the same
    /// transaction as the states), then the state of each open pair from `zone-state` for its
    /// level. A pair whose state reads CLEAR (a race with ingest) is left out.
    fn open_alerts(&self) -> impl Future<Output = Result<Vec<OpenAlert>, StoreError>> + Send;
}
