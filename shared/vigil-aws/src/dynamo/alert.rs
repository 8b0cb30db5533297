//! [`AlertStore`] on DynamoDB.

use super::{DynamoStore, SERVICE};
use crate::error::{StoreError, classify};
use crate::items::{self, ItemExt, n, s};
use crate::ports::{AlertStore, Claim, IngestStore};
use vigil_core::policy::VictimNotices;
use vigil_core::{AlertLevel, OrderId, ProtectionOrder};

/// Idempotency records live this long.
const IDEMPOTENCY_TTL_S: i64 = 7 * 24 * 3600;

impl DynamoStore {
    async fn put_claim(
        &self,
        id: &str,
        digest: &str,
        now_ms: i64,
        condition: Option<(&str, &[(&str, &str)])>,
        stale_before_ms: i64,
    ) -> Result<(), StoreError> {
        let mut req = self
            .client
            .put_item()
            .table_name(&self.tables.idempotency)
            .item("id", s(id))
            .item("status", s("processing"))
            .item("digest", s(digest))
            .item("claimed_at_ms", n(now_ms))
            .item("expires_at", n(now_ms / 1000 + IDEMPOTENCY_TTL_S));
        if let Some((expr, values)) = condition {
            req = req.condition_expression(expr);
            if expr.contains("#st") {
                req = req.expression_attribute_names("#st", "status");
            }
            for (k, v) in values {
                req = req.expression_attribute_values(*k, s(*v));
            }
            if expr.contains(":stale") {
                req = req.expression_attribute_values(":stale", n(stale_before_ms));
            }
        }
        req.send()
            .await
            .map_err(|e| classify(SERVICE, id, e))
            .map(drop)
    }
}

impl AlertStore for DynamoStore {
    async fn claim(
        &self,
        event_id: &str,
        digest: &str,
        now_ms: i64,
        stale_after_ms: i64,
    ) -> Result<Claim, StoreError> {
        let id = items::claim_id(event_id);
        let fresh = "attribute_not_exists(id) OR (#st = :processing AND claimed_at_ms < :stale AND digest = :digest)";
        let values: &[(&str, &str)] = &[(":processing", "processing"), (":digest", digest)];
        match self
            .put_claim(
                &id,
                digest,
                now_ms,
                Some((fresh, values)),
                now_ms - stale_after_ms,
            )
            .await
        {
            Ok(()) => return Ok(Claim::Claimed),
            Err(StoreError::Conflict { .. }) => {}
            Err(e) => return Err(e),
        }
        let item = self
            .get(&self.tables.idempotency, Self::pk("id", id.as_str()))
            .await?;
        let Some(item) = item else {
            // Released between the two requests: the next delivery takes it.
            return Err(StoreError::Conflict { what: id });
        };
        let stored = item.get_s("digest").unwrap_or("").to_owned();
        if stored != digest {
            // Another content holds this id: take the claim over for this content, on the
            // condition that nobody changed it since it was read.
            self.put_claim(
                &id,
                digest,
                now_ms,
                Some((
                    "digest = :old OR attribute_not_exists(digest)",
                    &[(":old", &stored)],
                )),
                0,
            )
            .await?;
            return Ok(Claim::Mismatch {
                stored_digest: stored,
            });
        }
        match item.get_s("status")? {
            "done" => Ok(Claim::Done),
            // Another delivery is handling it right now: let the queue redeliver later.
            _ => Err(StoreError::Conflict { what: id }),
        }
    }

    async fn release(&self, event_id: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.tables.idempotency)
            .key("id", s(items::claim_id(event_id)))
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
            .table_name(&self.tables.idempotency)
            .key("id", s(items::claim_id(event_id)))
            .update_expression("SET #st = :done")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":done", s("done"))
            .send()
            .await
            .map_err(|e| classify(SERVICE, "idempotency", e))?;
        Ok(())
    }

    async fn order(&self, order_id: &OrderId) -> Result<Option<ProtectionOrder>, StoreError> {
        self.get(&self.tables.orders, Self::pk("order_id", order_id.as_str()))
            .await?
            .as_ref()
            .map(items::order_from_item)
            .transpose()
    }

    async fn order_level(&self, order_id: &OrderId) -> Result<AlertLevel, StoreError> {
        Ok(IngestStore::states(self, order_id)
            .await?
            .values()
            .map(|r| r.state.level)
            .max()
            .unwrap_or_default())
    }

    async fn notices(&self, order_id: &OrderId) -> Result<(VictimNotices, u64), StoreError> {
        Ok(
            match self
                .get(
                    &self.tables.notices,
                    Self::pk("order_id", order_id.as_str()),
                )
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
            .table_name(&self.tables.notices)
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
