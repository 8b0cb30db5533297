//! `vigil-sim cold-start`: what a cold start of each function costs before its first event
//! (docs/PERFORMANCE.md, "Cold start and size"):
//!
//! - **size**: the arm64 release bootstrap of each function, zipped, as `cargo lambda build
//!   --arm64 --output-format zip` makes it for deployment (cargo-lambda from its hashed lock,
//!   [`vigil_mqtt::lambda_watch::ensure_cargo_lambda`]);
//! - **start to ready**: from spawning the function's release binary (built for this machine:
//!   arm64 binaries cannot run on an x86_64 host) to its first `GET
//!   /2018-06-01/runtime/invocation/next` on a local Runtime API, with the environment the local
//!   stack gives the real binaries (the emulator's, [`Emulator::env_vars`]);
//! - **requests before ready**: the AWS requests each function makes before that `next`,
//!   counted by a [`FaultProxy`] (with no fault on) between the functions and the emulator.

use crate::bench::quantile_ms;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use vigil_local::{Emulator, FaultProxy};

/// The functions, by binary name.
pub const FUNCTIONS: [&str; 3] = ["ingest", "alert", "watchdog"];

/// The largest zipped bootstrap the issue accepts (12.4), bytes.
const SIZE_TARGET_BYTES: u64 = 8 * 1024 * 1024;
/// The longest start to ready the issue accepts (12.4).
const READY_TARGET: Duration = Duration::from_millis(40);
/// How long a function may take to ask for its first event before the run fails.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// The path of the Runtime API's `next` (the function is ready for an event).
const NEXT: &str = "GET /2018-06-01/runtime/invocation/next ";
/// The memory the CDK app gives each function (`infra/lib/vigil-stack.ts`), MB.
const MEMORY_MB: &str = "256";

/// What to measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColdStartOptions {
    /// Starts timed per function.
    pub runs: usize,
    /// Also build the arm64 zips with cargo-lambda and report their sizes.
    pub size: bool,
}

/// The target directory cargo builds into (`CARGO_TARGET_DIR`, else `<root>/target`).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| vigil_local::workspace_root().join("target"))
}

/// Runs `program args` in the workspace root with `PATH` led by `path_first`; fails with the
/// command and its status.
fn run_in_root(program: &Path, args: &[&str], path_first: Option<&Path>) -> Result<(), String> {
    let mut command = std::process::Command::new(program);
    command
        .args(args)
        .current_dir(vigil_local::workspace_root());
    if let Some(first) = path_first {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let paths = std::iter::once(first.to_path_buf()).chain(std::env::split_paths(&path));
        command.env(
            "PATH",
            std::env::join_paths(paths).map_err(|e| e.to_string())?,
        );
    }
    let shown = format!("{} {}", program.display(), args.join(" "));
    let status = command.status().map_err(|e| format!("{shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown}: {status}"))
    }
}

fn cargo() -> PathBuf {
    std::env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from)
}

/// The `--bin` arguments for every function.
fn bin_args(first: &[&'static str]) -> Vec<&'static str> {
    let mut args = first.to_vec();
    for f in FUNCTIONS {
        args.extend(["--bin", f]);
    }
    args
}

/// Builds the arm64 zips and returns each function's zipped size, bytes.
fn arm64_zip_sizes() -> Result<BTreeMap<&'static str, u64>, String> {
    let bin = vigil_mqtt::lambda_watch::ensure_cargo_lambda()?;
    let lambda_dir = target_dir().join("lambda-arm64");
    let lambda_dir_arg = lambda_dir.to_string_lossy().into_owned();
    let mut args = bin_args(&["lambda", "build", "--locked", "--release", "--arm64"]);
    args.extend(["--output-format", "zip", "--lambda-dir", &lambda_dir_arg]);
    run_in_root(&bin.join("cargo-lambda"), &args, Some(&bin))?;
    FUNCTIONS
        .iter()
        .map(|f| {
            let zip = lambda_dir.join(f).join("bootstrap.zip");
            let bytes = std::fs::metadata(&zip)
                .map_err(|e| format!("{}: {e}", zip.display()))?
                .len();
            Ok((*f, bytes))
        })
        .collect()
}

/// One start of `binary`: the time from spawning it to its first `next` on the Runtime API,
/// and the AWS requests it made before, by service.
async fn one_start(
    binary: &Path,
    function: &str,
    env: &[(String, String)],
    proxy: &FaultProxy,
) -> Result<(Duration, BTreeMap<String, u64>), String> {
    let runtime_api = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("binding the Runtime API: {e}"))?;
    let port = runtime_api.local_addr().map_err(|e| e.to_string())?.port();
    let before = proxy.stats().forwarded;
    let started = Instant::now();
    let mut child = tokio::process::Command::new(binary)
        .env_clear()
        .envs(env.iter().cloned())
        .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
        .env(
            "AWS_LAMBDA_FUNCTION_NAME",
            format!("vigil-local-{function}"),
        )
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", MEMORY_MB)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{}: {e}", binary.display()))?;
    let ready = async {
        loop {
            let (mut conn, _) = runtime_api.accept().await?;
            let mut buffered = Vec::new();
            if let Some((head, _)) =
                vigil_local::http::read_request(&mut conn, &mut buffered).await?
                && head.starts_with(NEXT)
            {
                return Ok::<Duration, std::io::Error>(started.elapsed());
            }
        }
    };
    let took = tokio::select! {
        ready = tokio::time::timeout(READY_TIMEOUT, ready) => ready
            .map_err(|_| format!("{function} asked for no event within {READY_TIMEOUT:?}"))?
            .map_err(|e| format!("{function}: the Runtime API: {e}"))?,
        exited = child.wait() => {
            return Err(format!("{function} exited before asking for an event: {exited:?}"));
        }
    };
    let after = proxy.stats().forwarded;
    child
        .kill()
        .await
        .map_err(|e| format!("stopping {function}: {e}"))?;
    let requests = after
        .into_iter()
        .map(|(service, n)| {
            let earlier = before.get(&service).copied().unwrap_or(0);
            (service, n - earlier)
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    Ok((took, requests))
}

/// Measures every function and writes the results to `out`.
///
/// Fails when a build fails, the emulator does not start, or a function exits or asks for no
/// event within 30 s.
pub fn run(options: &ColdStartOptions, out: &mut dyn Write) -> Result<(), String> {
    let io = |e: std::io::Error| format!("writing the results: {e}");
    if options.size {
        let sizes = arm64_zip_sizes()?;
        writeln!(
            out,
            "size: arm64 release bootstrap, zipped (cargo lambda build --locked --release --arm64 --output-format zip; target at most {} MiB):",
            SIZE_TARGET_BYTES / (1024 * 1024)
        )
        .map_err(io)?;
        for (function, bytes) in &sizes {
            let verdict = if *bytes <= SIZE_TARGET_BYTES {
                "within"
            } else {
                "OVER"
            };
            writeln!(
                out,
                "  {function:<8} {:>6.2} MiB ({bytes} bytes), {verdict} the target",
                *bytes as f64 / (1024.0 * 1024.0)
            )
            .map_err(io)?;
        }
    }
    run_in_root(
        &cargo(),
        &bin_args(&["build", "--locked", "--release"]),
        None,
    )?;
    let binaries = target_dir().join("release");
    let rt = tokio::runtime::Runtime::new().map_err(|e| format!("a tokio runtime: {e}"))?;
    rt.block_on(async {
        let emulator = Emulator::start()
            .await
            .map_err(|e| format!("the AWS emulator did not start: {e}"))?;
        let proxy = FaultProxy::start(emulator.endpoint_url())
            .await
            .map_err(|e| format!("the counting proxy: {e}"))?;
        // The environment the local stack gives the real binaries, every endpoint through the
        // proxy (DynamoDB too: on moto it is the same server).
        let env: Vec<(String, String)> = emulator
            .env_vars()
            .into_iter()
            .map(|(k, v)| match k.as_str() {
                "AWS_ENDPOINT_URL" | "AWS_ENDPOINT_URL_DYNAMODB" => (k, proxy.url().to_owned()),
                _ => (k, v),
            })
            .chain([(
                "AWS_ENDPOINT_URL_IOT_DATA_PLANE".to_owned(),
                proxy.url().to_owned(),
            )])
            .collect();
        writeln!(
            out,
            "start to ready: spawn -> first GET .../invocation/next, {} release build on this machine ({} starts each, after one untimed start; target at most {} ms):",
            std::env::consts::ARCH,
            options.runs,
            READY_TARGET.as_millis()
        )
        .map_err(io)?;
        for function in FUNCTIONS {
            let binary = binaries.join(function);
            // One untimed start brings the binary into the page cache.
            one_start(&binary, function, &env, &proxy).await?;
            let mut times = Vec::with_capacity(options.runs);
            let mut requests = BTreeMap::new();
            for _ in 0..options.runs {
                let (took, made) = one_start(&binary, function, &env, &proxy).await?;
                times.push(took);
                for (service, n) in made {
                    *requests.entry(service).or_insert(0) += n;
                }
            }
            times.sort();
            let p50 = quantile_ms(&times, 0.5);
            let max = quantile_ms(&times, 1.0);
            let verdict = if max <= READY_TARGET.as_secs_f64() * 1000.0 {
                "within"
            } else {
                "OVER"
            };
            let per_start: Vec<String> = requests
                .iter()
                .map(|(service, n)| format!("{service} {:.1}", *n as f64 / options.runs as f64))
                .collect();
            let requests = if per_start.is_empty() {
                "none".to_owned()
            } else {
                per_start.join(", ")
            };
            writeln!(
                out,
                "  {function:<8} p50 {p50:.1} ms, max {max:.1} ms ({verdict} the target); AWS requests before ready, per start: {requests}"
            )
            .map_err(io)?;
        }
        Ok(())
    })
}
