//! `vigil-sim`: runs scenario files and the narrated demo. The work is in the library.

use clap::{Parser, Subcommand, ValueEnum};
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use vigil_sim::runner::{
    EXIT_FAILED, EXIT_INVALID, EXIT_PASSED, RunOptions, run_files, scenario_files,
};
use vigil_sim::{InProcessExecutor, ScenarioExecutor, compare, demo, svg};

/// Vigil's scenario runner.
#[derive(Debug, Parser)]
#[command(name = "vigil-sim", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run scenario files (or folders of them) and compare what happens with what they expect.
    ///
    /// Exit status: 0 when every scenario passes, 1 when an expectation fails, 2 when a file
    /// cannot be read or is not a valid scenario.
    Run {
        /// Scenario files or folders (their *.json files; *.schema.json is skipped).
        #[arg(required = true, value_name = "SCENARIO")]
        scenarios: Vec<PathBuf>,
        /// Print one JSON report instead of tables.
        #[arg(long)]
        json: bool,
        /// Also draw each scenario as <DIR>/<name>.svg.
        #[arg(long, value_name = "DIR")]
        svg_dir: Option<PathBuf>,
        /// Where the scenario runs.
        #[arg(long, value_enum, default_value_t = Executor::InProcess)]
        executor: Executor,
    },
    /// Run the built-in narrated demo and draw it as SVG.
    Demo {
        /// Where to write the picture.
        #[arg(long, value_name = "PATH", default_value = demo::DEFAULT_SVG_PATH)]
        svg: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Executor {
    /// vigil-core in this process: no broker, no emulator.
    InProcess,
}

fn executor(kind: Executor) -> Box<dyn ScenarioExecutor> {
    match kind {
        Executor::InProcess => Box::new(InProcessExecutor::new()),
    }
}

fn run_demo(svg_path: &PathBuf) -> io::Result<u8> {
    let scenario = match demo::scenario() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: the built-in demo scenario is invalid: {e}");
            return Ok(EXIT_INVALID);
        }
    };
    let run = match InProcessExecutor::new().execute(&scenario) {
        Ok(run) => run,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_FAILED);
        }
    };
    let verdict = compare(&scenario.expect, &run);
    let stdout = &mut io::stdout().lock();
    demo::write_narration(stdout, &scenario, &run)?;
    vigil_sim::report::write_verdict(stdout, &scenario, &run, &verdict)?;
    if let Some(parent) = svg_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(
        svg_path,
        svg::render(&svg::Picture::of_run(&scenario, &run)),
    )?;
    writeln!(stdout, "Picture written to {}", svg_path.display())?;
    Ok(if verdict.passed() {
        EXIT_PASSED
    } else {
        EXIT_FAILED
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let status = match cli.command {
        Command::Run {
            scenarios,
            json,
            svg_dir,
            executor: kind,
        } => scenario_files(&scenarios).and_then(|files| {
            run_files(
                &files,
                executor(kind).as_mut(),
                &RunOptions { json, svg_dir },
                &mut io::stdout().lock(),
                &mut io::stderr().lock(),
            )
        }),
        Command::Demo { svg } => run_demo(&svg),
    };
    match status {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_INVALID)
        }
    }
}
