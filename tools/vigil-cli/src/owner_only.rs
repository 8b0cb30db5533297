//! Files only their owner can read: folders created 0700 and files created 0600 from the start
//! (never readable by others, even briefly, whatever the umask), and never overwritten.
//! Evidence bundles, tag certificates and simulated tags' private keys are written this way.

use crate::error::{CliError, Result};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// Creates `dir` and its missing parents with mode 0700; an existing folder is left as it is.
///
/// Fails with [`CliError::Io`] when a folder cannot be created.
pub fn create_dir(dir: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(CliError::io(format!("creating {}", dir.display())))
}

/// Creates `path` with mode 0600 and writes `bytes`; a file that cannot be written completely is
/// removed again. `if_exists` says what to do when `path` exists (it is never overwritten).
///
/// Fails with [`CliError::Io`] when the file exists or cannot be created or written.
pub fn write_new(path: &Path, bytes: &[u8], if_exists: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::AlreadyExists {
                format!(" ({if_exists})")
            } else {
                String::new()
            };
            CliError::io(format!("creating {}{hint}", path.display()))(e)
        })?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| {
        let _ = std::fs::remove_file(path);
        CliError::io(format!("writing {}", path.display()))(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn folders_are_0700_files_0600_and_nothing_is_overwritten() {
        let dir = std::env::temp_dir()
            .join(format!("vigil-cli-owner-only-{}", std::process::id()))
            .join("inner");
        let _ = std::fs::remove_dir_all(dir.parent().unwrap());
        create_dir(&dir).unwrap();
        create_dir(&dir).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        let file = dir.join("f");
        write_new(&file, b"first", "choose another name").unwrap();
        assert_eq!(mode(&file), 0o600);
        let e = write_new(&file, b"second", "choose another name").unwrap_err();
        assert!(e.to_string().contains("choose another name"), "{e}");
        assert_eq!(std::fs::read(&file).unwrap(), b"first");
        std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
    }
}
