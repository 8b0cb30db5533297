//! Vigil's operator actions: what monitoring-centre staff do to orders, zones and alerts,
//! written once for every front end. The CLI (`tools/vigil-cli`) and the console's operator
//! API (`functions/console`, a `lambda_http` function) call the same functions, and the
//! pipeline tests, the simulator and the local stack provision orders through
//! [`orders::provision_order`]. Forces
//! (one deployment, many police forces) are enforced here, in one place, for both
//! ([`access`], docs/FORCES.md).
//!
//! An action takes the ports it needs ([`AdminStore`], [`AuditLog`], [`DestinationMac`]), the
//! [`Operator`] making the change and the time; it checks its input, changes the store, and
//! leaves an `admin_change` record in the audit chain of every order it touches. Nothing here
//! reads a file, a terminal or the environment, or talks to AWS IoT: the front ends turn
//! their own input (flags, files, HTTP requests) into the typed input of [`input`] and render
//! the results (the views here are serializable as they are).
//!
//! # Layout
//! - [`access`]: who may act on which force's records: [`Caller`] (who, and for which force or
//!   national administration) and the one rule, [`access::authorize`], every action applies.
//! - [`forces`]: moving an order to another force (transfer) and giving records written before
//!   forces existed the default force (migration).
//! - [`error`]: [`AdminError`]: invalid input, not found, conflict, store failures (which say
//!   whether a retry can help).
//! - [`input`]: typed operator input and its validation: [`OrderSpec`] with its victim and
//!   zones, zone specifications, GeoJSON polygons, ids, dates, validity windows, time zones,
//!   languages; every error names its field.
//! - [`operator`]: [`Operator`], who makes a change (an IAM principal, a console user of the
//!   Cognito user pool, or the local stand-in).
//! - [`changes`]: the `admin_change` audit record every change leaves, and the keyed hash of
//!   a victim's phone it records instead of the number.
//! - [`orders`]: create (audited), show, list, end (audited); the one provisioning path.
//! - [`zones`]: add or replace, list, remove, prune expired; the geohash index kept
//!   consistent by the store.
//! - [`tags`]: moving an order to another tag, and the audit of tag registrations and
//!   deactivations on the orders that name the tag.
//! - [`alerts`]: open alerts with who acknowledged them, and acknowledging one.
//! - [`devices`]: giving an order the victim's own device and its moving zone (audited; one
//!   device, one person).
//!
//! [`AdminStore`]: vigil_aws::ports::AdminStore
//! [`AuditLog`]: vigil_aws::ports::AuditLog
//! [`DestinationMac`]: vigil_aws::ports::DestinationMac

pub mod access;
pub mod alerts;
pub mod changes;
pub mod devices;
pub mod error;
pub mod forces;
pub mod input;
pub mod operator;
pub mod orders;
pub mod tags;
pub mod zones;

pub use access::{Caller, Scope};
pub use error::{AdminError, Result};
pub use input::OrderSpec;
pub use operator::Operator;

/// Has `tag`'s batching window end at once (adaptive reporting, docs/WIRE_FORMAT.md), after
/// a change to order `order` that a window judged before it does not know of: a zone added or
/// replaced, her device given, the order created on the tag or moved to it. Commands are the
/// alert function's alone, and only ingest and the watchdog may queue its events (the alert
/// queue's own policy): so the change is armed for the watchdog's next minute (a part naming
/// the order and the tag, one `PutItem`), which queues the alert function's ask; the tag is
/// told `batch_s` 0 within about a minute, and no window judged before the change may start
/// after it. Only this tag is told, and only to send every fix at once: no other order's
/// protection is weakened. A change that can only shorten a window (a zone removed, an order
/// ended) needs none.
///
/// Fails with [`AdminError::Store`], after the change itself was saved and recorded: the
/// error says so, when the tag will be told anyway (its next message, within the longest
/// window), and how to tell it at once.
pub(crate) async fn end_window(
    store: &impl vigil_aws::ports::WatchStore,
    order: &vigil_core::OrderId,
    tag: &vigil_core::TagId,
    now_ms: i64,
) -> Result<()> {
    let minute = now_ms.div_euclid(60_000) + 1;
    store
        .arm_order_change(minute, order, tag)
        .await
        .map_err(AdminError::store(format!(
            "telling tag {tag} to stop batching its fixes (the change to order {order} is saved \
             and recorded; without this the tag learns of it from its next message, at most 15 \
             minutes away; to tell it at once, run `vigil tags assign {tag} --order {order}` \
             when the store answers again)"
        )))
}

/// Arms `tag` for the watchdog's next minute (its own part of the `watch` index), so that a
/// new order's tag is judged from its first minute, not at the watchdog's next sweep.
///
/// Fails with [`AdminError::Store`].
pub(crate) async fn watch_from_next_minute(
    store: &impl vigil_aws::ports::WatchStore,
    tag: &vigil_core::TagId,
    now_ms: i64,
) -> Result<()> {
    let minute = now_ms.div_euclid(60_000) + 1;
    store
        .arm(minute, &format!("new#{tag}"), std::slice::from_ref(tag))
        .await
        .map_err(AdminError::store(format!(
            "arming tag {tag} for the watchdog (the order is written; the watchdog's sweep finds it within 15 minutes)"
        )))
}
