//! Every fuzz target over its corpus (`fuzz/corpus/<target>/`, the seeds in the repository
//! and whatever `cargo fuzz` added locally) and over the repository's own inputs of that kind,
//! on stable: the bounded run in the test command. A crash `cargo fuzz` found stays fixed
//! because its input goes into the corpus with the fix.

use std::path::{Path, PathBuf};

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    out.retain(|p| p.is_file());
    out.sort();
    out
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `target` on every file of `corpus/<name>` and of `extra`; returns how many inputs.
fn replay(name: &str, target: fn(&[u8]), extra: &[PathBuf]) -> usize {
    let mut inputs = files(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("corpus")
            .join(name),
    );
    inputs.extend(extra.iter().cloned());
    for input in &inputs {
        let data = std::fs::read(input).unwrap();
        target(&data);
        // And every prefix of short inputs: the cheapest "mutation" that reaches truncation
        // paths in every parser.
        if data.len() <= 512 {
            for end in 0..data.len() {
                target(&data[..end]);
            }
        }
    }
    inputs.len()
}

#[test]
fn wire() {
    assert!(replay("wire", vigil_fuzz::wire, &[]) >= 5);
}

#[test]
fn rule_event() {
    assert!(replay("rule_event", vigil_fuzz::rule_event, &[]) >= 2);
}

#[test]
fn iot_sql() {
    let rules = files(&root().join("infra/rules"));
    assert!(replay("iot_sql", vigil_fuzz::iot_sql, &rules) >= 3);
}

#[test]
fn scenario() {
    let scenarios: Vec<PathBuf> = files(&root().join("tests/scenarios"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert!(replay("scenario", vigil_fuzz::scenario, &scenarios) >= 13);
}

#[test]
fn the_properties_are_checked_not_only_the_absence_of_panics() {
    // A payload the wire format accepts must round-trip: feed one and make sure the target
    // went down that path (it would panic on a broken encoder, which this cannot show, but
    // the accepted path must at least be reachable from the corpus).
    let fix = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/wire/fix")).unwrap();
    let tag = vigil_core::TagId::new("tag-fuzz").unwrap();
    let limits = vigil_core::ValidationLimits::default();
    assert!(vigil_core::fix::parse_fix(&fix, &tag, 1_764_432_000_000, &limits).is_ok());
}
