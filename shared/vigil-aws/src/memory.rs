//! In-memory adapters of every port, with the same semantics as the AWS ones (conditional
//! writes, atomic commits, idempotent claims), plus failure injection. For unit tests only.

use crate::error::StoreError;
use crate::ports::{
    AdminStore, AlertQueue, AlertStore, AuditEntry, AuditLog, Claim, Commit, IngestStore, Notifier,
    OpenAlert, OrderSummary, OrderZone, QuarantineRecord, StoredState, TagContext,
};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use vigil_core::audit::AuditRecord;
use vigil_core::cells::Cell;
use vigil_core::events::AlertEvent;
use vigil_core::policy::VictimNotices;
use vigil_core::{Fix, OrderId, PhoneNumber, ProtectionOrder, TagId, Zone, ZoneId};

/// A tag's order summaries and open (order, zone) pairs.
type TagEntry = (BTreeMap<OrderId, OrderSummary>, BTreeSet<OrderZone>);

#[derive(Default)]
struct Inner {
    orders: BTreeMap<OrderId, ProtectionOrder>,
    tags: BTreeMap<TagId, TagEntry>,
    zones: BTreeMap<ZoneId, Zone>,
    cells: HashMap<String, BTreeMap<ZoneId, Zone>>,
    states: BTreeMap<(OrderId, ZoneId), StoredState>,
    last_seen: BTreeMap<TagId, Vec<Fix>>,
    notices: BTreeMap<OrderId, (VictimNotices, u64)>,
    claims: HashMap<String, (bool, i64)>,
    audit: BTreeMap<OrderId, Vec<AuditRecord>>,
    quarantine: Vec<QuarantineRecord>,
    fail_next: Vec<StoreError>,
}

/// Every store port in memory.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
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

    fn injected(&self) -> Result<(), StoreError> {
        let mut g = self.lock();
        if g.fail_next.is_empty() {
            Ok(())
        } else {
            Err(g.fail_next.remove(0))
        }
    }

    /// Records a fix as the IoT rule's last-seen action would.
    pub fn record_last_seen(&self, fix: &Fix) {
        self.lock()
            .last_seen
            .entry(fix.tag_id.clone())
            .or_default()
            .push(fix.clone());
    }

    /// A zone state, for assertions.
    pub fn state(&self, order_id: &OrderId, zone_id: &ZoneId) -> Option<StoredState> {
        self.lock()
            .states
            .get(&(order_id.clone(), zone_id.clone()))
            .cloned()
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
            zones,
        }))
    }

    async fn recent_fixes(
        &self,
        tag_id: &TagId,
        not_after_ms: i64,
        n: usize,
    ) -> Result<Vec<Fix>, StoreError> {
        self.injected()?;
        let g = self.lock();
        let mut fixes: Vec<Fix> = g
            .last_seen
            .get(tag_id)
            .map(|f| {
                f.iter()
                    .filter(|f| f.at_ms <= not_after_ms)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        // Keyed by (tag, device time) like the table: a later write at the same time replaces.
        fixes.sort_by_key(|f| std::cmp::Reverse(f.at_ms));
        fixes.dedup_by_key(|f| f.at_ms);
        fixes.truncate(n);
        Ok(fixes)
    }

    async fn zones(&self, ids: &[ZoneId]) -> Result<Vec<Zone>, StoreError> {
        self.injected()?;
        let g = self.lock();
        Ok(ids
            .iter()
            .filter_map(|id| g.zones.get(id).cloned())
            .collect())
    }

    async fn states(
        &self,
        order_id: &OrderId,
    ) -> Result<BTreeMap<ZoneId, StoredState>, StoreError> {
        self.injected()?;
        let g = self.lock();
        Ok(g.states
            .iter()
            .filter(|((o, _), _)| o == order_id)
            .map(|((_, z), s)| (z.clone(), s.clone()))
            .collect())
    }

    async fn commit(&self, commit: &Commit, now_ms: i64) -> Result<(), StoreError> {
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
            let stored = StoredState {
                state: w.state.clone(),
                rev: w.expected_rev + 1,
                pending: w.pending.clone(),
            };
            g.states
                .insert((commit.order_id.clone(), w.zone_id.clone()), stored);
        }
        if let Some((_, open)) = g.tags.get_mut(&commit.tag_id) {
            for z in &commit.opened {
                open.insert((commit.order_id.clone(), z.clone()));
            }
            for z in &commit.closed {
                open.remove(&(commit.order_id.clone(), z.clone()));
            }
        }
        let chain = g.audit.entry(commit.order_id.clone()).or_default();
        for e in &commit.audit {
            let r = AuditRecord::next(
                &commit.order_id,
                chain.last(),
                now_ms,
                &e.kind,
                e.detail.clone(),
            );
            chain.push(r);
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
        self.lock().quarantine.push(record.clone());
        Ok(())
    }
}

impl AlertStore for MemoryStore {
    async fn claim(
        &self,
        event_id: &str,
        now_ms: i64,
        stale_after_ms: i64,
    ) -> Result<Claim, StoreError> {
        self.injected()?;
        let mut g = self.lock();
        match g.claims.get(event_id).copied() {
            Some((true, _)) => Ok(Claim::Done),
            Some((false, at)) if at >= now_ms - stale_after_ms => Err(StoreError::Conflict {
                what: format!("alert#{event_id}"),
            }),
            _ => {
                g.claims.insert(event_id.to_owned(), (false, now_ms));
                Ok(Claim::Claimed)
            }
        }
    }

    async fn release(&self, event_id: &str) -> Result<(), StoreError> {
        self.injected()?;
        let mut g = self.lock();
        if g.claims.get(event_id).is_some_and(|(done, _)| !done) {
            g.claims.remove(event_id);
        }
        Ok(())
    }

    async fn finish(&self, event_id: &str, now_ms: i64) -> Result<(), StoreError> {
        self.injected()?;
        self.lock()
            .claims
            .insert(event_id.to_owned(), (true, now_ms));
        Ok(())
    }

    async fn order(&self, order_id: &OrderId) -> Result<Option<ProtectionOrder>, StoreError> {
        self.injected()?;
        Ok(self.lock().orders.get(order_id).cloned())
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
        entry: &AuditEntry,
        now_ms: i64,
    ) -> Result<AuditRecord, StoreError> {
        self.injected()?;
        let mut g = self.lock();
        let chain = g.audit.entry(order_id.clone()).or_default();
        let r = AuditRecord::next(
            order_id,
            chain.last(),
            now_ms,
            &entry.kind,
            entry.detail.clone(),
        );
        chain.push(r.clone());
        Ok(r)
    }

    async fn read(&self, order_id: &OrderId) -> Result<Vec<AuditRecord>, StoreError> {
        self.injected()?;
        Ok(self.lock().audit.get(order_id).cloned().unwrap_or_default())
    }
}

impl AdminStore for MemoryStore {
    async fn put_order(&self, order: &ProtectionOrder) -> Result<(), StoreError> {
        self.injected()?;
        let mut g = self.lock();
        g.orders.insert(order.order_id.clone(), order.clone());
        g.tags
            .entry(order.tag_id.clone())
            .or_default()
            .0
            .insert(order.order_id.clone(), OrderSummary::of(order));
        Ok(())
    }

    async fn put_zone(&self, zone: &Zone) -> Result<(), StoreError> {
        self.injected()?;
        let mut g = self.lock();
        for m in g.cells.values_mut() {
            m.remove(zone.id());
        }
        for c in vigil_core::index::zone_cells(zone) {
            g.cells
                .entry(c.key())
                .or_default()
                .insert(zone.id().clone(), zone.clone());
        }
        g.zones.insert(zone.id().clone(), zone.clone());
        Ok(())
    }

    async fn remove_zone(&self, zone_id: &ZoneId) -> Result<bool, StoreError> {
        self.injected()?;
        let mut g = self.lock();
        for m in g.cells.values_mut() {
            m.remove(zone_id);
        }
        Ok(g.zones.remove(zone_id).is_some())
    }

    async fn quarantined(&self, tag_id: &str) -> Result<Vec<QuarantineRecord>, StoreError> {
        self.injected()?;
        Ok(self
            .lock()
            .quarantine
            .iter()
            .filter(|q| q.tag_id == tag_id)
            .cloned()
            .collect())
    }

    async fn zone_cell_entries(&self, cell: &str) -> Result<Vec<ZoneId>, StoreError> {
        self.injected()?;
        Ok(self
            .lock()
            .cells
            .get(cell)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default())
    }

    async fn get_order(&self, order_id: &OrderId) -> Result<Option<ProtectionOrder>, StoreError> {
        self.injected()?;
        Ok(self.lock().orders.get(order_id).cloned())
    }

    async fn list_orders(&self) -> Result<Vec<ProtectionOrder>, StoreError> {
        self.injected()?;
        Ok(self.lock().orders.values().cloned().collect())
    }

    async fn end_order(
        &self,
        order_id: &OrderId,
        valid_until: DateTime<Utc>,
    ) -> Result<Option<ProtectionOrder>, StoreError> {
        self.injected()?;
        let mut g = self.lock();
        let Some(order) = g.orders.get_mut(order_id) else {
            return Ok(None);
        };
        order.valid_until = Some(valid_until);
        let order = order.clone();
        g.tags
            .entry(order.tag_id.clone())
            .or_default()
            .0
            .insert(order.order_id.clone(), OrderSummary::of(&order));
        Ok(Some(order))
    }

    async fn assign_tag(
        &self,
        order_id: &OrderId,
        tag_id: &TagId,
    ) -> Result<Option<TagId>, StoreError> {
        self.injected()?;
        let mut g = self.lock();
        let Some(order) = g.orders.get_mut(order_id) else {
            return Ok(None);
        };
        let previous = std::mem::replace(&mut order.tag_id, tag_id.clone());
        let order = order.clone();
        let mut moved = BTreeSet::new();
        if previous != *tag_id
            && let Some((summaries, open)) = g.tags.get_mut(&previous)
        {
            summaries.remove(order_id);
            moved = open
                .iter()
                .filter(|(o, _)| o == order_id)
                .cloned()
                .collect();
            open.retain(|(o, _)| o != order_id);
        }
        let (summaries, open) = g.tags.entry(tag_id.clone()).or_default();
        summaries.insert(order_id.clone(), OrderSummary::of(&order));
        open.extend(moved);
        Ok(Some(previous))
    }

    async fn get_zone(&self, zone_id: &ZoneId) -> Result<Option<Zone>, StoreError> {
        self.injected()?;
        Ok(self.lock().zones.get(zone_id).cloned())
    }

    async fn list_zones(&self) -> Result<Vec<Zone>, StoreError> {
        self.injected()?;
        Ok(self.lock().zones.values().cloned().collect())
    }

    async fn zones_of_order(&self, order_id: &OrderId) -> Result<Vec<Zone>, StoreError> {
        self.injected()?;
        Ok(self
            .lock()
            .zones
            .values()
            .filter(|z| z.orders().contains(order_id))
            .cloned()
            .collect())
    }

    async fn prune_expired_zones(&self, now: DateTime<Utc>) -> Result<Vec<ZoneId>, StoreError> {
        self.injected()?;
        let mut g = self.lock();
        let expired: Vec<ZoneId> = g
            .zones
            .values()
            .filter(|z| z.spec().valid_until.is_some_and(|t| t <= now))
            .map(|z| z.id().clone())
            .collect();
        for id in &expired {
            g.zones.remove(id);
            for m in g.cells.values_mut() {
                m.remove(id);
            }
        }
        Ok(expired)
    }

    async fn open_alerts(&self) -> Result<Vec<OpenAlert>, StoreError> {
        self.injected()?;
        let g = self.lock();
        let mut out = Vec::new();
        for (tag_id, (_, open)) in &g.tags {
            for (order_id, zone_id) in open {
                let Some(stored) = g.states.get(&(order_id.clone(), zone_id.clone())) else {
                    continue;
                };
                if stored.state.level == vigil_core::AlertLevel::Clear {
                    continue;
                }
                out.push(OpenAlert {
                    tag_id: tag_id.clone(),
                    order_id: order_id.clone(),
                    zone_id: zone_id.clone(),
                    level: stored.state.level,
                    since_ms: stored.state.since_ms,
                    state_rev: stored.rev,
                });
            }
        }
        out.sort_by(|a, b| (&a.order_id, &a.zone_id).cmp(&(&b.order_id, &b.zone_id)));
        Ok(out)
    }
}

/// The alert queue in memory.
#[derive(Default)]
pub struct MemoryQueue {
    sent: Mutex<Vec<AlertEvent>>,
    failures: Mutex<u32>,
}

impl MemoryQueue {
    /// Everything sent so far.
    pub fn sent(&self) -> Vec<AlertEvent> {
        self.sent.lock().expect("queue lock").clone()
    }

    /// Takes everything sent so far.
    pub fn drain(&self) -> Vec<AlertEvent> {
        std::mem::take(&mut *self.sent.lock().expect("queue lock"))
    }

    /// Makes the next `n` sends fail as unavailable.
    pub fn fail_next(&self, n: u32) {
        *self.failures.lock().expect("queue lock") = n;
    }
}

impl AlertQueue for MemoryQueue {
    async fn send(&self, events: &[AlertEvent]) -> Result<(), StoreError> {
        {
            let mut f = self.failures.lock().expect("queue lock");
            if *f > 0 {
                *f -= 1;
                return Err(StoreError::Unavailable {
                    service: "sqs",
                    detail: "injected failure".into(),
                });
            }
        }
        self.sent
            .lock()
            .expect("queue lock")
            .extend_from_slice(events);
        Ok(())
    }
}

/// An SMS recorded by [`MemoryNotifier`].
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedSms {
    /// Recipient.
    pub to: PhoneNumber,
    /// Text.
    pub text: String,
}

/// SMS and operator events in memory.
#[derive(Default)]
pub struct MemoryNotifier {
    sms: Mutex<Vec<RecordedSms>>,
    operator: Mutex<Vec<serde_json::Value>>,
    failures: Mutex<u32>,
}

impl MemoryNotifier {
    /// SMS sent so far.
    pub fn sms(&self) -> Vec<RecordedSms> {
        self.sms.lock().expect("notifier lock").clone()
    }

    /// Operator events published so far.
    pub fn operator_events(&self) -> Vec<serde_json::Value> {
        self.operator.lock().expect("notifier lock").clone()
    }

    /// Makes the next `n` calls fail as unavailable.
    pub fn fail_next(&self, n: u32) {
        *self.failures.lock().expect("notifier lock") = n;
    }

    fn injected(&self) -> Result<(), StoreError> {
        let mut f = self.failures.lock().expect("notifier lock");
        if *f > 0 {
            *f -= 1;
            return Err(StoreError::Unavailable {
                service: "sns",
                detail: "injected failure".into(),
            });
        }
        Ok(())
    }
}

impl Notifier for MemoryNotifier {
    async fn send_sms(&self, to: &PhoneNumber, text: &str) -> Result<String, StoreError> {
        self.injected()?;
        let mut sms = self.sms.lock().expect("notifier lock");
        sms.push(RecordedSms {
            to: to.clone(),
            text: text.to_owned(),
        });
        Ok(format!("sms-{}", sms.len()))
    }

    async fn publish_operator(
        &self,
        event: &serde_json::Value,
        _subject: &str,
    ) -> Result<String, StoreError> {
        self.injected()?;
        let mut ops = self.operator.lock().expect("notifier lock");
        ops.push(event.clone());
        Ok(format!("op-{}", ops.len()))
    }
}
