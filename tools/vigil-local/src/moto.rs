//! moto's server: the pinned venv it runs from, and how it is started.

use std::path::{Path, PathBuf};

use crate::install::Pinned;
use crate::server::{ServerProcess, ServerSpec};
use crate::{Error, MOTO_LOCK, Result, io_error, workspace_root};

/// Makes sure `<local>/venv` has the pinned moto and returns the path of `moto_server`.
///
/// Installs only when the pin's marker file is missing. Parallel test binaries all call this;
/// an exclusive lock on `<local>/venv.lock` makes one of them install while the others wait
/// and then find the marker.
pub(crate) async fn ensure_moto(local: PathBuf) -> Result<PathBuf> {
    tokio::task::spawn_blocking(move || {
        ensure_venv(
            &local,
            "venv",
            &workspace_root().join(MOTO_LOCK),
            "moto_server",
        )
    })
    .await
    .map_err(|e| Error::Install {
        lock: MOTO_LOCK.to_owned(),
        venv: PathBuf::from("(unknown)"),
        message: format!("install task failed: {e}"),
    })?
}

/// Starts `moto_server` (from [`ensure_moto`]) on a free loopback port, logging to
/// `<logs>/moto-<port>.log`, and returns once it answers `GET /moto-api/`.
pub(crate) async fn spawn(
    server: &Path,
    logs: &Path,
    http: &reqwest::Client,
) -> Result<ServerProcess> {
    let args = |port: u16| {
        vec![
            "-H".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
        ]
    };
    let spec = ServerSpec {
        name: "moto_server",
        log_prefix: "moto",
        program: server,
        args: &args,
        cwd: None,
        ready_path: "/moto-api/",
        any_answer: false,
        timeout_var: "VIGIL_MOTO_START_TIMEOUT_S",
    };
    ServerProcess::spawn(&spec, logs, http).await
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
    let wanted = std::fs::read(lock).map_err(io_error(format!("reading {}", lock.display())))?;
    let pinned = Pinned {
        local,
        name,
        lock,
        wanted,
    };
    let target = |venv: &Path| venv.join("bin").join(program);
    pinned.ensure(
        |venv| target(venv).is_file(),
        |venv, _log| {
            let python = std::env::var("VIGIL_PYTHON").unwrap_or_else(|_| "python3".to_owned());
            let no_python = "install Python 3 with venv and pip, or set VIGIL_PYTHON to a \
                             Python 3 interpreter";
            let venv_arg = venv.to_string_lossy().into_owned();
            pinned.run_logged(None, &python, &["-m", "venv", &venv_arg], no_python)?;
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
            pinned.run_logged(None, &venv_python, &pip, no_python)
        },
    )?;
    Ok(target(&pinned.dir()))
}
