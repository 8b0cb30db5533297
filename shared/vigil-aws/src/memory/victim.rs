//! The victim's device's side of [`crate::ports::IngestStore`] in memory, with the DynamoDB
//! adapter's semantics: her position stored only if newer, marks set and removed once.

use super::MemoryStore;
use crate::error::StoreError;
use crate::ports::{DeviceContext, DeviceOrder, DeviceReporting, ReportingStore, TagReporting};
use std::collections::BTreeMap;
use vigil_core::proximity::{VICTIM_ZONE_ID, VictimPosition};
use vigil_core::reporting::{Commanded, ReportingCommand};
use vigil_core::{DeviceId, OrderId, TagId};

impl MemoryStore {
    pub(super) fn read_device_context(
        &self,
        device_id: &DeviceId,
    ) -> Result<Option<DeviceContext>, StoreError> {
        self.injected()?;
        let g = self.lock();
        let Some(pairs) = g.devices.get(device_id) else {
            return Ok(None);
        };
        let mut orders = Vec::new();
        for (order_id, tag_id) in pairs {
            let Some((terms, open)) = g.tags.get(tag_id) else {
                continue;
            };
            let Some(terms) = terms.get(order_id).filter(|t| {
                t.victim_device
                    .as_ref()
                    .is_some_and(|d| &d.device_id == device_id)
            }) else {
                continue;
            };
            orders.push(DeviceOrder {
                open: open.iter().any(|k| &k.order_id == order_id),
                tag_id: tag_id.clone(),
                terms: terms.clone(),
                history: g.histories.get(tag_id).cloned().unwrap_or_default(),
                moving_zone_open: open
                    .iter()
                    .any(|k| &k.order_id == order_id && k.zone_id.as_str() == VICTIM_ZONE_ID),
                silent: g.silent.get(&(tag_id.clone(), order_id.clone())).copied(),
            });
        }
        Ok(Some(DeviceContext {
            latest: g.positions.get(device_id).cloned(),
            orders,
            command: g
                .commands
                .get(&Commanded::VictimDevice(device_id.clone()))
                .cloned(),
        }))
    }

    pub(super) fn read_victim_positions(
        &self,
        devices: &[DeviceId],
    ) -> Result<BTreeMap<DeviceId, VictimPosition>, StoreError> {
        self.injected()?;
        let g = self.lock();
        Ok(devices
            .iter()
            .filter_map(|d| g.positions.get(d).map(|p| (d.clone(), p.clone())))
            .collect())
    }

    pub(super) fn write_position(
        &self,
        device_id: &DeviceId,
        position: &VictimPosition,
    ) -> Result<bool, StoreError> {
        self.injected()?;
        let mut g = self.lock();
        let newer = g
            .positions
            .get(device_id)
            .is_none_or(|stored| position.is_newer_than(stored));
        if newer {
            g.positions.insert(device_id.clone(), position.clone());
        }
        Ok(newer)
    }

    pub(super) fn write_silent_mark(
        &self,
        tag_id: &TagId,
        order_id: &OrderId,
        episode: Option<Option<i64>>,
    ) -> Result<bool, StoreError> {
        self.injected()?;
        let mut g = self.lock();
        let key = (tag_id.clone(), order_id.clone());
        Ok(match episode {
            Some(ms) => {
                if !g.tags.contains_key(tag_id) || g.silent.contains_key(&key) {
                    false
                } else {
                    g.silent.insert(key, ms);
                    true
                }
            }
            None => g.silent.remove(&key).is_some(),
        })
    }

    /// Her device's newest stored position, for assertions.
    pub fn victim_position(&self, device_id: &DeviceId) -> Option<VictimPosition> {
        self.lock().positions.get(device_id).cloned()
    }
}

impl ReportingStore for MemoryStore {
    async fn tag_reporting(&self, tag_id: &TagId) -> Result<Option<TagReporting>, StoreError> {
        self.injected()?;
        let g = self.lock();
        Ok(g.tags.get(tag_id).map(|(orders, open)| TagReporting {
            orders: orders.values().cloned().collect(),
            open: open.iter().cloned().collect(),
            command: g.commands.get(&Commanded::Tag(tag_id.clone())).cloned(),
        }))
    }

    async fn device_reporting(
        &self,
        device_id: &DeviceId,
    ) -> Result<Option<DeviceReporting>, StoreError> {
        self.injected()?;
        let g = self.lock();
        Ok(g.devices.get(device_id).map(|pairs| DeviceReporting {
            orders: pairs.iter().map(|(o, t)| (o.clone(), t.clone())).collect(),
            command: g
                .commands
                .get(&Commanded::VictimDevice(device_id.clone()))
                .cloned(),
        }))
    }

    async fn save_command(
        &self,
        device: &Commanded,
        next: Option<&ReportingCommand>,
        expected: Option<&ReportingCommand>,
    ) -> Result<(), StoreError> {
        self.injected()?;
        let mut g = self.lock();
        let exists = match device {
            Commanded::Tag(t) => g.tags.contains_key(t),
            Commanded::VictimDevice(d) => g.devices.contains_key(d),
        };
        if !exists || g.commands.get(device) != expected {
            return Err(StoreError::Conflict {
                what: format!("reporting command of {device}"),
            });
        }
        match next {
            Some(c) => g.commands.insert(device.clone(), c.clone()),
            None => g.commands.remove(device),
        };
        Ok(())
    }
}
