//! The DynamoDB adapter of the store ports, one module per port; item shapes come from
//! [`crate::items`].
//!
//! # Layout
//! - this module: [`DynamoStore`], its table names (checked once, when it is built), and the
//!   request helpers the ports share (consistent reads, paginated queries, batch gets).
//! - `ingest`: [`crate::ports::IngestStore`]: the one-request context, states, commits,
//!   histories, quarantine.
//! - `alert`: [`crate::ports::AlertStore`]: claims bound to content, orders, notices.
//! - `audit`: [`crate::ports::AuditLog`]: the per-order hash chains.
//! - `admin`: [`crate::ports::AdminStore`]: the operators' paths.
//! - `victim`: the victim's device's side of the ingest port: devices, her newest position,
//!   the "her device is silent" marks.

mod admin;
mod alert;
mod audit;
mod evidence;
mod ingest;
mod reporting;
mod victim;
mod watch;

use crate::config::Config;
use crate::error::{StoreError, classify};
use crate::items::{Item, s, table};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem};
use std::collections::HashMap;
use std::time::Duration;

const SERVICE: &str = "dynamodb";
/// Rounds of `UnprocessedKeys` retries before giving up as throttled.
const BATCH_ROUNDS: u32 = 6;

/// The physical name of every table, resolved once from the configuration.
#[derive(Debug, Clone)]
struct TableNames {
    zone_cells: String,
    zones: String,
    orders: String,
    tags: String,
    zone_state: String,
    notices: String,
    idempotency: String,
    audit: String,
    quarantine: String,
    last_seen: String,
    devices: String,
    victim_positions: String,
    watch: String,
}

impl TableNames {
    fn new(config: &Config) -> Self {
        Self {
            zone_cells: config.name(table::ZONE_CELLS),
            zones: config.name(table::ZONES),
            orders: config.name(table::ORDERS),
            tags: config.name(table::TAGS),
            zone_state: config.name(table::ZONE_STATE),
            notices: config.name(table::NOTICES),
            idempotency: config.name(table::IDEMPOTENCY),
            audit: config.name(table::AUDIT),
            quarantine: config.name(table::QUARANTINE),
            last_seen: config.name(table::LAST_SEEN),
            devices: config.name(table::DEVICES),
            victim_positions: config.name(table::VICTIM_POSITIONS),
            watch: config.name(table::WATCH),
        }
    }
}

/// The store ports on DynamoDB.
#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    tables: TableNames,
    quarantine_ttl_s: i64,
    history_ttl_s: i64,
}

/// A pause before retrying a lost race: exponential from `base_ms`, with full jitter, so that
/// racing writers spread out instead of colliding again.
pub fn backoff(attempt: u32, base_ms: u64) -> Duration {
    let cap = base_ms << attempt.min(6);
    Duration::from_millis(fastrand::u64(cap / 2..=cap))
}

impl DynamoStore {
    /// A store on `client` with table names from `config`.
    pub fn new(client: Client, config: &Config) -> Self {
        Self {
            client,
            tables: TableNames::new(config),
            quarantine_ttl_s: i64::from(config.quarantine_retention_days) * 86_400,
            history_ttl_s: i64::from(config.history_retention_days) * 86_400,
        }
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.client
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
                    tokio::time::sleep(backoff(round, 25)).await;
                }
                _ => return Ok(out),
            }
        }
        Err(StoreError::Throttled {
            service: SERVICE,
            code: "UnprocessedKeys".into(),
        })
    }

    fn keys(keys: impl IntoIterator<Item = Item>) -> Result<KeysAndAttributes, StoreError> {
        KeysAndAttributes::builder()
            .set_keys(Some(keys.into_iter().collect()))
            .build()
            .map_err(|e| StoreError::Config(e.to_string()))
    }

    fn pk(name: &str, value: impl Into<String>) -> Item {
        Item::from([(name.to_owned(), s(value))])
    }

    /// Every item of a partition, in sort-key order, read consistently: callers decide on
    /// what they read (a conditional write follows, or an operator acts on it).
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
                .consistent_read(true)
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

    /// Every item of a table, page by page. Admin paths only (see
    /// [`crate::ports::AdminStore`]).
    async fn scan_all(&self, table: &str) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let resp = self
                .client
                .scan()
                .table_name(table)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify(SERVICE, table, e))?;
            items.extend(resp.items.unwrap_or_default());
            match resp.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }

    /// One item by its key, read consistently (where a stale read could undo a write just
    /// made).
    async fn get(&self, table: &str, key: Item) -> Result<Option<Item>, StoreError> {
        Ok(self
            .client
            .get_item()
            .table_name(table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(SERVICE, table, e))?
            .item)
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

    fn update(
        u: aws_sdk_dynamodb::types::builders::UpdateBuilder,
    ) -> Result<TransactWriteItem, StoreError> {
        Ok(TransactWriteItem::builder()
            .update(u.build().map_err(|e| StoreError::Config(e.to_string()))?)
            .build())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_jittered() {
        let first: Vec<u64> = (0..50).map(|_| backoff(0, 20).as_millis() as u64).collect();
        assert!(first.iter().all(|&ms| (10..=20).contains(&ms)));
        assert!(first.iter().any(|&ms| ms != first[0]), "jittered");
        assert!(backoff(3, 20) >= Duration::from_millis(80));
        assert!(backoff(30, 20) <= Duration::from_millis(20 << 6));
    }
}
