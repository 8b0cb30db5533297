//! `vigil`: parses the command line, runs the command (the library's [`vigil_cli::commands`])
//! and prints an error with its exit code.

use clap::Parser;
use vigil_cli::args::Cli;

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
    if let Err(e) = runtime.block_on(vigil_cli::commands::run(cli)) {
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
            if let Some(hint) = e.unreachable_hint() {
                eprintln!("{hint}");
            }
        }
        std::process::exit(e.exit_code());
    }
}
