//! [`AnchorBucket`] and [`OrderForces`] in memory: anchors kept with their retention, written
//! once per key as the bucket does.

use super::MemoryStore;
use crate::error::StoreError;
use crate::ports::{AnchorBucket, OrderForces};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use vigil_core::anchor::{Anchor, order_prefix};
use vigil_core::{ForceId, OrderId};

/// Anchor objects by key: the anchor and until when it is retained.
type Objects = BTreeMap<String, (Anchor, DateTime<Utc>)>;

/// An anchors bucket in memory.
#[derive(Clone, Default)]
pub struct MemoryAnchors {
    objects: Arc<Mutex<Objects>>,
    fail: Arc<Mutex<bool>>,
}

impl MemoryAnchors {
    /// An empty bucket.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every object: key, anchor, retained until.
    pub fn objects(&self) -> Vec<(String, Anchor, DateTime<Utc>)> {
        let objects = self.objects.lock().expect("anchors lock");
        objects
            .iter()
            .map(|(k, (a, t))| (k.clone(), a.clone(), *t))
            .collect()
    }

    /// Makes every write fail as unavailable (`true`) or succeed again.
    pub fn fail_writes(&self, fail: bool) {
        *self.fail.lock().expect("anchors lock") = fail;
    }
}

impl AnchorBucket for MemoryAnchors {
    async fn put_anchor(
        &self,
        anchor: &Anchor,
        retain_until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if *self.fail.lock().expect("anchors lock") {
            return Err(StoreError::Unavailable {
                service: "s3",
                detail: "injected failure".into(),
            });
        }
        self.objects
            .lock()
            .expect("anchors lock")
            .entry(anchor.key())
            .or_insert_with(|| (anchor.clone(), retain_until));
        Ok(())
    }

    async fn anchors(&self, order_id: &OrderId) -> Result<Vec<Anchor>, StoreError> {
        let prefix = order_prefix(order_id);
        Ok(self
            .objects
            .lock()
            .expect("anchors lock")
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(_, (a, _))| a.clone())
            .collect())
    }
}

impl OrderForces for MemoryStore {
    async fn order_forces(
        &self,
        orders: &[OrderId],
    ) -> Result<BTreeMap<OrderId, Option<ForceId>>, StoreError> {
        let inner = self.lock();
        Ok(orders
            .iter()
            .filter_map(|o| {
                inner
                    .orders
                    .get(o)
                    .map(|order| (o.clone(), order.force_id.clone()))
            })
            .collect())
    }
}
