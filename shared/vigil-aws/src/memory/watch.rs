//! [`WatchStore`] in memory, with the DynamoDB adapter's semantics: parts replaced by name, a
//! cursor moved only from the value read, marks set and removed once.

use super::MemoryStore;
use crate::error::StoreError;
use crate::ports::{Due, EscalationStore, WatchStore, WatchedTag};
use std::collections::{BTreeMap, BTreeSet};
use vigil_core::watchdog::{Condition, Told};
use vigil_core::{ForceId, OrderId, TagId, Zone};

impl EscalationStore for MemoryStore {
    async fn arm_escalation(
        &self,
        armed: &vigil_core::escalation::Armed,
    ) -> Result<(), StoreError> {
        self.injected()?;
        self.lock().watch_events.insert(
            (armed.minute, armed.event.event_id.clone()),
            armed.event.clone(),
        );
        Ok(())
    }
}

impl WatchStore for MemoryStore {
    async fn watch_cursor(&self) -> Result<Option<i64>, StoreError> {
        self.injected()?;
        Ok(self.lock().watch_cursor)
    }

    async fn advance_watch_cursor(
        &self,
        expected: Option<i64>,
        through: i64,
    ) -> Result<(), StoreError> {
        self.injected()?;
        let mut g = self.lock();
        if g.watch_cursor != expected {
            return Err(StoreError::Conflict {
                what: "the watchdog's cursor".into(),
            });
        }
        g.watch_cursor = Some(through);
        Ok(())
    }

    async fn due(&self, minute: i64) -> Result<Due, StoreError> {
        self.injected()?;
        let g = self.lock();
        let parts = g
            .watch_parts
            .range((minute, String::new())..)
            .take_while(|((m, _), _)| *m == minute)
            .map(|((_, part), tags)| (part.clone(), tags.clone()));
        let events = g
            .watch_events
            .range((minute, String::new())..)
            .take_while(|((m, _), _)| *m == minute)
            .map(|(_, e)| e.clone())
            .collect();
        Ok(Due::of_parts(parts, events))
    }

    async fn arm(&self, minute: i64, part: &str, tags: &[TagId]) -> Result<(), StoreError> {
        self.injected()?;
        let mut g = self.lock();
        if !g.fail_next_arm.is_empty() {
            return Err(g.fail_next_arm.remove(0));
        }
        if tags.is_empty() {
            g.watch_parts.remove(&(minute, part.to_owned()));
        } else {
            g.watch_parts
                .insert((minute, part.to_owned()), tags.iter().cloned().collect());
        }
        Ok(())
    }

    async fn armed(
        &self,
        from: i64,
        to: i64,
    ) -> Result<BTreeMap<(i64, String), BTreeSet<TagId>>, StoreError> {
        self.injected()?;
        let g = self.lock();
        Ok(g.watch_parts
            .range((from, String::new())..)
            .take_while(|((m, _), _)| *m <= to)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    async fn tags_with_orders(&self) -> Result<Vec<(TagId, Option<ForceId>)>, StoreError> {
        self.injected()?;
        let g = self.lock();
        Ok(g.tags
            .iter()
            .filter(|(_, (orders, _))| !orders.is_empty())
            .map(|(t, (orders, _))| {
                let force = g
                    .tag_forces
                    .get(t)
                    .cloned()
                    .or_else(|| orders.values().find_map(|o| o.force_id.clone()));
                (t.clone(), force)
            })
            .collect())
    }

    async fn watched(&self, tags: &[TagId]) -> Result<Vec<WatchedTag>, StoreError> {
        self.injected()?;
        let g = self.lock();
        Ok(tags
            .iter()
            .filter_map(|tag_id| {
                let (orders, _) = g.tags.get(tag_id)?;
                let told: Told = g
                    .watch_marks
                    .iter()
                    .filter(|((t, _, _), _)| t == tag_id)
                    .map(|((_, o, c), e)| ((o.clone(), *c), *e))
                    .collect();
                let window_s = g
                    .commands
                    .get(&vigil_core::reporting::Commanded::Tag(tag_id.clone()))
                    .map_or(0, |c| c.batch_s);
                Some(WatchedTag {
                    window_s,
                    tag_id: tag_id.clone(),
                    orders: orders.values().cloned().collect(),
                    told,
                    history: g.histories.get(tag_id).cloned().unwrap_or_default(),
                })
            })
            .collect())
    }

    async fn order_zones(&self, order_id: &OrderId) -> Result<Vec<Zone>, StoreError> {
        self.injected()?;
        Ok(self
            .lock()
            .zones
            .values()
            .filter(|z| z.order_id() == order_id)
            .cloned()
            .collect())
    }

    async fn mark_watch(
        &self,
        tag_id: &TagId,
        order_id: &OrderId,
        condition: Condition,
        episode: Option<Option<i64>>,
    ) -> Result<bool, StoreError> {
        self.injected()?;
        let mut g = self.lock();
        if !g.tags.contains_key(tag_id) {
            return Ok(false);
        }
        let key = (tag_id.clone(), order_id.clone(), condition);
        Ok(match episode {
            Some(e) => match g.watch_marks.entry(key) {
                std::collections::btree_map::Entry::Occupied(_) => false,
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(e);
                    true
                }
            },
            None => g.watch_marks.remove(&key).is_some(),
        })
    }
}
