//! What the command line accepts: every command, flag and its help, with clap. Turning the
//! flags into vigil-admin's typed input is `input`'s; running a command is `commands`'.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

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
  5  conflict: the change would replace something that exists (nothing was changed)
  6  refused: the record is not of your force, or the action is national administrators'
     alone (nothing was shown or changed; docs/FORCES.md)

Who you are: in AWS the role you assumed (vigil-<stage>-operator-<force>, or
vigil-<stage>-national); against a local emulator VIGIL_OPERATOR and VIGIL_FORCE (a force's id,
or national) stand in for it. Every command says on standard error whom it acts for.

Configuration (the same as the functions): VIGIL_STAGE (default local) picks the resources
vigil-<stage>-*; AWS_ENDPOINT_URL points every client at an emulator (unset: AWS), and
AWS_ENDPOINT_URL_DYNAMODB DynamoDB alone (DynamoDB Local, as the local stack's env file says);
AWS_REGION / AWS_PROFILE / AWS_ACCESS_KEY_ID... as for any AWS tool. Every change is recorded
with the caller's identity (the IAM principal; against an emulator, VIGIL_OPERATOR stands in
for it). Output is for people by default; --json prints one
JSON document on stdout (errors: a JSON object on stderr). See docs/CLI.md.";

/// Vigil's operator CLI: orders, zones, tags, alerts and evidence.
#[derive(Parser, Debug)]
#[command(name = "vigil", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// Print results as JSON for scripts.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub(crate) command: Group,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Group {
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
    /// Victims' own devices (a moving zone around her): register from a CSR, assign to an order.
    #[command(
        subcommand,
        after_help = "Example:\n  vigil devices register phone-v1 --order o-1 --csr phone-v1.csr.pem --out-dir ./creds"
    )]
    Devices(DeviceCmd),
    /// Open alerts and acknowledgements.
    #[command(
        subcommand,
        after_help = "Example:\n  vigil alerts list\n  vigil alerts ack --order o-1 --zone home --note \"called victim\""
    )]
    Alerts(AlertCmd),
    /// Evidence bundles of an order's audit trail.
    #[command(
        subcommand,
        after_help = "Example:\n  vigil evidence export --order o-1 --out ./o-1-evidence\n  vigil evidence public-key --out evidence-key.pem\n  vigil evidence verify ./o-1-evidence --public-key evidence-key.pem"
    )]
    Evidence(EvidenceCmd),
    /// Dead-letter queues: what could not be processed; inspect and redrive (national
    /// administrators only: they hold messages of every force).
    #[command(
        subcommand,
        after_help = "Example:\n  vigil dlq list\n  vigil dlq redrive --queue alerts-dlq"
    )]
    Dlq(crate::dlq::DlqCmd),
    /// Deployment-wide administration (national administrators only).
    #[command(
        subcommand,
        after_help = "Example:\n  vigil admin migrate-forces --force met"
    )]
    Admin(AdminCmd),
}

#[derive(Subcommand, Debug)]
pub(crate) enum AdminCmd {
    /// Give every order, tag and victim's device written before forces existed a force (the
    /// deployment's default unless --force names one). Idempotent: a second run changes nothing.
    #[command(
        after_help = "Example:\n  vigil admin migrate-forces\n  vigil admin migrate-forces --force met"
    )]
    MigrateForces {
        /// The force to give them (default: the deployment's default force).
        #[arg(long)]
        force: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum OrderCmd {
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
    /// Move a case to another force (the offender moved): the tag, every order on it and the
    /// victims' devices, audited in each order's chain (national administrators only).
    #[command(after_help = "Example:\n  vigil orders transfer --order o-1 --to tvp")]
    Transfer {
        /// The order id.
        #[arg(long)]
        order: String,
        /// The force it moves to.
        #[arg(long)]
        to: String,
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
pub(crate) struct CreateOrder {
    /// The force the order is for: a national administrator must name it; a force's operator
    /// creates for their own force (naming another is refused).
    #[arg(long)]
    pub(crate) force: Option<String>,
    /// Order file, JSON or YAML (.yaml/.yml).
    #[arg(long, conflicts_with_all = ["order_id", "tag", "victim_id", "phone_file", "language"])]
    pub(crate) file: Option<PathBuf>,
    /// Order id.
    #[arg(long)]
    pub(crate) order_id: Option<String>,
    /// The offender's tag id.
    #[arg(long)]
    pub(crate) tag: Option<String>,
    /// The victim's id.
    #[arg(long)]
    pub(crate) victim_id: Option<String>,
    /// A file whose first line is the victim's phone, E.164 (e.g. +447700900123); `-` reads
    /// it from standard input. Never on the command line, where `ps`, shell history and CI
    /// logs would keep it.
    #[arg(long, value_name = "PATH")]
    pub(crate) phone_file: Option<PathBuf>,
    /// The victim's language: en, es, fr or de (default: the force's).
    #[arg(long)]
    pub(crate) language: Option<String>,
    /// IANA time zone for local dates (e.g. Europe/London).
    #[arg(long)]
    pub(crate) time_zone: Option<String>,
    /// In force from (RFC 3339, or a local date with --time-zone).
    #[arg(long)]
    pub(crate) valid_from: Option<String>,
    /// In force until (RFC 3339, or a local date with --time-zone).
    #[arg(long)]
    pub(crate) valid_until: Option<String>,
    /// Show the victim's full phone number in the output.
    #[arg(long)]
    pub(crate) reveal: bool,
}

#[derive(Subcommand, Debug)]
pub(crate) enum ZoneCmd {
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
pub(crate) struct AddZone {
    /// Zone file (JSON or YAML, Vigil's zone format, with its `order_id`); other shape flags
    /// are then not allowed.
    #[arg(long, conflicts_with_all = ["circle", "geojson", "zone_id", "order"])]
    pub(crate) file: Option<PathBuf>,
    /// Zone id, unique within its order.
    #[arg(long)]
    pub(crate) zone_id: Option<String>,
    /// The order the zone belongs to.
    #[arg(long)]
    pub(crate) order: Option<String>,
    /// Replace the order's existing zone of this id (without it, an existing id is refused).
    #[arg(long)]
    pub(crate) replace: bool,
    /// Circle: LAT,LON,RADIUS_M.
    #[arg(long, conflicts_with = "geojson")]
    pub(crate) circle: Option<String>,
    /// Polygon from a GeoJSON file (Polygon, Feature or a one-feature FeatureCollection).
    #[arg(long)]
    pub(crate) geojson: Option<PathBuf>,
    /// Warning buffer around the shape, metres.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) buffer: f64,
    /// What it protects: home, work, school, other.
    #[arg(long, default_value = "other")]
    pub(crate) kind: String,
    /// Weekly window "DAYS HH:MM-HH:MM" (repeatable), e.g. "mon-fri 08:00-18:00".
    #[arg(long)]
    pub(crate) schedule: Vec<String>,
    /// IANA time zone of the schedule and of local dates.
    #[arg(long)]
    pub(crate) time_zone: Option<String>,
    /// In force from (RFC 3339 or local date).
    #[arg(long)]
    pub(crate) valid_from: Option<String>,
    /// In force until (RFC 3339 or local date).
    #[arg(long)]
    pub(crate) valid_until: Option<String>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum TagCmd {
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
        /// The force the tag is registered to: a national administrator must name it; a
        /// force's operator registers to their own force.
        #[arg(long)]
        force: Option<String>,
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
    /// The tag's rejected messages kept in quarantine (reason, detail, payload), oldest first.
    /// A message from an unknown tag belongs to no force: national administrators only.
    #[command(
        after_help = "Example:\n  vigil tags quarantined tag-0042\n  vigil tags quarantined device:phone-v1"
    )]
    Quarantined {
        /// The tag id as the topic named it, or device:<id> for a victim's device.
        key: String,
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

/// The moving zone around her device (docs/PROXIMITY.md); defaults as the issue sets them.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct MovingZoneArgs {
    /// Radius of the circle around her, metres (50 to 5000).
    #[arg(long, default_value_t = 500.0)]
    pub(crate) radius_m: f64,
    /// Warning buffer around the circle, metres (0 to 10000).
    #[arg(long, default_value_t = 1000.0)]
    pub(crate) buffer_m: f64,
    /// A position older than this (server time) stops counting, seconds (30 to 3600).
    #[arg(long, default_value_t = 300)]
    pub(crate) max_position_age_s: u64,
    /// Her position and his fix are compared only this close in time, seconds.
    #[arg(long, default_value_t = 120)]
    pub(crate) pair_window_s: u64,
}

#[derive(Subcommand, Debug)]
pub(crate) enum DeviceCmd {
    /// Register her device in AWS IoT from the CSR it made (the victim-device policy: its own
    /// positions and commands only) and give the order her device and its moving zone.
    #[command(
        after_help = "Example:\n  vigil devices register phone-v1 --order o-1 --csr phone-v1.csr.pem --out-dir ./creds --radius-m 500\n\nThe order is checked first. The CSR is made on the device (for a simulated one: `vigil tags\ncsr`, any thing name). Creates the thing, has IoT sign the CSR, attaches vigil-<stage>-victim-device\nand the thing principal, writes <device>.cert.pem, activates it last, then sets the order's\nvictim_device (audited). A failure in IoT undoes every IoT step."
    )]
    Register {
        /// The device id (the IoT thing name; the CSR's subject CN).
        device_id: String,
        /// The order whose victim carries it.
        #[arg(long)]
        order: String,
        /// The device's certificate signing request, PEM (PKCS#10).
        #[arg(long)]
        csr: PathBuf,
        /// Where to write the certificate (created 0700 if missing).
        #[arg(long, default_value = ".")]
        out_dir: PathBuf,
        #[command(flatten)]
        zone: MovingZoneArgs,
    },
    /// Give an order a device registered already (another order of the same victim), or new
    /// moving-zone settings.
    #[command(after_help = "Example:\n  vigil devices assign phone-v1 --order o-2 --buffer-m 1500")]
    Assign {
        /// The device id.
        device_id: String,
        /// The order whose victim carries it.
        #[arg(long)]
        order: String,
        #[command(flatten)]
        zone: MovingZoneArgs,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum AlertCmd {
    /// List open alerts (WARNING or BREACH) and whether they were acknowledged.
    #[command(after_help = "Example:\n  vigil alerts list --json")]
    List,
    /// Urgent alerts of an order that nobody acknowledged: they are sent again to operators
    /// (`unacknowledged`) until someone does.
    #[command(after_help = "Example:\n  vigil alerts unacked --order o-1")]
    Unacked {
        /// The order.
        #[arg(long)]
        order: String,
    },
    /// Acknowledge, in the order's audit log: the open alert of a zone (--zone), one operator
    /// event (--event, its event_id), or every urgent alert of the order so far (neither).
    /// Stops their escalation.
    #[command(
        after_help = "Example:\n  vigil alerts ack --order o-1 --zone home --note \"police dispatched\"\n  vigil alerts ack --order o-1 --event te:o-1:tag-1:7:1f0c --note \"strap checked\"\n  vigil alerts ack --order o-1 --note \"victim called, safe\"\n\nThe operator recorded is the caller's identity (the IAM principal; locally VIGIL_OPERATOR)."
    )]
    Ack {
        /// The order.
        #[arg(long)]
        order: String,
        /// The zone whose open alert is acknowledged.
        #[arg(long, conflicts_with = "event")]
        zone: Option<String>,
        /// The operator event acknowledged (its `event_id`, or that of an `unacknowledged`
        /// notice about it).
        #[arg(long)]
        event: Option<String>,
        /// A note for the record.
        #[arg(long)]
        note: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum EvidenceCmd {
    /// Export an order's audit trail: audit.json, audit.csv, its anchors (anchors.json) and
    /// manifest.json, signed by the evidence key (signature.json).
    #[command(after_help = "Example:\n  vigil evidence export --order o-1 --out ./o-1-evidence")]
    Export {
        /// The order.
        #[arg(long)]
        order: String,
        /// The bundle's directory (created; existing bundle files are never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Verify a bundle offline with the evidence key's public key: the manifest's signature,
    /// the file hashes, the hash chain, and the chain against its anchors; exit 4 if altered.
    #[command(
        after_help = "Example:\n  vigil evidence verify ./o-1-evidence --public-key evidence-key.pem"
    )]
    Verify {
        /// The bundle's directory.
        dir: PathBuf,
        /// The evidence key's public key (PEM or DER), as `vigil evidence public-key` wrote
        /// it: from a copy you trust, never from the bundle.
        #[arg(long)]
        public_key: PathBuf,
    },
    /// Write the evidence key's public key (PEM), which verifies bundles offline.
    #[command(after_help = "Example:\n  vigil evidence public-key --out evidence-key.pem")]
    PublicKey {
        /// The file to write (never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
