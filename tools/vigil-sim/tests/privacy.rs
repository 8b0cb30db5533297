//! Privacy by test (issue 11, hardening 3): every scenario in `tests/scenarios` runs through the
//! product's handlers (the in-process executor), with every log line the functions write
//! captured, and with everything else they emit besides the victim's SMS: the operator events,
//! the metrics, the quarantine records and the audit log. None of it may hold a victim's phone
//! number (in any of its forms) or a zone's coordinates (a circle's centre, a polygon's
//! vertices). The offender's own positions may appear (operators need them); a zone coordinate
//! that a scenario's fix also has is therefore not a leak and is left out of the check.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use vigil_core::ZoneShape;
use vigil_sim::InProcessExecutor;
use vigil_sim::in_process::Outputs;
use vigil_sim::runner::scenario_files;
use vigil_sim::scenario::{Channel, Scenario, load};

/// A tracing writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The scenario run with every log line (down to DEBUG, with every field) and every output.
fn run_captured(scenario: &Scenario) -> (String, Outputs) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let (_, outputs) = tracing::subscriber::with_default(subscriber, || {
        InProcessExecutor::new()
            .execute_with_outputs(scenario)
            .expect("the scenario runs")
    });
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    (logs, outputs)
}

/// Every form a phone number could be written in: E.164, without `+`, and the national
/// significant number (without the country code's first one to three digits).
fn phone_forms(e164: &str) -> Vec<String> {
    let digits = e164.trim_start_matches('+');
    let mut forms = vec![e164.to_owned(), digits.to_owned()];
    for cc in 1..=3 {
        if digits.len() > cc + 6 {
            forms.push(digits[cc..].to_owned());
        }
    }
    forms
}

/// The numbers written in `text` (decimal, with a fraction), as found.
fn decimals(text: &str) -> Vec<f64> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        if bytes[i] == b'-' {
            i += 1;
        }
        let digits_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i > digits_start && i < bytes.len() && bytes[i] == b'.' {
            i += 1;
            let frac_start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i > frac_start
                && let Ok(v) = text[start..i].parse()
            {
                out.push(v);
            }
        } else if i == start {
            i += 1;
        }
    }
    out
}

/// The zone coordinates of the scenario that no fix of it shares (see the module docs).
fn zone_coordinates(scenario: &Scenario) -> Vec<f64> {
    let mut fix_values = Vec::new();
    for message in &scenario.messages {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&message.payload) {
            for key in ["lat", "lon"] {
                if let Some(x) = v[key].as_f64() {
                    fix_values.push(x);
                }
            }
        }
    }
    let mut coords = Vec::new();
    for zone in &scenario.zones {
        match &zone.spec().shape {
            ZoneShape::Circle { lat, lon, .. } => coords.extend([*lat, *lon]),
            ZoneShape::Polygon(ring) => coords.extend(ring.iter().flatten().copied()),
        }
    }
    coords.retain(|c| !fix_values.iter().any(|f| (f - c).abs() < 1e-9));
    // Round numbers (0.0, 10.0) are too common in any text to mean a zone.
    coords.retain(|c| c.fract() != 0.0);
    coords
}

/// The coordinates her own device reported (positions) that no tag's fix shares.
fn victim_coordinates(scenario: &Scenario) -> Vec<f64> {
    let values = |channel: Channel| -> Vec<f64> {
        scenario
            .messages
            .iter()
            .filter(|m| m.channel == channel)
            .filter_map(|m| serde_json::from_str::<serde_json::Value>(&m.payload).ok())
            .flat_map(|v| [v["lat"].as_f64(), v["lon"].as_f64()])
            .flatten()
            .collect()
    };
    let fixes = values(Channel::Fix);
    let mut coords = values(Channel::Position);
    coords.retain(|c| !fixes.iter().any(|f| (f - c).abs() < 1e-9) && c.fract() != 0.0);
    coords
}

fn leaks(scenario: &Scenario, name: &str, text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for order in &scenario.orders {
        for form in phone_forms(order.victim.phone.e164()) {
            if text.contains(&form) {
                found.push(format!("{name}: a victim's phone number ({form})"));
            }
        }
    }
    let coords = zone_coordinates(scenario);
    let hers = victim_coordinates(scenario);
    for value in decimals(text) {
        if coords.iter().any(|c| (c - value).abs() < 1e-9) {
            found.push(format!("{name}: a zone coordinate ({value})"));
        }
        if hers.iter().any(|c| (c - value).abs() < 1e-9) {
            found.push(format!(
                "{name}: a coordinate of the victim's own position ({value})"
            ));
        }
    }
    found
}

fn scenarios() -> Vec<(PathBuf, Scenario)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/scenarios");
    scenario_files(&[dir])
        .unwrap()
        .into_iter()
        .map(|f| {
            let s = load(&f).unwrap();
            (f, s)
        })
        .collect()
}

#[test]
fn no_log_metric_operator_event_quarantine_or_audit_record_holds_victim_data() {
    let all = scenarios();
    assert!(all.len() >= 13, "found {} scenarios", all.len());
    let mut problems = Vec::new();
    let mut checked_bytes = 0;
    for (file, scenario) in &all {
        let (logs, outputs) = run_captured(scenario);
        // Every scenario that told operators anything logged it (the capture works); one
        // where nothing happens (a stale fix beside a fresh position) may log nothing.
        assert!(
            !logs.is_empty() || outputs.operator_events.is_empty(),
            "{}: no log line was captured",
            file.display()
        );
        let name = file.file_name().unwrap().to_string_lossy();
        for (what, text) in [
            ("logs", logs),
            ("operator events", outputs.operator_events.join("\n")),
            ("quarantine", outputs.quarantine.join("\n")),
            ("audit", outputs.audit.join("\n")),
            ("metrics", outputs.metrics),
        ] {
            checked_bytes += text.len();
            problems.extend(leaks(scenario, &format!("{name} {what}"), &text));
        }
    }
    assert!(
        checked_bytes > 100_000,
        "only {checked_bytes} bytes checked"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_check_finds_a_phone_or_a_zone_coordinate_where_there_is_one() {
    let (_, scenario) = scenarios()
        .into_iter()
        .find(|(f, _)| f.ends_with("approach_and_retreat.json"))
        .unwrap();
    let phone = scenario.orders[0].victim.phone.e164().to_owned();
    assert!(!leaks(&scenario, "t", &format!("to {phone}")).is_empty());
    assert!(!leaks(&scenario, "t", &format!("to {}", &phone[3..])).is_empty());
    let coord = zone_coordinates(&scenario)[0];
    assert!(!leaks(&scenario, "t", &format!("{{\"lat\":{coord}}}")).is_empty());
    assert!(leaks(&scenario, "t", "nothing personal, 12.5 m").is_empty());
    let (_, moving) = scenarios()
        .into_iter()
        .find(|(f, _)| f.ends_with("victim_walks_towards_offender.json"))
        .unwrap();
    let hers = victim_coordinates(&moving);
    assert!(hers.len() > 10, "{hers:?}");
    assert!(!leaks(&moving, "t", &format!("at {}", hers[0])).is_empty());
}
