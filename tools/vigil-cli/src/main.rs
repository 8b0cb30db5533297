//! `vigil`: argument parsing, wiring of the AWS adapters and output. The commands live in the
//! library.

use chrono::Utc;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use vigil_aws::{Aws, Config, DynamoStore};
use vigil_cli::changes::{self, Change, Operator};
use vigil_cli::csr::{TagCsr, make_tag_csr};
use vigil_cli::error::{CliError, Result};
use vigil_cli::input::{self, OrderSpec, VictimSpec};
use vigil_cli::orders::{self, OrderList, OrderView};
use vigil_cli::report::{Done, Report};
use vigil_cli::zones::{self, ZoneList, ZoneView};
use vigil_cli::{TAG_POLICY, alerts, evidence, tags};
use vigil_core::zone::ZoneShape;
use vigil_core::{OrderPolicy, ZoneKind, ZoneSpec};

const EXIT_CODES: &str = "\
Examples:
  vigil orders create --file order.yaml
  vigil zones add --zone-id home --order o-1 --circle 51.5,-0.12,150 --buffer 500
  vigil --json alerts list

Exit codes:
  0  success
  1  usage or validation error (nothing was changed); the message says what to fix
  2  not found (order, zone, tag or alert)
  3  AWS or emulator error; the message says whether retrying can help
  4  evidence verification failed (bundle altered)

Configuration (the same as the functions): VIGIL_STAGE (default local) picks the resources
vigil-<stage>-*; AWS_ENDPOINT_URL points every client at an emulator (unset: AWS), and
AWS_ENDPOINT_URL_DYNAMODB DynamoDB alone (DynamoDB Local, as the local stack's env file says);
AWS_REGION / AWS_PROFILE / AWS_ACCESS_KEY_ID... as for any AWS tool; VIGIL_OPERATOR is the
default operator id for acknowledgements. Output is for people by default; --json prints one
JSON document on stdout (errors: a JSON object on stderr). See docs/CLI.md.";

/// Vigil's operator CLI: orders, zones, tags, alerts and evidence.
#[derive(Parser, Debug)]
#[command(name = "vigil", version, after_help = EXIT_CODES)]
struct Cli {
    /// Print results as JSON for scripts.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Group,
}

#[derive(Subcommand, Debug)]
enum Group {
    /// Protection orders: create, show, list, end.
    #[command(
        subcommand,
        after_help = "Example:\n  vigil orders create --file order.yaml\n  vigil orders list"
    )]
    Orders(OrderCmd),
    /// Protected zones and the geohash index.
    #[command(
        subcommand,
        after_help = "Example:\n  vigil zones add --zone-id home --order o-1 --circle 51.5,-0.12,150 --buffer 500"
    )]
    Zones(ZoneCmd),
    /// Ankle tags in AWS IoT: register from a CSR, deactivate, assign to an order.
    #[command(
        subcommand,
        after_help = "Example:\n  vigil tags register tag-0042 --csr tag-0042.csr.pem --out-dir ./creds"
    )]
    Tags(TagCmd),
    /// Open alerts and acknowledgements.
    #[command(
        subcommand,
        after_help = "Example:\n  vigil alerts list\n  vigil alerts ack --order o-1 --zone home --note \"called victim\""
    )]
    Alerts(AlertCmd),
    /// Evidence bundles of an order's audit trail.
    #[command(
        subcommand,
        after_help = "Example:\n  vigil evidence export --order o-1 --out ./o-1-evidence\n  vigil evidence verify ./o-1-evidence"
    )]
    Evidence(EvidenceCmd),
}

#[derive(Subcommand, Debug)]
enum OrderCmd {
    /// Create an order (and the zones its file lists) from a JSON/YAML file or from flags.
    #[command(
        after_help = "Examples:\n  vigil orders create --file order.yaml\n  vigil orders create --order-id o-1 --tag tag-0042 --victim-id v-1 \\\n    --phone-file phone.txt --language en --time-zone Europe/London --valid-until 2027-06-01\n\nThe file holds order_id, tag_id, victim {victim_id, phone, language}, and optionally\ntime_zone, valid_from, valid_until, policy, zones (see docs/CLI.md)."
    )]
    Create(Box<CreateOrder>),
    /// Show one order with its zones.
    #[command(after_help = "Example:\n  vigil orders show o-1 --reveal")]
    Show {
        /// The order id.
        order_id: String,
        /// Show the victim's full phone number (masked by default).
        #[arg(long)]
        reveal: bool,
    },
    /// List every order.
    #[command(after_help = "Example:\n  vigil orders list --json")]
    List {
        /// Show victims' full phone numbers (masked by default).
        #[arg(long)]
        reveal: bool,
    },
    /// End an order now or at a given instant (sets valid_until).
    #[command(after_help = "Example:\n  vigil orders end o-1 --at 2026-12-01T00:00:00Z")]
    End {
        /// The order id.
        order_id: String,
        /// When it ends: RFC 3339 (default: now).
        #[arg(long)]
        at: Option<String>,
    },
}

#[derive(Args, Debug)]
struct CreateOrder {
    /// Order file, JSON or YAML (.yaml/.yml).
    #[arg(long, conflicts_with_all = ["order_id", "tag", "victim_id", "phone_file", "language"])]
    file: Option<PathBuf>,
    /// Order id.
    #[arg(long)]
    order_id: Option<String>,
    /// The offender's tag id.
    #[arg(long)]
    tag: Option<String>,
    /// The victim's id.
    #[arg(long)]
    victim_id: Option<String>,
    /// A file whose first line is the victim's phone, E.164 (e.g. +447700900123); `-` reads
    /// it from standard input. Never on the command line, where `ps`, shell history and CI
    /// logs would keep it.
    #[arg(long, value_name = "PATH")]
    phone_file: Option<PathBuf>,
    /// The victim's language: en, es, fr or de.
    #[arg(long)]
    language: Option<String>,
    /// IANA time zone for local dates (e.g. Europe/London).
    #[arg(long)]
    time_zone: Option<String>,
    /// In force from (RFC 3339, or a local date with --time-zone).
    #[arg(long)]
    valid_from: Option<String>,
    /// In force until (RFC 3339, or a local date with --time-zone).
    #[arg(long)]
    valid_until: Option<String>,
    /// Show the victim's full phone number in the output.
    #[arg(long)]
    reveal: bool,
}

#[derive(Subcommand, Debug)]
enum ZoneCmd {
    /// Add a zone to an order (or replace that order's zone, with --replace): a circle, a
    /// GeoJSON polygon, or a zone file. Zone ids belong to their order: two orders may each
    /// have a zone `home`, and no command on one touches the other.
    #[command(
        after_help = "Examples:\n  vigil zones add --zone-id home --order o-1 --kind home --circle 51.5,-0.12,150 --buffer 500\n  vigil zones add --zone-id school --order o-1 --geojson school.geojson --buffer 300 \\\n    --schedule \"mon-fri 08:00-16:00\" --time-zone Europe/London --valid-until 2027-07-20\n  vigil zones add --replace --zone-id home --order o-1 --kind home --circle 51.5,-0.12,200 --buffer 500"
    )]
    Add(Box<AddZone>),
    /// List zones, all or one order's.
    #[command(after_help = "Example:\n  vigil zones list --order o-1")]
    List {
        /// Only the zones of this order.
        #[arg(long)]
        order: Option<String>,
    },
    /// Remove one order's zone and every geohash cell entry of it.
    #[command(after_help = "Example:\n  vigil zones remove --order o-1 home")]
    Remove {
        /// The order the zone belongs to.
        #[arg(long)]
        order: String,
        /// The zone id.
        zone_id: String,
    },
    /// Remove every zone whose validity has ended, with its cell entries.
    #[command(after_help = "Example:\n  vigil zones prune-expired")]
    PruneExpired {
        /// Treat this instant as now (RFC 3339).
        #[arg(long)]
        now: Option<String>,
    },
}

#[derive(Args, Debug)]
struct AddZone {
    /// Zone file (JSON or YAML, Vigil's zone format, with its `order_id`); other shape flags
    /// are then not allowed.
    #[arg(long, conflicts_with_all = ["circle", "geojson", "zone_id", "order"])]
    file: Option<PathBuf>,
    /// Zone id, unique within its order.
    #[arg(long)]
    zone_id: Option<String>,
    /// The order the zone belongs to.
    #[arg(long)]
    order: Option<String>,
    /// Replace the order's existing zone of this id (without it, an existing id is refused).
    #[arg(long)]
    replace: bool,
    /// Circle: LAT,LON,RADIUS_M.
    #[arg(long, conflicts_with = "geojson")]
    circle: Option<String>,
    /// Polygon from a GeoJSON file (Polygon, Feature or a one-feature FeatureCollection).
    #[arg(long)]
    geojson: Option<PathBuf>,
    /// Warning buffer around the shape, metres.
    #[arg(long, default_value_t = 0.0)]
    buffer: f64,
    /// What it protects: home, work, school, other.
    #[arg(long, default_value = "other")]
    kind: String,
    /// Weekly window "DAYS HH:MM-HH:MM" (repeatable), e.g. "mon-fri 08:00-18:00".
    #[arg(long)]
    schedule: Vec<String>,
    /// IANA time zone of the schedule and of local dates.
    #[arg(long)]
    time_zone: Option<String>,
    /// In force from (RFC 3339 or local date).
    #[arg(long)]
    valid_from: Option<String>,
    /// In force until (RFC 3339 or local date).
    #[arg(long)]
    valid_until: Option<String>,
}

#[derive(Subcommand, Debug)]
enum TagCmd {
    /// Register a tag in AWS IoT from the CSR it made; write its certificate (mode 0600).
    #[command(
        after_help = "Example:\n  vigil tags register tag-0042 --csr tag-0042.csr.pem --out-dir ./creds\n\nThe CSR is made on the tag, whose private key never leaves it (for a simulated tag:\n`vigil tags csr`). It must verify and name the tag (subject CN=<tag>). Creates the thing,\nhas IoT sign the CSR, attaches the stage's tag policy (vigil-<stage>-tag) and the thing\nprincipal, writes <tag>.cert.pem and only then activates the certificate. A failure undoes\nevery step, so the same command can be run again."
    )]
    Register {
        /// The tag id (the IoT thing name; the CSR's subject CN).
        tag_id: String,
        /// The tag's certificate signing request, PEM (PKCS#10).
        #[arg(long)]
        csr: PathBuf,
        /// Where to write the certificate (created 0700 if missing).
        #[arg(long, default_value = ".")]
        out_dir: PathBuf,
    },
    /// Make a key and CSR for a simulated or bench tag (a real tag makes its own).
    #[command(
        after_help = "Example:\n  vigil tags csr tag-0042 --key-out ./sim/tag-0042.key --csr-out ./sim/tag-0042.csr.pem\n\nAn ECDSA P-256 key (PKCS#8 PEM, mode 0600, never overwritten) and a CSR with subject\nCN=<tag>. Offline: nothing is sent. Then `vigil tags register <tag> --csr <csr-out>`."
    )]
    Csr {
        /// The tag id (the CSR's subject CN).
        tag_id: String,
        /// Where to write the private key.
        #[arg(long)]
        key_out: PathBuf,
        /// Where to write the CSR.
        #[arg(long)]
        csr_out: PathBuf,
    },
    /// Set every certificate of the tag INACTIVE (it can no longer connect).
    #[command(after_help = "Example:\n  vigil tags deactivate tag-0042")]
    Deactivate {
        /// The tag id.
        tag_id: String,
    },
    /// Assign a tag to an order (moves the order from its previous tag).
    #[command(after_help = "Example:\n  vigil tags assign tag-0043 --order o-1")]
    Assign {
        /// The tag id.
        tag_id: String,
        /// The order.
        #[arg(long)]
        order: String,
    },
}

#[derive(Subcommand, Debug)]
enum AlertCmd {
    /// List open alerts (WARNING or BREACH) and whether they were acknowledged.
    #[command(after_help = "Example:\n  vigil alerts list --json")]
    List,
    /// Acknowledge an open alert (recorded in the order's audit log).
    #[command(
        after_help = "Example:\n  vigil alerts ack --order o-1 --zone home --note \"police dispatched\"\n\nThe operator recorded is the caller's identity (the IAM principal; locally VIGIL_OPERATOR)."
    )]
    Ack {
        /// The order.
        #[arg(long)]
        order: String,
        /// The zone.
        #[arg(long)]
        zone: String,
        /// A note for the record.
        #[arg(long)]
        note: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum EvidenceCmd {
    /// Export an order's audit trail: audit.json, audit.csv and manifest.json.
    #[command(after_help = "Example:\n  vigil evidence export --order o-1 --out ./o-1-evidence")]
    Export {
        /// The order.
        #[arg(long)]
        order: String,
        /// The bundle's directory (created; existing bundle files are never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Verify a bundle offline: file hashes and the hash chain; exit 4 if altered.
    #[command(after_help = "Example:\n  vigil evidence verify ./o-1-evidence")]
    Verify {
        /// The bundle's directory.
        dir: PathBuf,
    },
}

/// The AWS side, built once per run, only for commands that need it.
/// Who is making changes: the IAM principal from STS; against a local emulator
/// (`AWS_ENDPOINT_URL` set, where identities are not real) the `VIGIL_OPERATOR` stand-in.
async fn operator(sdk: &aws_config::SdkConfig) -> Result<Operator> {
    if std::env::var_os("AWS_ENDPOINT_URL").is_some() {
        return Operator::local(std::env::var("VIGIL_OPERATOR").ok().as_deref());
    }
    let who = aws_sdk_sts::Client::new(sdk)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| {
            CliError::Invalid(format!(
                "could not tell who you are (sts:GetCallerIdentity): {}; every change is recorded \
                 with the caller's identity",
                aws_sdk_sts::error::DisplayErrorContext(e)
            ))
        })?;
    who.arn()
        .map(|arn| Operator::Iam(arn.to_owned()))
        .ok_or_else(|| CliError::Invalid("sts:GetCallerIdentity returned no ARN".into()))
}

/// Records a change of a tag in the audit chain of every order that names it (a tag no order
/// names has no chain yet: its registration shows in CloudTrail and IoT's own records).
async fn record_on_orders_of(
    store: &DynamoStore,
    tag: &vigil_core::TagId,
    who: &Operator,
    change: Change,
    now_ms: i64,
) -> Result<()> {
    for (order, _) in orders::list_orders(store).await? {
        if order.tag_id == *tag {
            changes::record(
                store,
                &order.order_id,
                who,
                std::slice::from_ref(&change),
                now_ms,
            )
            .await?;
        }
    }
    Ok(())
}

async fn store() -> Result<(Config, DynamoStore, aws_config::SdkConfig)> {
    let config = Config::from_env().map_err(|e| CliError::Invalid(e.to_string()))?;
    let sdk = vigil_aws::config::sdk_config().await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), &config);
    Ok((config, store, sdk))
}

fn now_or(field: &str, text: Option<&str>) -> Result<chrono::DateTime<Utc>> {
    text.map_or_else(|| Ok(Utc::now()), |t| input::parse_instant(field, t, None))
}

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

/// The victim's phone from `--phone-file` (`-`: standard input): the first line, trimmed.
fn read_phone(path: Option<&std::path::Path>) -> Result<String> {
    let path = path.ok_or_else(|| {
        CliError::Invalid(
            "--phone-file is required without --file (a file, or - for standard input)".into(),
        )
    })?;
    let text = if path == std::path::Path::new("-") {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map_err(CliError::io(
            "reading the phone from standard input".to_owned(),
        ))?;
        line
    } else {
        std::fs::read_to_string(path)
            .map_err(CliError::io(format!("reading {}", path.display())))?
    };
    let phone = text.lines().next().unwrap_or_default().trim().to_owned();
    if phone.is_empty() {
        return Err(CliError::Invalid(format!(
            "--phone-file {}: no phone number on its first line",
            path.display()
        )));
    }
    Ok(phone)
}

fn order_spec(c: &CreateOrder) -> Result<OrderSpec> {
    if let Some(f) = &c.file {
        return input::read_spec(f);
    }
    let need = |v: &Option<String>, flag: &str| {
        v.clone().ok_or_else(|| {
            CliError::Invalid(format!(
                "{flag} is required without --file (see `vigil orders create --help`)"
            ))
        })
    };
    Ok(OrderSpec {
        order_id: need(&c.order_id, "--order-id")?,
        tag_id: need(&c.tag, "--tag")?,
        victim: VictimSpec {
            victim_id: need(&c.victim_id, "--victim-id")?,
            phone: read_phone(c.phone_file.as_deref())?,
            language: need(&c.language, "--language")?,
        },
        time_zone: c.time_zone.clone(),
        valid_from: c.valid_from.clone(),
        valid_until: c.valid_until.clone(),
        policy: OrderPolicy::default(),
        zones: vec![],
    })
}

fn zone_spec(a: &AddZone) -> Result<vigil_core::Zone> {
    if let Some(f) = &a.file {
        return input::check_zone(input::read_spec::<ZoneSpec>(f)?);
    }
    let zone_id = zones::zone_id(
        a.zone_id
            .as_deref()
            .ok_or_else(|| CliError::Invalid("--zone-id is required without --file".into()))?,
    )?;
    let order_id = orders::order_id(a.order.as_deref().ok_or_else(|| {
        CliError::Invalid("--order is required: every zone belongs to one order".into())
    })?)?;
    let shape = match (&a.circle, &a.geojson) {
        (Some(c), None) => {
            let (lat, lon, radius_m) = input::parse_circle(c)?;
            ZoneShape::Circle { lat, lon, radius_m }
        }
        (None, Some(path)) => {
            let doc: serde_json::Value = input::read_spec(path)?;
            ZoneShape::Polygon(
                input::geojson_ring(&doc)
                    .map_err(|e| CliError::Invalid(format!("{}: {e}", path.display())))?,
            )
        }
        _ => {
            return Err(CliError::Invalid(
                "give the shape: --circle LAT,LON,RADIUS_M or --geojson FILE (or --file)".into(),
            ));
        }
    };
    let kind: ZoneKind = serde_json::from_value(serde_json::Value::String(a.kind.clone()))
        .map_err(|_| {
            CliError::Invalid(format!(
                "--kind {:?} is not one of home, work, school, other",
                a.kind
            ))
        })?;
    let tz = a
        .time_zone
        .as_deref()
        .map(|t| input::parse_time_zone("--time-zone", t))
        .transpose()?;
    let valid_from = a
        .valid_from
        .as_deref()
        .map(|t| input::parse_instant("--valid-from", t, tz))
        .transpose()?;
    let valid_until = a
        .valid_until
        .as_deref()
        .map(|t| input::parse_instant("--valid-until", t, tz))
        .transpose()?;
    input::check_validity("zone", valid_from, valid_until)?;
    input::check_zone(ZoneSpec {
        zone_id,
        kind,
        shape,
        buffer_m: a.buffer,
        schedule: input::schedule(&a.schedule, a.time_zone.as_deref())?,
        valid_from,
        valid_until,
        order_id,
    })
}

async fn run(cli: Cli) -> Result<()> {
    let json = cli.json;
    let now = Utc::now();
    let now_ms = now.timestamp_millis();
    match cli.command {
        Group::Orders(cmd) => {
            let (config, store, sdk) = store().await?;
            match cmd {
                OrderCmd::Create(c) => {
                    let spec = order_spec(&c)?;
                    let who = operator(&sdk).await?;
                    let mac = Aws { config, sdk }
                        .destination_mac()
                        .map_err(|e| CliError::Invalid(e.to_string()))?;
                    let (order, zones) = orders::create_order(&store, &spec).await?;
                    let mut recorded = vec![Change::new(
                        "order_created",
                        serde_json::json!({
                            "tag_id": order.tag_id.as_str(),
                            "victim_id": order.victim.victim_id.as_str(),
                            "phone_mac": changes::phone_mac(&mac, &order.victim.phone).await?,
                            "valid_from": order.valid_from,
                            "valid_until": order.valid_until,
                        }),
                    )];
                    recorded.extend(zones.iter().map(|z| Change::zone("zone_added", z)));
                    changes::record(&store, &order.order_id, &who, &recorded, now_ms).await?;
                    render(json, &OrderView::new(&order, &zones, c.reveal, now))
                }
                OrderCmd::Show { order_id, reveal } => {
                    let (order, zones) =
                        orders::show_order(&store, &orders::order_id(&order_id)?).await?;
                    render(json, &OrderView::new(&order, &zones, reveal, now))
                }
                OrderCmd::List { reveal } => {
                    let all = orders::list_orders(&store).await?;
                    let orders = all
                        .iter()
                        .map(|(o, z)| OrderView::new(o, z, reveal, now))
                        .collect();
                    render(json, &OrderList { orders })
                }
                OrderCmd::End { order_id, at } => {
                    let at = now_or("--at", at.as_deref())?;
                    let id = orders::order_id(&order_id)?;
                    let who = operator(&sdk).await?;
                    orders::end_order(&store, &id, at).await?;
                    let change =
                        Change::new("order_ended", serde_json::json!({ "valid_until": at }));
                    changes::record(&store, &id, &who, &[change], now_ms).await?;
                    let (order, zones) = orders::show_order(&store, &id).await?;
                    render(json, &OrderView::new(&order, &zones, false, now))
                }
            }
        }
        Group::Zones(cmd) => {
            let (_, store, sdk) = store().await?;
            match cmd {
                ZoneCmd::Add(a) => {
                    let zone = zone_spec(&a)?;
                    let who = operator(&sdk).await?;
                    let replaced = zones::add_zone(&store, &zone, a.replace).await?;
                    let action = if replaced {
                        "zone_replaced"
                    } else {
                        "zone_added"
                    };
                    let change = Change::zone(action, &zone);
                    changes::record(&store, zone.order_id(), &who, &[change], now_ms).await?;
                    render(json, &ZoneView::new(&zone, now))
                }
                ZoneCmd::List { order } => {
                    let order = order.as_deref().map(orders::order_id).transpose()?;
                    let list = zones::list_zones(&store, order.as_ref()).await?;
                    render(
                        json,
                        &ZoneList {
                            zones: list.iter().map(|z| ZoneView::new(z, now)).collect(),
                        },
                    )
                }
                ZoneCmd::Remove { order, zone_id } => {
                    let id = vigil_core::ZoneKey::new(
                        orders::order_id(&order)?,
                        zones::zone_id(&zone_id)?,
                    );
                    let who = operator(&sdk).await?;
                    zones::remove_zone(&store, &id).await?;
                    let change = Change::new(
                        "zone_removed",
                        serde_json::json!({ "zone_id": id.zone_id.as_str() }),
                    );
                    changes::record(&store, &id.order_id, &who, &[change], now_ms).await?;
                    render(
                        json,
                        &Done {
                            message: format!("zone {id} removed with all its cell entries"),
                        },
                    )
                }
                ZoneCmd::PruneExpired { now: at } => {
                    let at = now_or("--now", at.as_deref())?;
                    let who = operator(&sdk).await?;
                    let removed = zones::prune_expired(&store, at).await?;
                    for key in &removed {
                        let change = Change::new(
                            "zone_pruned",
                            serde_json::json!({ "zone_id": key.zone_id.as_str(), "expired_by": at }),
                        );
                        changes::record(&store, &key.order_id, &who, &[change], now_ms).await?;
                    }
                    let ids: Vec<String> = removed.iter().map(|z| z.to_string()).collect();
                    render(
                        json,
                        &Done {
                            message: if ids.is_empty() {
                                "no expired zones".into()
                            } else {
                                format!("removed {} expired zone(s): {}", ids.len(), ids.join(", "))
                            },
                        },
                    )
                }
            }
        }
        Group::Tags(TagCmd::Register {
            tag_id,
            csr,
            out_dir,
        }) => {
            let tag = orders::tag_id(&tag_id)?;
            // Checked before anything else: a CSR for another tag, or one that does not verify,
            // changes nothing.
            let csr = TagCsr::read(&csr, &tag)?;
            let (config, store, sdk) = store().await?;
            let registry = tags::IotRegistry::new(aws_sdk_iot::Client::new(&sdk));
            let who = operator(&sdk).await?;
            let r = tags::register_tag(&registry, &tag, &config.name(TAG_POLICY), &csr, &out_dir)
                .await?;
            let change = Change::new(
                "tag_registered",
                serde_json::json!({ "tag_id": tag.as_str(), "certificate_id": r.certificate_id }),
            );
            record_on_orders_of(&store, &tag, &who, change, now_ms).await?;
            render(json, &r)
        }
        Group::Tags(TagCmd::Csr {
            tag_id,
            key_out,
            csr_out,
        }) => {
            let tag = orders::tag_id(&tag_id)?;
            render(json, &make_tag_csr(&tag, &key_out, &csr_out)?)
        }
        Group::Tags(TagCmd::Deactivate { tag_id }) => {
            let tag = orders::tag_id(&tag_id)?;
            let (_, store, sdk) = store().await?;
            let registry = tags::IotRegistry::new(aws_sdk_iot::Client::new(&sdk));
            let who = operator(&sdk).await?;
            let d = tags::deactivate_tag(&registry, &tag).await?;
            let change = Change::new(
                "tag_deactivated",
                serde_json::json!({ "tag_id": tag.as_str() }),
            );
            record_on_orders_of(&store, &tag, &who, change, now_ms).await?;
            render(json, &d)
        }
        Group::Tags(TagCmd::Assign { tag_id, order }) => {
            let (tag, order) = (orders::tag_id(&tag_id)?, orders::order_id(&order)?);
            let (_, store, sdk) = store().await?;
            let who = operator(&sdk).await?;
            let previous = orders::assign_tag(&store, &tag, &order).await?;
            let change = Change::new(
                "tag_assigned",
                serde_json::json!({ "from": previous.as_str(), "to": tag.as_str() }),
            );
            changes::record(&store, &order, &who, &[change], now_ms).await?;
            render(
                json,
                &Done {
                    message: if previous == tag {
                        format!("order {order} already on tag {tag}")
                    } else {
                        format!("order {order} moved from tag {previous} to tag {tag}")
                    },
                },
            )
        }
        Group::Alerts(cmd) => {
            let (_, store, sdk) = store().await?;
            match cmd {
                AlertCmd::List => {
                    let alerts = alerts::list_alerts(&store).await?;
                    render(json, &alerts::AlertList { alerts })
                }
                AlertCmd::Ack { order, zone, note } => {
                    let who = operator(&sdk).await?;
                    let a = alerts::acknowledge(
                        &store,
                        &orders::order_id(&order)?,
                        &zones::zone_id(&zone)?,
                        &who.label(),
                        note.as_deref(),
                        now.timestamp_millis(),
                    )
                    .await?;
                    render(json, &a)
                }
            }
        }
        Group::Evidence(EvidenceCmd::Export { order, out }) => {
            let (_, store, _) = store().await?;
            let manifest = evidence::export(&store, &orders::order_id(&order)?, &out, now).await?;
            render(
                json,
                &evidence::Exported {
                    dir: out.display().to_string(),
                    manifest,
                },
            )
        }
        Group::Evidence(EvidenceCmd::Verify { dir }) => {
            let v = evidence::verify(&dir)?;
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

/// For an AWS endpoint that could not be reached: which one was tried, and how to start the
/// local one.
fn unreachable_hint(e: &CliError) -> Option<String> {
    let text = e.to_string();
    let unreachable = e.is_retryable()
        && ["dispatch failure", "connect", "timed out", "timeout"]
            .iter()
            .any(|w| text.contains(w));
    if !unreachable {
        return None;
    }
    // DynamoDB has its own endpoint when the stack runs DynamoDB Local: name both.
    let dynamodb = std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
        .ok()
        .filter(|d| !d.is_empty() && std::env::var("AWS_ENDPOINT_URL").ok().as_ref() != Some(d))
        .map(|d| format!(" (DynamoDB: AWS_ENDPOINT_URL_DYNAMODB={d})"))
        .unwrap_or_default();
    Some(match std::env::var("AWS_ENDPOINT_URL") {
        Ok(url) if !url.is_empty() => format!(
            "vigil: nothing answered at AWS_ENDPOINT_URL={url}{dynamodb}. For the local stack, start the \
             emulator (`cargo run -p vigil-local -- up`, or `vigil-stack up` for the whole \
             pipeline) and load its environment: `set -a; . .local/emulator.env; set +a` \
             (or `.local/mqtt.env`)."
        ),
        _ => format!(
            "vigil: AWS_ENDPOINT_URL is not set, so AWS itself was tried (region {}). For the \
             local stack, start the emulator (`cargo run -p vigil-local -- up`) and load its \
             environment: `set -a; . .local/emulator.env; set +a`.",
            std::env::var("AWS_REGION")
                .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|_| "not set".to_owned())
        ),
    })
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let json = cli.json;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = runtime.block_on(run(cli)) {
        if json {
            let body = serde_json::json!({"error": {
                "exit_code": e.exit_code(),
                "kind": e.kind(),
                "retryable": e.is_retryable(),
                "message": e.to_string(),
            }});
            eprintln!("{body}");
        } else {
            eprintln!("vigil: {e}");
            if let Some(hint) = unreachable_hint(&e) {
                eprintln!("{hint}");
            }
        }
        std::process::exit(e.exit_code());
    }
}
