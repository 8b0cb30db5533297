//! Alerts: the open ones with who acknowledged each, the urgent ones nobody acknowledged, and
//! acknowledging (an `alert_acknowledged` audit record) an open alert of a zone, one operator
//! event, or everything urgent on an order so far. An acknowledgement stops the escalation of
//! what it covers (docs/WATCHDOG.md; the rule is [`vigil_core::escalation`]).

use crate::access::{self, Caller};
use crate::error::{AdminError, Result};
use crate::operator::Operator;
use serde::Serialize;
use serde_json::json;
use vigil_aws::ports::{AdminStore, AuditEntry, AuditLog, OpenAlert};
use vigil_core::audit::AuditRecord;
use vigil_core::{OrderId, ZoneId};

/// Audit record kind of an acknowledgement.
pub use vigil_core::escalation::ACK_KIND;
use vigil_core::escalation::{self, AckScope, Unacknowledged};

/// An open alert with who acknowledged its current level, if anyone.
#[derive(Debug, Clone, Serialize)]
pub struct AlertView {
    /// The alert.
    #[serde(flatten)]
    pub alert: OpenAlert,
    /// The operator who acknowledged this alert at its current state, if any.
    pub acknowledged_by: Option<String>,
}

fn acknowledged_by(chain: &[AuditRecord], alert: &OpenAlert) -> Option<String> {
    chain
        .iter()
        .rev()
        .filter(|r| r.kind == ACK_KIND)
        .find(|r| {
            r.detail["zone_id"] == alert.zone_id.as_str()
                && r.detail["state_rev"] == alert.state_rev
        })
        .and_then(|r| r.detail["operator"].as_str().map(str::to_owned))
}

/// Every open alert of the orders `caller` may see, each with whether its current state was
/// acknowledged (from the audit log).
///
/// Fails with [`AdminError::Store`] if the store fails.
pub async fn list_alerts<S: AdminStore + AuditLog>(
    store: &S,
    caller: &Caller,
) -> Result<Vec<AlertView>> {
    let visible: std::collections::BTreeSet<OrderId> = crate::orders::list_orders(store, caller)
        .await?
        .into_iter()
        .map(|(o, _)| o.order_id)
        .collect();
    let open: Vec<OpenAlert> = store
        .open_alerts()
        .await
        .map_err(AdminError::store("listing open alerts"))?
        .into_iter()
        .filter(|a| visible.contains(&a.order_id))
        .collect();
    let mut out = Vec::new();
    let mut chains: std::collections::BTreeMap<OrderId, Vec<AuditRecord>> = Default::default();
    for alert in open {
        if !chains.contains_key(&alert.order_id) {
            let chain = store
                .read(&alert.order_id)
                .await
                .map_err(AdminError::store(format!(
                    "reading the audit log of {}",
                    alert.order_id
                )))?;
            chains.insert(alert.order_id.clone(), chain);
        }
        let acknowledged_by = acknowledged_by(&chains[&alert.order_id], &alert);
        out.push(AlertView {
            alert,
            acknowledged_by,
        });
    }
    Ok(out)
}

/// An acknowledgement written.
#[derive(Debug, Clone, Serialize)]
pub struct Acknowledged {
    /// The alert acknowledged.
    pub alert: OpenAlert,
    /// The audit record written.
    pub record: AuditRecord,
}

/// Acknowledges the open alert of (order, zone): appends `alert_acknowledged` with the
/// operator, the note, the level and the state revision to the order's audit chain.
///
/// Fails with [`AdminError::Invalid`] for an operator that names nobody,
/// [`AdminError::NotFound`] when the pair has no open alert, or [`AdminError::Store`].
pub async fn acknowledge<S: AdminStore + AuditLog>(
    store: &S,
    caller: &Caller,
    order: &OrderId,
    zone: &ZoneId,
    note: Option<&str>,
    now_ms: i64,
) -> Result<Acknowledged> {
    let who = &caller.operator;
    named(who)?;
    access::order_for(store, caller, "alerts ack", order, now_ms).await?;
    let alert = store
        .open_alerts()
        .await
        .map_err(AdminError::store("listing open alerts"))?
        .into_iter()
        .find(|a| a.order_id == *order && a.zone_id == *zone)
        .ok_or_else(|| {
            AdminError::NotFound(format!(
                "no open alert for order {order} zone {zone}: see `vigil alerts list`"
            ))
        })?;
    let detail = json!({
        "zone_id": zone.as_str(),
        "tag_id": alert.tag_id.as_str(),
        "level": alert.level,
        "state_rev": alert.state_rev,
        "operator": who.label(),
        "note": note,
    });
    let record = write_ack(store, order, detail, now_ms).await?;
    Ok(Acknowledged { alert, record })
}

/// The urgent events of an order that no acknowledgement covers, oldest first.
///
/// Fails with [`AdminError::NotFound`] for an order with no audit record, or
/// [`AdminError::Store`].
pub async fn unacknowledged<S: AdminStore + AuditLog>(
    store: &S,
    caller: &Caller,
    order: &OrderId,
    now_ms: i64,
) -> Result<Vec<Unacknowledged>> {
    access::order_for(store, caller, "alerts unacked", order, now_ms).await?;
    Ok(escalation::unacknowledged(&chain_of(store, order).await?))
}

async fn chain_of<S: AuditLog>(store: &S, order: &OrderId) -> Result<Vec<AuditRecord>> {
    let chain = store.read(order).await.map_err(AdminError::store(format!(
        "reading the audit log of {order}"
    )))?;
    if chain.is_empty() {
        return Err(AdminError::NotFound(format!(
            "order {order} has no audit record: no alert to acknowledge"
        )));
    }
    Ok(chain)
}

/// An acknowledgement of an event or of an order, written.
#[derive(Debug, Clone, Serialize)]
pub struct Acknowledgement {
    /// The order.
    pub order_id: OrderId,
    /// `event` or `order`.
    pub scope: &'static str,
    /// The urgent events it acknowledged that were unacknowledged until now.
    pub covers: Vec<String>,
    /// The audit record written.
    pub record: AuditRecord,
}

async fn write_ack<S: AuditLog>(
    store: &S,
    order: &OrderId,
    detail: serde_json::Value,
    now_ms: i64,
) -> Result<AuditRecord> {
    let entry = AuditEntry {
        kind: ACK_KIND.into(),
        detail,
    };
    store
        .append(order, std::slice::from_ref(&entry), now_ms)
        .await
        .map_err(AdminError::store(format!(
            "appending to the audit log of {order}"
        )))?
        .pop()
        .ok_or_else(|| AdminError::Invalid("the audit log wrote no record".into()))
}

/// Writes an acknowledgement of `scope`: an event's names it, the order's lists what it
/// covers (a zone's open alert has its own, [`acknowledge`], with the level it saw).
async fn acknowledgement<S: AuditLog>(
    store: &S,
    who: &Operator,
    order: &OrderId,
    scope: AckScope,
    covers: Vec<String>,
    note: Option<&str>,
    now_ms: i64,
) -> Result<Acknowledgement> {
    let mut detail = json!({
        "scope": scope.name(),
        "operator": who.label(),
        "note": note,
    });
    match &scope {
        AckScope::Event(id) => detail["event_id"] = json!(id),
        AckScope::Order => detail["covers"] = json!(covers),
        AckScope::Zone(z) => detail["zone_id"] = json!(z),
    }
    let record = write_ack(store, order, detail, now_ms).await?;
    Ok(Acknowledgement {
        order_id: order.clone(),
        scope: scope.name(),
        covers,
        record,
    })
}

fn named(who: &Operator) -> Result<()> {
    if who.is_blank() {
        return Err(AdminError::Invalid(
            "operator id is empty: every acknowledgement names who made it".into(),
        ));
    }
    Ok(())
}

/// Acknowledges one operator event of the order (its id, or the id of one of its
/// `unacknowledged` re-notifications): appends `alert_acknowledged` naming the event. Stops
/// its escalation.
///
/// Fails with [`AdminError::Invalid`] for an operator that names nobody or an empty id,
/// [`AdminError::NotFound`] when operators were never told of that event on this order, or
/// [`AdminError::Store`].
pub async fn acknowledge_event<S: AdminStore + AuditLog>(
    store: &S,
    caller: &Caller,
    order: &OrderId,
    event_id: &str,
    note: Option<&str>,
    now_ms: i64,
) -> Result<Acknowledgement> {
    let who = &caller.operator;
    named(who)?;
    let original = escalation::original_of(event_id.trim());
    if original.is_empty() || original.len() > 512 {
        return Err(AdminError::Invalid(
            "event id is empty or too long: copy it from the operator event (event_id)".into(),
        ));
    }
    access::order_for(store, caller, "alerts ack", order, now_ms).await?;
    let chain = chain_of(store, order).await?;
    let told = chain
        .iter()
        .any(|r| r.kind == escalation::NOTIFIED_KIND && r.detail["event_id"] == original);
    if !told {
        return Err(AdminError::NotFound(format!(
            "order {order} has no operator event {original:?}: see `vigil alerts unacked --order {order}`"
        )));
    }
    let covers = escalation::unacknowledged(&chain)
        .into_iter()
        .filter(|u| u.event_id == original)
        .map(|u| u.event_id)
        .collect();
    let scope = AckScope::Event(original.to_owned());
    acknowledgement(store, who, order, scope, covers, note, now_ms).await
}

/// Acknowledges every urgent event of the order that operators were told of so far:
/// appends `alert_acknowledged` for the whole order, listing what it covers. Stops their
/// escalations; an urgent event after it escalates on its own.
///
/// Fails with [`AdminError::Invalid`] for an operator that names nobody,
/// [`AdminError::NotFound`] when nothing urgent is unacknowledged, or [`AdminError::Store`].
pub async fn acknowledge_order<S: AdminStore + AuditLog>(
    store: &S,
    caller: &Caller,
    order: &OrderId,
    note: Option<&str>,
    now_ms: i64,
) -> Result<Acknowledgement> {
    let who = &caller.operator;
    named(who)?;
    access::order_for(store, caller, "alerts ack", order, now_ms).await?;
    let open = escalation::unacknowledged(&chain_of(store, order).await?);
    if open.is_empty() {
        return Err(AdminError::NotFound(format!(
            "order {order} has no unacknowledged urgent alert"
        )));
    }
    let covers = open.into_iter().map(|u| u.event_id).collect();
    acknowledgement(store, who, order, AckScope::Order, covers, note, now_ms).await
}
