//! moto's server as a child process: the pinned venv it runs from, and the process itself.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Error, MOTO_LOCK, Result, io_error, log_tail, workspace_root};

/// How long a fresh moto_server may take to answer (it imports all of moto first). Parallel
/// test binaries on two cores can take several seconds; `VIGIL_MOTO_START_TIMEOUT_S` overrides.
const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(60);

/// Ports picked by binding to port 0 can be taken by someone else before moto binds them;
/// moto then exits at once, and we try another port.
const PORT_ATTEMPTS: usize = 3;

/// Makes sure `<local>/venv` has the pinned moto and returns the path of `moto_server`.
///
/// Installs only when the pin's marker file is missing. Parallel test binaries all call this;
/// an exclusive lock on `<local>/venv.lock` makes one of them install while the others wait
/// and then find the marker.
pub(crate) async fn ensure_moto(local: PathBuf) -> Result<PathBuf> {
    tokio::task::spawn_blocking(move || ensure_moto_blocking(&local))
        .await
        .map_err(|e| Error::Install {
            lock: MOTO_LOCK.to_owned(),
            venv: PathBuf::from("(unknown)"),
            message: format!("install task failed: {e}"),
        })?
}

fn ensure_moto_blocking(local: &Path) -> Result<PathBuf> {
    ensure_venv(
        local,
        "venv",
        &workspace_root().join(MOTO_LOCK),
        "moto_server",
    )
}

/// Makes sure `<local>/<name>` is a Python venv with exactly the packages of `lock` (a pip
/// requirements file with every package pinned and hashed, see `tools/python/`) and returns
/// the path of its `bin/<program>`. The one way Vigil's tools install from PyPI: pip runs with
/// `--require-hashes`, so a package whose files differ from the lock's hashes (a compromised
/// mirror or a re-published release) is refused.
///
/// Installs only when the venv's marker differs from the lock's content, so changing the lock
/// reinstalls into a fresh venv. Parallel processes all call this: an exclusive lock on
/// `<local>/<name>.lock` makes one of them install while the others wait and then find the
/// marker. The install log is `<local>/logs/<name>-install.log`; a failure ends with its tail.
/// The interpreter is `python3`, or `VIGIL_PYTHON` when set.
pub fn ensure_venv(local: &Path, name: &str, lock: &Path, program: &str) -> Result<PathBuf> {
    let venv = local.join(name);
    let target = venv.join("bin").join(program);
    let marker = venv.join(".vigil-installed");
    let install_error = |venv: &Path, message: String| Error::Install {
        lock: lock.display().to_string(),
        venv: venv.to_path_buf(),
        message,
    };
    let wanted = std::fs::read(lock).map_err(io_error(format!("reading {}", lock.display())))?;
    let installed = || target.is_file() && std::fs::read(&marker).ok().as_ref() == Some(&wanted);
    if installed() {
        return Ok(target);
    }
    let logs = local.join("logs");
    std::fs::create_dir_all(&logs).map_err(io_error(format!("creating {}", logs.display())))?;
    let lock_path = local.join(format!("{name}.lock"));
    let file_lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_error(format!("opening {}", lock_path.display())))?;
    file_lock
        .lock()
        .map_err(io_error(format!("locking {}", lock_path.display())))?;
    if installed() {
        return Ok(target); // another process installed it while we waited
    }

    // A venv from another lock (or a half-finished install) is replaced, not patched: what is
    // installed is exactly the lock.
    if venv.exists() {
        std::fs::remove_dir_all(&venv).map_err(io_error(format!("removing {}", venv.display())))?;
    }
    let log = logs.join(format!("{name}-install.log"));
    let python = std::env::var("VIGIL_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let venv_arg = venv.to_string_lossy().into_owned();
    run_logged(&venv, &log, &python, &["-m", "venv", &venv_arg], lock)?;
    let venv_python = venv
        .join("bin")
        .join("python")
        .to_string_lossy()
        .into_owned();
    let lock_arg = lock.to_string_lossy().into_owned();
    let pip = [
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "--require-hashes",
        "-r",
        &lock_arg,
    ];
    run_logged(&venv, &log, &venv_python, &pip, lock)?;
    if !target.is_file() {
        return Err(install_error(
            &venv,
            format!(
                "pip finished but {} is missing\n{}",
                target.display(),
                log_tail(&log, 20)
            ),
        ));
    }
    std::fs::write(&marker, &wanted).map_err(io_error(format!("writing {}", marker.display())))?;
    Ok(target)
    // `file_lock` is released when it is dropped here.
}

/// Runs one install step with its output appended to `log`.
fn run_logged(venv: &Path, log: &Path, program: &str, args: &[&str], lock: &Path) -> Result<()> {
    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io_error(format!("opening {}", log.display())))?;
    let err = out
        .try_clone()
        .map_err(io_error(format!("opening {}", log.display())))?;
    let status = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .map_err(|e| Error::Install {
            lock: lock.display().to_string(),
            venv: venv.to_path_buf(),
            message: format!(
                "could not run {program}: {e} (install Python 3 with venv and pip, \
                 or set VIGIL_PYTHON to a Python 3 interpreter)"
            ),
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Install {
            lock: lock.display().to_string(),
            venv: venv.to_path_buf(),
            message: format!(
                "`{program} {}` exited with {status}; last lines of {}:\n{}",
                args.join(" "),
                log.display(),
                log_tail(log, 20)
            ),
        })
    }
}

/// A running `moto_server` on 127.0.0.1. Dropping it kills the process and waits for it, so
/// its port is closed when `drop` returns.
#[derive(Debug)]
pub(crate) struct MotoProcess {
    child: Child,
    port: u16,
    log: PathBuf,
    /// Set when the server failed to start, so its log outlives it for the error to point at.
    keep_log: bool,
}

impl MotoProcess {
    /// Starts `server` on a free loopback port, logging to `logs/moto-<port>.log`, and returns
    /// once it answers HTTP.
    pub(crate) async fn spawn(
        server: &Path,
        logs: &Path,
        http: &reqwest::Client,
    ) -> Result<MotoProcess> {
        let timeout = start_timeout();
        let mut attempt = 1;
        loop {
            let port = free_loopback_port()?;
            let log = logs.join(format!("moto-{port}.log"));
            let out =
                File::create(&log).map_err(io_error(format!("creating {}", log.display())))?;
            let err = out
                .try_clone()
                .map_err(io_error(format!("opening {}", log.display())))?;
            let child = Command::new(server)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .map_err(io_error(format!("starting {}", server.display())))?;
            let mut process = MotoProcess {
                child,
                port,
                log,
                keep_log: false,
            };
            match process.wait_ready(http, timeout).await {
                Ok(()) => return Ok(process),
                Err(ReadyError::Exited(_))
                    if attempt < PORT_ATTEMPTS
                        && log_tail(&process.log, 20).contains("Address already in use") =>
                {
                    attempt += 1;
                }
                Err(e) => {
                    process.keep_log = true;
                    return Err(process.startup_error(e, timeout));
                }
            }
        }
    }

    /// The port moto listens on.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The file moto's output goes to.
    pub(crate) fn log(&self) -> &Path {
        &self.log
    }

    async fn wait_ready(
        &mut self,
        http: &reqwest::Client,
        timeout: Duration,
    ) -> Result<(), ReadyError> {
        let url = format!("http://127.0.0.1:{}/moto-api/", self.port);
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Err(ReadyError::Exited(status.to_string())),
                Ok(None) => {}
                Err(e) => return Err(ReadyError::Exited(format!("unknown status ({e})"))),
            }
            let answer = http.get(&url).timeout(Duration::from_secs(2)).send().await;
            if answer.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ReadyError::TimedOut);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn startup_error(&self, cause: ReadyError, timeout: Duration) -> Error {
        let message = match cause {
            ReadyError::Exited(status) => format!("it exited ({status}) on port {}", self.port),
            ReadyError::TimedOut => format!(
                "no answer from http://127.0.0.1:{}/moto-api/ within {} s \
                 (set VIGIL_MOTO_START_TIMEOUT_S to wait longer)",
                self.port,
                timeout.as_secs()
            ),
        };
        Error::Startup {
            message,
            log: self.log.clone(),
            tail: log_tail(&self.log, 30),
        }
    }
}

impl Drop for MotoProcess {
    fn drop(&mut self) {
        // SIGKILL: moto holds nothing worth flushing, and waiting makes the port free on return.
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

fn start_timeout() -> Duration {
    std::env::var("VIGIL_MOTO_START_TIMEOUT_S")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_START_TIMEOUT)
}

/// Asks the OS for a free port on 127.0.0.1 and releases it for moto to bind.
fn free_loopback_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io_error("binding 127.0.0.1:0"))?;
    let port = listener
        .local_addr()
        .map_err(io_error("reading the bound port"))?
        .port();
    Ok(port)
}
