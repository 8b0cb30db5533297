//! Who may act on which force's records (docs/FORCES.md): the one rule every operator action
//! applies, for every front end.
//!
//! A [`Caller`] is who acts ([`Operator`], for the audit) and for whom ([`Scope`]: one force, or
//! national administration). The record's force is always read from the store, never taken from
//! the caller's input: an order of force B named by an operator of force A is refused because
//! its stored force is B. A force operator acts only on their force's records; a record with no
//! force (written before forces existed, or a message from an unknown tag) is national
//! administrators' alone until `vigil admin migrate-forces` gives it one. A national
//! administrator may act on any record; [`authorize`] says so ([`Access::National`]) and the
//! action records it in the order's audit chain (`national_access`, or the change record's
//! `scope`). A refusal is [`AdminError::Forbidden`], logged with the operator's label, the action
//! and the kind of record: never its content.

use crate::error::{AdminError, Result};
use crate::operator::Operator;
use serde_json::json;
use vigil_aws::ports::{AdminStore, AuditEntry, AuditLog, ForceRecord};
use vigil_core::forces::{Forces, NATIONAL};
use vigil_core::{ForceId, OrderId, ProtectionOrder, Zone};

/// The audit record kind of a national administrator's access to an order of a force.
pub const NATIONAL_ACCESS_KIND: &str = "national_access";

/// For whom an operator acts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// One force's operators: its records only.
    Force(ForceId),
    /// National administrators: every force's records, each access audited.
    National,
}

impl Scope {
    /// The scope a name gives: `national`, or a force's id.
    ///
    /// Fails with [`AdminError::Invalid`] for a blank or malformed name.
    pub fn parse(name: &str) -> Result<Scope> {
        let name = name.trim();
        if name == NATIONAL {
            return Ok(Scope::National);
        }
        ForceId::new(name)
            .map(Scope::Force)
            .map_err(|e| AdminError::Invalid(format!("force: {e}")))
    }

    /// `force <id>` or `national`, for messages.
    pub fn describe(&self) -> String {
        match self {
            Scope::Force(f) => format!("force {f}"),
            Scope::National => "national administration".into(),
        }
    }

    /// The scope's name as the audit records it: the force's id, or `national`.
    pub fn name(&self) -> &str {
        match self {
            Scope::Force(f) => f.as_str(),
            Scope::National => NATIONAL,
        }
    }
}

/// Who acts, and for whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Who: recorded in every change.
    pub operator: Operator,
    /// For whom: what they may see and change.
    pub scope: Scope,
}

impl Caller {
    /// A caller.
    pub fn new(operator: Operator, scope: Scope) -> Caller {
        Caller { operator, scope }
    }

    /// A force operator.
    pub fn of_force(operator: Operator, force: ForceId) -> Caller {
        Caller::new(operator, Scope::Force(force))
    }

    /// A national administrator.
    pub fn national(operator: Operator) -> Caller {
        Caller::new(operator, Scope::National)
    }

    /// The force a new record of this caller belongs to: their own; a national administrator
    /// must name one (`requested`), a force operator may name only their own.
    ///
    /// Fails with [`AdminError::Invalid`] when a national administrator names none, or
    /// [`AdminError::Forbidden`] when a force operator names another force.
    pub fn force_for_new(&self, action: &str, requested: Option<&ForceId>) -> Result<ForceId> {
        match (&self.scope, requested) {
            (Scope::Force(own), None) => Ok(own.clone()),
            (Scope::Force(own), Some(f)) if f == own => Ok(own.clone()),
            (Scope::Force(_), Some(_)) => Err(refuse(self, action, "record of another force")),
            (Scope::National, Some(f)) => Ok(f.clone()),
            (Scope::National, None) => Err(AdminError::Invalid(format!(
                "{action}: a national administrator must name the force it is for (--force)"
            ))),
        }
    }

    /// Whether this caller may see records of `force` (listings filter with it; no audit).
    pub fn sees(&self, force: Option<&ForceId>) -> bool {
        match &self.scope {
            Scope::National => true,
            Scope::Force(own) => force == Some(own),
        }
    }
}

/// How an action was allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A force operator on their own force's record.
    OwnForce,
    /// A national administrator: the action records it in the order's chain.
    National,
}

/// The one rule: may `caller` do `action` to a record of `kind` whose stored force is `force`?
///
/// Fails with [`AdminError::Forbidden`] (and a log line without personal data) when a force
/// operator names a record of another force, or one with no force.
pub fn authorize(
    caller: &Caller,
    action: &str,
    kind: &str,
    force: Option<&ForceId>,
) -> Result<Access> {
    match &caller.scope {
        Scope::National => Ok(Access::National),
        Scope::Force(own) if force == Some(own) => Ok(Access::OwnForce),
        Scope::Force(_) => Err(refuse(caller, action, kind)),
    }
}

/// The order `id` for `action` by `caller`: read from the store, its stored force checked with
/// [`authorize`]; a national administrator's access is recorded in the order's chain
/// (`national_access`: who, what action).
///
/// Fails with [`AdminError::NotFound`] when there is no such order, [`AdminError::Forbidden`]
/// when it is another force's, or [`AdminError::Store`].
pub async fn order_for<S: AdminStore + AuditLog>(
    store: &S,
    caller: &Caller,
    action: &str,
    id: &OrderId,
    now_ms: i64,
) -> Result<ProtectionOrder> {
    let order = existing_order(store, id).await?;
    if authorize(caller, action, "order", order.force_id.as_ref())? == Access::National {
        record_national(store, caller, action, id, now_ms).await?;
    }
    Ok(order)
}

/// Records a national administrator's `action` on order `id` in its chain.
///
/// Fails with [`AdminError::Store`]: the access is refused rather than left unrecorded.
pub async fn record_national<S: AuditLog>(
    store: &S,
    caller: &Caller,
    action: &str,
    id: &OrderId,
    now_ms: i64,
) -> Result<()> {
    let entry = AuditEntry {
        kind: NATIONAL_ACCESS_KIND.into(),
        detail: json!({ "operator": caller.operator.label(), "action": action }),
    };
    store
        .append(id, std::slice::from_ref(&entry), now_ms)
        .await
        .map_err(AdminError::store(format!(
            "recording national access in the audit log of {id} (nothing was shown or changed)"
        )))?;
    Ok(())
}

/// Refuses anyone but a national administrator (actions across forces: transfers, migration,
/// the dead-letter queues, which hold messages of every force).
///
/// Fails with [`AdminError::Forbidden`] for a force operator.
pub fn national_only(caller: &Caller, action: &str) -> Result<()> {
    match caller.scope {
        Scope::National => Ok(()),
        Scope::Force(_) => {
            tracing::warn!(
                target: "vigil_admin::access",
                operator = %caller.operator.label(),
                scope = caller.scope.name(),
                action,
                "refused: national administrators only"
            );
            Err(AdminError::Forbidden(format!(
                "{action}: refused: national administrators only (it reaches every force's \
                 records); you act for {}",
                caller.scope.describe()
            )))
        }
    }
}

/// The order `id`.
///
/// Fails with [`AdminError::NotFound`] when there is no such order, or [`AdminError::Store`].
pub(crate) async fn existing_order(
    store: &impl AdminStore,
    id: &OrderId,
) -> Result<ProtectionOrder> {
    store
        .get_order(id)
        .await
        .map_err(AdminError::store(format!("reading order {id}")))?
        .ok_or_else(|| {
            AdminError::NotFound(format!("no order {id}: list them with `vigil orders list`"))
        })
}

/// Every order of every force, with its zones (internal: actions filter or authorize).
pub(crate) async fn all_orders(
    store: &impl AdminStore,
) -> Result<Vec<(ProtectionOrder, Vec<Zone>)>> {
    let orders = store
        .list_orders()
        .await
        .map_err(AdminError::store("listing orders"))?;
    let zones = store
        .list_zones()
        .await
        .map_err(AdminError::store("listing zones"))?;
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

/// The error for a force the deployment does not serve.
pub(crate) fn unknown_force(force: &ForceId, forces: &Forces) -> AdminError {
    let known: Vec<&str> = forces.iter().map(|f| f.id.as_str()).collect();
    AdminError::Invalid(format!(
        "force {force} is not a force of this deployment (infra/forces.json): one of {}",
        known.join(", ")
    ))
}

/// Makes a tag or a victim's device one of `force` if it has no force yet; refuses one of
/// another force (an order may take only a tag and a device of its own force).
///
/// Fails with [`AdminError::Forbidden`] for another force's record, or [`AdminError::Store`].
pub(crate) async fn claim(
    store: &impl AdminStore,
    caller: &Caller,
    action: &str,
    record: ForceRecord<'_>,
    force: &ForceId,
) -> Result<()> {
    let mut current = force_of(store, record).await?;
    if current.is_none() {
        let claimed =
            store
                .set_record_force(record, force, None)
                .await
                .map_err(AdminError::store(format!(
                    "giving {} {} its force",
                    record.kind(),
                    record.id()
                )))?;
        if claimed {
            return Ok(());
        }
        // Someone gave it a force in between: judge what it has now.
        current = force_of(store, record).await?;
    }
    if current.as_ref() == Some(force) {
        Ok(())
    } else {
        Err(refuse(caller, action, record.kind()))
    }
}

/// The stored force of a tag or a victim's device.
///
/// Fails with [`AdminError::Store`].
pub(crate) async fn force_of(
    store: &impl AdminStore,
    record: ForceRecord<'_>,
) -> Result<Option<ForceId>> {
    store
        .record_force(record)
        .await
        .map_err(AdminError::store(format!(
            "reading the force of {} {}",
            record.kind(),
            record.id()
        )))
}

/// The force of an order that acts on another record (a tag, a device): an order not migrated
/// yet has none, and gets one first.
///
/// Fails with [`AdminError::Invalid`] for an order without a force.
pub(crate) fn order_force(order: &ProtectionOrder) -> Result<&ForceId> {
    order.force_id.as_ref().ok_or_else(|| {
        AdminError::Invalid(format!(
            "order {} has no force yet: run `vigil admin migrate-forces` first",
            order.order_id
        ))
    })
}

/// A refusal: logged (operator label, action, kind; never an id of the record, a phone or a
/// position) and returned.
pub(crate) fn refuse(caller: &Caller, action: &str, kind: &str) -> AdminError {
    tracing::warn!(
        target: "vigil_admin::access",
        operator = %caller.operator.label(),
        scope = caller.scope.name(),
        action,
        kind,
        "refused: the record is not of the caller's force"
    );
    AdminError::Forbidden(format!(
        "{action}: refused: this {kind} is not a record of {} (operators act only on their own \
         force's records; a national administrator can act across forces)",
        caller.scope.describe()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn met() -> ForceId {
        ForceId::new("met").unwrap()
    }

    #[test]
    fn the_rule() {
        let op = Operator::Local("op-1".into());
        let a = Caller::of_force(op.clone(), met());
        let tvp = ForceId::new("tvp").unwrap();
        assert_eq!(
            authorize(&a, "orders show", "order", Some(&met())).unwrap(),
            Access::OwnForce
        );
        let e = authorize(&a, "orders show", "order", Some(&tvp)).unwrap_err();
        assert!(matches!(e, AdminError::Forbidden(_)), "{e}");
        assert!(!e.to_string().contains("tvp"), "{e}");
        // A record with no force is national administrators' alone.
        assert!(authorize(&a, "orders show", "order", None).is_err());
        let n = Caller::national(op);
        assert_eq!(
            authorize(&n, "orders show", "order", None).unwrap(),
            Access::National
        );
        assert_eq!(a.force_for_new("orders create", None).unwrap(), met());
        assert!(a.force_for_new("orders create", Some(&tvp)).is_err());
        assert!(n.force_for_new("orders create", None).is_err());
        assert_eq!(n.force_for_new("orders create", Some(&tvp)).unwrap(), tvp);
        assert_eq!(Scope::parse("national").unwrap(), Scope::National);
        assert_eq!(Scope::parse(" met ").unwrap(), Scope::Force(met()));
        assert!(Scope::parse("").is_err());
        assert!(Scope::parse("a/b").is_err());
    }
}
