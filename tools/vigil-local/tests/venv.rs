//! Issue 16.14: Python tools install from hashed lock files only. A lock whose hash does not
//! match the package PyPI serves is refused, and nothing is marked installed.

use vigil_local::{Error, ensure_venv};

#[test]
fn a_package_that_does_not_match_its_locked_hash_is_refused() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("venv-hash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let lock = dir.join("bad.txt");
    // six 1.17.0 exists; this is not the hash of any of its files.
    std::fs::write(
        &lock,
        "six==1.17.0 \\\n    --hash=sha256:0000000000000000000000000000000000000000000000000000000000000000\n",
    )
    .unwrap();
    let result = ensure_venv(&dir, "venv-bad", &lock, "python");
    let Err(Error::Install { message, .. }) = result else {
        panic!("installed despite a wrong hash: {result:?}");
    };
    assert!(
        message.contains("HASHES") || message.contains("hash"),
        "{message}"
    );
    assert!(!dir.join("venv-bad/.vigil-installed").exists());
}

#[test]
fn the_shipped_locks_pin_and_hash_every_package() {
    let root = vigil_local::workspace_root();
    for name in ["moto", "cargo-lambda", "lint"] {
        let text = std::fs::read_to_string(root.join(format!("tools/python/{name}.txt"))).unwrap();
        let requirements: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with([' ', '#']) && !l.trim().is_empty())
            .collect();
        assert!(!requirements.is_empty(), "{name}: empty");
        for r in &requirements {
            assert!(
                r.contains("==") && r.ends_with('\\'),
                "{name}: {r} is not pinned with hashes"
            );
        }
        let hashes = text.matches("--hash=sha256:").count();
        assert!(hashes >= requirements.len(), "{name}: {hashes} hashes");
    }
    let moto = std::fs::read_to_string(root.join(vigil_local::MOTO_LOCK)).unwrap();
    assert!(
        moto.contains("\nmoto==5.2.5 \\"),
        "moto is pinned in its lock"
    );
}
