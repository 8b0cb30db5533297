//! `vigil-sim bench-local`: measurements of the whole local pipeline (docs/PERFORMANCE.md,
//! "Whole local pipeline"), on a stack started by [`LocalStackExecutor`]:
//!
//! - latency: fix published -> SMS recorded by the emulator, one transition at a time (a
//!   generated scenario: each tag's first fix is inside its zone, a breach);
//! - throughput: fixes per second through MQTT, the bridge and ingest, every tag publishing at
//!   once, on the quiet path (no zone near) and near a zone (inside the warning buffer, after
//!   the warning, so no transitions);
//! - the emulator's ceiling for the same per-fix requests, driven directly with the SDK (the
//!   ingest handler, no MQTT, no bridge) at the bridge's concurrency (ingest's reserved
//!   concurrency as deployed, [`vigil_stack::INGEST_CONCURRENCY`]).

use crate::executor::ExecutorError;
use crate::local_stack::{LocalStackExecutor, StackParts, TagConnection, connect_tag, provision};
use crate::scenario::Scenario;
use crate::{ScenarioExecutor, compare};
use serde_json::{Value, json};
use std::io::{self, Write};
use std::time::{Duration, Instant};
use vigil_core::{Fix, TagId};
use vigil_mqtt::Clock;

/// What to measure, and how much.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchOptions {
    /// Transitions timed for the latency (one tag and order each).
    pub transitions: usize,
    /// Tags publishing at once in the throughput runs.
    pub tags: usize,
    /// Fixes each of them publishes per run.
    pub fixes_per_tag: usize,
}

fn fail(message: impl Into<String>) -> ExecutorError {
    ExecutorError {
        executor: crate::local_stack::NAME.to_owned(),
        message: message.into(),
    }
}

/// Transitions per generated latency scenario.
const LATENCY_BATCH: usize = 20;

/// The scenario start of generated scenarios; device times are in the past, as in the files.
pub(crate) const START: &str = "2026-03-10T18:00:00Z";

/// The orders of a generated fleet: tag `{prefix}-{i}` restrained from a 100 m zone with a
/// 400 m buffer at latitude `lat0 + i * 0.1` (zones 11 km apart), longitude 10; with
/// `victim_devices`, each victim carries her own device (`dev-v-{prefix}-{i}`, the default
/// moving zone).
pub(crate) fn fleet_orders(prefix: &str, n: usize, lat0: f64, victim_devices: bool) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let mut order = json!({
                "order_id": format!("o-{prefix}-{i}"), "tag_id": format!("{prefix}-{i}"),
                "victim": {"victim_id": format!("v-{prefix}-{i}"), "phone": format!("+447700{:06}", 900_000 + i), "language": "en"},
                "zones": [{"zone_id": format!("z-{prefix}-{i}"), "kind": "home",
                    "circle": {"lat": lat0 + i as f64 * 0.1, "lon": 10.0, "radius_m": 100}, "buffer_m": 400}]
            });
            if victim_devices {
                order["victim_zone"] = json!({});
            }
            order
        })
        .collect()
}

/// A generated scenario: `n` orders ([`fleet_orders`] from latitude 40); with `breach_fixes`,
/// each tag's one fix is at its zone's centre, one second after the previous tag's.
fn generated(prefix: &str, n: usize, breach_fixes: bool) -> Result<Scenario, ExecutorError> {
    let centre = |i: usize| (40.0 + i as f64 * 0.1, 10.0);
    let orders = fleet_orders(prefix, n, 40.0, false);
    let fixes: Vec<_> = if breach_fixes {
        (0..n)
            .map(|i| {
                let (lat, lon) = centre(i);
                json!({"tag_id": format!("{prefix}-{i}"), "at_s": i, "lat": lat, "lon": lon, "accuracy_m": 8})
            })
            .collect()
    } else {
        Vec::new()
    };
    let sms: Vec<_> = if breach_fixes {
        (0..n)
            .map(|i| json!({"to": format!("+447700{:06}", 900_000 + i), "level": "breach"}))
            .collect()
    } else {
        Vec::new()
    };
    let file = json!({
        "name": format!("bench-{prefix}"), "start": START, "orders": orders, "fixes": fixes,
        "expect": {"sms": sms, "no_other_sms": true}
    });
    Scenario::from_json(&file.to_string()).map_err(|e| fail(format!("generated scenario: {e}")))
}

/// The `q` quantile (nearest rank) of sorted durations, ms.
pub(crate) fn quantile_ms(sorted: &[Duration], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1000.0
}

/// Runs every measurement and writes the results to `out`.
///
/// Fails when the stack does not start or a step of the pipeline fails.
pub fn run(options: BenchOptions, out: &mut dyn Write) -> Result<(), ExecutorError> {
    let io = |e: io::Error| fail(format!("writing the results: {e}"));
    let mut executor = LocalStackExecutor::start()?;

    // (a) Latency, one transition at a time, in scenarios of LATENCY_BATCH transitions with an
    // emulator reset between them: the per-step read-back (moto's data.json) slows down as the
    // emulator's state grows, and the read-back is not part of what is measured.
    let mut latencies = Vec::with_capacity(options.transitions);
    let mut batch = 0;
    while latencies.len() < options.transitions {
        let n = LATENCY_BATCH.min(options.transitions - latencies.len());
        let scenario = generated(&format!("lat{batch}"), n, true)?;
        let run = executor.execute(&scenario)?;
        let verdict = compare(&scenario.expect, &run);
        if !verdict.passed() {
            return Err(fail(format!(
                "the latency scenario did not produce one breach SMS per fix: {:?}",
                verdict.failures
            )));
        }
        latencies.extend(executor.step_latencies.iter().copied());
        batch += 1;
    }
    latencies.sort();
    let mean_ms =
        latencies.iter().map(Duration::as_secs_f64).sum::<f64>() * 1000.0 / latencies.len() as f64;
    writeln!(
        out,
        "latency, fix published -> SMS recorded ({} transitions, one at a time): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, mean {:.1} ms",
        latencies.len(),
        quantile_ms(&latencies, 0.5),
        quantile_ms(&latencies, 0.99),
        quantile_ms(&latencies, 1.0),
        mean_ms
    )
    .map_err(io)?;

    // (b) and (c) on a reset emulator.
    let result = executor.with_stack(async |parts| throughput(&parts, options).await);
    let figures = result.ok_or_else(|| fail("the local stack was stopped"))??;
    let n = options.tags * options.fixes_per_tag;
    for (path, stack, direct) in [
        ("quiet", figures.quiet, figures.quiet_direct),
        ("near", figures.near, figures.near_direct),
    ] {
        writeln!(
            out,
            "{path} path: {stack:.0} fixes/s through the whole stack ({n} fixes, {} tags at once); emulator ceiling for the same requests (ingest's, {} at once) {direct:.0} fixes/s; ratio {:.2}",
            options.tags,
            vigil_stack::INGEST_CONCURRENCY,
            stack / direct
        )
        .map_err(io)?;
    }
    writeln!(
        out,
        "emulator reset between runs: {:.0} ms",
        figures.reset.as_secs_f64() * 1000.0
    )
    .map_err(io)?;
    executor.stop();
    Ok(())
}

/// Fixes per second of each run.
struct Throughput {
    quiet: f64,
    near: f64,
    quiet_direct: f64,
    near_direct: f64,
    reset: Duration,
}

/// A fix of `tag` at `(lat, lon)`, 8 m accurate.
pub(crate) fn fix(
    tag: &str,
    seq: u64,
    at_ms: i64,
    (lat, lon): (f64, f64),
) -> Result<Fix, ExecutorError> {
    Ok(Fix {
        tag_id: TagId::new(tag).map_err(|e| fail(e.to_string()))?,
        seq,
        at_ms,
        lat,
        lon,
        accuracy_m: 8.0,
        speed_mps: None,
        heading_deg: None,
        battery_pct: None,
    })
}

async fn throughput(parts: &StackParts<'_>, o: BenchOptions) -> Result<Throughput, ExecutorError> {
    let pipeline = parts.functions;
    let started = Instant::now();
    pipeline
        .emulator
        .reset()
        .await
        .map_err(|e| fail(format!("reset: {e}")))?;
    let reset = started.elapsed();
    let scenario = generated("tp", o.tags, false)?;
    provision(&pipeline.store, &scenario).await?;
    let start_ms = scenario.start.timestamp_millis();
    // Receive time: after every device time used below (up to 20 minutes plus six seconds per
    // fix of a tag), within ingest's freshness limit.
    let k = o.fixes_per_tag as u64;
    parts
        .clock
        .set_ms(start_ms + 20 * 60_000 + 6 * k as i64 * 1000 + 60_000);
    // The fix of tag i, for its k-th fix of a run: 5.5 km south of its zone (quiet) or 300 m
    // from its edge, inside the buffer (near). Device times: the quiet run, then the near
    // run 20 minutes later (so the move is not an impossible speed), each fix a second apart.
    let position = |i: usize, near: bool| {
        let lat = 40.0 + i as f64 * 0.1;
        if near {
            (lat + 400.0 / 111_250.0, 10.0)
        } else {
            (lat - 0.05, 10.0)
        }
    };
    let mut connections = Vec::with_capacity(o.tags);
    for i in 0..o.tags {
        connections.push(connect_tag(&parts.endpoint, parts.pki, &format!("tp-{i}"))?);
    }
    let n = o.tags * o.fixes_per_tag;

    // Each tag's `k` fixes, near its zone or far from every zone.
    let fixes = |near: bool, first_seq: u64, base_ms: i64| {
        (0..o.tags)
            .map(|i| {
                (0..k)
                    .map(|j| {
                        fix(
                            &format!("tp-{i}"),
                            first_seq + j,
                            base_ms + j as i64 * 1000,
                            position(i, near),
                        )
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()
    };

    // Quiet: through the stack, then the same requests straight to the emulator. Device times
    // move on by a second per fix; each run continues the tags' counters.
    let (quiet, connections) =
        through_stack(parts, connections, fixes(false, 1, start_ms)?, n).await?;
    let quiet_direct = direct(parts, fixes(false, k + 1, start_ms + k as i64 * 1000)?).await?;

    // Into the buffer 20 minutes later (so the move is not an impossible speed): one warning
    // per tag, not timed; then the near runs, which change nothing.
    let near_base = start_ms + 20 * 60_000;
    let warm: Vec<Vec<Fix>> = (0..o.tags)
        .map(|i| fix(&format!("tp-{i}"), 3 * k + 1, near_base, position(i, true)).map(|f| vec![f]))
        .collect::<Result<_, _>>()?;
    let (_, connections) = through_stack(parts, connections, warm, o.tags).await?;
    let warnings = pipeline
        .try_drain()
        .await
        .map_err(|e| fail(format!("drain: {e}")))?;
    if warnings != o.tags {
        return Err(fail(format!(
            "expected {} warnings on entering the buffers, the alert queue had {warnings}",
            o.tags
        )));
    }
    let (near, connections) = through_stack(
        parts,
        connections,
        fixes(true, 3 * k + 2, near_base + 1000)?,
        n,
    )
    .await?;
    for c in connections {
        c.close().await;
    }
    let near_direct = direct(
        parts,
        fixes(true, 4 * k + 2, near_base + (k as i64 + 1) * 1000)?,
    )
    .await?;
    let extra = pipeline
        .try_drain()
        .await
        .map_err(|e| fail(format!("drain: {e}")))?;
    if extra != 0 {
        return Err(fail(format!(
            "the near runs should change nothing, but queued {extra} alert events"
        )));
    }
    Ok(Throughput {
        quiet,
        near,
        quiet_direct,
        near_direct,
        reset,
    })
}

/// Every tag publishes its fixes at once (each tag one at a time, PUBACK awaited); returns
/// fixes per second from the first publish until both rules have handled all `n`.
async fn through_stack(
    parts: &StackParts<'_>,
    connections: Vec<TagConnection>,
    fixes: Vec<Vec<Fix>>,
    n: usize,
) -> Result<(f64, Vec<TagConnection>), ExecutorError> {
    let before = parts.bridge.stats();
    let target = |rule: &str| before.get(rule).map_or(0, |s| s.handled()) + n as u64;
    let ingest_target = target("ingest");
    let started = Instant::now();
    let tasks: Vec<_> = connections
        .into_iter()
        .zip(fixes)
        .map(|(mut connection, fixes)| {
            tokio::spawn(async move {
                for f in &fixes {
                    let topic = format!("tags/{}/fix", f.tag_id);
                    connection
                        .publish(&topic, &vigil_core::fix::encode_fix(f))
                        .await?;
                }
                Ok::<_, ExecutorError>(connection)
            })
        })
        .collect();
    let mut connections = Vec::new();
    for t in tasks {
        connections.push(t.await.map_err(|e| fail(format!("publisher: {e}")))??);
    }
    parts
        .bridge
        .wait_until(Duration::from_secs(600), |s| {
            s.get("ingest")
                .is_some_and(|s| s.handled() >= ingest_target)
        })
        .await
        .map_err(|s| fail(format!("the bridge did not handle every fix: {s:?}")))?;
    let rate = n as f64 / started.elapsed().as_secs_f64();
    let failures = parts.bridge.failures();
    if !failures.is_empty() {
        return Err(fail(format!("rule errors: {failures:?}")));
    }
    Ok((rate, connections))
}

/// The per-fix requests straight to the emulator: ingest's handler (which writes the tag's
/// history itself), as many at once as the bridge runs, each tag's fixes in order; fixes per
/// second.
async fn direct(parts: &StackParts<'_>, fixes: Vec<Vec<Fix>>) -> Result<f64, ExecutorError> {
    let n: usize = fixes.iter().map(Vec::len).sum();
    let received_at = parts.clock.now_ms();
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(vigil_stack::INGEST_CONCURRENCY));
    let started = Instant::now();
    // One task per tag, its fixes one after the other; the permits bound how many are in
    // ingest at once.
    let mut running = tokio::task::JoinSet::new();
    for tag_fixes in fixes {
        let (pipeline, permits) = (parts.functions.clone(), permits.clone());
        running.spawn(async move {
            for f in &tag_fixes {
                let Ok(_permit) = permits.acquire().await else {
                    return;
                };
                pipeline
                    .publish_raw(
                        f.tag_id.as_str(),
                        "fix",
                        &vigil_core::fix::encode_fix(f),
                        received_at,
                    )
                    .await;
            }
        });
    }
    while let Some(done) = running.join_next().await {
        done.map_err(|e| fail(format!("ingest: {e}")))?;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}
