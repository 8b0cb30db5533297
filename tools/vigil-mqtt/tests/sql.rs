//! The rule SQL subset: both rule files parse, errors are clear, and evaluation follows IoT
//! Core's semantics for JSON and non-JSON payloads, topic functions and WHERE.

use base64::Engine;
use serde_json::json;
use vigil_mqtt::bridge::{default_rules_dir, load_rules};
use vigil_mqtt::sql::{Evaluation, Message, RuleOutput, Statement, topic_matches};

fn rule(name: &str) -> Statement {
    load_rules(&default_rules_dir())
        .expect("rule files parse")
        .into_iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no {name}.sql"))
        .statement
}

fn eval(rule: &Statement, topic: &str, payload: &[u8], received_at_ms: i64) -> Evaluation {
    rule.evaluate(&Message {
        topic,
        payload,
        received_at_ms,
        client_id: topic.split('/').nth(1),
    })
}

fn json_output(e: Evaluation) -> serde_json::Value {
    match e {
        Evaluation::Output(RuleOutput::Json(v)) => v,
        other => panic!("expected a JSON output, got {other:?}"),
    }
}

const FIX: &str = r#"{"v":1,"seq":4711,"at_ms":1764432000000,"lat":51.50741,"lon":-0.12776,"accuracy_m":8.5,"battery_pct":81}"#;

#[test]
fn every_rule_file_parses_with_its_filter() {
    let rules = load_rules(&default_rules_dir()).unwrap();
    let names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["ingest", "victim"]);
    assert_eq!(rule("ingest").from, "tags/+/+");
}

/// A rule that selects a fix's fields, as a rule writing a table would (Vigil's own rules no
/// longer do: the subset still supports it, and these tests keep its semantics pinned).
fn field_rule() -> Statement {
    Statement::parse(
        "SELECT topic(2) AS tag_id, seq, at_ms, lat, lon, accuracy_m, battery_pct, \
         timestamp() AS received_at, floor(timestamp() / 1000) + 604800 AS expires_at \
         FROM 'tags/+/fix' WHERE isNumber(at_ms) AND isNumber(seq)",
    )
    .expect("the field rule parses")
}

#[test]
fn ingest_rule_encodes_a_json_fix_with_topic_and_receive_time() {
    let out = json_output(eval(
        &rule("ingest"),
        "tags/tag-0042/fix",
        FIX.as_bytes(),
        1_764_432_000_123,
    ));
    assert_eq!(
        out,
        json!({
            "payload": base64::engine::general_purpose::STANDARD.encode(FIX),
            "tag_id": "tag-0042", "channel": "fix", "client_id": "tag-0042",
            "received_at": 1_764_432_000_123_i64,
        })
    );
    // The same shape ingest's own helper builds.
    assert_eq!(
        out,
        vigil_ingest::rule_event("tag-0042", "fix", FIX.as_bytes(), 1_764_432_000_123)
    );
}

#[test]
fn ingest_rule_still_delivers_a_payload_that_is_not_json() {
    let raw = b"\x00\x01 not json {";
    let out = json_output(eval(&rule("ingest"), "tags/t1/event", raw, 5));
    assert_eq!(
        out["payload"],
        base64::engine::general_purpose::STANDARD.encode(raw)
    );
    assert_eq!(out["channel"], "event");
}

#[test]
fn ingest_rule_filters_other_channels_and_topic_shapes() {
    let r = rule("ingest");
    assert_eq!(
        eval(&r, "tags/t1/cmd", FIX.as_bytes(), 1),
        Evaluation::Filtered
    );
    assert_eq!(eval(&r, "tags/t1/status", b"x", 1), Evaluation::Filtered);
    assert!(r.matches_topic("tags/t1/fix"));
    assert!(!r.matches_topic("tags/t1/fix/extra"));
    assert!(!r.matches_topic("other/t1/fix"));
}

#[test]
fn a_field_rule_selects_fields_and_computes_expiry() {
    let out = json_output(eval(
        &field_rule(),
        "tags/tag-0042/fix",
        FIX.as_bytes(),
        1_764_432_000_123,
    ));
    assert_eq!(
        out,
        json!({
            "tag_id": "tag-0042", "seq": 4711, "at_ms": 1_764_432_000_000_i64,
            "lat": 51.50741, "lon": -0.12776, "accuracy_m": 8.5, "battery_pct": 81,
            "received_at": 1_764_432_000_123_i64,
            // floor(timestamp() / 1000) + 604800: whole seconds, 7 days on.
            "expires_at": 1_764_432_000_i64 + 604_800,
        })
    );
}

#[test]
fn a_field_rule_leaves_out_missing_fields() {
    let out = json_output(eval(
        &field_rule(),
        "tags/t/fix",
        br#"{"seq":1,"at_ms":2}"#,
        3_999,
    ));
    assert_eq!(
        out,
        json!({"tag_id": "t", "seq": 1, "at_ms": 2, "received_at": 3_999, "expires_at": 3 + 604_800})
    );
}

#[test]
fn a_field_rule_fails_for_a_payload_that_is_not_json() {
    match eval(&field_rule(), "tags/t/fix", b"garbage", 1) {
        Evaluation::Failed(reason) => assert!(reason.contains("not JSON"), "{reason}"),
        other => panic!("expected the rule to fail, got {other:?}"),
    }
}

#[test]
fn a_field_rule_skips_fixes_without_numeric_time_and_seq() {
    let r = field_rule();
    for payload in [
        r#"{"seq":"1","at_ms":2}"#,
        r#"{"seq":1}"#,
        r#"{"seq":1,"at_ms":"NaN"}"#,
        r#"[1,2]"#,
    ] {
        assert_eq!(
            eval(&r, "tags/t/fix", payload.as_bytes(), 1),
            Evaluation::Filtered,
            "{payload}"
        );
    }
}

#[test]
fn expressions_follow_iot_types() {
    let r = Statement::parse(
        "SELECT 7 / 2 AS i, 7.0 / 2 AS d, floor(-1.5) AS f, topic() AS t, topic(9) AS missing, \
         a.b AS nested, '3' + 1 AS s, x / 0 AS z, -seq AS neg FROM '#' WHERE NOT (a.b = 'no') AND seq <> 2",
    )
    .unwrap();
    let out = json_output(eval(&r, "x/y", br#"{"a":{"b":"yes"},"seq":5,"x":1}"#, 0));
    assert_eq!(
        out,
        json!({"i": 3, "d": 3.5, "f": -2, "t": "x/y", "nested": "yes", "s": 4, "neg": -5})
    );
    assert_eq!(
        eval(&r, "x/y", br#"{"a":{"b":"no"},"seq":5}"#, 0),
        Evaluation::Filtered
    );
    // WHERE on an undefined field is not true.
    assert_eq!(eval(&r, "x/y", br#"{"seq":5}"#, 0), Evaluation::Filtered);
}

#[test]
fn select_star_passes_binary_through_and_json_with_additions() {
    let star = Statement::parse("SELECT * FROM 'a/+'").unwrap();
    assert_eq!(
        eval(&star, "a/b", b"\xffraw", 0),
        Evaluation::Output(RuleOutput::Binary(b"\xffraw".to_vec()))
    );
    let more = Statement::parse("SELECT *, topic(2) AS id FROM 'a/+'").unwrap();
    assert_eq!(
        json_output(eval(&more, "a/b", br#"{"k":1}"#, 0)),
        json!({"k": 1, "id": "b"})
    );
    assert!(matches!(
        eval(&more, "a/b", b"raw", 0),
        Evaluation::Failed(_)
    ));
}

#[test]
fn topic_filters_match_as_mqtt() {
    assert!(topic_matches("tags/+/fix", "tags/t1/fix"));
    assert!(topic_matches("tags/#", "tags"));
    assert!(topic_matches("tags/#", "tags/t1/fix"));
    assert!(!topic_matches("tags/+", "tags/t1/fix"));
    assert!(!topic_matches("tags/+/fix", "tags/t1/event"));
}

#[test]
fn unsupported_sql_is_refused_with_the_column_and_what_is_supported() {
    let cases = [
        (
            "SELECT upper(x) AS u FROM 'a'",
            8,
            "unsupported function `upper`",
        ),
        (
            "SELECT x FROM 'a' WHERE x > 1",
            27,
            "operator `>` is not supported",
        ),
        (
            "SELECT timestamp() FROM 'a'",
            8,
            "name this expression with `AS <name>`",
        ),
        ("SELECT x FROM a", 15, "expected a quoted topic filter"),
        ("SELECT x FROM 'a/#/b'", 15, "`#` must be the last level"),
        ("SELECT x FROM 'a/b+'", 15, "must be a whole level"),
        (
            "SELECT encode(x, 'base64') AS p FROM 'a'",
            15,
            "encode(*, 'base64')",
        ),
        (
            "SELECT encode(*, 'hex') AS p FROM 'a'",
            18,
            "only the 'base64'",
        ),
        (
            "SELECT x FROM 'a' ORDER BY x",
            19,
            "`ORDER` clauses are not supported",
        ),
        ("SELECT x, FROM 'a'", 11, "keyword `FROM`"),
        ("SELECT 'open FROM 'a'", 21, "unterminated string"),
        ("SELECT topic(x) AS t FROM 'a'", 14, "topic() or topic(n)"),
        ("UPDATE x", 1, "expected SELECT"),
    ];
    for (sql, column, needle) in cases {
        let e = Statement::parse(sql).expect_err(sql);
        assert!(e.message.contains(needle), "{sql}: {e}");
        assert_eq!(e.column, column, "{sql}: {e}");
        // The caret points at the column.
        let text = e.to_string();
        let caret = text.lines().last().unwrap();
        assert_eq!(caret.len(), 2 + column, "{sql}:\n{text}");
    }
}

#[test]
fn victim_rule_gives_ingest_the_events_it_decodes_and_nothing_of_the_tags() {
    let r = rule("victim");
    let out = json_output(eval(&r, "victims/dev-1/position", FIX.as_bytes(), 77));
    assert_eq!(
        out,
        vigil_ingest::position_event("dev-1", FIX.as_bytes(), 77)
    );
    // Never a tag's topic, and only the position channel.
    assert_eq!(
        eval(&r, "tags/t1/fix", FIX.as_bytes(), 1),
        Evaluation::Filtered
    );
    assert_eq!(
        eval(&r, "victims/dev-1/cmd", b"{}", 1),
        Evaluation::Filtered
    );
    assert!(!rule("ingest").matches_topic("victims/dev-1/position"));
}
