//! `vigil-mqtt`: the local MQTT stack. `pki` makes the local CA and certificates; `up` runs the
//! mTLS broker and the IoT rule bridge against the AWS emulator until Ctrl-C. See docs/MQTT.md.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use vigil_aws::metrics::MemoryMetrics;
use vigil_aws::{Config, DynamoStore, SqsQueue};
use vigil_core::{BreachRules, ValidationLimits};
use vigil_local::Emulator;
use vigil_mqtt::bridge::{Bridge, default_rules_dir, load_rules};
use vigil_mqtt::pki::{BRIDGE_CLIENT_ID, Pki};
use vigil_mqtt::{HttpLambda, InProcessLambda, LocalBroker, RuleAction, RuleTargets, WallClock};

/// The local MQTT stack: certificates, broker and IoT rule bridge.
#[derive(Debug, Parser)]
#[command(name = "vigil-mqtt", version)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the local CA and server certificate (kept if present) and client certificates.
    Pki {
        /// PKI directory.
        #[arg(long, default_value_os_t = Pki::default_dir())]
        dir: PathBuf,
        /// Issue a client certificate for this tag id (repeat).
        #[arg(long = "client")]
        clients: Vec<String>,
    },
    /// Run the broker and the bridge until Ctrl-C; write `.local/mqtt.env`.
    Up {
        /// Use this running emulator (moto or LocalStack) instead of starting moto.
        #[arg(long, env = "AWS_ENDPOINT_URL")]
        endpoint_url: Option<String>,
        /// Stage of the resources.
        #[arg(long, default_value = "local")]
        stage: String,
        /// Invoke the ingest function through the Lambda Invoke API at this URL (e.g.
        /// `cargo lambda watch`'s http://127.0.0.1:9000) instead of in-process.
        #[arg(long)]
        lambda_url: Option<String>,
        /// Rule SQL directory.
        #[arg(long, default_value_os_t = default_rules_dir())]
        rules: PathBuf,
        /// PKI directory (the CA the broker trusts and the bridge's certificate).
        #[arg(long, default_value_os_t = Pki::default_dir())]
        pki: PathBuf,
        /// Where to write the stack's environment (removed again when `up` stops).
        #[arg(long, default_value_os_t = vigil_local::local_dir().join("mqtt.env"))]
        env_file: PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // rumqttd logs ERROR for a client that simply disconnects; the broker's front
                // logs what matters (refused handshakes, policy refusals) itself.
                .unwrap_or_else(|_| "info,rumqttd=off".into()),
        )
        .with_writer(std::io::stderr)
        // Colour for a terminal only: a log file gets plain text (issue 11.9).
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match Args::parse().command {
        Command::Pki { dir, clients } => pki(dir, &clients),
        Command::Up {
            endpoint_url,
            stage,
            lambda_url,
            rules,
            pki,
            env_file,
        } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
            .and_then(|rt| {
                rt.block_on(up(Up {
                    endpoint_url,
                    stage,
                    lambda_url,
                    rules_dir: rules,
                    pki_dir: pki,
                    env_file,
                }))
            }),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vigil-mqtt: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn pki(dir: PathBuf, clients: &[String]) -> Result<(), String> {
    let pki = Pki::ensure(dir).map_err(|e| e.to_string())?;
    println!("CA      {}", pki.ca().cert.display());
    println!("server  {}", pki.server().cert.display());
    for id in clients {
        let pair = pki.client(id).map_err(|e| e.to_string())?;
        println!("client  {} ({})", pair.cert.display(), pair.key.display());
    }
    Ok(())
}

/// What `up` runs with.
struct Up {
    endpoint_url: Option<String>,
    stage: String,
    lambda_url: Option<String>,
    rules_dir: PathBuf,
    pki_dir: PathBuf,
    env_file: PathBuf,
}

async fn up(args: Up) -> Result<(), String> {
    let Up {
        endpoint_url,
        stage,
        lambda_url,
        rules_dir,
        pki_dir,
        env_file,
    } = args;
    let stage = stage.as_str();
    let rules = load_rules(&rules_dir).map_err(|e| e.to_string())?;
    let emulator = match &endpoint_url {
        Some(url) => Emulator::connect(url, stage).await,
        None => Emulator::start_with_stage(stage).await,
    }
    .map_err(|e| e.to_string())?;
    let env: BTreeMap<String, String> = emulator.env_vars().into_iter().collect();
    let sdk = emulator.sdk_config();
    let ingest: Arc<dyn RuleAction> = match &lambda_url {
        Some(url) => Arc::new(HttpLambda::new(url, "ingest")),
        None => {
            let config = Config::from_lookup(|k| env.get(k).cloned()).map_err(|e| e.to_string())?;
            let queue_url = config.alerts_queue_url().map_err(|e| e.to_string())?;
            Arc::new(InProcessLambda::ingest(Arc::new(vigil_ingest::Ports {
                store: DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), &config),
                queue: SqsQueue::new(aws_sdk_sqs::Client::new(&sdk), queue_url.to_owned()),
                metrics: MemoryMetrics::default(),
                limits: ValidationLimits::default(),
                rules: BreachRules::default(),
            })))
        }
    };
    let actions = RuleTargets::default().build(
        |f| (f == "ingest").then(|| ingest.clone()),
        &aws_sdk_dynamodb::Client::new(&sdk),
        |t| emulator.table_name(t).ok().map(str::to_owned),
    )?;
    let broker =
        LocalBroker::start_for_stage(&Pki::ensure(pki_dir).map_err(|e| e.to_string())?, stage)
            .map_err(|e| e.to_string())?;
    let identity = broker
        .pki()
        .client(BRIDGE_CLIENT_ID)
        .map_err(|e| e.to_string())?;
    let bridge = Bridge::start(
        &broker.endpoint(),
        &identity,
        rules,
        actions,
        Arc::new(WallClock),
    )
    .await
    .map_err(|e| e.to_string())?;

    // The alert function, as Lambda's SQS event source runs it: drains the alert queue and
    // texts through the emulator's SNS (issue 11.5: without it `up` queued alerts and never
    // sent an SMS).
    let alert = tokio::spawn(run_alert_function(
        env.clone(),
        sdk.clone(),
        emulator.region().to_owned(),
    ));

    // `localhost`, not 127.0.0.1: OpenSSL clients (mosquitto_pub) send an IP as SNI, which the
    // broker's TLS stack refuses; the server certificate names localhost (issue 11.6).
    let mut text = format!(
        "VIGIL_MQTT_HOST=localhost\nVIGIL_MQTT_PORT={}\nVIGIL_MQTT_CA={}\n",
        broker.port(),
        broker.pki().ca().cert.display()
    );
    for (k, v) in &env {
        text.push_str(&format!("{k}={v}\n"));
    }
    std::fs::write(&env_file, text).map_err(|e| format!("{}: {e}", env_file.display()))?;
    println!(
        "broker  mqtts://127.0.0.1:{} (client certificates from {})",
        broker.port(),
        broker.pki().ca().cert.display()
    );
    println!(
        "AWS     {} (stage {})",
        emulator.endpoint_url(),
        emulator.stage()
    );
    println!("ingest  {}", lambda_url.as_deref().unwrap_or("in-process"));
    println!("alert   in-process, draining the alert queue");
    println!(
        "env     {}  (source it, then run vigil-tagsim)",
        env_file.display()
    );

    let mut tick = tokio::time::interval(Duration::from_secs(10));
    let mut last = BTreeMap::new();
    // Ctrl-C and SIGTERM stop the same way: the bridge, the alert function, the emulator,
    // and the env file (which would otherwise point at ports nothing listens on).
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("SIGTERM handler: {e}"))?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = tick.tick() => {
                let stats = bridge.stats();
                if stats != last {
                    for (rule, s) in &stats {
                        println!(
                            "rule {rule}: received {}, filtered {}, ok {}, errors {}",
                            s.received, s.filtered, s.action_ok, s.errors()
                        );
                    }
                    last = stats;
                }
            }
        }
    }
    bridge.stop().await;
    alert.abort();
    let _ = std::fs::remove_file(&env_file);
    drop(emulator);
    Ok(())
}

/// The alert function over the emulator, fed as Lambda's SQS event source feeds it: batches
/// of up to 10, long polling, partial batch failures returned to the queue.
async fn run_alert_function(
    env: BTreeMap<String, String>,
    sdk: aws_config::SdkConfig,
    region: String,
) -> Result<(), String> {
    let config = Config::from_lookup(|k| env.get(k).cloned()).map_err(|e| e.to_string())?;
    let aws = vigil_aws::Aws {
        config: config.clone(),
        sdk,
    };
    let ports = vigil_alert::Ports {
        store: aws.store(),
        notifier: aws.notifier().map_err(|e| e.to_string())?,
        destination_mac: aws.destination_mac().map_err(|e| e.to_string())?,
        metrics: MemoryMetrics::default(),
        sms_countries: config.sms_countries.clone(),
    };
    let queue_url = config.alerts_queue_url().map_err(|e| e.to_string())?;
    let source = vigil_local::SqsEventSource::new(
        aws_sdk_sqs::Client::new(&aws.sdk),
        queue_url.to_owned(),
        region,
    );
    loop {
        let batch = match source.receive(10, 5).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "alert queue unreadable; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if batch.is_empty() {
            continue;
        }
        let Ok(event) = serde_json::from_value(batch.event.clone()) else {
            tracing::error!("an SQS batch that is not an SQS event");
            continue;
        };
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let response = vigil_alert::handle_batch(event, &ports, now_ms).await;
        let response = serde_json::to_value(&response).expect("a batch response is JSON");
        if let Err(e) = source.complete(&batch, &response).await {
            tracing::warn!(error = %e, "completing an alert batch");
        }
    }
}
