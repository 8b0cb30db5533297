//! [`OrderForces`] on DynamoDB: the force of each order, for an anchor's retention.

use super::DynamoStore;
use crate::error::StoreError;
use crate::items::{self, ItemExt};
use crate::ports::OrderForces;
use std::collections::{BTreeMap, HashMap};
use vigil_core::{ForceId, OrderId};

impl OrderForces for DynamoStore {
    async fn order_forces(
        &self,
        orders: &[OrderId],
    ) -> Result<BTreeMap<OrderId, Option<ForceId>>, StoreError> {
        let table = self.tables.orders.clone();
        let mut out = BTreeMap::new();
        // BatchGetItem takes at most 100 keys.
        for part in orders.chunks(100) {
            let keys = aws_sdk_dynamodb::types::KeysAndAttributes::builder()
                .set_keys(Some(
                    part.iter()
                        .map(|o| HashMap::from([("order_id".to_owned(), items::s(o.as_str()))]))
                        .collect(),
                ))
                // The force only: never the victim's details.
                .projection_expression("order_id, force_id")
                .build()
                .map_err(|e| StoreError::Config(e.to_string()))?;
            let got = self
                .batch_get(HashMap::from([(table.clone(), keys)]))
                .await?;
            for item in got.into_values().flatten() {
                let order = OrderId::new(item.get_s("order_id")?)
                    .map_err(|e| StoreError::corrupt("orders.order_id", e.to_string()))?;
                out.insert(order, items::force_of(&item)?);
            }
        }
        Ok(out)
    }
}
