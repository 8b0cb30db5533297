//! [`AdminStore`] on DynamoDB: the operators' paths.

use super::{DynamoStore, SERVICE};
use crate::error::{StoreError, classify};
use crate::items::{self, Item, n, s};
use crate::ports::{AdminStore, ForceRecord, IngestStore, OpenAlert, QuarantineRecord, Unforced};
use aws_sdk_dynamodb::types::Update;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use vigil_core::ingest::ZoneRecord;
use vigil_core::{
    DeviceId, ForceId, OrderId, ProtectionOrder, TagHistory, TagId, Zone, ZoneId, ZoneKey,
};

impl DynamoStore {
    fn zone_key_item(key: &ZoneKey) -> Item {
        Item::from([
            ("order_id".to_owned(), s(key.order_id.as_str())),
            ("zone_id".to_owned(), s(key.zone_id.as_str())),
        ])
    }

    async fn zone_item(&self, key: &ZoneKey) -> Result<Option<Item>, StoreError> {
        self.get(&self.tables.zones, Self::zone_key_item(key)).await
    }

    async fn zone_cells_of(&self, key: &ZoneKey) -> Result<Vec<String>, StoreError> {
        Ok(match self.zone_item(key).await? {
            Some(item) => items::zone_from_item(&item)?.1,
            None => vec![],
        })
    }

    async fn set_cell_attr(
        &self,
        cell: &str,
        key: &ZoneKey,
        zone: Option<&Zone>,
    ) -> Result<(), StoreError> {
        let req = self
            .client
            .update_item()
            .table_name(&self.tables.zone_cells)
            .key("cell", s(cell))
            .expression_attribute_names("#z", items::zone_attr(key));
        let req = match zone {
            Some(z) => req
                .update_expression("SET #z = :zone")
                .expression_attribute_values(":zone", items::zone_value(z)),
            None => req.update_expression("REMOVE #z"),
        };
        req.send()
            .await
            .map_err(|e| classify(SERVICE, "zone-cells", e))?;
        Ok(())
    }

    async fn tag_item(&self, tag_id: &TagId) -> Result<Option<Item>, StoreError> {
        self.get(&self.tables.tags, Self::pk("tag_id", tag_id.as_str()))
            .await
    }
}

impl DynamoStore {
    /// Sets `force_id` on the item `key` of `table` when it is now `expected` (absent for
    /// `None`); `false` when it is another.
    async fn set_force(
        &self,
        table: &str,
        key: Item,
        force: &ForceId,
        expected: Option<&ForceId>,
    ) -> Result<bool, StoreError> {
        let mut u = self
            .client
            .update_item()
            .table_name(table)
            .set_key(Some(key))
            .update_expression("SET force_id = :f")
            .expression_attribute_values(":f", s(force.as_str()));
        u = match expected {
            None => u.condition_expression("attribute_not_exists(force_id)"),
            Some(e) => u
                .condition_expression("force_id = :e")
                .expression_attribute_values(":e", s(e.as_str())),
        };
        match u.send().await {
            Ok(_) => Ok(true),
            Err(e) => match classify(SERVICE, table, e) {
                StoreError::Conflict { .. } => Ok(false),
                other => Err(other),
            },
        }
    }

    /// The `force_id` of the item `key` of `table`.
    async fn force_of(&self, table: &str, key: Item) -> Result<Option<ForceId>, StoreError> {
        let Some(item) = self.get(table, key).await? else {
            return Ok(None);
        };
        items::force_of(&item)
    }

    /// The table and key of a record that carries its force.
    fn force_record_key(&self, record: ForceRecord<'_>) -> (&str, Item) {
        match record {
            ForceRecord::Tag(t) => (&self.tables.tags, Self::pk("tag_id", t.as_str())),
            ForceRecord::Device(d) => (&self.tables.devices, Self::pk("device_id", d.as_str())),
        }
    }

    /// The keys (`key` attribute) of the items of `table` without a force.
    async fn without_force(&self, table: &str, key: &str) -> Result<Vec<String>, StoreError> {
        let mut out: Vec<String> = self
            .scan_all(table)
            .await?
            .iter()
            .filter(|i| !i.contains_key("force_id"))
            .filter_map(|i| i.get(key).and_then(|v| v.as_s().ok()).cloned())
            .collect();
        out.sort();
        Ok(out)
    }
}

impl AdminStore for DynamoStore {
    async fn put_order(&self, order: &ProtectionOrder) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.tables.orders)
            .set_item(Some(items::order_item(order)))
            .send()
            .await
            .map_err(|e| classify(SERVICE, "orders", e))?;
        self.client
            .update_item()
            .table_name(&self.tables.tags)
            .key("tag_id", s(order.tag_id.as_str()))
            .update_expression("SET #o = :terms")
            .expression_attribute_names("#o", items::order_attr(&order.order_id))
            .expression_attribute_values(":terms", items::order_terms_value(&order.terms()))
            .send()
            .await
            .map_err(|e| classify(SERVICE, "tags", e))?;
        if let Some(device) = &order.victim_device {
            // Her device names the order and its tag: her positions find the order by it.
            let u = self
                .device_update(&device.device_id, &order.order_id, &order.tag_id)
                .build()
                .map_err(|e| StoreError::corrupt("devices update", e))?;
            self.client
                .update_item()
                .table_name(u.table_name())
                .set_key(Some(u.key().clone()))
                .update_expression(u.update_expression())
                .set_expression_attribute_names(u.expression_attribute_names().cloned())
                .set_expression_attribute_values(u.expression_attribute_values().cloned())
                .send()
                .await
                .map_err(|e| classify(SERVICE, "devices", e))?;
        }
        Ok(())
    }

    async fn put_zone(&self, zone: &Zone) -> Result<(), StoreError> {
        let key = zone.key();
        let new_cells: Vec<String> = vigil_core::index::zone_cells(zone)
            .iter()
            .map(vigil_core::Cell::key)
            .collect();
        let old_cells = self.zone_cells_of(&key).await?;
        // Add to the new cells first, so the zone is never missing from a cell it covers.
        for cell in &new_cells {
            self.set_cell_attr(cell, &key, Some(zone)).await?;
        }
        self.client
            .put_item()
            .table_name(&self.tables.zones)
            .set_item(Some(items::zone_item(zone, &new_cells)))
            .send()
            .await
            .map_err(|e| classify(SERVICE, "zones", e))?;
        for cell in old_cells.iter().filter(|c| !new_cells.contains(c)) {
            self.set_cell_attr(cell, &key, None).await?;
        }
        Ok(())
    }

    async fn remove_zone(&self, key: &ZoneKey) -> Result<bool, StoreError> {
        let Some(item) = self.zone_item(key).await? else {
            return Ok(false);
        };
        for cell in &items::zone_from_item(&item)?.1 {
            self.set_cell_attr(cell, key, None).await?;
        }
        self.client
            .delete_item()
            .table_name(&self.tables.zones)
            .set_key(Some(Self::zone_key_item(key)))
            .send()
            .await
            .map_err(|e| classify(SERVICE, "zones", e))?;
        Ok(true)
    }

    async fn quarantined(&self, tag_id: &str) -> Result<Vec<QuarantineRecord>, StoreError> {
        self.query_all(&self.tables.quarantine, "tag_id", tag_id, true, None)
            .await?
            .iter()
            .map(items::quarantine_from_item)
            .collect()
    }

    async fn zone_cell_entries(&self, cell: &str) -> Result<Vec<ZoneKey>, StoreError> {
        Ok(self
            .get(&self.tables.zone_cells, Self::pk("cell", cell))
            .await?
            .map(|i| items::zones_of_cell(&i))
            .transpose()?
            .unwrap_or_default()
            .iter()
            .map(Zone::key)
            .collect())
    }

    async fn get_order(&self, order_id: &OrderId) -> Result<Option<ProtectionOrder>, StoreError> {
        self.get(&self.tables.orders, Self::pk("order_id", order_id.as_str()))
            .await?
            .as_ref()
            .map(items::order_from_item)
            .transpose()
    }

    async fn list_orders(&self) -> Result<Vec<ProtectionOrder>, StoreError> {
        let mut orders = self
            .scan_all(&self.tables.orders)
            .await?
            .iter()
            .map(items::order_from_item)
            .collect::<Result<Vec<_>, _>>()?;
        orders.sort_by(|a, b| a.order_id.cmp(&b.order_id));
        Ok(orders)
    }

    async fn end_order(
        &self,
        order_id: &OrderId,
        valid_until: DateTime<Utc>,
    ) -> Result<Option<ProtectionOrder>, StoreError> {
        let Some(mut order) = self.get_order(order_id).await? else {
            return Ok(None);
        };
        order.valid_until = Some(valid_until);
        self.put_order(&order).await?;
        Ok(Some(order))
    }

    async fn assign_tag(
        &self,
        order_id: &OrderId,
        tag_id: &TagId,
    ) -> Result<Option<TagId>, StoreError> {
        let Some(mut order) = self.get_order(order_id).await? else {
            return Ok(None);
        };
        let previous = std::mem::replace(&mut order.tag_id, tag_id.clone());
        if previous == *tag_id {
            self.put_order(&order).await?;
            return Ok(Some(previous));
        }
        let open: Vec<String> = match self.tag_item(&previous).await? {
            Some(item) => items::tag_context(&item)?
                .1
                .iter()
                .filter(|k| &k.order_id == order_id)
                .map(|k| items::open_attr(&k.order_id, &k.zone_id))
                .collect(),
            None => vec![],
        };
        // One transaction: the order moves only if nobody else moved it since it was read, and
        // no reader ever sees the order's terms on both tags or on neither.
        let put = Self::put(
            &self.tables.orders,
            items::order_item(&order),
            Some((
                "tag_id = :previous",
                vec![(":previous", s(previous.as_str()))],
            )),
        )?;
        let mut set = vec!["#o = :terms".to_owned()];
        let mut new_names = HashMap::from([("#o".to_owned(), items::order_attr(order_id))]);
        let mut old_names = new_names.clone();
        let mut removes = vec!["#o".to_owned()];
        for (i, attr) in open.iter().enumerate() {
            new_names.insert(format!("#p{i}"), attr.clone());
            old_names.insert(format!("#p{i}"), attr.clone());
            set.push(format!("#p{i} = :one"));
            removes.push(format!("#p{i}"));
        }
        let mut add = Update::builder()
            .table_name(&self.tables.tags)
            .key("tag_id", s(tag_id.as_str()))
            .update_expression(format!("SET {}", set.join(", ")))
            .set_expression_attribute_names(Some(new_names))
            .expression_attribute_values(":terms", items::order_terms_value(&order.terms()));
        if !open.is_empty() {
            add = add.expression_attribute_values(":one", n(1));
        }
        let remove = Update::builder()
            .table_name(&self.tables.tags)
            .key("tag_id", s(previous.as_str()))
            .update_expression(format!("REMOVE {}", removes.join(", ")))
            .set_expression_attribute_names(Some(old_names));
        let mut transaction = self
            .client
            .transact_write_items()
            .transact_items(put)
            .transact_items(Self::update(add)?)
            .transact_items(Self::update(remove)?);
        // Her device follows the order to its new tag in the same transaction.
        if let Some(device) = &order.victim_device {
            transaction = transaction.transact_items(Self::update(self.device_update(
                &device.device_id,
                order_id,
                tag_id,
            ))?);
        }
        transaction
            .send()
            .await
            .map_err(|e| classify(SERVICE, &format!("assignment of order {order_id}"), e))?;
        Ok(Some(previous))
    }

    async fn get_zone(&self, key: &ZoneKey) -> Result<Option<Zone>, StoreError> {
        self.zone_item(key)
            .await?
            .map(|i| items::zone_from_item(&i).map(|(z, _)| z))
            .transpose()
    }

    async fn list_zones(&self) -> Result<Vec<Zone>, StoreError> {
        let mut zones = self
            .scan_all(&self.tables.zones)
            .await?
            .iter()
            .map(|i| items::zone_from_item(i).map(|(z, _)| z))
            .collect::<Result<Vec<_>, _>>()?;
        zones.sort_by_key(Zone::key);
        Ok(zones)
    }

    async fn zones_of_order(&self, order_id: &OrderId) -> Result<Vec<Zone>, StoreError> {
        self.query_all(
            &self.tables.zones,
            "order_id",
            order_id.as_str(),
            true,
            None,
        )
        .await?
        .iter()
        .map(|i| items::zone_from_item(i).map(|(z, _)| z))
        .collect()
    }

    async fn prune_expired_zones(&self, now: DateTime<Utc>) -> Result<Vec<ZoneKey>, StoreError> {
        let mut removed = Vec::new();
        for zone in self.list_zones().await? {
            if zone.spec().valid_until.is_some_and(|t| t <= now) {
                self.remove_zone(&zone.key()).await?;
                removed.push(zone.key());
            }
        }
        Ok(removed)
    }

    async fn open_alerts(&self) -> Result<Vec<OpenAlert>, StoreError> {
        let mut out = Vec::new();
        for item in self.scan_all(&self.tables.tags).await? {
            let (_, open) = items::tag_context(&item)?;
            if open.is_empty() {
                continue;
            }
            let tag_id = items::tag_id_of(&item)?;
            let mut states_by_order: BTreeMap<OrderId, BTreeMap<ZoneId, ZoneRecord>> =
                BTreeMap::new();
            for key in open {
                if !states_by_order.contains_key(&key.order_id) {
                    let states = IngestStore::states(self, &key.order_id).await?;
                    states_by_order.insert(key.order_id.clone(), states);
                }
                let Some(stored) = states_by_order[&key.order_id].get(&key.zone_id) else {
                    continue;
                };
                if stored.state.level == vigil_core::AlertLevel::Clear {
                    continue;
                }
                out.push(OpenAlert {
                    tag_id: tag_id.clone(),
                    order_id: key.order_id,
                    zone_id: key.zone_id,
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
        IngestStore::states(self, order_id).await
    }

    async fn tag_history(&self, tag_id: &TagId) -> Result<TagHistory, StoreError> {
        IngestStore::history(self, tag_id).await
    }

    async fn record_force(&self, record: ForceRecord<'_>) -> Result<Option<ForceId>, StoreError> {
        let (table, key) = self.force_record_key(record);
        self.force_of(table, key).await
    }

    async fn set_record_force(
        &self,
        record: ForceRecord<'_>,
        force: &ForceId,
        expected: Option<&ForceId>,
    ) -> Result<bool, StoreError> {
        let (table, key) = self.force_record_key(record);
        self.set_force(table, key, force, expected).await
    }

    async fn set_order_force(
        &self,
        order_id: &OrderId,
        force: &ForceId,
        expected: Option<&ForceId>,
    ) -> Result<bool, StoreError> {
        let Some(item) = self
            .get(&self.tables.orders, Self::pk("order_id", order_id.as_str()))
            .await?
        else {
            return Ok(false);
        };
        let mut order = items::order_from_item(&item)?;
        if order.force_id.as_ref() != expected {
            return Ok(false);
        }
        order.force_id = Some(force.clone());
        // Conditional on the order as read: a change made since (by another operator) wins and
        // this one reports a conflict to retry, never overwrites it.
        let old = item.get("order").cloned().unwrap_or_else(|| s(""));
        let put = self
            .client
            .put_item()
            .table_name(&self.tables.orders)
            .set_item(Some(items::order_item(&order)))
            .condition_expression("#order = :old")
            .expression_attribute_names("#order", "order")
            .expression_attribute_values(":old", old)
            .send()
            .await;
        if let Err(e) = put {
            return Err(classify(SERVICE, "orders", e));
        }
        self.client
            .update_item()
            .table_name(&self.tables.tags)
            .key("tag_id", s(order.tag_id.as_str()))
            .update_expression("SET #o = :terms")
            .expression_attribute_names("#o", items::order_attr(order_id))
            .expression_attribute_values(":terms", items::order_terms_value(&order.terms()))
            .send()
            .await
            .map_err(|e| classify(SERVICE, "tags", e))?;
        Ok(true)
    }

    async fn unforced(&self) -> Result<Unforced, StoreError> {
        let orders = self.without_force(&self.tables.orders, "order_id").await?;
        let tags = self.without_force(&self.tables.tags, "tag_id").await?;
        let devices = self
            .without_force(&self.tables.devices, "device_id")
            .await?;
        Ok(Unforced {
            orders: orders
                .into_iter()
                .map(|o| OrderId::new(o).map_err(|e| StoreError::corrupt("orders.order_id", e)))
                .collect::<Result<_, _>>()?,
            tags: tags
                .into_iter()
                .map(|t| TagId::new(t).map_err(|e| StoreError::corrupt("tags.tag_id", e)))
                .collect::<Result<_, _>>()?,
            devices: devices
                .into_iter()
                .map(|d| DeviceId::new(d).map_err(|e| StoreError::corrupt("devices.device_id", e)))
                .collect::<Result<_, _>>()?,
        })
    }
}

impl DynamoStore {
    /// The `devices` item's update that names `tag_id` as `order_id`'s tag for her device.
    fn device_update(
        &self,
        device_id: &vigil_core::DeviceId,
        order_id: &OrderId,
        tag_id: &TagId,
    ) -> aws_sdk_dynamodb::types::builders::UpdateBuilder {
        Update::builder()
            .table_name(&self.tables.devices)
            .key("device_id", s(device_id.as_str()))
            .update_expression("SET #o = :tag")
            .expression_attribute_names("#o", items::order_attr(order_id))
            .expression_attribute_values(":tag", s(tag_id.as_str()))
    }
}
