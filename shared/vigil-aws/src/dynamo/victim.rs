//! The victim's device's side of [`crate::ports::IngestStore`] on DynamoDB (docs/PROXIMITY.md):
//! the `devices` and `victim-positions` tables and the "her device is silent" marks on the
//! `tags` items. Her positions are written only if newer, one item per device.

use super::{DynamoStore, SERVICE};
use crate::error::{StoreError, classify};
use crate::items::{self, ItemExt, n, s};
use crate::ports::{DeviceContext, DeviceOrder};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use vigil_core::proximity::{VICTIM_ZONE_ID, VictimPosition};
use vigil_core::{DeviceId, OrderId, TagId};

impl DynamoStore {
    pub(super) async fn read_device_context(
        &self,
        device_id: &DeviceId,
    ) -> Result<Option<DeviceContext>, StoreError> {
        let t = &self.tables;
        let key = || Self::keys([Self::pk("device_id", device_id.as_str())]);
        let mut got = self
            .batch_get(HashMap::from([
                (t.devices.clone(), key()?),
                (t.victim_positions.clone(), key()?),
            ]))
            .await?;
        let Some(device) = got.remove(&t.devices).and_then(|mut v| v.pop()) else {
            return Ok(None);
        };
        let latest = got
            .remove(&t.victim_positions)
            .and_then(|mut v| v.pop())
            .map(|item| items::position_from_item(&item))
            .transpose()?;
        let pairs = items::device_orders(&device)?;
        let tags: BTreeSet<&TagId> = pairs.iter().map(|(_, tag)| tag).collect();
        let mut tag_items = HashMap::new();
        let mut histories = HashMap::new();
        if !tags.is_empty() {
            let keys = || Self::keys(tags.iter().map(|tag| Self::pk("tag_id", tag.as_str())));
            let mut got = self
                .batch_get(HashMap::from([
                    (t.tags.clone(), keys()?),
                    (t.last_seen.clone(), keys()?),
                ]))
                .await?;
            for item in got.remove(&t.tags).unwrap_or_default() {
                tag_items.insert(items::tag_id_of(&item)?, item);
            }
            for item in got.remove(&t.last_seen).unwrap_or_default() {
                histories.insert(items::tag_id_of(&item)?, items::history_from_item(&item)?);
            }
        }
        let mut orders = Vec::new();
        for (order_id, tag_id) in pairs {
            let Some(item) = tag_items.get(&tag_id) else {
                continue;
            };
            let (terms, open) = items::tag_context(item)?;
            // The tag's own terms decide: an order moved to another tag, or now naming
            // another device, is not this device's any more.
            let Some(terms) = terms.into_iter().find(|o| {
                o.order_id == order_id
                    && o.victim_device
                        .as_ref()
                        .is_some_and(|d| &d.device_id == device_id)
            }) else {
                continue;
            };
            let silent = items::silent_marks(item)?.remove(&order_id);
            orders.push(DeviceOrder {
                open: open.iter().any(|k| k.order_id == order_id),
                moving_zone_open: open
                    .iter()
                    .any(|k| k.order_id == order_id && k.zone_id.as_str() == VICTIM_ZONE_ID),
                history: histories.get(&tag_id).cloned().unwrap_or_default(),
                tag_id,
                terms,
                silent,
            });
        }
        Ok(Some(DeviceContext {
            latest,
            orders,
            command: items::command_of(&device)?,
        }))
    }

    pub(super) async fn read_victim_positions(
        &self,
        devices: &[DeviceId],
    ) -> Result<BTreeMap<DeviceId, VictimPosition>, StoreError> {
        let unique: BTreeSet<&DeviceId> = devices.iter().collect();
        if unique.is_empty() {
            return Ok(BTreeMap::new());
        }
        let t = &self.tables;
        let keys = Self::keys(unique.iter().map(|d| Self::pk("device_id", d.as_str())))?;
        let mut got = self
            .batch_get(HashMap::from([(t.victim_positions.clone(), keys)]))
            .await?;
        let mut out = BTreeMap::new();
        for item in got.remove(&t.victim_positions).unwrap_or_default() {
            let device = DeviceId::new(item.get_s("device_id")?)
                .map_err(|e| StoreError::corrupt("victim-positions.device_id", e))?;
            out.insert(device, items::position_from_item(&item)?);
        }
        Ok(out)
    }

    pub(super) async fn write_position(
        &self,
        device_id: &DeviceId,
        position: &VictimPosition,
        expires_at_s: i64,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.tables.victim_positions)
            .set_item(Some(items::position_item(
                device_id,
                position,
                expires_at_s,
            )))
            .condition_expression(
                "attribute_not_exists(device_id) OR t < :t OR (t = :t AND seq < :seq)",
            )
            .expression_attribute_values(":t", n(position.time_ms()))
            .expression_attribute_values(":seq", n(position.seq))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) => match classify(SERVICE, "victim-positions", e) {
                StoreError::Conflict { .. } => Ok(false),
                other => Err(other),
            },
        }
    }

    pub(super) async fn write_silent_mark(
        &self,
        tag_id: &TagId,
        order_id: &OrderId,
        episode: Option<Option<i64>>,
    ) -> Result<bool, StoreError> {
        self.write_tag_mark(tag_id, items::silent_attr(order_id), episode)
            .await
    }

    /// Sets (`Some(episode)`, -1 for none) or removes (`None`) a mark attribute on a tag's
    /// item, once: returns whether it changed (a mark already set, or already gone, is no
    /// change). Her device's silence marks and the watchdog's marks are both this.
    pub(super) async fn write_tag_mark(
        &self,
        tag_id: &TagId,
        attr: String,
        episode: Option<Option<i64>>,
    ) -> Result<bool, StoreError> {
        let req = self
            .client
            .update_item()
            .table_name(&self.tables.tags)
            .key("tag_id", s(tag_id.as_str()))
            .expression_attribute_names("#m", attr);
        let req = match episode {
            Some(ms) => req
                .update_expression("SET #m = :ms")
                .condition_expression("attribute_exists(tag_id) AND attribute_not_exists(#m)")
                .expression_attribute_values(":ms", n(ms.unwrap_or(-1))),
            None => req
                .update_expression("REMOVE #m")
                .condition_expression("attribute_exists(#m)"),
        };
        match req.send().await {
            Ok(_) => Ok(true),
            Err(e) => match classify(SERVICE, "tags", e) {
                StoreError::Conflict { .. } => Ok(false),
                other => Err(other),
            },
        }
    }
}
