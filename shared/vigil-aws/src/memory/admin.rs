//! [`AdminStore`] on the in-memory store.

use super::MemoryStore;
use crate::error::StoreError;
use crate::ports::{AdminStore, ForceRecord, OpenAlert, QuarantineRecord, Unforced};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};
use vigil_core::ingest::ZoneRecord;
use vigil_core::{ForceId, OrderId, ProtectionOrder, TagHistory, TagId, Zone, ZoneId, ZoneKey};

impl AdminStore for MemoryStore {
    async fn put_order(&self, order: &ProtectionOrder) -> Result<(), StoreError> {
        self.injected()?;
        let mut g = self.lock();
        g.orders.insert(order.order_id.clone(), order.clone());
        g.tags
            .entry(order.tag_id.clone())
            .or_default()
            .0
            .insert(order.order_id.clone(), order.terms());
        if let Some(device) = &order.victim_device {
            g.devices
                .entry(device.device_id.clone())
                .or_default()
                .insert(order.order_id.clone(), order.tag_id.clone());
        }
        Ok(())
    }

    async fn put_zone(&self, zone: &Zone) -> Result<(), StoreError> {
        self.injected()?;
        let key = zone.key();
        let mut g = self.lock();
        for m in g.cells.values_mut() {
            m.remove(&key);
        }
        for c in vigil_core::index::zone_cells(zone) {
            g.cells
                .entry(c.key())
                .or_default()
                .insert(key.clone(), zone.clone());
        }
        g.zones.insert(key, zone.clone());
        Ok(())
    }

    async fn remove_zone(&self, key: &ZoneKey) -> Result<bool, StoreError> {
        self.injected()?;
        let mut g = self.lock();
        for m in g.cells.values_mut() {
            m.remove(key);
        }
        Ok(g.zones.remove(key).is_some())
    }

    async fn quarantined(&self, tag_id: &str) -> Result<Vec<QuarantineRecord>, StoreError> {
        self.injected()?;
        Ok(self
            .lock()
            .quarantine
            .iter()
            .filter(|((t, _), _)| t == tag_id)
            .map(|(_, r)| r.clone())
            .collect())
    }

    async fn zone_cell_entries(&self, cell: &str) -> Result<Vec<ZoneKey>, StoreError> {
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
            .insert(order.order_id.clone(), order.terms());
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
            && let Some((terms, open)) = g.tags.get_mut(&previous)
        {
            terms.remove(order_id);
            moved = open
                .iter()
                .filter(|k| &k.order_id == order_id)
                .cloned()
                .collect();
            open.retain(|k| &k.order_id != order_id);
        }
        let (terms, open) = g.tags.entry(tag_id.clone()).or_default();
        terms.insert(order_id.clone(), order.terms());
        open.extend(moved);
        if let Some(device) = &order.victim_device {
            g.devices
                .entry(device.device_id.clone())
                .or_default()
                .insert(order_id.clone(), tag_id.clone());
        }
        Ok(Some(previous))
    }

    async fn get_zone(&self, key: &ZoneKey) -> Result<Option<Zone>, StoreError> {
        self.injected()?;
        Ok(self.lock().zones.get(key).cloned())
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
            .filter(|z| z.order_id() == order_id)
            .cloned()
            .collect())
    }

    async fn prune_expired_zones(&self, now: DateTime<Utc>) -> Result<Vec<ZoneKey>, StoreError> {
        self.injected()?;
        let mut g = self.lock();
        let expired: Vec<ZoneKey> = g
            .zones
            .values()
            .filter(|z| z.spec().valid_until.is_some_and(|t| t <= now))
            .map(Zone::key)
            .collect();
        for key in &expired {
            g.zones.remove(key);
            for m in g.cells.values_mut() {
                m.remove(key);
            }
        }
        Ok(expired)
    }

    async fn open_alerts(&self) -> Result<Vec<OpenAlert>, StoreError> {
        self.injected()?;
        let g = self.lock();
        let mut out = Vec::new();
        for (tag_id, (_, open)) in &g.tags {
            for key in open {
                let Some(stored) = g.states.get(&(key.order_id.clone(), key.zone_id.clone()))
                else {
                    continue;
                };
                if stored.state.level == vigil_core::AlertLevel::Clear {
                    continue;
                }
                out.push(OpenAlert {
                    tag_id: tag_id.clone(),
                    order_id: key.order_id.clone(),
                    zone_id: key.zone_id.clone(),
                    level: stored.state.level,
                    since_ms: stored.state.since_ms,
                    state_rev: stored.rev,
                });
            }
        }
        out.sort_by(|a, b| (&a.order_id, &a.zone_id).cmp(&(&b.order_id, &b.zone_id)));
        Ok(out)
    }

    async fn zone_records(
        &self,
        order_id: &OrderId,
    ) -> Result<BTreeMap<ZoneId, ZoneRecord>, StoreError> {
        crate::ports::IngestStore::states(self, order_id).await
    }

    async fn tag_history(&self, tag_id: &TagId) -> Result<TagHistory, StoreError> {
        crate::ports::IngestStore::history(self, tag_id).await
    }

    async fn record_force(&self, record: ForceRecord<'_>) -> Result<Option<ForceId>, StoreError> {
        self.injected()?;
        let g = self.lock();
        Ok(match record {
            ForceRecord::Tag(t) => g.tag_forces.get(t).cloned(),
            ForceRecord::Device(d) => g.device_forces.get(d).cloned(),
        })
    }

    async fn set_record_force(
        &self,
        record: ForceRecord<'_>,
        force: &ForceId,
        expected: Option<&ForceId>,
    ) -> Result<bool, StoreError> {
        self.injected()?;
        let mut g = self.lock();
        let current = match record {
            ForceRecord::Tag(t) => g.tag_forces.get(t),
            ForceRecord::Device(d) => g.device_forces.get(d),
        };
        if current != expected {
            return Ok(false);
        }
        match record {
            ForceRecord::Tag(t) => {
                g.tag_forces.insert(t.clone(), force.clone());
                g.tags.entry(t.clone()).or_default();
            }
            ForceRecord::Device(d) => {
                g.device_forces.insert(d.clone(), force.clone());
                g.devices.entry(d.clone()).or_default();
            }
        }
        Ok(true)
    }

    async fn set_order_force(
        &self,
        order_id: &OrderId,
        force: &ForceId,
        expected: Option<&ForceId>,
    ) -> Result<bool, StoreError> {
        self.injected()?;
        let mut g = self.lock();
        let Some(order) = g.orders.get_mut(order_id) else {
            return Ok(false);
        };
        if order.force_id.as_ref() != expected {
            return Ok(false);
        }
        order.force_id = Some(force.clone());
        let (tag, terms) = (order.tag_id.clone(), order.terms());
        g.tags
            .entry(tag)
            .or_default()
            .0
            .insert(order_id.clone(), terms);
        Ok(true)
    }

    async fn unforced(&self) -> Result<Unforced, StoreError> {
        self.injected()?;
        let g = self.lock();
        Ok(Unforced {
            orders: g
                .orders
                .values()
                .filter(|o| o.force_id.is_none())
                .map(|o| o.order_id.clone())
                .collect(),
            tags: g
                .tags
                .keys()
                .filter(|t| !g.tag_forces.contains_key(*t))
                .cloned()
                .collect(),
            devices: g
                .devices
                .keys()
                .filter(|d| !g.device_forces.contains_key(*d))
                .cloned()
                .collect(),
        })
    }
}
