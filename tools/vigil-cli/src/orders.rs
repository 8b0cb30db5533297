//! Orders: create, show, list, end, and moving an order to a tag.

use crate::error::{CliError, Result};
use crate::input::OrderSpec;
use crate::report::{Report, or_dash};
use chrono::{DateTime, Utc};
use serde::Serialize;
use vigil_aws::ports::AdminStore;
use vigil_core::{OrderId, ProtectionOrder, TagId, Zone};

/// An order as the CLI shows it: the victim's phone masked unless revealed.
#[derive(Debug, Clone, Serialize)]
pub struct OrderView {
    /// The order (its `victim.phone` masked unless revealed).
    pub order: serde_json::Value,
    /// The zones that restrain this offender.
    pub zones: Vec<String>,
    /// Whether the order is in force now.
    pub in_force: bool,
}

impl OrderView {
    /// A view of `order`; `reveal` keeps the full phone number.
    pub fn new(order: &ProtectionOrder, zones: &[Zone], reveal: bool, now: DateTime<Utc>) -> Self {
        let mut value = serde_json::to_value(order).expect("orders serialize");
        if !reveal {
            value["victim"]["phone"] = serde_json::Value::String(order.victim.phone.redacted());
        }
        OrderView {
            order: value,
            zones: zones.iter().map(|z| z.id().to_string()).collect(),
            in_force: order.in_force(now.timestamp_millis()),
        }
    }

    fn field(&self, path: &[&str]) -> String {
        let mut v = &self.order;
        for p in path {
            v = &v[*p];
        }
        match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => "-".to_owned(),
            other => other.to_string(),
        }
    }
}

impl Report for OrderView {
    fn human(&self) -> String {
        format!(
            "order     {}\ntag       {}\nvictim    {} phone {} language {}\nvalid     {} .. {}{}\nzones     {}\npolicy    {}",
            self.field(&["order_id"]),
            self.field(&["tag_id"]),
            self.field(&["victim", "victim_id"]),
            self.field(&["victim", "phone"]),
            self.field(&["victim", "language"]),
            self.field(&["valid_from"]),
            self.field(&["valid_until"]),
            if self.in_force {
                " (in force)"
            } else {
                " (not in force)"
            },
            if self.zones.is_empty() {
                "-".to_owned()
            } else {
                self.zones.join(", ")
            },
            self.order["policy"],
        )
    }
}

/// Many orders.
#[derive(Debug, Clone, Serialize)]
pub struct OrderList {
    /// The orders.
    pub orders: Vec<OrderView>,
}

impl Report for OrderList {
    fn human(&self) -> String {
        if self.orders.is_empty() {
            return "no orders".into();
        }
        let rows: Vec<[String; 5]> = self
            .orders
            .iter()
            .map(|o| {
                [
                    o.field(&["order_id"]),
                    o.field(&["tag_id"]),
                    if o.in_force { "yes" } else { "no" }.to_owned(),
                    o.field(&["valid_until"]),
                    o.field(&["victim", "phone"]),
                ]
            })
            .collect();
        crate::report::table(
            ["ORDER", "TAG", "IN FORCE", "VALID UNTIL", "PHONE"],
            &rows,
            &[],
        )
    }
}

/// Creates an order (and the zones its spec holds) after checking all of it; refuses an
/// order id that exists. Returns the order and zones written.
///
/// Fails with [`CliError::Invalid`] for a bad spec or an existing id (nothing is written), or
/// [`CliError::Store`] if the store fails.
pub async fn create_order(
    store: &impl AdminStore,
    spec: &OrderSpec,
) -> Result<(ProtectionOrder, Vec<Zone>)> {
    let checked = spec.check()?;
    let id = &checked.order.order_id;
    if store
        .get_order(id)
        .await
        .map_err(CliError::store(format!("reading order {id}")))?
        .is_some()
    {
        return Err(CliError::Invalid(format!(
            "order {id} exists already: show it with `vigil orders show {id}`, end it with \
             `vigil orders end {id}`, or use another id"
        )));
    }
    provision_order(store, &checked.order, &checked.zones).await?;
    Ok((checked.order, checked.zones))
}

/// Writes a checked order, then its zones (each indexed under its cells): the one provisioning
/// path, shared by `vigil orders create`, the pipeline tests and the scenario runner.
///
/// Fails with [`CliError::Store`] if a write fails (what was written before stays).
pub async fn provision_order(
    store: &impl AdminStore,
    order: &ProtectionOrder,
    zones: &[Zone],
) -> Result<()> {
    let id = &order.order_id;
    store
        .put_order(order)
        .await
        .map_err(CliError::store(format!("writing order {id}")))?;
    for zone in zones {
        store
            .put_zone(zone)
            .await
            .map_err(CliError::store(format!("writing zone {}", zone.id())))?;
    }
    Ok(())
}

/// Parses an order id given on the command line.
pub fn order_id(text: &str) -> Result<OrderId> {
    OrderId::new(text).map_err(|e| CliError::Invalid(format!("order id: {e}")))
}

/// Parses a tag id given on the command line.
pub fn tag_id(text: &str) -> Result<TagId> {
    TagId::new(text).map_err(|e| CliError::Invalid(format!("tag id: {e}")))
}

/// The order and its zones.
///
/// Fails with [`CliError::NotFound`] when there is no such order.
pub async fn show_order(
    store: &impl AdminStore,
    id: &OrderId,
) -> Result<(ProtectionOrder, Vec<Zone>)> {
    let order = store
        .get_order(id)
        .await
        .map_err(CliError::store(format!("reading order {id}")))?
        .ok_or_else(|| {
            CliError::NotFound(format!("no order {id}: list them with `vigil orders list`"))
        })?;
    let zones = store
        .zones_of_order(id)
        .await
        .map_err(CliError::store(format!("listing zones of {id}")))?;
    Ok((order, zones))
}

/// Every order, with its zones.
pub async fn list_orders(store: &impl AdminStore) -> Result<Vec<(ProtectionOrder, Vec<Zone>)>> {
    let orders = store
        .list_orders()
        .await
        .map_err(CliError::store("listing orders"))?;
    let zones = store
        .list_zones()
        .await
        .map_err(CliError::store("listing zones"))?;
    Ok(orders
        .into_iter()
        .map(|o| {
            let z = zones
                .iter()
                .filter(|z| z.order_id() == &o.order_id)
                .cloned()
                .collect();
            (o, z)
        })
        .collect())
}

/// Ends an order at `at` (now, or a given instant). Returns the updated order.
///
/// Fails with [`CliError::NotFound`] when there is no such order, [`CliError::Invalid`] when
/// `at` is before the order starts.
pub async fn end_order(
    store: &impl AdminStore,
    id: &OrderId,
    at: DateTime<Utc>,
) -> Result<ProtectionOrder> {
    let (order, _) = show_order(store, id).await?;
    if order.valid_from.is_some_and(|f| at <= f) {
        return Err(CliError::Invalid(format!(
            "order {id} starts at {}; an end at {at} would be before it",
            or_dash(order.valid_from)
        )));
    }
    store
        .end_order(id, at)
        .await
        .map_err(CliError::store(format!("ending order {id}")))?
        .ok_or_else(|| CliError::NotFound(format!("no order {id}")))
}

/// Assigns a tag to an order. Returns the tag the order had before.
///
/// Fails with [`CliError::NotFound`] when there is no such order.
pub async fn assign_tag(store: &impl AdminStore, tag: &TagId, id: &OrderId) -> Result<TagId> {
    store
        .assign_tag(id, tag)
        .await
        .map_err(CliError::store(format!(
            "assigning tag {tag} to order {id}"
        )))?
        .ok_or_else(|| {
            CliError::NotFound(format!("no order {id}: list them with `vigil orders list`"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::parse_spec;
    use vigil_aws::memory::MemoryStore;

    fn spec() -> OrderSpec {
        parse_spec(
            r#"{"order_id":"o1","tag_id":"t1",
            "victim":{"victim_id":"v1","phone":"+447700900123","language":"en"},
            "zones":[{"zone_id":"home","circle":{"lat":51.5,"lon":-0.12,"radius_m":100},"buffer_m":500}]}"#,
            false,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn create_show_end_and_refuse_duplicates() {
        let store = MemoryStore::new();
        let (order, zones) = create_order(&store, &spec()).await.unwrap();
        assert_eq!(zones.len(), 1);
        let e = create_order(&store, &spec()).await.unwrap_err();
        assert_eq!(e.exit_code(), 1, "{e}");
        let (shown, zones) = show_order(&store, &order.order_id).await.unwrap();
        assert_eq!(shown, order);
        assert_eq!(zones.len(), 1);
        let now = Utc::now();
        let view = OrderView::new(&shown, &zones, false, now);
        assert!(!view.human().contains("7700900123"), "{}", view.human());
        assert!(
            OrderView::new(&shown, &zones, true, now)
                .human()
                .contains("+447700900123")
        );
        let ended = end_order(&store, &order.order_id, now).await.unwrap();
        assert_eq!(ended.valid_until, Some(now));
        let missing = order_id("nope").unwrap();
        assert_eq!(
            show_order(&store, &missing).await.unwrap_err().exit_code(),
            2
        );
        assert_eq!(list_orders(&store).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn assigning_moves_the_summary() {
        let store = MemoryStore::new();
        create_order(&store, &spec()).await.unwrap();
        let o1 = order_id("o1").unwrap();
        let previous = assign_tag(&store, &tag_id("t2").unwrap(), &o1)
            .await
            .unwrap();
        assert_eq!(previous.as_str(), "t1");
        assert_eq!(
            store.get_order(&o1).await.unwrap().unwrap().tag_id.as_str(),
            "t2"
        );
    }
}
