//! [`ReportingStore`] on DynamoDB: the `cmd` attribute of the `tags` and `devices` items
//! (pursuit mode), read consistently and replaced only under a condition on the value read.

use super::{DynamoStore, SERVICE};
use crate::error::{StoreError, classify};
use crate::items::{self, CMD_ATTR};
use crate::ports::{DeviceReporting, ReportingStore, TagReporting};
use vigil_core::reporting::{Commanded, ReportingCommand};
use vigil_core::{DeviceId, TagId};

impl ReportingStore for DynamoStore {
    async fn tag_reporting(&self, tag_id: &TagId) -> Result<Option<TagReporting>, StoreError> {
        let Some(item) = self
            .get(&self.tables.tags, Self::pk("tag_id", tag_id.as_str()))
            .await?
        else {
            return Ok(None);
        };
        let (orders, open) = items::tag_context(&item)?;
        Ok(Some(TagReporting {
            orders,
            open,
            command: items::command_of(&item)?,
        }))
    }

    async fn device_reporting(
        &self,
        device_id: &DeviceId,
    ) -> Result<Option<DeviceReporting>, StoreError> {
        let Some(item) = self
            .get(
                &self.tables.devices,
                Self::pk("device_id", device_id.as_str()),
            )
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(DeviceReporting {
            orders: items::device_orders(&item)?,
            command: items::command_of(&item)?,
        }))
    }

    async fn save_command(
        &self,
        device: &Commanded,
        next: Option<&ReportingCommand>,
        expected: Option<&ReportingCommand>,
    ) -> Result<(), StoreError> {
        let (table, key) = match device {
            Commanded::Tag(t) => (&self.tables.tags, ("tag_id", t.as_str())),
            Commanded::VictimDevice(d) => (&self.tables.devices, ("device_id", d.as_str())),
        };
        let mut req = self
            .client
            .update_item()
            .table_name(table)
            .key(key.0, items::s(key.1))
            .expression_attribute_names("#k", key.0)
            .expression_attribute_names("#c", CMD_ATTR);
        req = match next {
            Some(c) => req
                .update_expression("SET #c = :next")
                .expression_attribute_values(":next", items::command_value(c)),
            None => req.update_expression("REMOVE #c"),
        };
        req = match expected {
            Some(c) => req
                .condition_expression("attribute_exists(#k) AND #c = :expected")
                .expression_attribute_values(":expected", items::command_value(c)),
            None => req.condition_expression("attribute_exists(#k) AND attribute_not_exists(#c)"),
        };
        req.send()
            .await
            .map_err(|e| classify(SERVICE, "reporting command", e))?;
        Ok(())
    }
}
