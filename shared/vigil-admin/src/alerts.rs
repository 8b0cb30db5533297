//! Alerts: the open ones with who acknowledged each, and acknowledging one (an
//! `alert_acknowledged` audit record).

use crate::error::{AdminError, Result};
use crate::operator::Operator;
use serde::Serialize;
use serde_json::json;
use vigil_aws::ports::{AdminStore, AuditEntry, AuditLog, OpenAlert};
use vigil_core::audit::AuditRecord;
use vigil_core::{OrderId, ZoneId};

/// Audit record kind of an acknowledgement.
pub const ACK_KIND: &str = "alert_acknowledged";

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

/// Every open alert, each with whether its current state was acknowledged (from the audit log).
///
/// Fails with [`AdminError::Store`] if the store fails.
pub async fn list_alerts<S: AdminStore + AuditLog>(store: &S) -> Result<Vec<AlertView>> {
    let open = store
        .open_alerts()
        .await
        .map_err(AdminError::store("listing open alerts"))?;
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
    who: &Operator,
    order: &OrderId,
    zone: &ZoneId,
    note: Option<&str>,
    now_ms: i64,
) -> Result<Acknowledged> {
    if who.is_blank() {
        return Err(AdminError::Invalid(
            "operator id is empty: every acknowledgement names who made it".into(),
        ));
    }
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
    let entry = AuditEntry {
        kind: ACK_KIND.into(),
        detail: json!({
            "zone_id": zone.as_str(),
            "tag_id": alert.tag_id.as_str(),
            "level": alert.level,
            "state_rev": alert.state_rev,
            "operator": who.label(),
            "note": note,
        }),
    };
    let record = store
        .append(order, std::slice::from_ref(&entry), now_ms)
        .await
        .map_err(AdminError::store(format!(
            "appending to the audit log of {order}"
        )))?
        .pop()
        .ok_or_else(|| AdminError::Invalid("the audit log wrote no record".into()))?;
    Ok(Acknowledged { alert, record })
}
