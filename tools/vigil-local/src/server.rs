//! An emulator server as a child process (moto, DynamoDB Local): free port, readiness, log
//! file, kill on drop.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Error, Result, io_error, log_tail};

/// How long a fresh server may take to answer (moto imports all of itself first; the JVM of
/// DynamoDB Local starts in about 2 s alone). Parallel test binaries on two cores can take
/// several seconds; each server's `timeout_var` overrides it.
const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(60);

/// Ports picked by binding to port 0 can be taken by someone else before the server binds
/// them; it then exits at once, and we try another port.
const PORT_ATTEMPTS: usize = 3;

/// How to run one kind of server.
pub(crate) struct ServerSpec<'a> {
    /// Its name in errors, e.g. `moto_server`.
    pub(crate) name: &'static str,
    /// Prefix of its log file: `<logs>/<log_prefix>-<port>.log`.
    pub(crate) log_prefix: &'static str,
    /// The program.
    pub(crate) program: &'a Path,
    /// Its arguments for a port.
    pub(crate) args: &'a dyn Fn(u16) -> Vec<String>,
    /// Its working directory, if it needs one.
    pub(crate) cwd: Option<&'a Path>,
    /// The path that answers once it is ready, e.g. `/moto-api/`.
    pub(crate) ready_path: &'static str,
    /// Whether any HTTP answer means ready (DynamoDB Local answers a bare GET with 400), or
    /// only a success.
    pub(crate) any_answer: bool,
    /// The variable that overrides the start timeout, in seconds.
    pub(crate) timeout_var: &'static str,
}

/// A running server on 127.0.0.1. Dropping it kills the process and waits for it, so its port
/// is closed when `drop` returns.
#[derive(Debug)]
pub(crate) struct ServerProcess {
    child: Child,
    port: u16,
    log: PathBuf,
    /// Set when the server failed to start, so its log outlives it for the error to point at.
    keep_log: bool,
}

impl ServerProcess {
    /// Starts the server of `spec` on a free loopback port, logging to
    /// `<logs>/<log_prefix>-<port>.log`, and returns once it answers HTTP.
    ///
    /// Fails with [`Error::Startup`] (ending with the log's tail) if it exits or does not
    /// answer in time.
    pub(crate) async fn spawn(
        spec: &ServerSpec<'_>,
        logs: &Path,
        http: &reqwest::Client,
    ) -> Result<ServerProcess> {
        let timeout = start_timeout(spec.timeout_var);
        let mut attempt = 1;
        loop {
            let port = free_loopback_port()?;
            let log = logs.join(format!("{}-{port}.log", spec.log_prefix));
            let out =
                File::create(&log).map_err(io_error(format!("creating {}", log.display())))?;
            let err = out
                .try_clone()
                .map_err(io_error(format!("opening {}", log.display())))?;
            let mut command = Command::new(spec.program);
            if let Some(cwd) = spec.cwd {
                command.current_dir(cwd);
            }
            let child = command
                .args((spec.args)(port))
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .map_err(io_error(format!("starting {}", spec.program.display())))?;
            let mut process = ServerProcess {
                child,
                port,
                log,
                keep_log: false,
            };
            match process.wait_ready(spec, http, timeout).await {
                Ok(()) => return Ok(process),
                Err(ReadyError::Exited(_))
                    if attempt < PORT_ATTEMPTS
                        && log_tail(&process.log, 20).contains("Address already in use") =>
                {
                    attempt += 1;
                }
                Err(e) => {
                    process.keep_log = true;
                    return Err(process.startup_error(spec, e, timeout));
                }
            }
        }
    }

    /// The port the server listens on.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The file the server's output goes to.
    pub(crate) fn log(&self) -> &Path {
        &self.log
    }

    /// `http://127.0.0.1:<port>`.
    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn wait_ready(
        &mut self,
        spec: &ServerSpec<'_>,
        http: &reqwest::Client,
        timeout: Duration,
    ) -> Result<(), ReadyError> {
        let url = format!("{}{}", self.url(), spec.ready_path);
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Err(ReadyError::Exited(status.to_string())),
                Ok(None) => {}
                Err(e) => return Err(ReadyError::Exited(format!("unknown status ({e})"))),
            }
            let answer = http.get(&url).timeout(Duration::from_secs(2)).send().await;
            if answer.is_ok_and(|r| spec.any_answer || r.status().is_success()) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ReadyError::TimedOut);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn startup_error(&self, spec: &ServerSpec<'_>, cause: ReadyError, timeout: Duration) -> Error {
        let message = match cause {
            ReadyError::Exited(status) => format!("it exited ({status}) on port {}", self.port),
            ReadyError::TimedOut => format!(
                "no answer from {}{} within {} s (set {} to wait longer)",
                self.url(),
                spec.ready_path,
                timeout.as_secs(),
                spec.timeout_var
            ),
        };
        Error::Startup {
            server: spec.name,
            message,
            log: self.log.clone(),
            tail: log_tail(&self.log, 30),
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // SIGKILL: the servers hold nothing worth flushing (DynamoDB Local runs in memory), and
        // waiting makes the port free on return.
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Keep the log when a test is failing (dropped while unwinding) or when asked to;
        // otherwise every test run would leave a log per server behind.
        let keep = self.keep_log
            || std::thread::panicking()
            || std::env::var_os("VIGIL_KEEP_LOGS").is_some();
        if !keep {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

enum ReadyError {
    Exited(String),
    TimedOut,
}

fn start_timeout(var: &str) -> Duration {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_START_TIMEOUT)
}

/// Asks the OS for a free port on 127.0.0.1 and releases it for the server to bind.
fn free_loopback_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io_error("binding 127.0.0.1:0"))?;
    let port = listener
        .local_addr()
        .map_err(io_error("reading the bound port"))?
        .port();
    Ok(port)
}
