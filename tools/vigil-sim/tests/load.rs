//! `vigil-sim load` on a small fleet through the whole local stack: every tag over its own mTLS
//! connection on its Basic Ingest topic, ingest invoked concurrently by the rule bridge, the
//! alert function and the watchdog live on the compressed clock; every expected SMS sent
//! exactly once (the run fails otherwise), and the summary and plot written.

use vigil_sim::load::{LoadOptions, run};

#[test]
fn a_small_fleet_gets_each_expected_sms_exactly_once() {
    let svg = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("vigil-load-{}.svg", std::process::id()));
    let options = LoadOptions {
        tags: 30,
        minutes: 5.0,
        // 0.5 fixes/s of fleet rate, 2.5 through the stack: far below any machine's ceiling,
        // so the check is of delivery, not of speed.
        speedup: Some(5.0),
        offered: 0.8,
        // moto's: its read-back is quick for a small fleet, and it needs no Java.
        dynamodb: vigil_local::DynamoDb::Moto,
        concurrency: vigil_stack::INGEST_CONCURRENCY,
        approaching_pct: 20.0,
        hovering_pct: 20.0,
        adaptive: false,
        seed: 3,
        svg: svg.clone(),
        progress: false,
        tags_exe: env!("CARGO_BIN_EXE_vigil-sim").into(),
    };
    let mut out = Vec::new();
    let result = run(&options, &mut out);
    let summary = String::from_utf8(out).unwrap();
    result.unwrap_or_else(|e| panic!("{e}\n{summary}"));
    assert!(
        summary.contains("| SMS | 18 expected, 18 reported sent, 18 recorded: each expected SMS exactly once, no other |"),
        "{summary}"
    );
    assert!(
        summary.contains("| rule errors, rejected messages | 0, 0 |"),
        "{summary}"
    );
    assert!(
        summary.contains("fix published -> SMS sent | p50"),
        "{summary}"
    );
    assert!(summary.contains("| moto_server |"), "{summary}");
    assert!(
        summary.contains("| vigil-sim load-tags: the tags (until"),
        "{summary}"
    );
    let plot = std::fs::read_to_string(&svg).unwrap();
    assert!(
        plot.starts_with("<svg") && plot.contains("<polyline"),
        "{plot}"
    );
    assert_eq!(plot.matches("<circle").count(), 18, "one dot per SMS");
    std::fs::remove_file(&svg).unwrap();
}
