//! [`WatchStore`] on DynamoDB (docs/WATCHDOG.md, docs/TABLES.md W1-W6): the `watch` table
//! (PK `minute` N, SK `part` S: one item per part of a minute's due tags, a string set, with a
//! TTL a day later; an escalation armed by the alert function, part `e#<event_id>`, holding the
//! alert event; the end of a tag's window after an operator's change, part
//! `c#<order_id>#<tag_id>`; the cursor at minute 0, part `cursor`), and the `tags` and
//! `last-seen` items the watchdog judges.

use super::{DynamoStore, SERVICE};
use crate::error::{StoreError, classify};
use crate::items::{self, Item, ItemExt, WATCH_CURSOR_PART, WATCH_ESCALATION_PREFIX, n, s};
use crate::ports::{Due, EscalationStore, WatchStore, WatchedTag};
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use vigil_core::escalation::Armed;
use vigil_core::events::AlertEvent;
use vigil_core::watchdog::Condition;
use vigil_core::{ForceId, OrderId, TagHistory, TagId, Zone};

/// How long a part is kept after its minute, seconds: long enough to look at after an
/// incident, short enough that the index stays small.
const PART_TTL_S: i64 = 24 * 3600;

/// Keys per `BatchGetItem` (DynamoDB's limit is 100 keys; two tables per tag).
const TAGS_PER_BATCH: usize = 50;

impl DynamoStore {
    /// Every part of `minute`, read consistently: the tags' parts (part, tags), and the
    /// escalations armed for it.
    async fn parts(
        &self,
        minute: i64,
    ) -> Result<(Vec<(String, BTreeSet<TagId>)>, Vec<AlertEvent>), StoreError> {
        let mut out = Vec::new();
        let mut events = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let resp = self
                .client
                .query()
                .table_name(&self.tables.watch)
                .key_condition_expression("#m = :m")
                .expression_attribute_names("#m", "minute")
                .expression_attribute_values(":m", n(minute))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify(SERVICE, "watch", e))?;
            for item in resp.items.unwrap_or_default() {
                let part = item.get_s("part")?.to_owned();
                if part == WATCH_CURSOR_PART {
                    continue;
                }
                if part.starts_with(WATCH_ESCALATION_PREFIX) {
                    let event = serde_json::from_str(item.get_s("event")?)
                        .map_err(|e| StoreError::corrupt("watch.event", e))?;
                    events.push(event);
                    continue;
                }
                let tags = match item.get("tags") {
                    Some(AttributeValue::Ss(list)) => list
                        .iter()
                        .map(|t| TagId::new(t).map_err(|e| StoreError::corrupt("watch.tags", e)))
                        .collect::<Result<_, _>>()?,
                    _ => BTreeSet::new(),
                };
                out.push((part, tags));
            }
            match resp.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok((out, events)),
            }
        }
    }
}

impl EscalationStore for DynamoStore {
    async fn arm_escalation(&self, armed: &Armed) -> Result<(), StoreError> {
        let event = serde_json::to_string(&armed.event)
            .map_err(|e| StoreError::corrupt("escalation event", e))?;
        self.client
            .put_item()
            .table_name(&self.tables.watch)
            .item("minute", n(armed.minute))
            .item(
                "part",
                s(format!("{WATCH_ESCALATION_PREFIX}{}", armed.event.event_id)),
            )
            .item("event", s(&event))
            .item("expires_at", n(armed.minute * 60 + PART_TTL_S))
            .send()
            .await
            .map_err(|e| classify(SERVICE, "watch", e))?;
        Ok(())
    }
}

impl WatchStore for DynamoStore {
    async fn watch_cursor(&self) -> Result<Option<i64>, StoreError> {
        let key = Item::from([
            ("minute".to_owned(), n(0)),
            ("part".to_owned(), s(WATCH_CURSOR_PART)),
        ]);
        match self.get(&self.tables.watch, key).await? {
            Some(item) => Ok(Some(item.get_n("done_through")?)),
            None => Ok(None),
        }
    }

    async fn advance_watch_cursor(
        &self,
        expected: Option<i64>,
        through: i64,
    ) -> Result<(), StoreError> {
        let req = self
            .client
            .put_item()
            .table_name(&self.tables.watch)
            .item("minute", n(0))
            .item("part", s(WATCH_CURSOR_PART))
            .item("done_through", n(through));
        let req = match expected {
            Some(m) => req
                .condition_expression("done_through = :e")
                .expression_attribute_values(":e", n(m)),
            None => req.condition_expression("attribute_not_exists(done_through)"),
        };
        req.send()
            .await
            .map_err(|e| classify(SERVICE, "watch cursor", e))?;
        Ok(())
    }

    async fn due(&self, minute: i64) -> Result<Due, StoreError> {
        let (parts, events) = self.parts(minute).await?;
        Ok(Due::of_parts(parts, events))
    }

    async fn arm(&self, minute: i64, part: &str, tags: &[TagId]) -> Result<(), StoreError> {
        if tags.is_empty() {
            self.client
                .delete_item()
                .table_name(&self.tables.watch)
                .key("minute", n(minute))
                .key("part", s(part))
                .send()
                .await
                .map_err(|e| classify(SERVICE, "watch", e))?;
            return Ok(());
        }
        let list: Vec<String> = tags.iter().map(ToString::to_string).collect();
        self.client
            .put_item()
            .table_name(&self.tables.watch)
            .item("minute", n(minute))
            .item("part", s(part))
            .item("tags", AttributeValue::Ss(list))
            .item("expires_at", n(minute * 60 + PART_TTL_S))
            .send()
            .await
            .map_err(|e| classify(SERVICE, "watch", e))?;
        Ok(())
    }

    async fn armed(
        &self,
        from: i64,
        to: i64,
    ) -> Result<BTreeMap<(i64, String), BTreeSet<TagId>>, StoreError> {
        let mut out = BTreeMap::new();
        for minute in from..=to {
            for (part, tags) in self.parts(minute).await?.0 {
                out.insert((minute, part), tags);
            }
        }
        Ok(out)
    }

    async fn tags_with_orders(&self) -> Result<Vec<(TagId, Option<ForceId>)>, StoreError> {
        let mut out = Vec::new();
        for item in self.scan_all(&self.tables.tags).await? {
            if item.keys().any(|k| k.starts_with(items::ORDER_ATTR)) {
                let force = match items::force_of(&item)? {
                    Some(f) => Some(f),
                    None => items::tag_context(&item)?
                        .0
                        .into_iter()
                        .find_map(|o| o.force_id),
                };
                out.push((items::tag_id_of(&item)?, force));
            }
        }
        out.sort();
        Ok(out)
    }

    async fn watched(&self, tags: &[TagId]) -> Result<Vec<WatchedTag>, StoreError> {
        let t = &self.tables;
        let mut out = Vec::with_capacity(tags.len());
        for chunk in tags.chunks(TAGS_PER_BATCH) {
            let keys = || Self::keys(chunk.iter().map(|tag| Self::pk("tag_id", tag.as_str())));
            let mut got = self
                .batch_get(HashMap::from([
                    (t.tags.clone(), keys()?),
                    (t.last_seen.clone(), keys()?),
                ]))
                .await?;
            let mut histories: HashMap<TagId, TagHistory> = HashMap::new();
            for item in got.remove(&t.last_seen).unwrap_or_default() {
                histories.insert(items::tag_id_of(&item)?, items::history_from_item(&item)?);
            }
            let mut tag_items = got.remove(&t.tags).unwrap_or_default();
            tag_items.sort_by(|a, b| a.get_s("tag_id").ok().cmp(&b.get_s("tag_id").ok()));
            for item in tag_items {
                let tag_id = items::tag_id_of(&item)?;
                let (orders, _) = items::tag_context(&item)?;
                out.push(WatchedTag {
                    told: items::watch_marks(&item)?,
                    window_s: items::command_of(&item)?.map_or(0, |c| c.batch_s),
                    history: histories.remove(&tag_id).unwrap_or_default(),
                    orders,
                    tag_id,
                });
            }
        }
        Ok(out)
    }

    async fn order_zones(&self, order_id: &OrderId) -> Result<Vec<Zone>, StoreError> {
        use crate::ports::AdminStore;
        self.zones_of_order(order_id).await
    }

    async fn mark_watch(
        &self,
        tag_id: &TagId,
        order_id: &OrderId,
        condition: Condition,
        episode: Option<Option<i64>>,
    ) -> Result<bool, StoreError> {
        self.write_tag_mark(tag_id, items::watch_attr(order_id, condition), episode)
            .await
    }
}
