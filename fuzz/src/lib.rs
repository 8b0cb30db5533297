//! The fuzz targets' bodies: every function here takes arbitrary bytes, feeds them to code that
//! reads untrusted input, and checks a property beyond "does not panic" where there is one.
//! `cargo fuzz run <name> --features libfuzzer` runs them coverage-guided (nightly, see
//! docs/FUZZING.md); `tests/corpus.rs` replays `corpus/<name>/` on stable in the test command.
//!
//! | target | reads | property |
//! |--------|-------|----------|
//! | [`wire`] | a tag's payload, as a fix and as an event (`vigil_core::fix`) | no panic; whatever is accepted re-encodes and parses back to itself; a rejection has a reason code from the documented set |
//! | [`rule_event`] | the IoT rule's event, as the ingest function receives it (`vigil_ingest::decode`) | no panic; a refusal keeps at most the quarantine's excerpt of the payload |
//! | [`iot_sql`] | a rule SQL statement (`vigil_mqtt::sql`), then an evaluation of it | no panic; an accepted statement parses the same from its own text twice |
//! | [`scenario`] | a scenario file (`vigil_sim::scenario`) | no panic |

use vigil_core::fix::{
    encode_batch, encode_event, encode_fix, parse_event, parse_fix, parse_fixes,
};
use vigil_core::{TagId, ValidationLimits};

/// The receive time every target uses: device times are judged against it.
const RECEIVED_AT_MS: i64 = 1_764_432_000_000;

/// The reason codes a rejected message may carry (`FixError::reason`, docs/WIRE_FORMAT.md).
const REASONS: [&str; 11] = [
    "payload_too_large",
    "malformed",
    "unknown_version",
    "not_finite",
    "latitude_out_of_range",
    "longitude_out_of_range",
    "accuracy_out_of_range",
    "field_out_of_range",
    "device_time_in_future",
    "device_time_too_old",
    "impossible_speed",
];

/// A tag's payload, parsed as a fix and as an event.
pub fn wire(data: &[u8]) {
    let tag = TagId::new("tag-fuzz").expect("a valid tag id");
    let limits = ValidationLimits::default();
    match parse_fix(data, &tag, RECEIVED_AT_MS, &limits) {
        Ok(fix) => {
            let again = parse_fix(&encode_fix(&fix), &tag, RECEIVED_AT_MS, &limits)
                .expect("an accepted fix re-encodes to a valid fix");
            assert_eq!(again, fix, "a fix does not round-trip");
        }
        Err(e) => assert!(
            REASONS.contains(&e.reason()),
            "undocumented reason {}",
            e.reason()
        ),
    }
    // The fix channel: a v1 fix or a v2 batch. Every accepted fix round-trips through a batch,
    // and every refusal, of the message or of one fix, has a documented reason.
    match parse_fixes(data, &tag, RECEIVED_AT_MS, &limits) {
        Ok(items) => {
            let fixes: Vec<_> = items
                .iter()
                .filter_map(|i| match i {
                    Ok(f) => Some(f.clone()),
                    Err((e, _)) => {
                        assert!(REASONS.contains(&e.reason()), "undocumented {}", e.reason());
                        None
                    }
                })
                .collect();
            let wire = encode_batch(&fixes);
            // Numbers re-print in their shortest round-trip form, which can be longer than
            // sent (`1e5`): a batch that no longer fits is not a round-trip failure.
            if !fixes.is_empty() && wire.len() <= limits.max_batch_payload_bytes {
                let again: Vec<_> = parse_fixes(&wire, &tag, RECEIVED_AT_MS, &limits)
                    .expect("accepted fixes re-encode to a valid batch")
                    .into_iter()
                    .map(|i| i.expect("each re-encoded fix is accepted"))
                    .collect();
                let mut sorted = fixes.clone();
                sorted.sort_by_key(|f| f.seq);
                assert_eq!(again, sorted, "a batch does not round-trip");
            }
        }
        Err(e) => assert!(
            REASONS.contains(&e.reason()),
            "undocumented reason {}",
            e.reason()
        ),
    }
    match parse_event(data, &tag, RECEIVED_AT_MS, &limits) {
        Ok(event) => {
            let again = parse_event(&encode_event(&event), &tag, RECEIVED_AT_MS, &limits)
                .expect("an accepted event re-encodes to a valid event");
            assert_eq!(again, event, "an event does not round-trip");
        }
        Err(e) => assert!(
            REASONS.contains(&e.reason()),
            "undocumented reason {}",
            e.reason()
        ),
    }
}

/// The ingest function's decoding of an IoT rule event: the bytes as the event's JSON, and as
/// the payload of a well-formed event on each channel.
pub fn rule_event(data: &[u8]) {
    let limits = ValidationLimits::default();
    if let Ok(event) = serde_json::from_slice::<serde_json::Value>(data) {
        check_decoded(vigil_ingest::decode::decode(event, &limits), &limits);
    }
    for channel in ["fix", "event", "cmd"] {
        let event = vigil_ingest::rule_event("tag-fuzz", channel, data, RECEIVED_AT_MS);
        check_decoded(vigil_ingest::decode::decode(event, &limits), &limits);
    }
}

fn check_decoded(decoded: vigil_ingest::decode::Decoded, limits: &ValidationLimits) {
    if let vigil_ingest::decode::Decoded::Rejected(refused) = decoded {
        assert!(
            refused.payload.len() <= limits.max_payload_bytes.max(4096),
            "a refusal kept {} bytes",
            refused.payload.len()
        );
        assert!(!refused.rejection.reason.is_empty());
        assert!(
            refused.rejection.detail.len() <= 1024,
            "a refusal's detail is {} bytes",
            refused.rejection.detail.len()
        );
    }
}

/// A rule statement: parsed, and when accepted, evaluated against a message built from the
/// same bytes.
pub fn iot_sql(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(statement) = vigil_mqtt::sql::Statement::parse(text) else {
        return;
    };
    let second = vigil_mqtt::sql::Statement::parse(text).expect("parsing is deterministic");
    assert_eq!(
        format!("{statement:?}"),
        format!("{second:?}"),
        "parsing is deterministic"
    );
    for topic in ["tags/tag-fuzz/fix", "tags/tag-fuzz/event", "a/b/c/d"] {
        let _ = statement.matches_topic(topic);
        for payload in [
            data,
            br#"{"v":1,"seq":1,"lat":51.5,"a":{"b":2}}"#.as_slice(),
        ] {
            let _ = statement.evaluate(&vigil_mqtt::sql::Message {
                topic,
                payload,
                received_at_ms: RECEIVED_AT_MS,
                client_id: Some("tag-fuzz"),
            });
        }
    }
}

/// A scenario file: parsed and checked.
pub fn scenario(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = vigil_sim::scenario::Scenario::from_json(text);
}
