//! The ports: the narrow capabilities handlers depend on. Each has an AWS adapter
//! ([`crate::dynamo`], [`crate::sqs`], [`crate::sns`], [`crate::kms`]) and an in-memory adapter
//! ([`crate::memory`]) with the same semantics, conditional writes included.

use crate::error::StoreError;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use vigil_core::audit::AuditRecord;
use vigil_core::cells::Cell;
use vigil_core::events::AlertEvent;
use vigil_core::ingest::{StateWrite, ZoneRecord};
use vigil_core::policy::VictimNotices;
use vigil_core::proximity::VictimPosition;
use vigil_core::reporting::{Commanded, ReportingCommand};
use vigil_core::watchdog::{Condition, Told};
use vigil_core::{
    AlertLevel, DeviceId, ForceId, OperatorEvent, OrderId, OrderTerms, PhoneNumber,
    ProtectionOrder, TagHistory, TagId, Zone, ZoneId, ZoneKey,
};

/// What ingest reads for every message in one request: the tag's orders (terms only, never a
/// victim), its open zones, its history of accepted fixes, and the zones of the fix's cells.
#[derive(Debug, Clone, Default)]
pub struct TagContext {
    /// The orders restraining this tag.
    pub orders: Vec<OrderTerms>,
    /// Zones whose state is not CLEAR.
    pub open: Vec<ZoneKey>,
    /// The tag's history (default when it has none yet).
    pub history: TagHistory,
    /// Every zone stored under the requested cells (of any order).
    pub zones: Vec<Zone>,
    /// Orders whose victim's device operators were told is silent: the time of her last
    /// position before the silence (`None`: it never reported).
    pub silent: BTreeMap<OrderId, Option<i64>>,
    /// The reporting command the tag was last sent (pursuit mode), if any.
    pub command: Option<ReportingCommand>,
}

/// What ingest reads when a victim's device reports (docs/PROXIMITY.md): her newest stored
/// position, and each order the device belongs to with the offender's side of it.
#[derive(Debug, Clone, Default)]
pub struct DeviceContext {
    /// Her newest position stored, if any (a replay or an older one changes nothing).
    pub latest: Option<VictimPosition>,
    /// The orders whose terms name this device, in order id order.
    pub orders: Vec<DeviceOrder>,
    /// The reporting command the device was last sent (pursuit mode), if any.
    pub command: Option<ReportingCommand>,
}

/// One order of a victim's device, with the offender's tag's side of it.
#[derive(Debug, Clone)]
pub struct DeviceOrder {
    /// The offender's tag.
    pub tag_id: TagId,
    /// The order's terms, from the tag's item (the current ones).
    pub terms: OrderTerms,
    /// The tag's history of accepted fixes.
    pub history: TagHistory,
    /// Whether the order's moving zone has an open alert.
    pub moving_zone_open: bool,
    /// Whether any zone of the order (fixed or moving) has an open alert.
    pub open: bool,
    /// The order's "her device is silent" mark, when operators were told.
    pub silent: Option<Option<i64>>,
}

/// The anchors bucket (docs/EVIDENCE.md): written by the anchor function alone, read by
/// operators exporting evidence; nobody can change or delete an anchor before its retention
/// ends.
pub trait AnchorBucket: Send + Sync {
    /// Writes `anchor` under its key, locked in compliance mode until `retain_until`. An
    /// anchor already under that key says the same thing: success, nothing written.
    fn put_anchor(
        &self,
        anchor: &vigil_core::anchor::Anchor,
        retain_until: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Every anchor of an order; fails as corrupt on an object that is not an anchor or is
    /// stored under another anchor's key.
    fn anchors(
        &self,
        order_id: &OrderId,
    ) -> impl Future<Output = Result<Vec<vigil_core::anchor::Anchor>, StoreError>> + Send;
}

/// A signature made by the evidence key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The key that signed (its ARN on KMS).
    pub key_id: String,
    /// The algorithm (`ECDSA_SHA_256`).
    pub algorithm: String,
    /// The signature, DER.
    pub signature: Vec<u8>,
}

/// The evidence signing key: signs, and gives its public key; never its private key.
pub trait EvidenceSigner: Send + Sync {
    /// Signs `message` (at most 4096 bytes).
    fn sign(&self, message: &[u8]) -> impl Future<Output = Result<Signed, StoreError>> + Send;
    /// The public key, DER (SubjectPublicKeyInfo).
    fn public_key(&self) -> impl Future<Output = Result<Vec<u8>, StoreError>> + Send;
}

/// The force of each order, and nothing else of it (the anchor function sets an anchor's
/// retention by its order's force).
pub trait OrderForces: Send + Sync {
    /// The force of each order found (`None`: it has none); orders not found are absent.
    fn order_forces(
        &self,
        orders: &[OrderId],
    ) -> impl Future<Output = Result<BTreeMap<OrderId, Option<ForceId>>, StoreError>> + Send;
}

/// An audit entry to append.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// Kind (see [`AuditRecord::kind`]).
    pub kind: String,
    /// Details.
    pub detail: serde_json::Value,
}

/// Everything ingest writes for one order after one fix, atomically: the changed zone states
/// (each with its outbox of alert events) and the tag's open marks.
#[derive(Debug, Clone, PartialEq)]
pub struct Commit {
    /// The order.
    pub order_id: OrderId,
    /// The tag (its open-zone marks are updated).
    pub tag_id: TagId,
    /// State writes.
    pub writes: Vec<StateWrite>,
    /// Zones that became open.
    pub opened: Vec<ZoneId>,
    /// Zones that became CLEAR.
    pub closed: Vec<ZoneId>,
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
    /// The tag's history, read consistently (to merge after a lost race).
    fn history(
        &self,
        tag_id: &TagId,
    ) -> impl Future<Output = Result<TagHistory, StoreError>> + Send;
    /// Writes the tag's history if the stored revision is still `history.rev` (it becomes
    /// `rev + 1`); [`StoreError::Conflict`] otherwise.
    fn save_history(
        &self,
        tag_id: &TagId,
        history: &TagHistory,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The content digest of the tag event last seen with this counter, if any.
    fn event_digest(
        &self,
        tag_id: &TagId,
        seq: u64,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
    /// Records the content digest of a tag event seen with this counter.
    fn save_event_digest(
        &self,
        tag_id: &TagId,
        seq: u64,
        digest: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Zones by key (missing ones are left out).
    fn zones(&self, keys: &[ZoneKey])
    -> impl Future<Output = Result<Vec<Zone>, StoreError>> + Send;
    /// Every zone of an order (a consistent Query of `zones`): adaptive reporting measures a
    /// batching tag's distance to all of them (`vigil_core::batching`).
    fn order_zones(
        &self,
        order_id: &OrderId,
    ) -> impl Future<Output = Result<Vec<Zone>, StoreError>> + Send;
    /// Every zone state of an order, read consistently.
    fn states(
        &self,
        order_id: &OrderId,
    ) -> impl Future<Output = Result<BTreeMap<ZoneId, ZoneRecord>, StoreError>> + Send;
    /// Writes a commit atomically; [`StoreError::Conflict`] if any state moved since it was
    /// read.
    fn commit(&self, commit: &Commit) -> impl Future<Output = Result<(), StoreError>> + Send;
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
    /// A victim's device's context (two reads: the device, then its orders' tags); `None`
    /// for a device no order names.
    fn device_context(
        &self,
        device_id: &DeviceId,
    ) -> impl Future<Output = Result<Option<DeviceContext>, StoreError>> + Send;
    /// The newest stored position of each device (one read); devices without one are left
    /// out.
    fn victim_positions(
        &self,
        devices: &[DeviceId],
    ) -> impl Future<Output = Result<BTreeMap<DeviceId, VictimPosition>, StoreError>> + Send;
    /// Stores her device's newest position, only if it is newer (by time, then counter) than
    /// the stored one; `false` when it is not (a replay or an older position), nothing
    /// written. Expires at `expires_at_s`.
    fn save_position(
        &self,
        device_id: &DeviceId,
        position: &VictimPosition,
        expires_at_s: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Marks the order's victim device silent (`episode`: her last position's time, if any),
    /// only if it is not marked already; `true` when this call marked it.
    fn mark_victim_silent(
        &self,
        tag_id: &TagId,
        order_id: &OrderId,
        episode: Option<i64>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Removes the order's "silent" mark, if there is one; `true` when this call removed it.
    fn clear_victim_silent(
        &self,
        tag_id: &TagId,
        order_id: &OrderId,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// The alert queue.
pub trait AlertQueue: Send + Sync {
    /// Sends events; all or an error.
    fn send(&self, events: &[AlertEvent]) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The outcome of claiming an event id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First time: handle it.
    Claimed,
    /// Already handled, with the same content: skip it.
    Done,
    /// A claim exists for this id with other content: a claim written in advance to silence
    /// a future event, or a forged event. The claim has been taken over for this content;
    /// handle the event and raise the alarm.
    Mismatch {
        /// The digest the existing claim held.
        stored_digest: String,
    },
}

/// The store the alert function needs.
pub trait AlertStore: Send + Sync {
    /// Claims an event id for content `digest`; an earlier claim that never finished (a
    /// crash) older than `stale_after_ms` is taken over.
    fn claim(
        &self,
        event_id: &str,
        digest: &str,
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
    /// The order's level now: the highest level of its zone states, read consistently.
    fn order_level(
        &self,
        order_id: &OrderId,
    ) -> impl Future<Output = Result<AlertLevel, StoreError>> + Send;
    /// What the victim has been told, and its revision (0 when nothing yet), read
    /// consistently.
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

/// The audit log: one hash chain per order.
pub trait AuditLog: Send + Sync {
    /// Appends entries, in order, to the order's chain in one atomic write; returns the
    /// records written. Retries a lost race (another writer appended) with backoff.
    fn append(
        &self,
        order_id: &OrderId,
        entries: &[AuditEntry],
        now_ms: i64,
    ) -> impl Future<Output = Result<Vec<AuditRecord>, StoreError>> + Send;
    /// The order's whole chain, in order.
    fn read(
        &self,
        order_id: &OrderId,
    ) -> impl Future<Output = Result<Vec<AuditRecord>, StoreError>> + Send;
}

/// SMS, the operators' (national) topic and the forces' topics.
pub trait Notifier: Send + Sync {
    /// Sends a transactional SMS, from `sender_id` (the order's force's) or the deployment's
    /// sender when `None`; returns the provider's message id.
    fn send_sms(
        &self,
        to: &PhoneNumber,
        text: &str,
        sender_id: Option<&str>,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;
    /// Publishes an event to the operators' (national) topic; returns the message id.
    fn publish_operator(
        &self,
        event: &OperatorEvent,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;
    /// Publishes a message to a force's operators' topic (docs/FORCES.md); returns the message
    /// id.
    fn publish_to_force(
        &self,
        message: &ForceMessage,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;
}

/// A message to one force's operators' topic: the case's own operator event, or an urgent
/// event routed to the force whose area it happened in.
#[derive(Debug, Clone, PartialEq)]
pub struct ForceMessage {
    /// The force.
    pub force_id: ForceId,
    /// Its topic.
    pub topic_arn: String,
    /// Subject line (no personal data).
    pub subject: String,
    /// The JSON body.
    pub body: String,
    /// `case` (the force's own case) or `responders` (routed by place): a message attribute
    /// subscribers filter on, with `kind` and `urgency`.
    pub audience: &'static str,
    /// The event's kind.
    pub kind: String,
    /// The event's urgency.
    pub urgency: &'static str,
}

/// A tag's side of pursuit mode, as the alert function reads it (consistently) from the
/// `tags` item: its orders' terms, its open zones and the command it was last sent.
#[derive(Debug, Clone, Default)]
pub struct TagReporting {
    /// The orders restraining the tag (terms only: no victim contact).
    pub orders: Vec<OrderTerms>,
    /// Zones whose state is not CLEAR.
    pub open: Vec<ZoneKey>,
    /// The command last sent, if any.
    pub command: Option<ReportingCommand>,
}

/// A victim's device's side of pursuit mode, from the `devices` item.
#[derive(Debug, Clone, Default)]
pub struct DeviceReporting {
    /// The orders the device belongs to, with each order's tag.
    pub orders: Vec<(OrderId, TagId)>,
    /// The command last sent, if any.
    pub command: Option<ReportingCommand>,
}

/// Where the alert function keeps what each device was told (pursuit mode): the `cmd`
/// attribute of the tag's or the device's item, written only under a condition on the value
/// read, so two handlers deciding at once publish once.
pub trait ReportingStore: Send + Sync {
    /// The tag's orders, open zones and last command; `None` for a tag without an item.
    fn tag_reporting(
        &self,
        tag_id: &TagId,
    ) -> impl Future<Output = Result<Option<TagReporting>, StoreError>> + Send;
    /// The device's orders and last command; `None` for a device without an item.
    fn device_reporting(
        &self,
        device_id: &DeviceId,
    ) -> impl Future<Output = Result<Option<DeviceReporting>, StoreError>> + Send;
    /// Replaces the device's command (`None`: removes it) if it is still `expected`; fails
    /// with [`StoreError::Conflict`] otherwise, or when the item does not exist.
    fn save_command(
        &self,
        device: &Commanded,
        next: Option<&ReportingCommand>,
        expected: Option<&ReportingCommand>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// One tag as the watchdog reads it: its orders (terms only), the conditions operators were
/// told of, and its history of accepted messages.
#[derive(Debug, Clone)]
pub struct WatchedTag {
    /// The tag.
    pub tag_id: TagId,
    /// The orders restraining it.
    pub orders: Vec<OrderTerms>,
    /// Conditions told and not ended (the `watch#` marks of its item).
    pub told: Told,
    /// Its history (default when it has none).
    pub history: TagHistory,
    /// The batching window it was last told, seconds (adaptive reporting; 0: none): its
    /// messages come that much further apart.
    pub window_s: u32,
}

/// The watchdog's tables (docs/WATCHDOG.md): the deadline index (`watch`: per minute, the
/// tags due then, in parts of many tags each, and the cursor of the minutes processed), the
/// tags it reads, and its marks on them.
pub trait WatchStore: Send + Sync {
    /// The last minute processed (Unix minutes), `None` before the first run.
    fn watch_cursor(&self) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send;
    /// Moves the cursor from `expected` to `through`; [`StoreError::Conflict`] if another run
    /// moved it (one watchdog at a time).
    fn advance_watch_cursor(
        &self,
        expected: Option<i64>,
        through: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// What is due at `minute`: the tags of every part, and the escalations armed for it.
    fn due(&self, minute: i64) -> impl Future<Output = Result<Due, StoreError>> + Send;
    /// The tags due at `minute`, every part together.
    fn due_tags(
        &self,
        minute: i64,
    ) -> impl Future<Output = Result<BTreeSet<TagId>, StoreError>> + Send {
        async move { Ok(self.due(minute).await?.tags) }
    }
    /// Writes the part `part` of `minute` (replacing a part of that name): the tags due then;
    /// no tags removes the part.
    fn arm(
        &self,
        minute: i64,
        part: &str,
        tags: &[TagId],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Arms, for `minute`, the end of `tag_id`'s batching window because an operator changed
    /// order `order_id` (vigil-admin): the part `c#<order_id>#<tag_id>`, holding the tag. The
    /// watchdog then queues the alert function's ask ([`Due::changed`]); arming the same one
    /// again changes nothing.
    fn arm_order_change(
        &self,
        minute: i64,
        order_id: &OrderId,
        tag_id: &TagId,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async move {
            let part = format!("{ORDER_CHANGE_PREFIX}{order_id}#{tag_id}");
            self.arm(minute, &part, std::slice::from_ref(tag_id)).await
        }
    }
    /// Every part of the minutes `from..=to`: (minute, part) -> its tags.
    fn armed(
        &self,
        from: i64,
        to: i64,
    ) -> impl Future<Output = Result<BTreeMap<(i64, String), BTreeSet<TagId>>, StoreError>> + Send;
    /// Every tag that has an order (the sweep's list), sorted, each with its force (the
    /// tag's, else its orders'; `None` for records not migrated yet).
    fn tags_with_orders(
        &self,
    ) -> impl Future<Output = Result<Vec<(TagId, Option<ForceId>)>, StoreError>> + Send;
    /// The tags as the watchdog judges them; tags without an item are left out.
    fn watched(
        &self,
        tags: &[TagId],
    ) -> impl Future<Output = Result<Vec<WatchedTag>, StoreError>> + Send;
    /// The zones of an order.
    fn order_zones(
        &self,
        order_id: &OrderId,
    ) -> impl Future<Output = Result<Vec<Zone>, StoreError>> + Send;
    /// Sets (`Some(episode)`) or removes (`None`) the mark of a condition of an order on the
    /// tag's item, once: returns whether it changed.
    fn mark_watch(
        &self,
        tag_id: &TagId,
        order_id: &OrderId,
        condition: Condition,
        episode: Option<Option<i64>>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// What the watchdog finds due at a minute.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Due {
    /// The tags to judge.
    pub tags: BTreeSet<TagId>,
    /// The escalations to queue (alert events, armed by the alert function).
    pub events: Vec<vigil_core::events::AlertEvent>,
    /// The tags whose batching window ends, each with the order an operator changed (armed by
    /// vigil-admin, [`WatchStore::arm_order_change`]).
    pub changed: Vec<(OrderId, TagId)>,
}

/// The prefix of the part that ends a tag's batching window after an operator changed one of
/// its orders: `c#<order_id>#<tag_id>` (ids hold no `#`), holding the tag.
pub const ORDER_CHANGE_PREFIX: &str = "c#";

impl Due {
    /// What the tags' parts of a minute (part name, its tags) and its escalations say is due:
    /// a change's part names its order and tag, every other part's tags are judged.
    pub fn of_parts(
        parts: impl IntoIterator<Item = (String, BTreeSet<TagId>)>,
        events: Vec<vigil_core::events::AlertEvent>,
    ) -> Due {
        let mut due = Due {
            events,
            ..Due::default()
        };
        for (part, tags) in parts {
            match order_change_of(&part) {
                Some(change) => due.changed.push(change),
                None => due.tags.extend(tags),
            }
        }
        due
    }
}

/// The order and tag a change's part names, or `None` for any other part.
pub fn order_change_of(part: &str) -> Option<(OrderId, TagId)> {
    let (order, tag) = part.strip_prefix(ORDER_CHANGE_PREFIX)?.split_once('#')?;
    Some((OrderId::new(order).ok()?, TagId::new(tag).ok()?))
}

/// The alert function's one write to the watchdog's `watch` table: an escalation due at a
/// minute (part `e#<event_id>`; docs/WATCHDOG.md, escalation).
pub trait EscalationStore: Send + Sync {
    /// Puts the escalation in its minute; putting the same one again changes nothing.
    fn arm_escalation(
        &self,
        armed: &vigil_core::escalation::Armed,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Commands to devices: the AWS IoT data plane's `Publish`, QoS 1 and retained, so a device
/// that is offline when a command is sent gets the latest one when it connects again.
pub trait Commander: Send + Sync {
    /// Publishes `payload` on `topic` (`tags/{tag_id}/cmd`, `victims/{device_id}/cmd`).
    fn publish(
        &self,
        topic: &str,
        payload: &[u8],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// A keyed hash of SMS destinations: the audit keeps it for every SMS and every phone an
/// operator sets, so a number redirected behind the audit's back is detected, without the
/// audit holding the number.
pub trait DestinationMac: Send + Sync {
    /// The keyed hash of a phone number, hex.
    fn mac(&self, phone: &PhoneNumber) -> impl Future<Output = Result<String, StoreError>> + Send;
}

/// Counters, as CloudWatch metrics.
pub trait Metrics: Send + Sync {
    /// Adds `n` to the counter `name` with one dimension.
    fn count(&self, name: &str, dimension: (&str, &str), n: u64);
    /// Adds `n` to the counter `name` under each of `dimensions` (e.g. by path and by force):
    /// one record where the adapter can (one EMF line with a dimension set each).
    fn count_each(&self, name: &str, dimensions: &[(&str, &str)], n: u64) {
        for d in dimensions {
            self.count(name, *d, n);
        }
    }
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
    /// Creates or replaces an order (with its victim) and the tag's copy of its terms.
    fn put_order(
        &self,
        order: &ProtectionOrder,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Creates or replaces a zone and its cell entries (stale cells are cleared). Only the
    /// zone's own order is touched.
    fn put_zone(&self, zone: &Zone) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Removes a zone and every cell entry of it; whether it existed.
    fn remove_zone(&self, key: &ZoneKey) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// The quarantined messages of a tag (as the topic named it).
    fn quarantined(
        &self,
        tag_id: &str,
    ) -> impl Future<Output = Result<Vec<QuarantineRecord>, StoreError>> + Send;
    /// The zones stored under a cell key.
    fn zone_cell_entries(
        &self,
        cell: &str,
    ) -> impl Future<Output = Result<Vec<ZoneKey>, StoreError>> + Send;
    /// The order with its victim, or `None` when there is no such order.
    fn get_order(
        &self,
        order_id: &OrderId,
    ) -> impl Future<Output = Result<Option<ProtectionOrder>, StoreError>> + Send;
    /// Every order, sorted by id. Admin path: a Scan of the `orders` table.
    fn list_orders(&self) -> impl Future<Output = Result<Vec<ProtectionOrder>, StoreError>> + Send;
    /// Ends an order at `valid_until`: the order and the tag's copy of its terms both get the
    /// new end. Returns the updated order, or `None` when there is no such order.
    fn end_order(
        &self,
        order_id: &OrderId,
        valid_until: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<ProtectionOrder>, StoreError>> + Send;
    /// Moves an order to another tag: the order's `tag_id`, the new tag item's copy of its
    /// terms, and its open marks move; the old tag item loses both. Returns the tag the order
    /// had before, or `None` when there is no such order.
    fn assign_tag(
        &self,
        order_id: &OrderId,
        tag_id: &TagId,
    ) -> impl Future<Output = Result<Option<TagId>, StoreError>> + Send;
    /// A zone by key, or `None`.
    fn get_zone(
        &self,
        key: &ZoneKey,
    ) -> impl Future<Output = Result<Option<Zone>, StoreError>> + Send;
    /// Every zone, sorted by key. Admin path: a Scan of the `zones` table.
    fn list_zones(&self) -> impl Future<Output = Result<Vec<Zone>, StoreError>> + Send;
    /// The zones of an order, sorted by id (a Query of the `zones` table).
    fn zones_of_order(
        &self,
        order_id: &OrderId,
    ) -> impl Future<Output = Result<Vec<Zone>, StoreError>> + Send;
    /// Removes every zone whose `valid_until` is at or before `now`, with all its cell
    /// entries; returns the keys removed, sorted.
    fn prune_expired_zones(
        &self,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<ZoneKey>, StoreError>> + Send;
    /// Every open alert, sorted by (order, zone). Admin path: a Scan of the `tags` table for
    /// the open marks ingest keeps there, then the state of each open pair for its level. A
    /// pair whose state reads CLEAR (a race with ingest) is left out.
    fn open_alerts(&self) -> impl Future<Output = Result<Vec<OpenAlert>, StoreError>> + Send;
    /// The zone states of an order, as stored (for operators and tests).
    fn zone_records(
        &self,
        order_id: &OrderId,
    ) -> impl Future<Output = Result<BTreeMap<ZoneId, ZoneRecord>, StoreError>> + Send;
    /// A tag's history of accepted fixes.
    fn tag_history(
        &self,
        tag_id: &TagId,
    ) -> impl Future<Output = Result<TagHistory, StoreError>> + Send;
    /// The force of a tag or a victim's device (its item's `force_id`); `None` when it has
    /// none (or no item).
    fn record_force(
        &self,
        record: ForceRecord<'_>,
    ) -> impl Future<Output = Result<Option<ForceId>, StoreError>> + Send;
    /// Gives a tag or a victim's device the force `force` if its force is now `expected`
    /// (`None`: it has none), creating its item if needed; `false` when its force is another
    /// (nothing changed).
    fn set_record_force(
        &self,
        record: ForceRecord<'_>,
        force: &ForceId,
        expected: Option<&ForceId>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Gives an order the force `force` if its force is now `expected`: the order and the
    /// tag's copy of its terms; `false` when there is no such order or its force is another.
    fn set_order_force(
        &self,
        order_id: &OrderId,
        force: &ForceId,
        expected: Option<&ForceId>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// The orders, tags and devices with no force (admin path: a Scan of each table).
    fn unforced(&self) -> impl Future<Output = Result<Unforced, StoreError>> + Send;
}

/// A record that carries its force itself, not through an order (docs/FORCES.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForceRecord<'a> {
    /// A tag (`tags` item).
    Tag(&'a TagId),
    /// A victim's device (`devices` item).
    Device(&'a DeviceId),
}

impl ForceRecord<'_> {
    /// `tag` or `device`, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            ForceRecord::Tag(_) => "tag",
            ForceRecord::Device(_) => "device",
        }
    }

    /// Its id.
    pub fn id(&self) -> &str {
        match self {
            ForceRecord::Tag(t) => t.as_str(),
            ForceRecord::Device(d) => d.as_str(),
        }
    }
}

/// Records written before forces existed: they have no `force_id` yet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Unforced {
    /// Orders without a force.
    pub orders: Vec<OrderId>,
    /// Tags without a force.
    pub tags: Vec<TagId>,
    /// Victims' devices without a force.
    pub devices: Vec<DeviceId>,
}
