//! In-memory adapters of every port, with the same semantics as the AWS ones (conditional
//! writes, atomic commits, claims bound to content), plus failure injection. The handlers'
//! unit tests and the simulator's in-process executor run the product's functions on them.
//!
//! # Layout
//! - this module: [`MemoryStore`] with the ingest, alert and audit ports.
//! - `admin`: [`crate::ports::AdminStore`] on the same store.
//! - `outbound`: [`MemoryQueue`], [`MemoryNotifier`], [`MemoryMac`] and [`MemoryCommander`].
//! - `victim`: the victim's device's side of the ingest port, and the reporting store (pursuit mode).
//! - `watch`: the watchdog's store.

mod admin;
mod evidence;
mod outbound;
mod victim;
mod watch;

pub use evidence::MemoryAnchors;
pub use outbound::{
    MemoryCommander, MemoryMac, MemoryNotifier, MemoryQueue, RecordedCommand, RecordedSms,
};

use crate::error::StoreError;
use crate::ports::{
    AlertStore, AuditEntry, AuditLog, Claim, Commit, DeviceContext, IngestStore, QuarantineRecord,
    TagContext,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use vigil_core::audit::AuditRecord;
use vigil_core::cells::Cell;
use vigil_core::ingest::ZoneRecord;
use vigil_core::policy::VictimNotices;
use vigil_core::proximity::VictimPosition;
use vigil_core::reporting::{Commanded, ReportingCommand};
use vigil_core::watchdog::Condition;
use vigil_core::{
    AlertLevel, DeviceId, ForceId, OrderId, OrderTerms, ProtectionOrder, TagHistory, TagId, Zone,
    ZoneId, ZoneKey,
};

/// A tag's order terms and open zones.
type TagEntry = (BTreeMap<OrderId, OrderTerms>, BTreeSet<ZoneKey>);

/// A claim: done, claimed at (ms), content digest.
type ClaimEntry = (bool, i64, String);

#[derive(Default)]
struct Inner {
    orders: BTreeMap<OrderId, ProtectionOrder>,
    tags: BTreeMap<TagId, TagEntry>,
    zones: BTreeMap<ZoneKey, Zone>,
    cells: HashMap<String, BTreeMap<ZoneKey, Zone>>,
    states: BTreeMap<(OrderId, ZoneId), ZoneRecord>,
    histories: BTreeMap<TagId, TagHistory>,
    event_digests: BTreeMap<(TagId, u64), String>,
    notices: BTreeMap<OrderId, (VictimNotices, u64)>,
    claims: HashMap<String, ClaimEntry>,
    audit: BTreeMap<OrderId, Vec<AuditRecord>>,
    quarantine: BTreeMap<(String, String), QuarantineRecord>,
    /// Victims' devices: the orders each belongs to, with the order's tag.
    devices: BTreeMap<DeviceId, BTreeMap<OrderId, TagId>>,
    /// Each device's newest position.
    positions: BTreeMap<DeviceId, VictimPosition>,
    /// "Her device is silent" marks per (tag, order).
    silent: BTreeMap<(TagId, OrderId), Option<i64>>,
    /// The reporting command each device was last sent.
    commands: BTreeMap<Commanded, ReportingCommand>,
    /// Escalations armed: (minute, event id) -> the event.
    watch_events: BTreeMap<(i64, String), vigil_core::events::AlertEvent>,
    /// The watchdog's deadline index: (minute, part) -> tags.
    watch_parts: BTreeMap<(i64, String), BTreeSet<TagId>>,
    /// The last minute the watchdog processed.
    watch_cursor: Option<i64>,
    /// The watchdog's marks: (tag, order, condition) -> episode.
    watch_marks: BTreeMap<(TagId, OrderId, Condition), Option<i64>>,
    /// The force of each tag and device (their items' `force_id`).
    tag_forces: BTreeMap<TagId, ForceId>,
    device_forces: BTreeMap<DeviceId, ForceId>,
    fail_next: Vec<StoreError>,
    /// Errors for the next writes to the watchdog's index only.
    fail_next_arm: Vec<StoreError>,
}

/// Every store port in memory. Clones share one store, as clones of the DynamoDB adapter
/// share the tables: the ingest and alert functions of one in-process pipeline each hold one.
#[derive(Default, Clone)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("memory store lock")
    }

    /// Makes the next store call fail with `err` (calls in order of injection).
    pub fn fail_next(&self, err: StoreError) {
        self.lock().fail_next.push(err);
    }

    /// Makes the next write to the watchdog's index ([`crate::ports::WatchStore::arm`]) fail
    /// with `err`, whatever other calls come first.
    pub fn fail_next_arm(&self, err: StoreError) {
        self.lock().fail_next_arm.push(err);
    }

    fn injected(&self) -> Result<(), StoreError> {
        let mut g = self.lock();
        if g.fail_next.is_empty() {
            Ok(())
        } else {
            Err(g.fail_next.remove(0))
        }
    }

    /// A zone state, for assertions.
    pub fn state(&self, order_id: &OrderId, zone_id: &ZoneId) -> Option<ZoneRecord> {
        self.lock()
            .states
            .get(&(order_id.clone(), zone_id.clone()))
            .cloned()
    }

    /// Writes an idempotency claim as anyone with write access to the table could: for tests
    /// of forged claims.
    pub fn plant_claim(&self, event_id: &str, digest: &str, done: bool) {
        self.lock()
            .claims
            .insert(event_id.to_owned(), (done, 0, digest.to_owned()));
    }

    /// Every quarantined message, in key order.
    pub fn quarantined_all(&self) -> Vec<QuarantineRecord> {
        self.lock().quarantine.values().cloned().collect()
    }
}

impl IngestStore for MemoryStore {
    async fn load_context(
        &self,
        tag_id: &TagId,
        cells: &[Cell],
    ) -> Result<Option<TagContext>, StoreError> {
        self.injected()?;
        let g = self.lock();
        let Some((orders, open)) = g.tags.get(tag_id) else {
            return Ok(None);
        };
        let mut zones: Vec<Zone> = Vec::new();
        for c in cells {
            if let Some(m) = g.cells.get(&c.key()) {
                zones.extend(m.values().cloned());
            }
        }
        Ok(Some(TagContext {
            orders: orders.values().cloned().collect(),
            open: open.iter().cloned().collect(),
            history: g.histories.get(tag_id).cloned().unwrap_or_default(),
            zones,
            silent: g
                .silent
                .iter()
                .filter(|((t, _), _)| t == tag_id)
                .map(|((_, o), ms)| (o.clone(), *ms))
                .collect(),
            command: g.commands.get(&Commanded::Tag(tag_id.clone())).cloned(),
        }))
    }

    async fn history(&self, tag_id: &TagId) -> Result<TagHistory, StoreError> {
        self.injected()?;
        Ok(self
            .lock()
            .histories
            .get(tag_id)
            .cloned()
            .unwrap_or_default())
    }

    async fn save_history(&self, tag_id: &TagId, history: &TagHistory) -> Result<(), StoreError> {
        self.injected()?;
        let mut g = self.lock();
        let current = g.histories.get(tag_id).map_or(0, |h| h.rev);
        if current != history.rev {
            return Err(StoreError::Conflict {
                what: format!("history of tag {tag_id}"),
            });
        }
        let mut next = history.clone();
        next.rev += 1;
        g.histories.insert(tag_id.clone(), next);
        Ok(())
    }

    async fn event_digest(&self, tag_id: &TagId, seq: u64) -> Result<Option<String>, StoreError> {
        self.injected()?;
        Ok(self
            .lock()
            .event_digests
            .get(&(tag_id.clone(), seq))
            .cloned())
    }

    async fn save_event_digest(
        &self,
        tag_id: &TagId,
        seq: u64,
        digest: &str,
        _now_ms: i64,
    ) -> Result<(), StoreError> {
        self.injected()?;
        self.lock()
            .event_digests
            .insert((tag_id.clone(), seq), digest.to_owned());
        Ok(())
    }

    async fn order_zones(&self, order_id: &OrderId) -> Result<Vec<Zone>, StoreError> {
        crate::ports::AdminStore::zones_of_order(self, order_id).await
    }

    async fn zones(&self, keys: &[ZoneKey]) -> Result<Vec<Zone>, StoreError> {
        self.injected()?;
        let g = self.lock();
        Ok(keys
            .iter()
            .filter_map(|k| g.zones.get(k).cloned())
            .collect())
    }

    async fn states(&self, order_id: &OrderId) -> Result<BTreeMap<ZoneId, ZoneRecord>, StoreError> {
        self.injected()?;
        let g = self.lock();
        Ok(g.states
            .iter()
            .filter(|((o, _), _)| o == order_id)
            .map(|((_, z), s)| (z.clone(), s.clone()))
            .collect())
    }

    async fn commit(&self, commit: &Commit) -> Result<(), StoreError> {
        self.injected()?;
        let mut g = self.lock();
        for w in &commit.writes {
            let current = g
                .states
                .get(&(commit.order_id.clone(), w.zone_id.clone()))
                .map_or(0, |s| s.rev);
            if current != w.expected_rev {
                return Err(StoreError::Conflict {
                    what: format!("zone-state {}/{}", commit.order_id, w.zone_id),
                });
            }
        }
        if (!commit.opened.is_empty() || !commit.closed.is_empty())
            && !g.tags.contains_key(&commit.tag_id)
        {
            return Err(StoreError::Conflict {
                what: format!("tag {}", commit.tag_id),
            });
        }
        for w in &commit.writes {
            let stored = ZoneRecord {
                state: w.state.clone(),
                rev: w.expected_rev + 1,
                pending: w.pending.clone(),
            };
            g.states
                .insert((commit.order_id.clone(), w.zone_id.clone()), stored);
        }
        if let Some((_, open)) = g.tags.get_mut(&commit.tag_id) {
            for z in &commit.opened {
                open.insert(ZoneKey::new(commit.order_id.clone(), z.clone()));
            }
            for z in &commit.closed {
                open.remove(&ZoneKey::new(commit.order_id.clone(), z.clone()));
            }
        }
        Ok(())
    }

    async fn clear_pending(
        &self,
        order_id: &OrderId,
        zone_id: &ZoneId,
        rev: u64,
    ) -> Result<(), StoreError> {
        self.injected()?;
        let mut g = self.lock();
        if let Some(s) = g
            .states
            .get_mut(&(order_id.clone(), zone_id.clone()))
            .filter(|s| s.rev == rev)
        {
            s.pending.clear();
        }
        Ok(())
    }

    async fn quarantine(&self, record: &QuarantineRecord) -> Result<(), StoreError> {
        self.injected()?;
        let key = (record.tag_id.clone(), crate::items::quarantine_key(record));
        self.lock().quarantine.insert(key, record.clone());
        Ok(())
    }

    async fn device_context(
        &self,
        device_id: &DeviceId,
    ) -> Result<Option<DeviceContext>, StoreError> {
        self.read_device_context(device_id)
    }

    async fn victim_positions(
        &self,
        devices: &[DeviceId],
    ) -> Result<BTreeMap<DeviceId, VictimPosition>, StoreError> {
        self.read_victim_positions(devices)
    }

    async fn save_position(
        &self,
        device_id: &DeviceId,
        position: &VictimPosition,
        _expires_at_s: i64,
    ) -> Result<bool, StoreError> {
        self.write_position(device_id, position)
    }

    async fn mark_victim_silent(
        &self,
        tag_id: &TagId,
        order_id: &OrderId,
        episode: Option<i64>,
    ) -> Result<bool, StoreError> {
        self.write_silent_mark(tag_id, order_id, Some(episode))
    }

    async fn clear_victim_silent(
        &self,
        tag_id: &TagId,
        order_id: &OrderId,
    ) -> Result<bool, StoreError> {
        self.write_silent_mark(tag_id, order_id, None)
    }
}

impl AlertStore for MemoryStore {
    async fn claim(
        &self,
        event_id: &str,
        digest: &str,
        now_ms: i64,
        stale_after_ms: i64,
    ) -> Result<Claim, StoreError> {
        self.injected()?;
        let mut g = self.lock();
        let claimed = (false, now_ms, digest.to_owned());
        match g.claims.get(event_id).cloned() {
            Some((_, _, stored)) if stored != digest => {
                g.claims.insert(event_id.to_owned(), claimed);
                Ok(Claim::Mismatch {
                    stored_digest: stored,
                })
            }
            Some((true, _, _)) => Ok(Claim::Done),
            Some((false, at, _)) if at >= now_ms - stale_after_ms => Err(StoreError::Conflict {
                what: format!("alert#{event_id}"),
            }),
            _ => {
                g.claims.insert(event_id.to_owned(), claimed);
                Ok(Claim::Claimed)
            }
        }
    }

    async fn release(&self, event_id: &str) -> Result<(), StoreError> {
        self.injected()?;
        let mut g = self.lock();
        if g.claims.get(event_id).is_some_and(|(done, _, _)| !done) {
            g.claims.remove(event_id);
        }
        Ok(())
    }

    async fn finish(&self, event_id: &str, _now_ms: i64) -> Result<(), StoreError> {
        self.injected()?;
        if let Some(c) = self.lock().claims.get_mut(event_id) {
            c.0 = true;
        }
        Ok(())
    }

    async fn order(&self, order_id: &OrderId) -> Result<Option<ProtectionOrder>, StoreError> {
        self.injected()?;
        Ok(self.lock().orders.get(order_id).cloned())
    }

    async fn order_level(&self, order_id: &OrderId) -> Result<AlertLevel, StoreError> {
        self.injected()?;
        Ok(self
            .lock()
            .states
            .iter()
            .filter(|((o, _), _)| o == order_id)
            .map(|(_, r)| r.state.level)
            .max()
            .unwrap_or_default())
    }

    async fn notices(&self, order_id: &OrderId) -> Result<(VictimNotices, u64), StoreError> {
        self.injected()?;
        Ok(self
            .lock()
            .notices
            .get(order_id)
            .cloned()
            .unwrap_or_default())
    }

    async fn save_notices(
        &self,
        order_id: &OrderId,
        notices: &VictimNotices,
        expected_rev: u64,
    ) -> Result<(), StoreError> {
        self.injected()?;
        let mut g = self.lock();
        let current = g.notices.get(order_id).map_or(0, |(_, r)| *r);
        if current != expected_rev {
            return Err(StoreError::Conflict {
                what: format!("notices of {order_id}"),
            });
        }
        g.notices
            .insert(order_id.clone(), (notices.clone(), expected_rev + 1));
        Ok(())
    }
}

impl AuditLog for MemoryStore {
    async fn append(
        &self,
        order_id: &OrderId,
        entries: &[AuditEntry],
        now_ms: i64,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.injected()?;
        let mut g = self.lock();
        let chain = g.audit.entry(order_id.clone()).or_default();
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            let r = AuditRecord::next(
                order_id,
                chain.last(),
                now_ms,
                &entry.kind,
                entry.detail.clone(),
            );
            chain.push(r.clone());
            out.push(r);
        }
        Ok(out)
    }

    async fn read(&self, order_id: &OrderId) -> Result<Vec<AuditRecord>, StoreError> {
        self.injected()?;
        Ok(self.lock().audit.get(order_id).cloned().unwrap_or_default())
    }
}
