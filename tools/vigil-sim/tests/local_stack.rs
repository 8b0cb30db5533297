//! Every scenario in `tests/scenarios` runs through the whole local pipeline (moto, the mTLS
//! broker, the IoT rule bridge, the functions) and passes, and the local stack does what the
//! in-process executor does: the same SMS (phone, level) after the same messages, and the
//! same operator event kinds. The same again with AWS's DynamoDB Local serving DynamoDB
//! (ignored by `cargo test`: it needs Java 17 and npm; `tools/test.sh` runs it).
//!
//! One stack serves every scenario, reset between them, and is stopped at the end.

use std::path::{Path, PathBuf};
use std::time::Instant;
use vigil_local::DynamoDb;
use vigil_sim::executor::Run;
use vigil_sim::report::{write_table, write_verdict};
use vigil_sim::runner::scenario_files;
use vigil_sim::scenario::load;
use vigil_sim::{InProcessExecutor, LocalStackExecutor, ScenarioExecutor, compare};

fn scenario_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/scenarios")
}

/// What one step caused: its message, the SMS (phone, level) and the operator event kinds,
/// sorted.
type StepEffects = (
    usize,
    Vec<(String, String)>,
    Vec<String>,
    Vec<(String, u32)>,
);

/// Per step, what it caused.
fn effects(run: &Run) -> Vec<StepEffects> {
    run.steps
        .iter()
        .map(|s| {
            let sms = s
                .sms
                .iter()
                .map(|m| (m.to.e164().to_owned(), format!("{:?}", m.level)))
                .collect();
            let mut kinds: Vec<String> = s.operator_events.iter().map(|e| e.kind.clone()).collect();
            kinds.sort();
            let commands = s
                .commands
                .iter()
                .map(|c| (c.thing.clone(), c.report_interval_s))
                .collect();
            (s.message, sms, kinds, commands)
        })
        .collect()
}

#[test]
fn every_scenario_passes_on_the_local_stack() {
    every_scenario_passes_with(DynamoDb::Moto);
}

/// AWS's own DynamoDB engine under the same scenarios: conditions, transactions and limits as
/// AWS implements them, not as moto imitates them.
#[test]
#[ignore = "needs Java 17 and npm (DynamoDB Local); tools/test.sh runs it"]
fn every_scenario_passes_on_dynamodb_local() {
    every_scenario_passes_with(DynamoDb::Local);
}

fn every_scenario_passes_with(dynamodb: DynamoDb) {
    let files = scenario_files(&[scenario_dir()]).unwrap();
    assert!(files.len() >= 13, "{files:?}");
    let started = Instant::now();
    let mut executor =
        LocalStackExecutor::start_with(None, Some(dynamodb)).unwrap_or_else(|e| panic!("{e}"));
    let startup = started.elapsed();
    let mut failed = Vec::new();
    for file in &files {
        let scenario = load(file).unwrap_or_else(|e| panic!("{e}"));
        let t = Instant::now();
        let run = executor
            .execute(&scenario)
            .unwrap_or_else(|e| panic!("{}: {e}", scenario.name));
        let verdict = compare(&scenario.expect, &run);
        let in_process = InProcessExecutor::new().execute(&scenario).unwrap();
        let same = effects(&run) == effects(&in_process);
        eprintln!(
            "{:<30} {} ({} messages, {} SMS) in {:.1} s{}",
            scenario.name,
            if verdict.passed() { "passed" } else { "FAILED" },
            scenario.messages.len(),
            run.counts().sms,
            t.elapsed().as_secs_f64(),
            if same {
                ""
            } else {
                "; differs from in-process"
            }
        );
        if !verdict.passed() || !same {
            let mut out = Vec::new();
            write_table(&mut out, &scenario, &run).unwrap();
            write_verdict(&mut out, &scenario, &run, &verdict).unwrap();
            if !same {
                for (local, core) in effects(&run).iter().zip(effects(&in_process).iter()) {
                    if local != core {
                        out.extend(
                            format!(
                                "  step {}: local {local:?} / in-process {core:?}\n",
                                local.0
                            )
                            .bytes(),
                        );
                    }
                }
            }
            failed.push(format!(
                "{}:\n{}",
                scenario.name,
                String::from_utf8_lossy(&out)
            ));
        }
    }
    let reset = executor.reset_time;
    executor.stop();
    eprintln!(
        "local stack (DynamoDB: {dynamodb}): started in {:.1} s, {} scenarios in {:.1} s in all \
         ({:.1} s of emulator resets)",
        startup.as_secs_f64(),
        files.len(),
        started.elapsed().as_secs_f64(),
        reset.as_secs_f64()
    );
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// `--endpoint` / `VIGIL_EMULATOR_ENDPOINT`: the executor uses an emulator that is already
/// running (here one started by the test, as `vigil-local up` would) and leaves it running.
#[test]
fn scenarios_run_on_an_emulator_that_was_already_running() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let emulator = runtime
        .block_on(vigil_local::Emulator::start())
        .expect("emulator starts");
    let endpoint = emulator.endpoint_url().to_owned();
    let scenario =
        load(&scenario_dir().join("approach_and_retreat.json")).unwrap_or_else(|e| panic!("{e}"));
    let mut executor = LocalStackExecutor::start_on(Some(&endpoint))
        .expect("the stack starts on the running emulator");
    let run = executor.execute(&scenario).expect("the scenario runs");
    assert!(
        compare(&scenario.expect, &run).passed(),
        "approach_and_retreat on a running emulator"
    );
    executor.stop();
    // The executor did not start the emulator, so it did not stop it: the SMS it sent are still
    // there to read.
    let sms = runtime
        .block_on(emulator.sent_sms())
        .expect("the emulator is still running");
    assert_eq!(sms.len(), 2, "warning and all-clear: {sms:?}");
}
