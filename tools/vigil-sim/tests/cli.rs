//! The `vigil-sim` binary: exit statuses, error messages, the JSON report and the demo.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vigil-sim"))
        .args(args)
        .output()
        .unwrap()
}

fn scenario(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/scenarios")
        .join(format!("{name}.json"))
        .display()
        .to_string()
}

/// A fresh scratch folder for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-sim-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn passing_scenarios_exit_0_with_a_table() {
    let out = bin(&[
        "run",
        &scenario("approach_and_retreat"),
        &scenario("malformed_fixes"),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("PASS approach_and_retreat"));
    assert!(stdout.contains("SMS WARNING to +44…01"));
    assert!(stdout.contains("REJECTED not_finite"));
    assert!(stdout.contains("2 passed, 0 failed"));
    assert!(!stdout.contains("7700900"), "phones are redacted");
}

#[test]
fn a_failed_expectation_exits_1() {
    let dir = scratch("fail");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(scenario("approach_and_retreat")).unwrap())
            .unwrap();
    v["expect"]["sms"][1]["level"] = "breach".into();
    let file = dir.join("wrong.json");
    std::fs::write(&file, v.to_string()).unwrap();
    let out = bin(&["run", file.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL approach_and_retreat"));
    assert!(stdout.contains("missing SMS: breach to +44…01"), "{stdout}");
    assert!(
        stdout.contains("unexpected SMS at +17:00: all_clear"),
        "{stdout}"
    );
}

#[test]
fn an_invalid_file_exits_2_naming_the_field() {
    let dir = scratch("invalid");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(scenario("polygon_zone")).unwrap()).unwrap();
    v["fixes"][3]["speed_mps"] = 2.into();
    let file = dir.join("typo.json");
    std::fs::write(&file, v.to_string()).unwrap();
    let missing = dir.join("missing.json");
    let out = bin(&[
        "run",
        file.to_str().unwrap(),
        missing.to_str().unwrap(),
        &scenario("demo"),
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("invalid scenario at fixes[3].speed_mps: unknown field `speed_mps`"),
        "{stderr}"
    );
    assert!(stderr.contains("cannot read"), "{stderr}");
    assert!(
        text(&out.stdout).contains("PASS demo"),
        "valid files still run"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn json_report_is_one_document_with_redacted_phones() {
    let out = bin(&["run", "--json", &scenario("one_offender_two_victims")]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    assert!(!stdout.contains("7700900"), "phones are redacted");
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["passed"], 1);
    let report = &doc["scenarios"][0];
    assert_eq!(report["passed"], true);
    assert_eq!(report["counts"]["sms"], 5);
    let sms: Vec<&serde_json::Value> = report["run"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["sms"].as_array().unwrap())
        .collect();
    assert_eq!(sms[0]["to"], "+44…81");
    assert_eq!(sms[0]["level"], "warning");
}

#[test]
fn demo_narrates_and_draws() {
    let dir = scratch("demo");
    let svg = dir.join("pictures/demo.svg");
    let out = bin(&["demo", "--svg", svg.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("He crosses into the warning buffer"));
    assert!(stdout.contains("PASS demo"));
    let picture = std::fs::read_to_string(&svg).unwrap();
    assert!(picture.starts_with("<svg"));
    assert!(picture.contains("stroke-dasharray"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn demo_on_the_local_stack_reads_the_sms_back_and_stops_the_stack() {
    let dir = scratch("demo-local");
    let svg = dir.join("demo.svg");
    let out = bin(&[
        "demo",
        "--executor",
        "local-stack",
        "--svg",
        svg.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("PASS demo [local-stack]"), "{stdout}");
    assert!(
        stdout.contains("SMS to the victim (+44…00): \"Vigil URGENT"),
        "{stdout}"
    );
    assert!(
        stdout.contains("monitoring centre: zone_step_down"),
        "{stdout}"
    );
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
    let _ = std::fs::remove_dir_all(dir);
}
