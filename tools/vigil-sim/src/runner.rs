//! Running scenario files from the command line: loading, executing, comparing, reporting,
//! and the process exit status.

use crate::compare::compare;
use crate::executor::ScenarioExecutor;
use crate::report::{ScenarioReport, write_table, write_verdict};
use crate::scenario::{LoadError, load};
use crate::svg;
use serde_json::json;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Exit status: every scenario passed.
pub const EXIT_PASSED: u8 = 0;
/// Exit status: some expectation failed (or the executor could not run a scenario).
pub const EXIT_FAILED: u8 = 1;
/// Exit status: a scenario file could not be read or is not a valid scenario.
pub const EXIT_INVALID: u8 = 2;

/// Whether a file is a JSON Schema rather than a scenario (`*.schema.json`).
fn is_schema(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".schema.json"))
}

/// The scenario files named by `args`: files as given; for a folder, its `*.json` files in
/// name order. Schema files (`*.schema.json`) are skipped, so `tests/scenarios/*.json` works.
pub fn scenario_files(args: &[PathBuf]) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for arg in args {
        if arg.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(arg)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "json") && !is_schema(p))
                .collect();
            found.sort();
            files.extend(found);
        } else if !is_schema(arg) {
            files.push(arg.clone());
        }
    }
    Ok(files)
}

/// How `run` reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// One JSON document instead of tables.
    pub json: bool,
    /// Where to write one SVG picture per scenario (`<name>.svg`), if anywhere.
    pub svg_dir: Option<PathBuf>,
}

/// Runs every scenario file with `executor`, writes the tables and verdicts (or one JSON
/// document) to `out` and problems to `err`, and returns the exit status: [`EXIT_INVALID`]
/// if any file is unreadable or invalid, else [`EXIT_FAILED`] if any scenario failed, else
/// [`EXIT_PASSED`]. Valid files run even when others are invalid. Fails only when writing
/// the report or a picture fails.
pub fn run_files(
    files: &[PathBuf],
    executor: &mut dyn ScenarioExecutor,
    options: &RunOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<u8> {
    let json = options.json;
    if let Some(dir) = &options.svg_dir {
        std::fs::create_dir_all(dir)?;
    }
    let (mut passed, mut failed, mut invalid) = (0usize, 0usize, 0usize);
    let mut reports = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        let scenario = match load(file) {
            Ok(s) => s,
            Err(e) => {
                invalid += 1;
                writeln!(err, "error: {e}")?;
                let (path, message) = match &e {
                    LoadError::Invalid { error, .. } => (error.path.clone(), error.message.clone()),
                    LoadError::Read { source, .. } => (String::new(), source.to_string()),
                };
                errors.push(
                    json!({"file": file.display().to_string(), "path": path, "message": message}),
                );
                continue;
            }
        };
        let run = match executor.execute(&scenario) {
            Ok(run) => run,
            Err(e) => {
                failed += 1;
                writeln!(err, "error: {}: {e}", file.display())?;
                errors.push(json!({"file": file.display().to_string(), "path": "", "message": e.to_string()}));
                continue;
            }
        };
        let verdict = compare(&scenario.expect, &run);
        if let Some(dir) = &options.svg_dir {
            let picture = svg::render(&svg::Picture::of_run(&scenario, &run));
            let file_name: String = scenario
                .name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            std::fs::write(dir.join(format!("{file_name}.svg")), picture)?;
        }
        if verdict.passed() {
            passed += 1;
        } else {
            failed += 1;
        }
        if json {
            let report = ScenarioReport {
                file: file.display().to_string(),
                name: &scenario.name,
                passed: verdict.passed(),
                failures: &verdict.failures,
                counts: run.counts(),
                run: &run,
            };
            reports.push(serde_json::to_value(&report).map_err(io::Error::other)?);
        } else {
            writeln!(out, "== {} ({})", scenario.name, file.display())?;
            if let Some(d) = &scenario.description {
                writeln!(out, "   {d}")?;
            }
            write_table(out, &scenario, &run)?;
            write_verdict(out, &scenario, &run, &verdict)?;
            writeln!(out)?;
        }
    }
    if json {
        let doc = json!({
            "passed": passed,
            "failed": failed,
            "invalid": invalid,
            "scenarios": reports,
            "errors": errors,
        });
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&doc).map_err(io::Error::other)?
        )?;
    } else {
        let invalid_note = if invalid > 0 {
            format!(", {invalid} invalid")
        } else {
            String::new()
        };
        writeln!(out, "{passed} passed, {failed} failed{invalid_note}")?;
    }
    Ok(if invalid > 0 {
        EXIT_INVALID
    } else if failed > 0 {
        EXIT_FAILED
    } else {
        EXIT_PASSED
    })
}
