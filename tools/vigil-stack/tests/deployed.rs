//! The local stack runs the functions at the concurrency `infra/` deploys them with: ingest's
//! reserved concurrency is how many invocations the rule bridge runs at once, the alert
//! function's how many batches its event source mapping handles at once.

/// The number `key: N,` in `infra/lib/config.ts`'s defaults.
fn deployed(key: &str) -> usize {
    let path = vigil_local::workspace_root().join("infra/lib/config.ts");
    let text = std::fs::read_to_string(&path).unwrap();
    let defaults = &text[text.find("DEFAULTS").expect("a DEFAULTS object")..];
    let line = defaults
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{key}:")))
        .unwrap_or_else(|| panic!("{key} is not in {}'s defaults", path.display()));
    line.split(':')
        .nth(1)
        .unwrap()
        .trim()
        .trim_end_matches(',')
        .parse()
        .unwrap()
}

#[test]
fn the_local_concurrencies_are_the_deployed_ones() {
    assert_eq!(
        vigil_stack::INGEST_CONCURRENCY,
        deployed("ingestReservedConcurrency")
    );
    assert_eq!(
        vigil_stack::QUEUE_CONCURRENCY,
        deployed("alertReservedConcurrency")
    );
}

/// The number in `export const <name> = N;` of `infra/lib/vigil-stack.ts`.
fn stack_constant(name: &str) -> u64 {
    let path = vigil_local::workspace_root().join("infra/lib/vigil-stack.ts");
    let text = std::fs::read_to_string(&path).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("export const {name} = ")))
        .unwrap_or_else(|| panic!("{name} is not in {}", path.display()));
    line.rsplit('=')
        .next()
        .unwrap()
        .trim()
        .trim_end_matches(';')
        .parse()
        .unwrap()
}

#[test]
fn the_anchor_functions_stream_mapping_is_the_deployed_one() {
    assert_eq!(
        vigil_stack::ANCHOR_BATCH_SIZE as u64,
        stack_constant("ANCHOR_BATCH_SIZE")
    );
    assert_eq!(
        vigil_stack::ANCHOR_WINDOW.as_secs(),
        stack_constant("ANCHOR_WINDOW_S")
    );
}
