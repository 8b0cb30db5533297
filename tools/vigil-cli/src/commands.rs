//! Running a parsed command line: each command turns its flags and files into vigil-admin's
//! typed input, calls the one admin action for it (or the IoT and evidence code here), and
//! prints the result for people or, with `--json`, as one JSON document.

use crate::args::{
    AdminCmd, AlertCmd, Cli, DeviceCmd, EvidenceCmd, Group, MovingZoneArgs, OrderCmd, TagCmd,
    ZoneCmd,
};
use crate::csr::{TagCsr, make_tag_csr};
use crate::dlq::DlqCmd;
use crate::error::{CliError, Result};
use crate::input::{order_spec, zone_spec};
use crate::ports::Ports;
use crate::report::{AlertList, Done, OrderList, Report, Unacked, ZoneList};
use crate::{evidence, tags};
use chrono::{DateTime, Utc};
use vigil_admin::input::{order_id, parse_instant, tag_id, zone_id};
use vigil_admin::orders::OrderView;
use vigil_admin::tags::{
    assign_tag, authorize_tag, record_deactivated, record_registered, register_to_force,
};
use vigil_admin::zones::ZoneView;
use vigil_admin::{access, alerts, devices, forces, orders, zones};
use vigil_aws::ports::EvidenceSigner;
use vigil_core::ZoneKey;
use vigil_core::proximity::{VictimDevice, VictimZoneTerms};
use vigil_core::{DeviceId, ForceId};

/// Runs one command.
///
/// Fails with the command's [`CliError`]; what it printed before failing stays printed.
pub async fn run(cli: Cli) -> Result<()> {
    let json = cli.json;
    crate::ports::ANNOUNCE.store(!json, std::sync::atomic::Ordering::Relaxed);
    let now = Utc::now();
    match cli.command {
        Group::Orders(cmd) => run_orders(cmd, &Ports::from_env().await?, json, now).await,
        Group::Zones(cmd) => run_zones(cmd, &Ports::from_env().await?, json, now).await,
        Group::Tags(cmd) => run_tags(cmd, json, now).await,
        Group::Devices(cmd) => run_devices(cmd, json, now).await,
        Group::Alerts(cmd) => run_alerts(cmd, &Ports::from_env().await?, json, now).await,
        Group::Evidence(cmd) => run_evidence(cmd, json, now).await,
        Group::Dlq(cmd) => run_dlq(cmd, &Ports::from_env().await?, json).await,
        Group::Admin(cmd) => run_admin(cmd, &Ports::from_env().await?, json, now).await,
    }
}

/// A force id from a flag.
fn force_id(flag: &str, text: &str) -> Result<ForceId> {
    ForceId::new(text.trim()).map_err(|e| CliError::Invalid(format!("{flag}: {e}")))
}

async fn run_admin(cmd: AdminCmd, ports: &Ports, json: bool, now: DateTime<Utc>) -> Result<()> {
    match cmd {
        AdminCmd::MigrateForces { force } => {
            let force = force
                .as_deref()
                .map(|f| force_id("--force", f))
                .transpose()?;
            let caller = ports.caller().await?;
            let forces = ports.forces().await?;
            let m = forces::migrate_forces(
                &ports.store,
                &caller,
                &forces,
                force.as_ref(),
                now.timestamp_millis(),
            )
            .await?;
            render(json, &m)
        }
    }
}

async fn run_dlq(cmd: DlqCmd, ports: &Ports, json: bool) -> Result<()> {
    access::national_only(&ports.caller().await?, "dlq")?;
    let queues = ports.dead_letter_queues();
    match cmd {
        DlqCmd::List { queue, limit } => render(json, &queues.list(queue, limit).await?),
        DlqCmd::Redrive {
            queue,
            message_id,
            limit,
        } => render(
            json,
            &queues.redrive(queue, message_id.as_deref(), limit).await?,
        ),
    }
}

async fn run_orders(cmd: OrderCmd, ports: &Ports, json: bool, now: DateTime<Utc>) -> Result<()> {
    let store = &ports.store;
    let now_ms = now.timestamp_millis();
    match cmd {
        OrderCmd::Create(c) => {
            let spec = order_spec(&c)?;
            let force = c
                .force
                .as_deref()
                .map(|f| force_id("--force", f))
                .transpose()?;
            let caller = ports.caller().await?;
            let forces = ports.forces().await?;
            let mac = ports.destination_mac()?;
            let (order, zones) =
                orders::create_order(store, &mac, &caller, &forces, force.as_ref(), &spec, now_ms)
                    .await?;
            render(json, &OrderView::new(&order, &zones, c.reveal, now))
        }
        OrderCmd::Show {
            order_id: id,
            reveal,
        } => {
            let caller = ports.caller().await?;
            let (order, zones) =
                orders::show_order(store, &caller, &order_id(&id)?, now_ms).await?;
            render(json, &OrderView::new(&order, &zones, reveal, now))
        }
        OrderCmd::List { reveal } => {
            let all = orders::list_orders(store, &ports.caller().await?).await?;
            let orders = all
                .iter()
                .map(|(o, z)| OrderView::new(o, z, reveal, now))
                .collect();
            render(json, &OrderList { orders })
        }
        OrderCmd::End { order_id: id, at } => {
            let at = now_or("--at", at.as_deref(), now)?;
            let id = order_id(&id)?;
            let caller = ports.caller().await?;
            orders::end_order(store, &caller, &id, at, now_ms).await?;
            let (order, zones) = orders::show_order(store, &caller, &id, now_ms).await?;
            render(json, &OrderView::new(&order, &zones, false, now))
        }
        OrderCmd::Transfer { order, to } => {
            let (id, to) = (order_id(&order)?, force_id("--to", &to)?);
            let caller = ports.caller().await?;
            let forces = ports.forces().await?;
            let t = forces::transfer_order(store, &caller, &forces, &id, &to, now_ms).await?;
            render(json, &t)
        }
    }
}

async fn run_zones(cmd: ZoneCmd, ports: &Ports, json: bool, now: DateTime<Utc>) -> Result<()> {
    let store = &ports.store;
    let now_ms = now.timestamp_millis();
    match cmd {
        ZoneCmd::Add(a) => {
            let zone = zone_spec(&a)?;
            let caller = ports.caller().await?;
            zones::add_zone(store, &caller, &zone, a.replace, now_ms).await?;
            render(json, &ZoneView::new(&zone, now))
        }
        ZoneCmd::List { order } => {
            let order = order.as_deref().map(order_id).transpose()?;
            let caller = ports.caller().await?;
            let list = zones::list_zones(store, &caller, order.as_ref(), now_ms).await?;
            let zones = list.iter().map(|z| ZoneView::new(z, now)).collect();
            render(json, &ZoneList { zones })
        }
        ZoneCmd::Remove { order, zone_id: id } => {
            let key = ZoneKey::new(order_id(&order)?, zone_id(&id)?);
            let caller = ports.caller().await?;
            zones::remove_zone(store, &caller, &key, now_ms).await?;
            let message = format!("zone {key} removed with all its cell entries");
            render(json, &Done { message })
        }
        ZoneCmd::PruneExpired { now: at } => {
            let at = now_or("--now", at.as_deref(), now)?;
            let caller = ports.caller().await?;
            let removed = zones::prune_expired(store, &caller, at, now_ms).await?;
            let ids: Vec<String> = removed.iter().map(|z| z.to_string()).collect();
            let message = if ids.is_empty() {
                "no expired zones".into()
            } else {
                format!("removed {} expired zone(s): {}", ids.len(), ids.join(", "))
            };
            render(json, &Done { message })
        }
    }
}

async fn run_tags(cmd: TagCmd, json: bool, now: DateTime<Utc>) -> Result<()> {
    let now_ms = now.timestamp_millis();
    match cmd {
        TagCmd::Register {
            tag_id: tag,
            csr,
            out_dir,
            force,
        } => {
            let tag = tag_id(&tag)?;
            let force = force
                .as_deref()
                .map(|f| force_id("--force", f))
                .transpose()?;
            // Checked before anything else: a CSR for another tag, or one that does not verify,
            // changes nothing.
            let csr = TagCsr::read(&csr, &tag)?;
            let ports = Ports::from_env().await?;
            let caller = ports.caller().await?;
            let forces = ports.forces().await?;
            // The tag's force first: another force's tag gets no certificate from this caller.
            register_to_force(&ports.store, &caller, &forces, force.as_ref(), &tag).await?;
            let registry = ports.tag_registry();
            let r =
                tags::register_tag(&registry, &tag, &ports.tag_policy(), &csr, &out_dir).await?;
            record_registered(&ports.store, &caller, &tag, &r.certificate_id, now_ms).await?;
            render(json, &r)
        }
        TagCmd::Csr {
            tag_id: tag,
            key_out,
            csr_out,
        } => render(json, &make_tag_csr(&tag_id(&tag)?, &key_out, &csr_out)?),
        TagCmd::Deactivate { tag_id: tag } => {
            let tag = tag_id(&tag)?;
            let ports = Ports::from_env().await?;
            let caller = ports.caller().await?;
            authorize_tag(&ports.store, &caller, "tags deactivate", &tag).await?;
            let d = tags::deactivate_tag(&ports.tag_registry(), &tag).await?;
            record_deactivated(&ports.store, &caller, &tag, now_ms).await?;
            render(json, &d)
        }
        TagCmd::Quarantined { key } => {
            let ports = Ports::from_env().await?;
            let caller = ports.caller().await?;
            let records = vigil_admin::tags::quarantined(&ports.store, &caller, &key).await?;
            render(json, &crate::report::Quarantined { key, records })
        }
        TagCmd::Assign { tag_id: tag, order } => {
            let (tag, order) = (tag_id(&tag)?, order_id(&order)?);
            let ports = Ports::from_env().await?;
            let caller = ports.caller().await?;
            let previous = assign_tag(&ports.store, &caller, &tag, &order, now_ms).await?;
            let message = if previous == tag {
                format!("order {order} already on tag {tag}")
            } else {
                format!("order {order} moved from tag {previous} to tag {tag}")
            };
            render(json, &Done { message })
        }
    }
}

async fn run_devices(cmd: DeviceCmd, json: bool, now: DateTime<Utc>) -> Result<()> {
    let now_ms = now.timestamp_millis();
    let moving = |device: &str, z: &MovingZoneArgs| -> Result<VictimDevice> {
        Ok(VictimDevice {
            device_id: DeviceId::new(device)
                .map_err(|e| CliError::Invalid(format!("device id: {e}")))?,
            zone: VictimZoneTerms {
                radius_m: z.radius_m,
                buffer_m: z.buffer_m,
                max_position_age_s: z.max_position_age_s,
                pair_window_s: z.pair_window_s,
            },
        })
    };
    let (device, order, zone, registration) = match cmd {
        DeviceCmd::Register {
            device_id,
            order,
            csr,
            out_dir,
            zone,
        } => (device_id, order, zone, Some((csr, out_dir))),
        DeviceCmd::Assign {
            device_id,
            order,
            zone,
        } => (device_id, order, zone, None),
    };
    // Everything checked before anything is made: the id, the settings, the CSR, the order.
    let device = moving(&device, &zone)?;
    device.zone.check().map_err(CliError::Invalid)?;
    let order = order_id(&order)?;
    let thing = tag_id(device.device_id.as_str())?;
    let csr = match &registration {
        Some((csr, _)) => Some(TagCsr::read(csr, &thing)?),
        None => None,
    };
    let ports = Ports::from_env().await?;
    let caller = ports.caller().await?;
    // The order's force is checked before a certificate is made.
    access::order_for(&ports.store, &caller, "devices register", &order, now_ms).await?;
    let mut message = String::new();
    if let (Some(csr), Some((_, out_dir))) = (csr, &registration) {
        let r = tags::register_tag(
            &ports.tag_registry(),
            &thing,
            &ports.device_policy(),
            &csr,
            out_dir,
        )
        .await?;
        message = format!(
            "registered device {} (certificate {}, policy {}) in {}; ",
            device.device_id,
            r.certificate_file.display(),
            r.policy,
            r.data_endpoint
        );
    }
    let written = devices::set_victim_device(&ports.store, &caller, &order, device, now_ms).await?;
    let d = written
        .victim_device
        .as_ref()
        .expect("the order was written with her device");
    message.push_str(&format!(
        "order {order}: her device {} carries a moving zone of {} m, warning buffer {} m",
        d.device_id, d.zone.radius_m, d.zone.buffer_m
    ));
    render(json, &Done { message })
}

async fn run_alerts(cmd: AlertCmd, ports: &Ports, json: bool, now: DateTime<Utc>) -> Result<()> {
    let store = &ports.store;
    match cmd {
        AlertCmd::List => {
            let alerts = alerts::list_alerts(store, &ports.caller().await?).await?;
            render(json, &AlertList { alerts })
        }
        AlertCmd::Unacked { order } => {
            let order_id = order_id(&order)?;
            let caller = ports.caller().await?;
            let now_ms = now.timestamp_millis();
            let alerts = alerts::unacknowledged(store, &caller, &order_id, now_ms).await?;
            render(json, &Unacked { order_id, alerts })
        }
        AlertCmd::Ack {
            order,
            zone,
            event,
            note,
        } => {
            let who = ports.caller().await?;
            let order = order_id(&order)?;
            let now_ms = now.timestamp_millis();
            match (zone, event) {
                (Some(zone), _) => {
                    let zone = zone_id(&zone)?;
                    let a =
                        alerts::acknowledge(store, &who, &order, &zone, note.as_deref(), now_ms)
                            .await?;
                    render(json, &a)
                }
                (None, Some(event)) => {
                    let a = alerts::acknowledge_event(
                        store,
                        &who,
                        &order,
                        &event,
                        note.as_deref(),
                        now_ms,
                    )
                    .await?;
                    render(json, &a)
                }
                (None, None) => {
                    let a = alerts::acknowledge_order(store, &who, &order, note.as_deref(), now_ms)
                        .await?;
                    render(json, &a)
                }
            }
        }
    }
}

async fn run_evidence(cmd: EvidenceCmd, json: bool, now: DateTime<Utc>) -> Result<()> {
    match cmd {
        EvidenceCmd::Export { order, out } => {
            let ports = Ports::from_env().await?;
            let id = order_id(&order)?;
            let caller = ports.caller().await?;
            let o = access::order_for(
                &ports.store,
                &caller,
                "evidence export",
                &id,
                now.timestamp_millis(),
            )
            .await?;
            let retention = ports.forces().await?.retention_years(o.force_id.as_ref());
            let anchors = ports.anchors()?;
            let signer = ports.evidence_signer()?;
            let from = evidence::Sources {
                store: &ports.store,
                anchors: &anchors,
                signer: &signer,
            };
            let manifest = evidence::export(from, &o, retention, &out, now).await?;
            let dir = out.display().to_string();
            render(json, &evidence::Exported { dir, manifest })
        }
        EvidenceCmd::PublicKey { out } => {
            let ports = Ports::from_env().await?;
            let der = ports.evidence_signer()?.public_key().await.map_err(
                vigil_admin::AdminError::store("reading the evidence key's public key"),
            )?;
            let pem = evidence::public_key_pem(&der);
            crate::owner_only::write_new(
                &out,
                pem.as_bytes(),
                "a public key file is never overwritten: choose a new --out",
            )?;
            render(
                json,
                &evidence::PublicKeyWritten {
                    file: out.display().to_string(),
                    sha256: evidence::fingerprint(&der),
                },
            )
        }
        EvidenceCmd::Verify { dir, public_key } => {
            let source = public_key.display().to_string();
            let bytes = std::fs::read(&public_key)
                .map_err(CliError::io(format!("reading the public key {source}")))?;
            let key = evidence::public_key_from(&bytes, &source)?;
            let v = evidence::verify(&dir, &key)?;
            render(json, &v)?;
            if v.ok() {
                Ok(())
            } else {
                Err(CliError::Tampered(
                    v.first_broken_link
                        .clone()
                        .unwrap_or_else(|| v.problems.join("; ")),
                ))
            }
        }
    }
}

/// The instant a flag gives (RFC 3339), or `now` without it.
fn now_or(field: &str, text: Option<&str>, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    Ok(text.map_or(Ok(now), |t| parse_instant(field, t, None))?)
}

/// Prints a result: its human form, or with `json` one pretty JSON document.
fn render(json: bool, r: &impl Report) -> Result<()> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(r).expect("reports serialize")
        );
    } else {
        println!("{}", r.human());
    }
    Ok(())
}
