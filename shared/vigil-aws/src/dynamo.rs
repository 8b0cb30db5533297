//! The DynamoDB adapter of the store ports. Item shapes come from [`crate::items`].

use crate::config::Config;
use crate::error::{StoreError, classify};
use crate::items::{self, Item, ItemExt, n, s, table};
use crate::ports::{
    AdminStore, AlertStore, AuditEntry, AuditLog, Claim, Commit, IngestStore, OpenAlert,
    OrderSummary, QuarantineRecord, StoredState, TagContext,
};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem, Update};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use vigil_core::audit::AuditRecord;
use vigil_core::cells::Cell;
use vigil_core::policy::VictimNotices;
use vigil_core::{Fix, OrderId, ProtectionOrder, TagId, Zone, ZoneId};

const SERVICE: &str = "dynamodb";
/// Idempotency records live this long.
const IDEMPOTENCY_TTL_S: i64 = 7 * 24 * 3600;
/// Rounds of `UnprocessedKeys` retries before giving up as throttled.
const BATCH_ROUNDS: u32 = 6;

/// The store ports on DynamoDB.
#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    names: HashMap<&'static str, String>,
    quarantine_ttl_s: i64,
}

static QUARANTINE_N: AtomicU32 = AtomicU32::new(0);

impl DynamoStore {
    /// A store on `client` with table names from `config`.
    pub fn new(client: Client, config: &Config) -> Self {
        let names = [
            table::ZONE_CELLS,
            table::ZONES,
            table::ORDERS,
            table::TAGS,
            table::ZONE_STATE,
            table::NOTICES,
            table::IDEMPOTENCY,
            table::AUDIT,
            table::QUARANTINE,
            table::LAST_SEEN,
        ]
        .into_iter()
        .map(|t| (t, config.name(t)))
        .collect();
        Self {
            client,
            names,
            quarantine_ttl_s: i64::from(config.quarantine_retention_days) * 86_400,
        }
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn t(&self, logical: &'static str) -> &str {
        &self.names[logical]
    }

    async fn batch_get(
        &self,
        mut request: HashMap<String, KeysAndAttributes>,
    ) -> Result<HashMap<String, Vec<Item>>, StoreError> {
        let mut out: HashMap<String, Vec<Item>> = HashMap::new();
        for round in 0..BATCH_ROUNDS {
            let resp = self
                .client
                .batch_get_item()
                .set_request_items(Some(request))
                .send()
                .await
                .map_err(|e| classify(SERVICE, "batch get", e))?;
            for (t, items) in resp.responses.unwrap_or_default() {
                out.entry(t).or_default().extend(items);
            }
            match resp.unprocessed_keys {
                Some(rest) if !rest.is_empty() => {
                    request = rest;
                    tokio::time::sleep(Duration::from_millis(25 << round)).await;
                }
                _ => return Ok(out),
            }
        }
        Err(StoreError::Throttled {
            service: SERVICE,
            code: "UnprocessedKeys".into(),
        })
    }

    fn keys(
        pk: &str,
        values: impl IntoIterator<Item = String>,
    ) -> Result<KeysAndAttributes, StoreError> {
        KeysAndAttributes::builder()
            .set_keys(Some(
                values
                    .into_iter()
                    .map(|v| Item::from([(pk.to_owned(), s(v))]))
                    .collect(),
            ))
            .build()
            .map_err(|e| StoreError::Config(e.to_string()))
    }

    async fn query_all(
        &self,
        table: &str,
        pk: &str,
        value: &str,
        forward: bool,
        limit: Option<i32>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let resp = self
                .client
                .query()
                .table_name(table)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", pk)
                .expression_attribute_values(":pk", s(value))
                .scan_index_forward(forward)
                .set_limit(limit)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify(SERVICE, table, e))?;
            items.extend(resp.items.unwrap_or_default());
            match resp.last_evaluated_key {
                Some(k) if limit.is_none() && !k.is_empty() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }

    async fn audit_tail(&self, order_id: &OrderId) -> Result<Option<AuditRecord>, StoreError> {
        let items = self
            .query_all(
                self.t(table::AUDIT),
                "order_id",
                order_id.as_str(),
                false,
                Some(1),
            )
            .await?;
        items.first().map(items::audit_from_item).transpose()
    }

    fn put(
        table: &str,
        item: Item,
        condition: Option<(&str, Vec<(&str, AttributeValue)>)>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut p = Put::builder().table_name(table).set_item(Some(item));
        if let Some((expr, values)) = condition {
            p = p.condition_expression(expr);
            for (k, v) in values {
                p = p.expression_attribute_values(k, v);
            }
        }
        Ok(TransactWriteItem::builder()
            .put(p.build().map_err(|e| StoreError::Config(e.to_string()))?)
            .build())
    }
}

impl IngestStore for DynamoStore {
    async fn load_context(
        &self,
        tag_id: &TagId,
        cells: &[Cell],
    ) -> Result<Option<TagContext>, StoreError> {
        let mut request = HashMap::from([(
            self.t(table::TAGS).to_owned(),
            Self::keys("tag_id", [tag_id.to_string()])?,
        )]);
        if !cells.is_empty() {
            request.insert(
                self.t(table::ZONE_CELLS).to_owned(),
                Self::keys("cell", cells.iter().map(Cell::key))?,
            );
        }
        let mut got = self.batch_get(request).await?;
        let Some(tag_item) = got.remove(self.t(table::TAGS)).and_then(|mut v| v.pop()) else {
            return Ok(None);
        };
        let (orders, open) = items::tag_context(&tag_item)?;
        let mut zones = Vec::new();
        for cell_item in got.remove(self.t(table::ZONE_CELLS)).unwrap_or_default() {
            zones.extend(items::zones_of_cell(&cell_item)?);
        }
        Ok(Some(TagContext {
            orders,
            open,
            zones,
        }))
    }

    async fn recent_fixes(
        &self,
        tag_id: &TagId,
        not_after_ms: i64,
        n: usize,
    ) -> Result<Vec<Fix>, StoreError> {
        let resp = self
            .client
            .query()
            .table_name(self.t(table::LAST_SEEN))
            .key_condition_expression("tag_id = :t AND at_ms <= :at")
            .expression_attribute_values(":t", s(tag_id.as_str()))
            .expression_attribute_values(":at", items::n(not_after_ms))
            .scan_index_forward(false)
            .limit(n as i32)
            .send()
            .await
            .map_err(|e| classify(SERVICE, "last-seen", e))?;
        // The rule writes whatever a tag sent (e.g. "lat": "NaN" as a string): an item that
        // does not read back as a fix is no evidence of where the tag was, so it is skipped.
        Ok(resp
            .items
            .unwrap_or_default()
            .iter()
            .filter_map(|i| items::fix_from_last_seen(i).ok())
            .collect())
    }

    async fn zones(&self, ids: &[ZoneId]) -> Result<Vec<Zone>, StoreError> {
        let mut zones = Vec::new();
        for chunk in ids.chunks(100) {
            let request = HashMap::from([(
                self.t(table::ZONES).to_owned(),
                Self::keys("zone_id", chunk.iter().map(ZoneId::to_string))?,
            )]);
            for item in self.batch_get(request).await?.into_values().flatten() {
                zones.push(items::zone_from_item(&item)?.0);
            }
        }
        Ok(zones)
    }

    async fn states(
        &self,
        order_id: &OrderId,
    ) -> Result<BTreeMap<ZoneId, StoredState>, StoreError> {
        self.query_all(
            self.t(table::ZONE_STATE),
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

    async fn commit(&self, commit: &Commit, now_ms: i64) -> Result<(), StoreError> {
        let mut tx = Vec::new();
        for w in &commit.writes {
            let stored = StoredState {
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
            tx.push(Self::put(self.t(table::ZONE_STATE), item, Some(cond))?);
        }
        if !commit.opened.is_empty() || !commit.closed.is_empty() {
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
                .table_name(self.t(table::TAGS))
                .key("tag_id", s(commit.tag_id.as_str()))
                .update_expression(expr.trim())
                .set_expression_attribute_names(Some(names))
                .condition_expression("attribute_exists(tag_id)");
            if !sets.is_empty() {
                u = u.expression_attribute_values(":one", n(1));
            }
            tx.push(
                TransactWriteItem::builder()
                    .update(u.build().map_err(|e| StoreError::Config(e.to_string()))?)
                    .build(),
            );
        }
        if !commit.audit.is_empty() {
            let mut prev = self.audit_tail(&commit.order_id).await?;
            for entry in &commit.audit {
                let record = AuditRecord::next(
                    &commit.order_id,
                    prev.as_ref(),
                    now_ms,
                    &entry.kind,
                    entry.detail.clone(),
                );
                tx.push(Self::put(
                    self.t(table::AUDIT),
                    items::audit_item(&record),
                    Some(("attribute_not_exists(order_id)", vec![])),
                )?);
                prev = Some(record);
            }
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
            .table_name(self.t(table::ZONE_STATE))
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
        let k = QUARANTINE_N.fetch_add(1, Ordering::Relaxed);
        let expires = record.received_at_ms / 1000 + self.quarantine_ttl_s;
        self.client
            .put_item()
            .table_name(self.t(table::QUARANTINE))
            .set_item(Some(items::quarantine_item(record, k, expires)))
            .send()
            .await
            .map_err(|e| classify(SERVICE, "quarantine", e))?;
        Ok(())
    }
}

impl AlertStore for DynamoStore {
    async fn claim(
        &self,
        event_id: &str,
        now_ms: i64,
        stale_after_ms: i64,
    ) -> Result<Claim, StoreError> {
        let id = format!("alert#{event_id}");
        let result = self
            .client
            .put_item()
            .table_name(self.t(table::IDEMPOTENCY))
            .item("id", s(id.as_str()))
            .item("status", s("processing"))
            .item("claimed_at_ms", n(now_ms))
            .item("expires_at", n(now_ms / 1000 + IDEMPOTENCY_TTL_S))
            .condition_expression(
                "attribute_not_exists(id) OR (#st = :processing AND claimed_at_ms < :stale)",
            )
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":processing", s("processing"))
            .expression_attribute_values(":stale", n(now_ms - stale_after_ms))
            .send()
            .await;
        match result.map_err(|e| classify(SERVICE, &id, e)) {
            Ok(_) => Ok(Claim::Claimed),
            Err(StoreError::Conflict { what }) => {
                let item = self.get(table::IDEMPOTENCY, "id", &id).await?;
                match item.as_ref().map(|i| i.get_s("status")).transpose()? {
                    Some("done") => Ok(Claim::Done),
                    // Another delivery is handling it right now: let the queue redeliver later.
                    _ => Err(StoreError::Conflict { what }),
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn release(&self, event_id: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(self.t(table::IDEMPOTENCY))
            .key("id", s(format!("alert#{event_id}")))
            .condition_expression("#st = :processing")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":processing", s("processing"))
            .send()
            .await;
        match result.map_err(|e| classify(SERVICE, "idempotency", e)) {
            // Already finished (or gone): nothing to release.
            Ok(_) | Err(StoreError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn finish(&self, event_id: &str, _now_ms: i64) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(self.t(table::IDEMPOTENCY))
            .key("id", s(format!("alert#{event_id}")))
            .update_expression("SET #st = :done")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":done", s("done"))
            .send()
            .await
            .map_err(|e| classify(SERVICE, "idempotency", e))?;
        Ok(())
    }

    async fn order(&self, order_id: &OrderId) -> Result<Option<ProtectionOrder>, StoreError> {
        self.get_order(order_id).await
    }

    async fn notices(&self, order_id: &OrderId) -> Result<(VictimNotices, u64), StoreError> {
        Ok(
            match self
                .get(table::NOTICES, "order_id", order_id.as_str())
                .await?
            {
                Some(item) => items::notices_from_item(&item)?,
                None => (VictimNotices::default(), 0),
            },
        )
    }

    async fn save_notices(
        &self,
        order_id: &OrderId,
        notices: &VictimNotices,
        expected_rev: u64,
    ) -> Result<(), StoreError> {
        let mut req = self
            .client
            .put_item()
            .table_name(self.t(table::NOTICES))
            .set_item(Some(items::notices_item(
                order_id,
                notices,
                expected_rev + 1,
            )));
        req = if expected_rev == 0 {
            req.condition_expression("attribute_not_exists(order_id)")
        } else {
            req.condition_expression("rev = :rev")
                .expression_attribute_values(":rev", n(expected_rev))
        };
        req.send()
            .await
            .map_err(|e| classify(SERVICE, &format!("notices of {order_id}"), e))?;
        Ok(())
    }
}

impl AuditLog for DynamoStore {
    async fn append(
        &self,
        order_id: &OrderId,
        entry: &AuditEntry,
        now_ms: i64,
    ) -> Result<AuditRecord, StoreError> {
        let mut last_err = None;
        for attempt in 0..6u32 {
            let prev = self.audit_tail(order_id).await?;
            let record = AuditRecord::next(
                order_id,
                prev.as_ref(),
                now_ms,
                &entry.kind,
                entry.detail.clone(),
            );
            let result = self
                .client
                .put_item()
                .table_name(self.t(table::AUDIT))
                .set_item(Some(items::audit_item(&record)))
                .condition_expression("attribute_not_exists(order_id)")
                .send()
                .await;
            match result.map_err(|e| classify(SERVICE, &format!("audit of {order_id}"), e)) {
                Ok(_) => return Ok(record),
                Err(e @ StoreError::Conflict { .. }) => {
                    last_err = Some(e);
                    tokio::time::sleep(Duration::from_millis(5 << attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or(StoreError::Conflict {
            what: format!("audit of {order_id}"),
        }))
    }

    async fn read(&self, order_id: &OrderId) -> Result<Vec<AuditRecord>, StoreError> {
        self.query_all(
            self.t(table::AUDIT),
            "order_id",
            order_id.as_str(),
            true,
            None,
        )
        .await?
        .iter()
        .map(items::audit_from_item)
        .collect()
    }
}

impl AdminStore for DynamoStore {
    async fn put_order(&self, order: &ProtectionOrder) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(self.t(table::ORDERS))
            .set_item(Some(items::order_item(order)))
            .send()
            .await
            .map_err(|e| classify(SERVICE, "orders", e))?;
        self.client
            .update_item()
            .table_name(self.t(table::TAGS))
            .key("tag_id", s(order.tag_id.as_str()))
            .update_expression("SET #o = :summary")
            .expression_attribute_names("#o", items::order_attr(&order.order_id))
            .expression_attribute_values(
                ":summary",
                items::order_summary_value(&OrderSummary::of(order)),
            )
            .send()
            .await
            .map_err(|e| classify(SERVICE, "tags", e))?;
        Ok(())
    }

    async fn put_zone(&self, zone: &Zone) -> Result<(), StoreError> {
        let new_cells: Vec<String> = vigil_core::index::zone_cells(zone)
            .iter()
            .map(Cell::key)
            .collect();
        let old_cells = self.zone_cells_of(zone.id()).await?;
        // Add to the new cells first, so the zone is never missing from a cell it covers.
        for cell in &new_cells {
            self.set_cell_attr(cell, zone.id(), Some(zone)).await?;
        }
        self.client
            .put_item()
            .table_name(self.t(table::ZONES))
            .set_item(Some(items::zone_item(zone, &new_cells)))
            .send()
            .await
            .map_err(|e| classify(SERVICE, "zones", e))?;
        for cell in old_cells.iter().filter(|c| !new_cells.contains(c)) {
            self.set_cell_attr(cell, zone.id(), None).await?;
        }
        Ok(())
    }

    async fn remove_zone(&self, zone_id: &ZoneId) -> Result<bool, StoreError> {
        let cells = self.zone_cells_of(zone_id).await?;
        let existed = self.zone_exists(zone_id).await?;
        for cell in &cells {
            self.set_cell_attr(cell, zone_id, None).await?;
        }
        self.client
            .delete_item()
            .table_name(self.t(table::ZONES))
            .key("zone_id", s(zone_id.as_str()))
            .send()
            .await
            .map_err(|e| classify(SERVICE, "zones", e))?;
        Ok(existed)
    }

    async fn quarantined(&self, tag_id: &str) -> Result<Vec<QuarantineRecord>, StoreError> {
        self.query_all(self.t(table::QUARANTINE), "tag_id", tag_id, true, None)
            .await?
            .iter()
            .map(items::quarantine_from_item)
            .collect()
    }

    async fn zone_cell_entries(&self, cell: &str) -> Result<Vec<ZoneId>, StoreError> {
        Ok(self
            .get(table::ZONE_CELLS, "cell", cell)
            .await?
            .map(|i| items::zones_of_cell(&i))
            .transpose()?
            .unwrap_or_default()
            .iter()
            .map(|z| z.id().clone())
            .collect())
    }

    async fn get_order(&self, order_id: &OrderId) -> Result<Option<ProtectionOrder>, StoreError> {
        self.get(table::ORDERS, "order_id", order_id.as_str())
            .await?
            .as_ref()
            .map(items::order_from_item)
            .transpose()
    }

    async fn list_orders(&self) -> Result<Vec<ProtectionOrder>, StoreError> {
        let mut orders = self
            .scan_all(table::ORDERS)
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
                .filter(|(o, _)| o == order_id)
                .map(|(o, z)| items::open_attr(o, z))
                .collect(),
            None => vec![],
        };
        // One transaction: the order moves only if nobody else moved it since it was read, and
        // no reader ever sees the order's summary on both tags or on neither.
        let put = Self::put(
            self.t(table::ORDERS),
            items::order_item(&order),
            Some((
                "tag_id = :previous",
                vec![(":previous", s(previous.as_str()))],
            )),
        )?;
        let mut set = vec!["#o = :summary".to_owned()];
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
            .table_name(self.t(table::TAGS))
            .key("tag_id", s(tag_id.as_str()))
            .update_expression(format!("SET {}", set.join(", ")))
            .set_expression_attribute_names(Some(new_names))
            .expression_attribute_values(
                ":summary",
                items::order_summary_value(&OrderSummary::of(&order)),
            );
        if !open.is_empty() {
            add = add.expression_attribute_values(":one", n(1));
        }
        let remove = Update::builder()
            .table_name(self.t(table::TAGS))
            .key("tag_id", s(previous.as_str()))
            .update_expression(format!("REMOVE {}", removes.join(", ")))
            .set_expression_attribute_names(Some(old_names));
        self.client
            .transact_write_items()
            .transact_items(put)
            .transact_items(Self::update(add)?)
            .transact_items(Self::update(remove)?)
            .send()
            .await
            .map_err(|e| classify(SERVICE, &format!("assignment of order {order_id}"), e))?;
        Ok(Some(previous))
    }

    async fn get_zone(&self, zone_id: &ZoneId) -> Result<Option<Zone>, StoreError> {
        self.zone_item(zone_id)
            .await?
            .map(|i| items::zone_from_item(&i).map(|(z, _)| z))
            .transpose()
    }

    async fn list_zones(&self) -> Result<Vec<Zone>, StoreError> {
        let mut zones = self
            .scan_all(table::ZONES)
            .await?
            .iter()
            .map(|i| items::zone_from_item(i).map(|(z, _)| z))
            .collect::<Result<Vec<_>, _>>()?;
        zones.sort_by(|a, b| a.id().cmp(b.id()));
        Ok(zones)
    }

    async fn zones_of_order(&self, order_id: &OrderId) -> Result<Vec<Zone>, StoreError> {
        let mut zones = self.list_zones().await?;
        zones.retain(|z| z.orders().contains(order_id));
        Ok(zones)
    }

    async fn prune_expired_zones(&self, now: DateTime<Utc>) -> Result<Vec<ZoneId>, StoreError> {
        let mut removed = Vec::new();
        for zone in self.list_zones().await? {
            if zone.spec().valid_until.is_some_and(|t| t <= now) {
                self.remove_zone(zone.id()).await?;
                removed.push(zone.id().clone());
            }
        }
        Ok(removed)
    }

    async fn open_alerts(&self) -> Result<Vec<OpenAlert>, StoreError> {
        let mut out = Vec::new();
        for item in self.scan_all(table::TAGS).await? {
            let (_, open) = items::tag_context(&item)?;
            if open.is_empty() {
                continue;
            }
            let tag_id = items::tag_id_of(&item)?;
            let mut states_by_order = BTreeMap::new();
            for (order_id, zone_id) in open {
                if !states_by_order.contains_key(&order_id) {
                    let states = IngestStore::states(self, &order_id).await?;
                    states_by_order.insert(order_id.clone(), states);
                }
                let Some(stored) = states_by_order[&order_id].get(&zone_id) else {
                    continue;
                };
                if stored.state.level == vigil_core::AlertLevel::Clear {
                    continue;
                }
                out.push(OpenAlert {
                    tag_id: tag_id.clone(),
                    order_id,
                    zone_id,
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

impl DynamoStore {
    /// Every item of a table, page by page. Admin paths only (see [`AdminStore`]).
    async fn scan_all(&self, logical: &'static str) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let resp = self
                .client
                .scan()
                .table_name(self.t(logical))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify(SERVICE, logical, e))?;
            items.extend(resp.items.unwrap_or_default());
            match resp.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }

    /// One item by its partition key, read consistently (admin and alert paths, where a stale
    /// read could undo a write just made).
    async fn get(
        &self,
        logical: &'static str,
        pk: &str,
        value: &str,
    ) -> Result<Option<Item>, StoreError> {
        Ok(self
            .client
            .get_item()
            .table_name(self.t(logical))
            .key(pk, s(value))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(SERVICE, logical, e))?
            .item)
    }

    async fn tag_item(&self, tag_id: &TagId) -> Result<Option<Item>, StoreError> {
        self.get(table::TAGS, "tag_id", tag_id.as_str()).await
    }

    fn update(
        u: aws_sdk_dynamodb::types::builders::UpdateBuilder,
    ) -> Result<TransactWriteItem, StoreError> {
        Ok(TransactWriteItem::builder()
            .update(u.build().map_err(|e| StoreError::Config(e.to_string()))?)
            .build())
    }

    async fn zone_item(&self, zone_id: &ZoneId) -> Result<Option<Item>, StoreError> {
        self.get(table::ZONES, "zone_id", zone_id.as_str()).await
    }

    async fn zone_exists(&self, zone_id: &ZoneId) -> Result<bool, StoreError> {
        Ok(self.zone_item(zone_id).await?.is_some())
    }

    async fn zone_cells_of(&self, zone_id: &ZoneId) -> Result<Vec<String>, StoreError> {
        Ok(match self.zone_item(zone_id).await? {
            Some(item) => items::zone_from_item(&item)?.1,
            None => vec![],
        })
    }

    async fn set_cell_attr(
        &self,
        cell: &str,
        zone_id: &ZoneId,
        zone: Option<&Zone>,
    ) -> Result<(), StoreError> {
        let req = self
            .client
            .update_item()
            .table_name(self.t(table::ZONE_CELLS))
            .key("cell", s(cell))
            .expression_attribute_names("#z", items::zone_attr(zone_id));
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
}
