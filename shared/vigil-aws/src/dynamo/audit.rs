//! [`AuditLog`] on DynamoDB: one hash chain per order, `seq` as the sort key.
//!
//! Appending reads the chain's tail consistently, then puts the next records in one
//! transaction, each conditional on its `seq` not existing: concurrent writers (the alert
//! function, operators' commands) serialise on the chain, and the loser re-reads and retries
//! after a jittered backoff. Ingest never appends, so a zone change never waits on the audit.

use super::{DynamoStore, SERVICE, backoff};
use crate::error::{StoreError, classify};
use crate::items;
use crate::ports::{AuditEntry, AuditLog};
use vigil_core::OrderId;
use vigil_core::audit::AuditRecord;

/// Attempts at an append before giving up as a conflict (the caller's retry takes over).
const APPEND_ATTEMPTS: u32 = 8;

impl DynamoStore {
    async fn audit_tail(&self, order_id: &OrderId) -> Result<Option<AuditRecord>, StoreError> {
        let items = self
            .query_all(
                &self.tables.audit,
                "order_id",
                order_id.as_str(),
                false,
                Some(1),
            )
            .await?;
        items.first().map(items::audit_from_item).transpose()
    }
}

impl AuditLog for DynamoStore {
    async fn append(
        &self,
        order_id: &OrderId,
        entries: &[AuditEntry],
        now_ms: i64,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        if entries.is_empty() {
            return Ok(vec![]);
        }
        let mut last_err = None;
        for attempt in 0..APPEND_ATTEMPTS {
            let mut prev = self.audit_tail(order_id).await?;
            let mut records = Vec::with_capacity(entries.len());
            let mut tx = Vec::with_capacity(entries.len());
            for entry in entries {
                let record = AuditRecord::next(
                    order_id,
                    prev.as_ref(),
                    now_ms,
                    &entry.kind,
                    entry.detail.clone(),
                );
                tx.push(Self::put(
                    &self.tables.audit,
                    items::audit_item(&record),
                    Some(("attribute_not_exists(order_id)", vec![])),
                )?);
                prev = Some(record.clone());
                records.push(record);
            }
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(tx))
                .send()
                .await;
            match result.map_err(|e| classify(SERVICE, &format!("audit of {order_id}"), e)) {
                Ok(_) => return Ok(records),
                Err(e @ StoreError::Conflict { .. }) => {
                    last_err = Some(e);
                    tokio::time::sleep(backoff(attempt, 10)).await;
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
            &self.tables.audit,
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
