//! The narrated demo: the built-in scenario `tests/scenarios/demo.json`, told step by step.

use crate::executor::{Run, StepRecord};
use crate::names::{fmt_offset, serde_name};
use crate::report::describe;
use crate::scenario::{Scenario, ScenarioError};
use std::io::{self, Write};

/// The demo scenario's JSON, built into the binary.
pub const DEMO_JSON: &str = include_str!("../../../tests/scenarios/demo.json");

/// Where `vigil-sim demo` writes its picture unless told otherwise.
pub const DEFAULT_SVG_PATH: &str = "target/vigil-demo.svg";

/// The demo scenario, checked. Fails only if the built-in file is invalid (a test guards it).
pub fn scenario() -> Result<Scenario, ScenarioError> {
    Scenario::from_json(DEMO_JSON)
}

fn write_step(out: &mut dyn Write, scenario: &Scenario, step: &StepRecord) -> io::Result<()> {
    let note = scenario.messages[step.message].note.as_deref();
    if note.is_none() && step.sms.is_empty() && step.operator_events.is_empty() {
        return Ok(());
    }
    let line = note.map_or_else(|| describe(scenario, step), str::to_owned);
    writeln!(out, "[{:>7}] {line}", fmt_offset(step.at_s))?;
    for e in &step.operator_events {
        let urgency = e
            .urgency
            .map(|u| format!(" ({})", serde_name(&u)))
            .unwrap_or_default();
        writeln!(
            out,
            "{:11}monitoring centre: {}{urgency} {}",
            "", e.kind, e.detail
        )?;
    }
    for sms in &step.sms {
        writeln!(
            out,
            "{:11}SMS to the victim ({}): \"{}\"",
            "", sms.to, sms.text
        )?;
    }
    Ok(())
}

/// Writes the demo's story: the scenario's description, then for each step its narration
/// line (the fix's `note`, or what happened), the operator events and the SMS the victim
/// received.
pub fn write_narration(out: &mut dyn Write, scenario: &Scenario, run: &Run) -> io::Result<()> {
    writeln!(out, "Vigil demo: {}", scenario.name)?;
    if let Some(d) = &scenario.description {
        writeln!(out, "{d}")?;
    }
    writeln!(out)?;
    for step in &run.steps {
        write_step(out, scenario, step)?;
    }
    writeln!(out)?;
    let sms: Vec<String> = run
        .sms()
        .map(|(step, m)| format!("{} at {}", serde_name(&m.level), fmt_offset(step.at_s)))
        .collect();
    writeln!(
        out,
        "The victim received {} SMS: {}.",
        sms.len(),
        if sms.is_empty() {
            "none".to_owned()
        } else {
            sms.join(", ")
        }
    )?;
    Ok(())
}
