//! Reports of runs: a table for people and JSON for tools; independent of the executor.
//!
//! Phone numbers appear only through `PhoneNumber`'s redacted `Display` (`+44…23`); the JSON
//! report serialises them redacted too.

use crate::compare::Verdict;
use crate::executor::{Outcome, Run, StepRecord};
use crate::names::{alert_name, fmt_offset, level_name, serde_name};
use crate::scenario::{Channel, Scenario};
use serde::Serialize;
use std::io::{self, Write};

/// What a step's message was and what became of it, in a few words.
pub fn describe(scenario: &Scenario, step: &StepRecord) -> String {
    let source = &scenario.messages[step.message].source;
    match &step.outcome {
        Outcome::Fix {
            seq,
            accuracy_m,
            late_by_ms,
            fixes,
            ..
        } => {
            let batch = if *fixes > 1 {
                format!("a batch of {fixes} fixes, the newest ")
            } else {
                String::new()
            };
            let late = late_by_ms
                .map(|ms| {
                    let late = fmt_offset(ms as f64 / 1000.0);
                    format!(", late by {}", late.trim_start_matches('+'))
                })
                .unwrap_or_default();
            format!("{batch}fix seq {seq} ±{accuracy_m:.0} m{late}")
        }
        Outcome::Event { seq, kind } => format!("event seq {seq}: {}", serde_name(kind)),
        Outcome::Position { seq, .. } => format!("her device's position seq {seq}"),
        Outcome::Rejected { reason, detail } => {
            let what = match step.channel {
                Channel::Fix => "fix",
                Channel::Event => "event",
                Channel::Position => "position",
                Channel::Tick => "watchdog run",
                Channel::Ack => "acknowledgement",
            };
            format!("{what} ({source}) REJECTED {reason}: {detail}")
        }
        Outcome::Duplicate { seq } => format!("seq {seq} again: duplicate dropped"),
        Outcome::Tick => "the watchdog's scheduled run".to_owned(),
        Outcome::Ack => "an operator acknowledges".to_owned(),
    }
}

fn levels(step: &StepRecord) -> String {
    if step.levels.is_empty() {
        return "no order for this tag".to_owned();
    }
    step.levels
        .iter()
        .map(|l| format!("{} {}", l.order_id, level_name(l.level)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes the step-by-step table of a run: time offset, tag, what happened, the order levels
/// after it, and below each step the operator events and SMS (with their text) it caused.
pub fn write_table(out: &mut dyn Write, scenario: &Scenario, run: &Run) -> io::Result<()> {
    let tag_w = run
        .steps
        .iter()
        .map(|s| s.tag_id.as_str().len())
        .max()
        .unwrap_or(3)
        .max(3);
    let what: Vec<String> = run.steps.iter().map(|s| describe(scenario, s)).collect();
    let what_w = what
        .iter()
        .filter(|w| w.len() <= 40)
        .map(|w| w.chars().count())
        .max()
        .unwrap_or(4)
        .max(13);
    writeln!(
        out,
        "  {:<9} {:<tag_w$}  {:<what_w$}  levels after",
        "time", "tag", "what happened"
    )?;
    for (step, what) in run.steps.iter().zip(&what) {
        // The watchdog's runs that found nothing would fill the table: shown when they did.
        if step.outcome == Outcome::Tick
            && step.operator_events.is_empty()
            && step.sms.is_empty()
            && step.commands.is_empty()
        {
            continue;
        }
        let levels = if matches!(step.outcome, Outcome::Tick | Outcome::Ack) {
            String::new()
        } else {
            levels(step)
        };
        writeln!(
            out,
            "  {:<9} {:<tag_w$}  {:<what_w$}  {}",
            fmt_offset(step.at_s),
            step.tag_id.as_str(),
            what,
            levels
        )?;
        for e in &step.operator_events {
            let urgency = e.urgency.map(|u| serde_name(&u)).unwrap_or_default();
            let order = e
                .order_id
                .as_ref()
                .map(|o| format!(" {o}"))
                .unwrap_or_default();
            writeln!(
                out,
                "  {:<9} operator {:<22}{order} {urgency:<6} {}",
                "", e.kind, e.detail
            )?;
        }
        for sms in &step.sms {
            writeln!(
                out,
                "  {:<9} SMS {} to {} ({}): {}",
                "",
                alert_name(sms.level).to_uppercase(),
                sms.to,
                sms.order_id,
                sms.text
            )?;
        }
    }
    Ok(())
}

/// Writes the one-line verdict of a run, and one line per failure.
pub fn write_verdict(
    out: &mut dyn Write,
    scenario: &Scenario,
    run: &Run,
    verdict: &Verdict,
) -> io::Result<()> {
    let c = run.counts();
    writeln!(
        out,
        "{} {} [{}]: {} SMS, {} operator events; {} fixes and {} events accepted{}, {} rejected, {} duplicates dropped",
        if verdict.passed() { "PASS" } else { "FAIL" },
        scenario.name,
        run.executor,
        c.sms,
        c.operator_events,
        c.fixes_accepted,
        c.events_accepted,
        if c.positions_accepted > 0 {
            format!(
                " (and {} of victims' devices' positions)",
                c.positions_accepted
            )
        } else {
            String::new()
        },
        c.rejected,
        c.duplicates
    )?;
    for f in &verdict.failures {
        writeln!(out, "  - {f}")?;
    }
    Ok(())
}

/// One scenario's result, as the JSON report holds it.
#[derive(Debug, Serialize)]
pub struct ScenarioReport<'a> {
    /// The file it came from.
    pub file: String,
    /// The scenario's name.
    pub name: &'a str,
    /// Whether it passed.
    pub passed: bool,
    /// The differences found.
    pub failures: &'a [crate::compare::Failure],
    /// Totals.
    pub counts: crate::executor::RunCounts,
    /// Every step (phones redacted).
    pub run: &'a Run,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets() {
        assert_eq!(fmt_offset(0.0), "+00:00");
        assert_eq!(fmt_offset(61.0), "+01:01");
        assert_eq!(fmt_offset(3600.0 + 125.0), "+1:02:05");
        assert_eq!(fmt_offset(1.5), "+00:01.500");
        assert_eq!(fmt_offset(-90.0), "-01:30");
    }
}
