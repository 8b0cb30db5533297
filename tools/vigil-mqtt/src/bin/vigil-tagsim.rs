//! `vigil-tagsim`: simulated GPS tags over MQTT with mutual TLS, against the local broker
//! (`vigil-stack up`) or AWS IoT Core. See docs/MQTT.md.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use vigil_mqtt::Endpoint;
use vigil_mqtt::pki::{CertPair, Pki};
use vigil_mqtt::tagsim::{self, Route, SimConfig};

/// Simulated GPS tags: publish fixes and events (QoS 1), obey report-interval commands.
#[derive(Debug, Parser)]
#[command(name = "vigil-tagsim", version)]
struct Args {
    /// Broker host: the local broker (127.0.0.1) or IoT Core's data endpoint
    /// (`<prefix>-ats.iot.<region>.amazonaws.com`).
    #[arg(long, env = "VIGIL_MQTT_HOST", default_value = "127.0.0.1")]
    host: String,
    /// Broker port: the local broker's (printed by `vigil-stack up`), or 8883 / 443 for IoT Core.
    #[arg(long, env = "VIGIL_MQTT_PORT")]
    port: u16,
    /// CA of the broker's certificate (IoT Core: AmazonRootCA1.pem). Default: the local CA.
    #[arg(long, env = "VIGIL_MQTT_CA")]
    ca: Option<PathBuf>,
    /// Directory of per-tag credentials: `<tag>.cert.pem` (as `vigil tags register` writes it)
    /// or `<tag>.pem`, and `<tag>.key` or `<tag>.private.key`. Default: the local PKI, which
    /// issues missing tag certificates.
    #[arg(long)]
    cert_dir: Option<PathBuf>,
    /// One certificate for a single tag (with --key); IoT Core ties it to that thing name.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// The private key for --cert.
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Local PKI directory.
    #[arg(long, default_value_os_t = Pki::default_dir())]
    pki_dir: PathBuf,
    /// Tag ids (repeat); default: --count tags named `<prefix>0001`, ...
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// How many tags when no --tag is given.
    #[arg(long, default_value_t = 1)]
    count: usize,
    /// Name prefix of generated tag ids.
    #[arg(long, default_value = "sim-")]
    prefix: String,
    /// Centre of the random walk, latitude.
    #[arg(long, default_value_t = 51.5074, allow_negative_numbers = true)]
    lat: f64,
    /// Centre of the random walk, longitude.
    #[arg(long, default_value_t = -0.1278, allow_negative_numbers = true)]
    lon: f64,
    /// Radius of the random walk, metres.
    #[arg(long, default_value_t = 2000.0)]
    radius_m: f64,
    /// Walking speed, m/s.
    #[arg(long, default_value_t = 1.4)]
    speed_mps: f64,
    /// Follow a track instead: one `lat,lon` per line.
    #[arg(long)]
    track: Option<PathBuf>,
    /// Seconds between fixes until a command changes it.
    #[arg(long, default_value_t = 60.0)]
    interval_s: f64,
    /// Fixes per tag, then stop.
    #[arg(long)]
    fixes: Option<u64>,
    /// Stop after this many seconds in any case.
    #[arg(long, default_value_t = 300)]
    duration_s: u64,
    /// Reported accuracy, metres.
    #[arg(long, default_value_t = 8.0)]
    accuracy_m: f64,
    /// Do not publish tag events (power_on, battery_low).
    #[arg(long)]
    no_events: bool,
    /// Seed of the random walks.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Publish on the ingest rule's Basic Ingest topics, `$aws/rules/<RULE>/tags/<tag>/fix`, as
    /// deployed tags do: the rule's name, `vigil_<stage>_ingest` (`vigil-stack up` prints the
    /// local one; DEPLOY.md the deployed). Default: the plain topics.
    #[arg(long, value_name = "RULE", env = "VIGIL_BASIC_INGEST_RULE")]
    basic_ingest: Option<String>,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colour for a terminal only: a log file gets plain text (issue 11.9).
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    match run(args) {
        Ok(summary) => {
            println!("{summary}");
            if summary.errors == 0 && summary.acked == summary.published() {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("vigil-tagsim: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> Result<tagsim::Summary, String> {
    let tags: Vec<String> = if args.tags.is_empty() {
        (1..=args.count)
            .map(|i| format!("{}{i:04}", args.prefix))
            .collect()
    } else {
        args.tags.clone()
    };
    let route = match &args.track {
        Some(path) => Route::track_file(path)?,
        None => Route::Walk {
            lat: args.lat,
            lon: args.lon,
            radius_m: args.radius_m,
            speed_mps: args.speed_mps,
        },
    };
    let local = if args.ca.is_none() || (args.cert.is_none() && args.cert_dir.is_none()) {
        Some(Pki::ensure(&args.pki_dir).map_err(|e| e.to_string())?)
    } else {
        None
    };
    let ca = match (&args.ca, &local) {
        (Some(ca), _) => ca.clone(),
        (None, Some(pki)) => pki.ca().cert,
        (None, None) => unreachable!("the local PKI is opened when no CA is given"),
    };
    let identity: tagsim::IdentityFn = match (&args.cert, &args.key, &args.cert_dir, local) {
        (Some(cert), Some(key), _, _) => {
            if tags.len() != 1 {
                return Err("--cert/--key identify one tag: give exactly one --tag".into());
            }
            let pair = CertPair {
                cert: cert.clone(),
                key: key.clone(),
            };
            Arc::new(move |_| Ok(pair.clone()))
        }
        (_, _, Some(dir), _) => {
            let dir = dir.clone();
            Arc::new(move |tag| tagsim::cert_in_dir(&dir, tag))
        }
        (_, _, None, Some(pki)) => Arc::new(move |tag| pki.client(tag)),
        _ => return Err("give --cert/--key, --cert-dir, or use the local PKI".into()),
    };
    if !(0.05..=86_400.0).contains(&args.interval_s) {
        return Err(format!(
            "--interval-s {} is outside [0.05, 86400]",
            args.interval_s
        ));
    }
    let config = SimConfig {
        endpoint: Endpoint {
            host: args.host,
            port: args.port,
            ca,
        },
        tags,
        identity,
        route,
        report_interval: Duration::from_secs_f64(args.interval_s),
        max_fixes_per_tag: args.fixes,
        duration: Duration::from_secs(args.duration_s),
        accuracy_m: args.accuracy_m,
        events: !args.no_events,
        seed: args.seed,
        progress: !args.quiet,
        basic_ingest_rule: args.basic_ingest.clone(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))?;
    Ok(runtime.block_on(tagsim::run(config)))
}
