//! Every scenario in `tests/scenarios` runs through the in-process executor and passes; the
//! scenarios are what their names and descriptions claim; the schema and the Rust format agree.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use vigil_core::cells::Cell;
use vigil_core::index::zone_cells;
use vigil_core::{BreachRules, VictimAlert, ZoneShape};
use vigil_sim::executor::{Outcome, Run};
use vigil_sim::report::{write_table, write_verdict};
use vigil_sim::runner::scenario_files;
use vigil_sim::scenario::load;
use vigil_sim::{InProcessExecutor, Scenario, ScenarioExecutor, compare};

fn scenario_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/scenarios")
}

fn run(name: &str) -> (Scenario, Run) {
    let scenario = load(&scenario_dir().join(format!("{name}.json"))).unwrap();
    let run = InProcessExecutor::new().execute(&scenario).unwrap();
    (scenario, run)
}

const REQUIRED: [&str; 21] = [
    "approach_and_retreat",
    "first_fix_inside",
    "polygon_zone",
    "zone_across_cell_edge",
    "zone_larger_than_cell",
    "boundary_jitter_30m",
    "replayed_and_out_of_order",
    "two_orders_one_victim",
    "one_offender_two_victims",
    "scheduled_zone_outside_hours",
    "expired_order",
    "malformed_fixes",
    "demo",
    "pursuit_on_at_warning_off_after_clear",
    "tag_ignores_pursuit_command",
    "tag_silent_far_from_every_zone",
    "tag_silent_near_home",
    "no_gps_indoors_near_a_zone",
    "burst_after_outage",
    "strap_cut_then_restored",
    "battery_low_then_dead",
];

#[test]
fn every_scenario_passes_in_process() {
    let files = scenario_files(&[scenario_dir()]).unwrap();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    for required in REQUIRED {
        assert!(names.iter().any(|n| n == required), "missing {required}");
    }
    let mut failed = Vec::new();
    for file in &files {
        let scenario = load(file).unwrap_or_else(|e| panic!("{e}"));
        let stem = file.file_stem().unwrap().to_string_lossy();
        assert_eq!(scenario.name, stem, "a scenario's name is its file's name");
        assert!(
            scenario
                .description
                .as_deref()
                .is_some_and(|d| d.len() > 40),
            "{stem} needs a description"
        );
        let run = InProcessExecutor::new().execute(&scenario).unwrap();
        let verdict = compare(&scenario.expect, &run);
        if !verdict.passed() {
            let mut report = Vec::new();
            write_table(&mut report, &scenario, &run).unwrap();
            write_verdict(&mut report, &scenario, &run, &verdict).unwrap();
            failed.push(String::from_utf8(report).unwrap());
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn fixes_are_realistic() {
    // London-ish (one offender drives in from 70 km north), accuracy 5-30 m for the good
    // fixes, never more than 250 km/h between them.
    for file in scenario_files(&[scenario_dir()]).unwrap() {
        let scenario = load(&file).unwrap();
        let run = InProcessExecutor::new().execute(&scenario).unwrap();
        for step in &run.steps {
            if let Outcome::Fix {
                lat,
                lon,
                accuracy_m,
                ..
            } = step.outcome
            {
                // Adaptive reporting needs an offender far away: he drives in from Bedford.
                let north = if scenario.name == "adaptive_reporting_far_then_approaching" {
                    52.2
                } else {
                    51.7
                };
                assert!(
                    (51.3..north).contains(&lat) && (-0.5..0.3).contains(&lon),
                    "{}: ({lat}, {lon}) is not in London",
                    scenario.name
                );
                // Indoors, by design: valid fixes too poor to judge a zone (docs/WATCHDOG.md).
                let worst = if scenario.name == "no_gps_indoors_near_a_zone" {
                    250.0
                } else {
                    30.0
                };
                assert!(
                    (5.0..=worst).contains(&accuracy_m),
                    "{}: accuracy {accuracy_m}",
                    scenario.name
                );
            }
        }
    }
}

#[test]
fn zone_across_cell_edge_is_centred_on_a_cell_corner() {
    let (scenario, run) = run("zone_across_cell_edge");
    let ZoneShape::Circle { lat, lon, .. } = scenario.zones[0].spec().shape else {
        panic!("a circle");
    };
    let bounds = Cell::of_point(lat, lon).bounds().unwrap();
    assert_eq!(
        (bounds.min().y, bounds.min().x),
        (lat, lon),
        "the centre is exactly the south-west corner of its cell"
    );
    // The four cells that meet at the corner all hold the zone.
    let cells = zone_cells(&scenario.zones[0]);
    let e = 1e-9;
    for (dlat, dlon) in [(e, e), (e, -e), (-e, e), (-e, -e)] {
        assert!(cells.contains(&Cell::of_point(lat + dlat, lon + dlon)));
    }
    // The alerting fixes fall in different cells from each other and from the centre's.
    let fired: Vec<Cell> = run
        .steps
        .iter()
        .filter(|s| !s.sms.is_empty())
        .map(|s| match s.outcome {
            Outcome::Fix { lat, lon, .. } => Cell::of_point(lat, lon),
            _ => panic!("fix"),
        })
        .collect();
    assert_eq!(fired.len(), 3);
    assert!(fired[0] != fired[2]);
}

#[test]
fn zone_larger_than_cell_spans_far_more_cells_than_a_fix_reads() {
    let (scenario, run) = run("zone_larger_than_cell");
    let zone = &scenario.zones[0];
    assert!(zone_cells(zone).len() > 100, "{}", zone_cells(zone).len());
    let rules = BreachRules::default();
    for step in &run.steps {
        if let Outcome::Fix {
            lat,
            lon,
            accuracy_m,
            ..
        } = step.outcome
        {
            let mut cells = Vec::new();
            vigil_core::cells::cover_disc(lat, lon, rules.lookup_radius_m(accuracy_m), &mut cells);
            assert!(cells.len() <= 4);
        }
    }
}

#[test]
fn boundary_jitter_sends_exactly_one_warning() {
    let (_, run) = run("boundary_jitter_30m");
    let levels: Vec<VictimAlert> = run.sms().map(|(_, s)| s.level).collect();
    assert_eq!(levels, [VictimAlert::Warning, VictimAlert::AllClear]);
}

#[test]
fn replays_are_dropped_and_late_fixes_marked() {
    let (_, run) = run("replayed_and_out_of_order");
    let counts = run.counts();
    assert_eq!(counts.duplicates, 2);
    let late = run
        .steps
        .iter()
        .filter(|s| {
            matches!(
                s.outcome,
                Outcome::Fix {
                    late_by_ms: Some(_),
                    ..
                }
            )
        })
        .count();
    assert_eq!(late, 17);
    // Nothing texted the victim from a fix more than the 10-minute late window old.
    for (step, _) in run.sms() {
        if let Outcome::Fix {
            late_by_ms: Some(late),
            ..
        } = step.outcome
        {
            assert!(late <= 600_000, "SMS from a fix {late} ms late");
        }
    }
}

#[test]
fn rejected_fixes_never_send_sms() {
    let (_, run) = run("malformed_fixes");
    assert_eq!(run.counts().rejected, 10);
    for step in &run.steps {
        if matches!(step.outcome, Outcome::Rejected { .. }) {
            assert!(step.sms.is_empty());
            assert_eq!(step.operator_events.len(), 1);
            assert!(step.operator_events[0].kind.starts_with("fix_rejected:"));
        }
    }
}

#[test]
fn two_orders_each_have_their_own_home() {
    let (scenario, _) = run("two_orders_one_victim");
    assert_eq!(scenario.zones.len(), 2);
    assert_ne!(scenario.zones[0].order_id(), scenario.zones[1].order_id());
    assert_eq!(
        scenario.zones[0].spec().shape,
        scenario.zones[1].spec().shape
    );
}

#[test]
fn the_demo_is_narrated() {
    let scenario = vigil_sim::demo::scenario().unwrap();
    assert!(scenario.messages.iter().all(|m| m.note.is_some()));
    let run = InProcessExecutor::new().execute(&scenario).unwrap();
    let mut out = Vec::new();
    vigil_sim::demo::write_narration(&mut out, &scenario, &run).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("SMS to the victim (+44…00)"), "{text}");
    assert!(!text.contains("7700900900"), "never the whole number");
    assert!(text.contains(
        "The victim received 3 SMS: warning at +06:00, breach at +11:00, all_clear at +21:00."
    ));
}

/// A scenario using every field the format has.
fn kitchen_sink() -> Value {
    json!({
        "$schema": "./scenario.schema.json",
        "name": "sink",
        "description": "every field",
        "start": "2026-03-02T08:00:00Z",
        "orders": [{
            "order_id": "o-1", "tag_id": "t-1",
            "victim": {"victim_id": "v-1", "phone": "+447700900123", "language": "en"},
            "policy": {"reveal_offender_position": false, "cooldown_s": 900, "escalate_breach_after_s": 300,
                       "repeat_breach_window_s": 3600, "notify_victim_on_tamper": true, "late_fix_victim_window_s": 600,
                       "report_interval_s": 60, "pursuit_report_interval_s": 15,
                       "silence_limit_s": 300, "no_gps_limit_s": 600, "silent_victim_distance_m": 2000,
                       "tamper_grace_s": 300, "battery_low_grace_s": 1800,
                       "ack_within_s": 300, "renotify_every_s": 300},
            "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2027-01-01T00:00:00Z",
            "zones": [{
                "zone_id": "home", "kind": "home",
                "circle": {"lat": 51.5, "lon": -0.12, "radius_m": 100}, "buffer_m": 500,
                "schedule": {"time_zone": "Europe/London",
                             "windows": [{"days": ["mon"], "start": "08:00", "end": "17:00"}]},
                "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2027-01-01T00:00:00Z"
            }],
            "victim_zone": {"radius_m": 500, "buffer_m": 1000, "max_position_age_s": 300, "pair_window_s": 120}
        }],
        "fixes": [{"tag_id": "t-1", "at_s": 0, "lat": 51.5, "lon": -0.12, "accuracy_m": 10, "seq": 1, "note": "n"}],
        "events": [{"tag_id": "t-1", "at_s": 0, "kind": "strap_tamper", "seq": 2, "note": "n"}],
        "victim_positions": [{"victim_id": "v-1", "at_s": 0, "lat": 51.6, "lon": -0.12, "accuracy_m": 10, "seq": 1, "note": "n"}],
        "until_s": 120,
        "expect": {
            "sms": [{"to": "+447700900123", "level": "breach"}],
            "operator_events": [{"kind": "zone_breach"}],
            "no_other_sms": true,
            "commands": [{"tag_id": "t-1", "report_interval_s": 15}]
        }
    })
}

/// The fields serde accepts for the object at `pointer`, read from its unknown-field error.
fn rust_fields(sink: &Value, pointer: &str) -> Vec<String> {
    let mut v = sink.clone();
    v.pointer_mut(pointer)
        .and_then(Value::as_object_mut)
        .unwrap_or_else(|| panic!("no object at {pointer}"))
        .insert("zz_unknown".into(), json!(1));
    let err = Scenario::from_json(&v.to_string()).unwrap_err();
    assert!(
        err.message.starts_with("unknown field `zz_unknown`"),
        "{pointer}: {err}"
    );
    let mut fields: Vec<String> = err
        .message
        .split('`')
        .skip(3)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    fields.sort();
    fields
}

#[test]
fn schema_and_rust_format_list_the_same_fields() {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(scenario_dir().join("scenario.schema.json")).unwrap(),
    )
    .unwrap();
    let sink = kitchen_sink();
    Scenario::from_json(&sink.to_string()).expect("the kitchen sink is valid");
    for (at, def) in [
        ("", ""),
        ("/orders/0", "/$defs/order"),
        ("/orders/0/victim", "/$defs/victim"),
        ("/orders/0/policy", "/$defs/policy"),
        ("/orders/0/zones/0", "/$defs/zone"),
        ("/orders/0/zones/0/circle", "/$defs/circle"),
        ("/orders/0/zones/0/schedule", "/$defs/schedule"),
        (
            "/orders/0/zones/0/schedule/windows/0",
            "/$defs/schedule/properties/windows/items",
        ),
        ("/fixes/0", "/$defs/fix"),
        ("/events/0", "/$defs/event"),
        ("/victim_positions/0", "/$defs/victim_position"),
        ("/orders/0/victim_zone", "/$defs/victim_zone"),
        ("/expect", "/$defs/expect"),
        ("/expect/sms/0", "/$defs/expect/properties/sms/items"),
        (
            "/expect/operator_events/0",
            "/$defs/expect/properties/operator_events/items",
        ),
        (
            "/expect/commands/0",
            "/$defs/expect/properties/commands/items",
        ),
    ] {
        let def = schema.pointer(def).unwrap();
        assert_eq!(def["additionalProperties"], json!(false), "{at}");
        let mut listed: Vec<String> = def["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        listed.sort();
        assert_eq!(listed, rust_fields(&sink, at), "fields at {at:?}");
    }
}
