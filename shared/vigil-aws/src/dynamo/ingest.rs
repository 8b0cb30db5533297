//! [`IngestStore`] on DynamoDB.

use super::{DynamoStore, SERVICE};
use crate::error::{StoreError, classify};
use crate::items::{self, ItemExt, n, s};
use crate::ports::{Commit, DeviceContext, IngestStore, QuarantineRecord, TagContext};
use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
use std::collections::{BTreeMap, HashMap};
use vigil_core::cells::Cell;
use vigil_core::ingest::ZoneRecord;
use vigil_core::proximity::VictimPosition;
use vigil_core::{DeviceId, OrderId, TagHistory, TagId, Zone, ZoneId, ZoneKey};

/// How long an event counter's digest is kept: a tag that repeats a counter after this is
/// seen as new without a conflict note.
const EVENT_DIGEST_TTL_S: i64 = 7 * 24 * 3600;

impl IngestStore for DynamoStore {
    async fn load_context(
        &self,
        tag_id: &TagId,
        cells: &[Cell],
    ) -> Result<Option<TagContext>, StoreError> {
        let t = &self.tables;
        let mut request = HashMap::from([
            (
                t.tags.clone(),
                Self::keys([Self::pk("tag_id", tag_id.as_str())])?,
            ),
            (
                t.last_seen.clone(),
                Self::keys([Self::pk("tag_id", tag_id.as_str())])?,
            ),
        ]);
        if !cells.is_empty() {
            request.insert(
                t.zone_cells.clone(),
                Self::keys(cells.iter().map(|c| Self::pk("cell", c.key())))?,
            );
        }
        let mut got = self.batch_get(request).await?;
        let Some(tag_item) = got.remove(&t.tags).and_then(|mut v| v.pop()) else {
            return Ok(None);
        };
        let (orders, open) = items::tag_context(&tag_item)?;
        let silent = items::silent_marks(&tag_item)?;
        let history = match got.remove(&t.last_seen).and_then(|mut v| v.pop()) {
            Some(item) => items::history_from_item(&item)?,
            None => TagHistory::default(),
        };
        let mut zones = Vec::new();
        for cell_item in got.remove(&t.zone_cells).unwrap_or_default() {
            zones.extend(items::zones_of_cell(&cell_item)?);
        }
        Ok(Some(TagContext {
            orders,
            open,
            history,
            zones,
            silent,
            command: items::command_of(&tag_item)?,
        }))
    }

    async fn history(&self, tag_id: &TagId) -> Result<TagHistory, StoreError> {
        match self
            .get(&self.tables.last_seen, Self::pk("tag_id", tag_id.as_str()))
            .await?
        {
            Some(item) => items::history_from_item(&item),
            None => Ok(TagHistory::default()),
        }
    }

    async fn save_history(&self, tag_id: &TagId, history: &TagHistory) -> Result<(), StoreError> {
        let mut next = history.clone();
        next.rev = history.rev + 1;
        let expires = history.last_received_ms.unwrap_or(0) / 1000 + self.history_ttl_s;
        let mut req = self
            .client
            .put_item()
            .table_name(&self.tables.last_seen)
            .set_item(Some(items::history_item(tag_id, &next, expires)));
        req = if history.rev == 0 {
            req.condition_expression("attribute_not_exists(tag_id)")
        } else {
            req.condition_expression("rev = :rev")
                .expression_attribute_values(":rev", n(history.rev))
        };
        req.send()
            .await
            .map_err(|e| classify(SERVICE, &format!("history of tag {tag_id}"), e))?;
        Ok(())
    }

    async fn event_digest(&self, tag_id: &TagId, seq: u64) -> Result<Option<String>, StoreError> {
        let key = Self::pk("id", items::event_digest_id(tag_id, seq));
        self.get(&self.tables.idempotency, key)
            .await?
            .map(|item| item.get_s("digest").map(str::to_owned))
            .transpose()
    }

    async fn save_event_digest(
        &self,
        tag_id: &TagId,
        seq: u64,
        digest: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.tables.idempotency)
            .item("id", s(items::event_digest_id(tag_id, seq)))
            .item("digest", s(digest))
            .item("expires_at", n(now_ms / 1000 + EVENT_DIGEST_TTL_S))
            .send()
            .await
            .map_err(|e| classify(SERVICE, "idempotency", e))?;
        Ok(())
    }

    async fn order_zones(&self, order_id: &OrderId) -> Result<Vec<Zone>, StoreError> {
        crate::ports::AdminStore::zones_of_order(self, order_id).await
    }

    async fn zones(&self, keys: &[ZoneKey]) -> Result<Vec<Zone>, StoreError> {
        let mut zones = Vec::new();
        for chunk in keys.chunks(100) {
            let request = HashMap::from([(
                self.tables.zones.clone(),
                Self::keys(chunk.iter().map(|k| {
                    let mut key = Self::pk("order_id", k.order_id.as_str());
                    key.insert("zone_id".into(), s(k.zone_id.as_str()));
                    key
                }))?,
            )]);
            for item in self.batch_get(request).await?.into_values().flatten() {
                zones.push(items::zone_from_item(&item)?.0);
            }
        }
        Ok(zones)
    }

    async fn states(&self, order_id: &OrderId) -> Result<BTreeMap<ZoneId, ZoneRecord>, StoreError> {
        self.query_all(
            &self.tables.zone_state,
            "order_id",
            order_id.as_str(),
            true,
            None,
        )
        .await?
        .iter()
        .map(items::state_from_item)
        .collect()
    }

    async fn commit(&self, commit: &Commit) -> Result<(), StoreError> {
        let mut tx = Vec::new();
        for w in &commit.writes {
            let stored = ZoneRecord {
                state: w.state.clone(),
                rev: w.expected_rev + 1,
                pending: w.pending.clone(),
            };
            let item = items::state_item(&commit.order_id, &w.zone_id, &stored);
            let cond = if w.expected_rev == 0 {
                ("attribute_not_exists(order_id)", vec![])
            } else {
                ("rev = :rev", vec![(":rev", n(w.expected_rev))])
            };
            tx.push(Self::put(&self.tables.zone_state, item, Some(cond))?);
        }
        if let Some(marks) = self.open_marks(commit)? {
            tx.push(marks);
        }
        if tx.is_empty() {
            return Ok(());
        }
        self.client
            .transact_write_items()
            .set_transact_items(Some(tx))
            .send()
            .await
            .map_err(|e| classify(SERVICE, &format!("commit of order {}", commit.order_id), e))?;
        Ok(())
    }

    async fn clear_pending(
        &self,
        order_id: &OrderId,
        zone_id: &ZoneId,
        rev: u64,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.zone_state)
            .key("order_id", s(order_id.as_str()))
            .key("zone_id", s(zone_id.as_str()))
            .update_expression("REMOVE pending")
            .condition_expression("rev = :rev")
            .expression_attribute_values(":rev", n(rev))
            .send()
            .await;
        match result.map_err(|e| classify(SERVICE, "zone-state", e)) {
            // The state moved on; the invocation that moved it carried the outbox forward.
            Ok(_) | Err(StoreError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn quarantine(&self, record: &QuarantineRecord) -> Result<(), StoreError> {
        let expires = record.received_at_ms / 1000 + self.quarantine_ttl_s;
        self.client
            .put_item()
            .table_name(&self.tables.quarantine)
            .set_item(Some(items::quarantine_item(record, expires)))
            .send()
            .await
            .map_err(|e| classify(SERVICE, "quarantine", e))?;
        Ok(())
    }

    async fn device_context(
        &self,
        device_id: &DeviceId,
    ) -> Result<Option<DeviceContext>, StoreError> {
        self.read_device_context(device_id).await
    }

    async fn victim_positions(
        &self,
        devices: &[DeviceId],
    ) -> Result<BTreeMap<DeviceId, VictimPosition>, StoreError> {
        self.read_victim_positions(devices).await
    }

    async fn save_position(
        &self,
        device_id: &DeviceId,
        position: &VictimPosition,
        expires_at_s: i64,
    ) -> Result<bool, StoreError> {
        self.write_position(device_id, position, expires_at_s).await
    }

    async fn mark_victim_silent(
        &self,
        tag_id: &TagId,
        order_id: &OrderId,
        episode: Option<i64>,
    ) -> Result<bool, StoreError> {
        self.write_silent_mark(tag_id, order_id, Some(episode))
            .await
    }

    async fn clear_victim_silent(
        &self,
        tag_id: &TagId,
        order_id: &OrderId,
    ) -> Result<bool, StoreError> {
        self.write_silent_mark(tag_id, order_id, None).await
    }
}

impl DynamoStore {
    /// The update of the tag's open marks for a commit, if any zone opened or closed. SET and
    /// REMOVE of distinct attributes never conflict between zones.
    fn open_marks(&self, commit: &Commit) -> Result<Option<TransactWriteItem>, StoreError> {
        if commit.opened.is_empty() && commit.closed.is_empty() {
            return Ok(None);
        }
        let mut names = HashMap::new();
        let mut sets = Vec::new();
        let mut removes = Vec::new();
        for (i, z) in commit.opened.iter().enumerate() {
            names.insert(format!("#o{i}"), items::open_attr(&commit.order_id, z));
            sets.push(format!("#o{i} = :one"));
        }
        for (i, z) in commit.closed.iter().enumerate() {
            names.insert(format!("#c{i}"), items::open_attr(&commit.order_id, z));
            removes.push(format!("#c{i}"));
        }
        let mut expr = String::new();
        if !sets.is_empty() {
            expr.push_str(&format!("SET {}", sets.join(", ")));
        }
        if !removes.is_empty() {
            expr.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        let mut u = Update::builder()
            .table_name(&self.tables.tags)
            .key("tag_id", s(commit.tag_id.as_str()))
            .update_expression(expr.trim())
            .set_expression_attribute_names(Some(names))
            .condition_expression("attribute_exists(tag_id)");
        if !sets.is_empty() {
            u = u.expression_attribute_values(":one", n(1));
        }
        Self::update(u).map(Some)
    }
}
