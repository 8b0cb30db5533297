//! `vigil-mqtt pki`: makes the local CA, the broker's certificate and tags' client
//! certificates. The whole local stack (broker, bridge, functions, emulator) is
//! `vigil-stack up`. See docs/MQTT.md.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use vigil_mqtt::pki::Pki;

/// The local MQTT certificates.
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
}

fn main() -> std::process::ExitCode {
    let Command::Pki { dir, clients } = Args::parse().command;
    match pki(dir, &clients) {
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
