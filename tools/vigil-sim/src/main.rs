//! `vigil-sim`: runs scenario files and the narrated demo. The work is in the library.

use clap::{Parser, Subcommand, ValueEnum};
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use vigil_sim::executor::ExecutorError;
use vigil_sim::runner::{
    EXIT_FAILED, EXIT_INVALID, EXIT_PASSED, RunOptions, run_files, scenario_files,
};
use vigil_sim::{InProcessExecutor, LocalStackExecutor, ScenarioExecutor, compare, demo, svg};

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
        /// With `--executor local-stack`: use the AWS emulator already running at this URL
        /// (e.g. from `vigil-local up`, or LocalStack) instead of starting one. It is reset
        /// between scenarios.
        #[arg(long, value_name = "URL", env = "VIGIL_EMULATOR_ENDPOINT")]
        endpoint: Option<String>,
    },
    /// Run the built-in narrated demo and draw it as SVG.
    Demo {
        /// Where to write the picture.
        #[arg(long, value_name = "PATH", default_value = demo::DEFAULT_SVG_PATH)]
        svg: PathBuf,
        /// Where the demo runs.
        #[arg(long, value_enum, default_value_t = DEMO_EXECUTOR)]
        executor: Executor,
        /// With the local stack: use the AWS emulator already running at this URL.
        #[arg(long, value_name = "URL", env = "VIGIL_EMULATOR_ENDPOINT")]
        endpoint: Option<String>,
        /// Serve the monitoring centre's console (local sign-in) and print its URL; the
        /// scenario then plays at a pace a person can follow in the browser (`--pace`), and
        /// the console stays open afterwards until Ctrl-C. Local stack only.
        #[arg(long)]
        console: bool,
        /// With --console: seconds between the scenario's messages.
        #[arg(long, default_value_t = 2.0, requires = "console")]
        pace: f64,
    },
    /// Measure the whole local pipeline: fix -> SMS latency, fixes per second on the quiet and
    /// near paths, and the emulator's own ceiling for the same requests (docs/PERFORMANCE.md).
    BenchLocal {
        /// Transitions timed for the latency, one at a time.
        #[arg(long, default_value_t = 200)]
        transitions: usize,
        /// Tags publishing at once in the throughput runs.
        #[arg(long, default_value_t = 20)]
        tags: usize,
        /// Fixes per tag per throughput run.
        #[arg(long, default_value_t = 25)]
        fixes_per_tag: usize,
    },
    /// Print the cost per tag-month (1 fix/min and 1 fix/15 s, with and without her device,
    /// plain topic and Basic Ingest) as a markdown table, from the requests and DynamoDB
    /// capacity units counted on the emulator through the handlers, priced from
    /// tools/vigil-sim/prices.json (docs/PERFORMANCE.md).
    Cost {
        /// Messages measured per path.
        #[arg(long, default_value_t = 10)]
        messages: usize,
        /// Tags the watchdog runs over (its one run a minute is shared by them).
        #[arg(long, default_value_t = 100)]
        watchdog_tags: usize,
        /// Minutes of watchdog runs measured, after its 16-minute warm-up.
        #[arg(long, default_value_t = 30)]
        watchdog_minutes: usize,
    },
    /// Run a fleet through the whole local stack over MQTT (each tag its own mTLS connection),
    /// on a clock as fast as the machine allows: fixes per second against the emulator's own
    /// ceiling, publish -> SMS latency, every expected SMS exactly once, CPU and peak memory
    /// per process; a summary table and a plot (docs/PERFORMANCE.md, "Fleet load run").
    ///
    /// Exit status: 0 when every expected SMS was sent exactly once and no other, 1 otherwise.
    Load {
        /// Tags (one order and zone each).
        #[arg(long, default_value_t = 5000)]
        tags: usize,
        /// Minutes of the fleet's time (at least 5).
        #[arg(long, default_value_t = 10.0)]
        minutes: f64,
        /// How many times faster than the wall clock the fleet's time runs; default: the
        /// emulator's measured ceiling over the fleet's rate at one fix a minute.
        #[arg(long)]
        speedup: Option<f64>,
        /// Without --speedup: the fleet's rate as a fraction of the emulator's ceiling.
        #[arg(long, default_value_t = 0.8)]
        offered: f64,
        /// The DynamoDB the stack runs on: AWS's DynamoDB Local (default), or moto's (whose
        /// read-back after thousands of tags takes longer than the run).
        #[arg(long, value_enum, default_value_t = LoadDynamoDb::Local)]
        dynamodb: LoadDynamoDb,
        /// Ingest invocations at once (default: ingest's reserved concurrency as deployed).
        #[arg(long, default_value_t = vigil_stack::INGEST_CONCURRENCY)]
        concurrency: usize,
        /// Percent of tags approaching their zone (a warning, then a breach).
        #[arg(long, default_value_t = 2.0)]
        approaching: f64,
        /// Percent of tags hovering in their zone's buffer (one warning).
        #[arg(long, default_value_t = 2.0)]
        hovering: f64,
        /// The orders allow adaptive reporting (far tags may batch their fixes).
        #[arg(long)]
        adaptive: bool,
        /// Seed of the fleet's placement.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Where to write the plot.
        #[arg(long, value_name = "PATH", default_value = "target/vigil-load.svg")]
        svg: PathBuf,
        /// No progress bars.
        #[arg(long)]
        quiet: bool,
    },
    /// The tags of a `load` run, in a process of their own (started by `load`; not for use by
    /// hand): JSON reports on stdout.
    #[command(hide = true)]
    LoadTags {
        /// The fleet, broker and clock, as JSON.
        #[arg(long)]
        spec: String,
    },
    /// Measure each function's cold start: its arm64 bootstrap zipped (cargo lambda build),
    /// and the time from spawning its release binary to its first request for an event on a
    /// local Runtime API, with the AWS requests it made before (docs/PERFORMANCE.md).
    ColdStart {
        /// Starts timed per function.
        #[arg(long, default_value_t = 20)]
        runs: usize,
        /// Skip the arm64 build and its sizes.
        #[arg(long)]
        no_size: bool,
    },
}

/// The exit status of a measuring command: passed, or failed with its error on stderr.
fn measured(result: Result<(), impl std::fmt::Display>) -> u8 {
    match result {
        Ok(()) => EXIT_PASSED,
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_FAILED
        }
    }
}

/// The DynamoDB of a load run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LoadDynamoDb {
    /// AWS's DynamoDB Local (Java, installed on first use).
    Local,
    /// moto's.
    Moto,
}

/// The demo's executor unless `--executor` says otherwise.
const DEMO_EXECUTOR: Executor = Executor::LocalStack;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Executor {
    /// vigil-core in this process: no broker, no emulator.
    InProcess,
    /// The whole local pipeline, started for the run and stopped after it: the AWS emulator,
    /// the mTLS MQTT broker, the IoT rule bridge and the functions; SMS read back.
    LocalStack,
}

/// The executor of `kind`; starting the local stack can fail.
fn executor(
    kind: Executor,
    endpoint: Option<&str>,
) -> Result<Box<dyn ScenarioExecutor>, ExecutorError> {
    Ok(match kind {
        Executor::InProcess => Box::new(InProcessExecutor::new()),
        Executor::LocalStack => Box::new(LocalStackExecutor::start_on(endpoint)?),
    })
}

/// The demo; `console`: serve the console and play at this pace per message.
fn run_demo(
    svg_path: &PathBuf,
    kind: Executor,
    endpoint: Option<&str>,
    console: Option<Duration>,
) -> io::Result<u8> {
    let scenario = match demo::scenario() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: the built-in demo scenario is invalid: {e}");
            return Ok(EXIT_INVALID);
        }
    };
    if let Some(pace) = console {
        if kind != Executor::LocalStack {
            eprintln!("error: --console needs --executor local-stack");
            return Ok(EXIT_INVALID);
        }
        return demo_with_console(svg_path, endpoint, &scenario, pace);
    }
    // The executor (and any stack it started) stops at the end of this block.
    let run = match executor(kind, endpoint).and_then(|mut e| e.execute(&scenario)) {
        Ok(run) => run,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_FAILED);
        }
    };
    report_demo(svg_path, &scenario, &run)
}

/// The demo's narration and verdict on stdout, its picture at `svg_path`; the exit code.
fn report_demo(
    svg_path: &PathBuf,
    scenario: &vigil_sim::Scenario,
    run: &vigil_sim::Run,
) -> io::Result<u8> {
    let verdict = compare(&scenario.expect, run);
    let stdout = &mut io::stdout().lock();
    demo::write_narration(stdout, scenario, run)?;
    vigil_sim::report::write_verdict(stdout, scenario, run, &verdict)?;
    if let Some(parent) = svg_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(svg_path, svg::render(&svg::Picture::of_run(scenario, run)))?;
    writeln!(stdout, "Picture written to {}", svg_path.display())?;
    Ok(if verdict.passed() {
        EXIT_PASSED
    } else {
        EXIT_FAILED
    })
}

/// The demo on the local stack with the console served: its URL first, the scenario at
/// `pace`, the narration, then the console open until Ctrl-C.
fn demo_with_console(
    svg_path: &PathBuf,
    endpoint: Option<&str>,
    scenario: &vigil_sim::Scenario,
    pace: Duration,
) -> io::Result<u8> {
    let mut executor = match LocalStackExecutor::start_on(endpoint) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_FAILED);
        }
    };
    match executor.serve_console(pace) {
        Ok(url) => println!(
            "Console: {url}  (local sign-in, local only: alice is an operator of force met, \
             adam its administrator; the scenario plays in {} s)",
            (pace.as_secs_f64() * scenario.messages.len() as f64).round()
        ),
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_FAILED);
        }
    }
    let run = match executor.execute(scenario) {
        Ok(run) => run,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_FAILED);
        }
    };
    let status = report_demo(svg_path, scenario, &run)?;
    println!("The console stays open: Ctrl-C to stop.");
    io::stdout().flush()?;
    executor.wait_for_stop();
    Ok(status)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let status = match cli.command {
        Command::Run {
            scenarios,
            json,
            svg_dir,
            executor: kind,
            endpoint,
        } => {
            scenario_files(&scenarios).and_then(|files| match executor(kind, endpoint.as_deref()) {
                Ok(mut executor) => run_files(
                    &files,
                    executor.as_mut(),
                    &RunOptions { json, svg_dir },
                    &mut io::stdout().lock(),
                    &mut io::stderr().lock(),
                ),
                Err(e) => {
                    eprintln!("error: {e}");
                    Ok(EXIT_FAILED)
                }
            })
        }
        Command::Demo {
            svg,
            executor,
            endpoint,
            console,
            pace,
        } => run_demo(
            &svg,
            executor,
            endpoint.as_deref(),
            console.then(|| Duration::from_secs_f64(pace.clamp(0.0, 60.0))),
        ),
        Command::BenchLocal {
            transitions,
            tags,
            fixes_per_tag,
        } => {
            let options = vigil_sim::bench::BenchOptions {
                transitions,
                tags,
                fixes_per_tag,
            };
            Ok(measured(vigil_sim::bench::run(
                options,
                &mut io::stdout().lock(),
            )))
        }
        Command::Load {
            tags,
            minutes,
            speedup,
            offered,
            dynamodb,
            concurrency,
            approaching,
            hovering,
            adaptive,
            seed,
            svg,
            quiet,
        } => {
            let options = vigil_sim::load::LoadOptions {
                tags,
                minutes,
                speedup,
                offered,
                dynamodb: match dynamodb {
                    LoadDynamoDb::Local => vigil_local::DynamoDb::Local,
                    LoadDynamoDb::Moto => vigil_local::DynamoDb::Moto,
                },
                concurrency,
                approaching_pct: approaching,
                hovering_pct: hovering,
                adaptive,
                seed,
                svg,
                progress: !quiet,
                tags_exe: match std::env::current_exe() {
                    Ok(exe) => exe,
                    Err(e) => {
                        eprintln!("error: where is vigil-sim? {e}");
                        return ExitCode::from(EXIT_FAILED);
                    }
                },
            };
            Ok(measured(vigil_sim::load::run(
                &options,
                &mut io::stdout().lock(),
            )))
        }
        Command::LoadTags { spec } => match serde_json::from_str(&spec) {
            Ok(spec) => Ok(measured(vigil_sim::load::run_tags(
                &spec,
                &mut io::stdout().lock(),
            ))),
            Err(e) => {
                eprintln!("error: the tags' spec: {e}");
                Ok(EXIT_INVALID)
            }
        },
        Command::ColdStart { runs, no_size } => {
            let options = vigil_sim::cold_start::ColdStartOptions {
                runs,
                size: !no_size,
            };
            Ok(measured(vigil_sim::cold_start::run(
                &options,
                &mut io::stdout().lock(),
            )))
        }
        Command::Cost {
            messages,
            watchdog_tags,
            watchdog_minutes,
        } => {
            let options = vigil_sim::cost::CostOptions {
                messages,
                watchdog_tags,
                watchdog_minutes,
            };
            Ok(measured(vigil_sim::cost::run(
                options,
                &mut io::stdout().lock(),
            )))
        }
    };
    match status {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_INVALID)
        }
    }
}
