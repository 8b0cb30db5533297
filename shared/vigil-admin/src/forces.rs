//! Actions across forces, national administrators' alone: moving a case to another force (the
//! offender moves) and giving the records written before forces existed the default force.

use crate::access::{self, Caller};
use crate::changes::{self, Change};
use crate::error::{AdminError, Result};
use crate::orders::{all_orders, existing_order, unknown_force};
use serde::Serialize;
use serde_json::json;
use vigil_aws::ports::{AdminStore, AuditLog, ForceRecord, Unforced};
use vigil_core::forces::Forces;
use vigil_core::{DeviceId, ForceId, OrderId};

/// A transfer done.
#[derive(Debug, Clone, Serialize)]
pub struct Transferred {
    /// The force the case is now of.
    pub to: ForceId,
    /// The orders moved (every order on the offender's tag), each with the force it had.
    pub orders: Vec<(OrderId, Option<ForceId>)>,
    /// The tag moved.
    pub tag_id: vigil_core::TagId,
    /// The victims' devices moved.
    pub devices: Vec<DeviceId>,
}

/// Moves the case of order `id` to force `to`: the offender's tag, every order on it (one
/// offender's orders move together, so no tag serves two forces) and their victims' devices,
/// each only if it is still where it was read (a concurrent change is a conflict to retry).
/// Records `order_transferred` (from, to, who) in each order's chain, which stays whole: the
/// chain is the order's, whatever its force. Orders already of `to` are left as they are, so a
/// transfer cut short is finished by running it again.
///
/// Fails with [`AdminError::Forbidden`] for a force operator, [`AdminError::Invalid`] for an
/// unknown force, [`AdminError::NotFound`] for no such order, [`AdminError::Conflict`] when a
/// record changed force meanwhile, or [`AdminError::Store`].
pub async fn transfer_order<S: AdminStore + AuditLog>(
    store: &S,
    caller: &Caller,
    forces: &Forces,
    id: &OrderId,
    to: &ForceId,
    now_ms: i64,
) -> Result<Transferred> {
    const ACTION: &str = "orders transfer";
    access::national_only(caller, ACTION)?;
    if forces.get(to).is_none() {
        return Err(unknown_force(to, forces));
    }
    let tag = existing_order(store, id).await?.tag_id;
    move_record(store, ForceRecord::Tag(&tag), to).await?;
    let mut moved = Vec::new();
    let mut devices = Vec::new();
    for (o, _) in all_orders(store).await? {
        if o.tag_id != tag {
            continue;
        }
        if let Some(device) = &o.victim_device
            && move_record(store, ForceRecord::Device(&device.device_id), to).await?
        {
            devices.push(device.device_id.clone());
        }
        if o.force_id.as_ref() == Some(to) {
            continue;
        }
        let oid = &o.order_id;
        if !store
            .set_order_force(oid, to, o.force_id.as_ref())
            .await
            .map_err(AdminError::store(format!("moving order {oid}")))?
        {
            return Err(changed_meanwhile(&format!("order {oid}")));
        }
        let change = Change::new(
            "order_transferred",
            json!({
                "from": o.force_id.as_ref().map(ForceId::as_str),
                "to": to.as_str(),
                "tag_id": tag.as_str(),
                "asked_for": id.as_str(),
            }),
        );
        changes::record(store, oid, &caller.operator, &[change], now_ms).await?;
        moved.push((oid.clone(), o.force_id.clone()));
    }
    Ok(Transferred {
        to: to.clone(),
        orders: moved,
        tag_id: tag,
        devices,
    })
}

/// Moves a tag or a victim's device to force `to` if it is not there yet, only if its force
/// is still the one read; returns whether it moved.
///
/// Fails with [`AdminError::Conflict`] when its force changed meanwhile, or
/// [`AdminError::Store`].
async fn move_record(
    store: &impl AdminStore,
    record: ForceRecord<'_>,
    to: &ForceId,
) -> Result<bool> {
    let now = access::force_of(store, record).await?;
    if now.as_ref() == Some(to) {
        return Ok(false);
    }
    let moved = store
        .set_record_force(record, to, now.as_ref())
        .await
        .map_err(AdminError::store(format!(
            "moving {} {}",
            record.kind(),
            record.id()
        )))?;
    if !moved {
        return Err(changed_meanwhile(&format!(
            "{} {}",
            record.kind(),
            record.id()
        )));
    }
    Ok(true)
}

/// A record changed force while a transfer ran.
fn changed_meanwhile(what: &str) -> AdminError {
    AdminError::Conflict(format!(
        "{what} changed force while the transfer ran: run the transfer again"
    ))
}

/// What a migration changed.
#[derive(Debug, Clone, Serialize)]
pub struct Migrated {
    /// The force given.
    pub force: ForceId,
    /// The records that had none and have it now.
    pub changed: Unforced,
}

/// Gives every order, tag and victim's device without a force the force `force` (the
/// deployment's default when `None`): each write only if the record still has none, so a
/// second run changes nothing and nothing a force was given since is overwritten. Records
/// `force_assigned` in each migrated order's chain. Deletes nothing.
///
/// Fails with [`AdminError::Forbidden`] for a force operator, [`AdminError::Invalid`] for an
/// unknown force, or [`AdminError::Store`] (what was migrated stays; run it again).
pub async fn migrate_forces<S: AdminStore + AuditLog>(
    store: &S,
    caller: &Caller,
    forces: &Forces,
    force: Option<&ForceId>,
    now_ms: i64,
) -> Result<Migrated> {
    access::national_only(caller, "admin migrate-forces")?;
    let force = force.unwrap_or(forces.default_force()).clone();
    if forces.get(&force).is_none() {
        return Err(unknown_force(&force, forces));
    }
    let todo = store
        .unforced()
        .await
        .map_err(AdminError::store("listing records without a force"))?;
    let mut changed = Unforced::default();
    for o in todo.orders {
        if store
            .set_order_force(&o, &force, None)
            .await
            .map_err(AdminError::store(format!("giving order {o} its force")))?
        {
            let change = Change::new("force_assigned", json!({ "force_id": force.as_str() }));
            changes::record(store, &o, &caller.operator, &[change], now_ms).await?;
            changed.orders.push(o);
        }
    }
    for t in todo.tags {
        if store
            .set_record_force(ForceRecord::Tag(&t), &force, None)
            .await
            .map_err(AdminError::store(format!("giving tag {t} its force")))?
        {
            changed.tags.push(t);
        }
    }
    for d in todo.devices {
        if store
            .set_record_force(ForceRecord::Device(&d), &force, None)
            .await
            .map_err(AdminError::store(format!("giving device {d} its force")))?
        {
            changed.devices.push(d);
        }
    }
    Ok(Migrated { force, changed })
}
