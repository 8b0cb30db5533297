//! [`LambdaWatch`]: `cargo lambda watch` as a child process, serving the Lambda Invoke API on a
//! free loopback port for one function crate, so the bridge can invoke the real function binary
//! ([`crate::HttpLambda`]). cargo-lambda comes from PyPI, pinned, into
//! `.local/venv-cargo-lambda` (installed only when missing).

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The lock file of the cargo-lambda venv (cargo-lambda 1.9.2 and zig, every file hashed),
/// relative to the workspace root; `tools/python/lock.sh` regenerates it.
pub const CARGO_LAMBDA_LOCK: &str = "tools/python/cargo-lambda.txt";

/// A running `cargo lambda watch`. Dropping it stops its whole process group (cargo-lambda,
/// the cargo build it runs and the function) and waits for it.
#[derive(Debug)]
pub struct LambdaWatch {
    child: Child,
    port: u16,
    log: PathBuf,
}

/// Makes sure `<root>/.local/venv-cargo-lambda` has the pinned cargo-lambda; returns its `bin`
/// directory (put it first on `PATH`: cargo-lambda and zig live there).
///
/// Fails with the install log's tail if `python3 -m venv` or pip fails.
pub fn ensure_cargo_lambda() -> Result<PathBuf, String> {
    let program = vigil_local::ensure_venv(
        &vigil_local::local_dir(),
        "venv-cargo-lambda",
        &vigil_local::workspace_root().join(CARGO_LAMBDA_LOCK),
        "cargo-lambda",
    )
    .map_err(|e| e.to_string())?;
    Ok(program
        .parent()
        .expect("bin/cargo-lambda has a parent")
        .to_path_buf())
}

impl LambdaWatch {
    /// Builds binary `bin` of the crate in `function_dir` (e.g. `functions/ingest`, `ingest`)
    /// as `cargo lambda watch` will, then starts `cargo lambda watch --ignore-changes -P <free
    /// port>` there with `env` for the function, and returns once the port accepts
    /// connections.
    ///
    /// cargo-lambda builds the function on the first invoke (`cargo run --manifest-path
    /// Cargo.toml --bin <bin>`, the crate's own features, not the workspace's): on a cold
    /// target directory that took longer than an IoT rule's invoke may wait, so the same build
    /// runs here first, without a deadline, and the first invoke finds it done.
    ///
    /// Fails if cargo-lambda cannot be installed, the build fails, or it does not listen
    /// within 60 s; the error ends with its log's tail
    /// (`.local/logs/cargo-lambda-watch-<port>.log`).
    pub fn start(
        function_dir: &Path,
        bin_name: &str,
        env: &[(String, String)],
    ) -> Result<LambdaWatch, String> {
        let bin = ensure_cargo_lambda()?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let log = vigil_local::local_dir()
            .join("logs")
            .join(format!("cargo-lambda-watch-{port}.log"));
        let out = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![bin.clone()];
        paths.extend(std::env::split_paths(&path));
        let path = std::env::join_paths(paths).map_err(|e| e.to_string())?;
        build(function_dir, bin_name, &path, &log)?;
        let mut command = Command::new(bin.join("cargo-lambda"));
        command
            .args([
                "lambda",
                "watch",
                "--ignore-changes",
                "-A",
                "127.0.0.1",
                "-P",
            ])
            .arg(port.to_string())
            .current_dir(function_dir)
            .env("PATH", &path)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        // Its own process group, so that stopping it reaches cargo and the function too.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .spawn()
            .map_err(|e| format!("starting cargo lambda watch: {e}"))?;
        let mut watch = LambdaWatch { child, port, log };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(watch);
            }
            if let Ok(Some(status)) = watch.child.try_wait() {
                return Err(format!(
                    "cargo lambda watch exited ({status}):\n{}",
                    watch.tail()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "cargo lambda watch did not listen on {addr} within 60 s:\n{}",
                    watch.tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The Invoke API's base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The log file (cargo-lambda's and the function's output).
    pub fn log(&self) -> &Path {
        &self.log
    }

    fn tail(&self) -> String {
        tail(&self.log)
    }
}

/// The last 30 lines of `log`.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// `cargo build --manifest-path Cargo.toml --bin <bin>` in `function_dir`: what cargo-lambda's
/// `cargo run` will build, with the same `PATH`; its output is appended to `log`.
fn build(function_dir: &Path, bin: &str, path: &std::ffi::OsStr, log: &Path) -> Result<(), String> {
    let out = File::options()
        .append(true)
        .open(log)
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let status = Command::new("cargo")
        .args(["build", "--manifest-path", "Cargo.toml", "--bin", bin])
        .current_dir(function_dir)
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .map_err(|e| format!("building {bin} for cargo lambda watch: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "building {bin} for cargo lambda watch failed ({status}):\n{}",
            tail(log)
        ))
    }
}

impl Drop for LambdaWatch {
    fn drop(&mut self) {
        // The group id is the child's pid (process_group(0)); `kill -- -<pgid>` signals it all.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Whatever of the group is left (`kill` says "no such process" when none is: quiet).
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
        // Keep the log only when a test is failing.
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}
