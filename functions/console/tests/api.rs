//! The operator API over the in-memory ports, with the local sign-in's tokens: every endpoint
//! refuses a request with no token, a tampered token, a token of another key and a user in no
//! force group; the changing endpoints refuse an operator outside `admin`; another force's
//! operator gets 403 on the order and nothing of it in the listings; nothing refused changes
//! the audit. Then what an operator and an administrator do, through the routes, with the
//! victim's phone never in a response or a log line. (The deployed API's tokens are checked
//! by API Gateway's JWT authorizer before the function; `auth`'s unit tests cover the claims
//! it hands over.) It is the only test in this binary: the log capture is per thread.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt as _;
use vigil_aws::memory::{MemoryMac, MemoryQueue, MemoryStore};
use vigil_aws::metrics::MemoryMetrics;
use vigil_aws::ports::AuditLog;
use vigil_console::local::{LocalTokens, LocalUsers};
use vigil_console::{Console, router};
use vigil_core::OrderId;
use vigil_testkit::{CapturedLogs, HOME, VICTIM_PHONE};

const T0: i64 = 1_764_432_000_000;

struct Api {
    app: Router,
    tokens: Arc<LocalTokens>,
    users: LocalUsers,
}

impl Api {
    fn token(&self, user: &str) -> String {
        self.tokens.issue(self.users.get(user).unwrap())
    }

    async fn call(
        &self,
        method: &Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            request = request.header("authorization", format!("Bearer {t}"));
        }
        let body = body.map_or(Body::empty(), |b| Body::from(b.to_string()));
        let response = self
            .app
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        assert!(
            !text.contains(VICTIM_PHONE),
            "{method} {path} answered with the victim's phone: {text}"
        );
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }
}

fn order_spec(id: &str, tag: &str) -> Value {
    json!({
        "order_id": id, "tag_id": tag,
        "victim": {"victim_id": format!("v-{id}"), "phone": VICTIM_PHONE, "language": "en"},
        "zones": [{"zone_id": "home", "kind": "home",
                   "circle": {"lat": HOME.0, "lon": HOME.1, "radius_m": 100}, "buffer_m": 500}]
    })
}

fn zone(id: &str) -> Value {
    json!({"zone_id": id, "kind": "work",
           "circle": {"lat": HOME.0 + 0.05, "lon": HOME.1, "radius_m": 150}, "buffer_m": 400})
}

/// A fix of `tag` `north_m` north of home, through the real ingest handler.
async fn fix(ingest: &vigil_ingest::Ports<MemoryStore, MemoryQueue, MemoryMetrics>, seq: u64) {
    let at = T0 + seq as i64 * 60_000;
    let payload = format!(
        r#"{{"v":1,"seq":{seq},"at_ms":{at},"lat":{},"lon":{},"accuracy_m":8,"battery_pct":71}}"#,
        HOME.0, HOME.1
    );
    vigil_ingest::handle(
        vigil_ingest::rule_event("tag-1", "fix", payload.as_bytes(), at),
        ingest,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn every_endpoint_refuses_the_unauthorized_and_serves_operators_their_forces_cases() {
    let logs = CapturedLogs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let store = MemoryStore::new();
    let now = Arc::new(std::sync::atomic::AtomicI64::new(T0));
    let clock = now.clone();
    let tokens = Arc::new(LocalTokens::new(vec![42; 32], || T0 / 1000));
    let api = Api {
        app: router(Console {
            store: store.clone(),
            mac: MemoryMac::default(),
            forces: Arc::new(vigil_testkit::forces()),
            auth: tokens.clone(),
            now_ms: Arc::new(move || clock.load(std::sync::atomic::Ordering::SeqCst)),
        }),
        tokens,
        users: LocalUsers::demo(),
    };
    let (adam, alice, kim, tom, nadia, nobody) = (
        api.token("adam"),
        api.token("alice"),
        api.token("kim"),
        api.token("tom"),
        api.token("nadia"),
        api.token("nobody"),
    );

    // The administrator creates the order through the API; the tag breaches its home zone.
    let (status, created) = api
        .call(
            &Method::POST,
            "/api/orders",
            Some(&adam),
            Some(&json!({"order": order_spec("o1", "tag-1")})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["order"]["force_id"], "met");
    let ingest = vigil_ingest::Ports::new(
        store.clone(),
        MemoryQueue::default(),
        MemoryMetrics::default(),
    );
    for seq in 1..=3 {
        fix(&ingest, seq).await;
    }
    now.store(T0 + 4 * 60_000, std::sync::atomic::Ordering::SeqCst);
    let o1 = OrderId::new("o1").unwrap();
    let chain_before = store.read(&o1).await.unwrap().len();

    // Every endpoint, and who may call it: (method, path, body, admin only).
    let endpoints: Vec<(Method, &str, Option<Value>, bool)> = vec![
        (Method::GET, "/api/me", None, false),
        (Method::GET, "/api/alerts", None, false),
        (Method::GET, "/api/orders", None, false),
        (Method::GET, "/api/orders/o1", None, false),
        (Method::GET, "/api/tags", None, false),
        (
            Method::POST,
            "/api/orders/o1/zones/home/ack",
            Some(json!({"note": "called her"})),
            false,
        ),
        (
            Method::POST,
            "/api/orders",
            Some(json!({"order": order_spec("o9", "tag-9")})),
            true,
        ),
        (Method::POST, "/api/orders/o1/end", None, true),
        (
            Method::POST,
            "/api/orders/o1/zones",
            Some(zone("work")),
            true,
        ),
        (
            Method::PUT,
            "/api/orders/o1/zones/home",
            Some(zone("home")),
            true,
        ),
        (Method::DELETE, "/api/orders/o1/zones/home", None, true),
    ];
    let payload = alice.split('.').nth(1).unwrap().to_owned();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&payload).unwrap()).unwrap();
    let mut elevated = claims.clone();
    elevated["cognito:groups"] = json!(["force-met", "admin", "national"]);
    let tampered = alice.replacen(&payload, &URL_SAFE_NO_PAD.encode(elevated.to_string()), 1);
    let foreign =
        LocalTokens::new(vec![1; 32], || T0 / 1000).issue(LocalUsers::demo().get("adam").unwrap());
    for (method, path, body, admin_only) in &endpoints {
        let body = body.as_ref();
        let what = format!("{method} {path}");
        for (token, expected, who) in [
            (None, StatusCode::UNAUTHORIZED, "no token"),
            (Some("not-a-jwt"), StatusCode::UNAUTHORIZED, "garbage"),
            (
                Some(tampered.as_str()),
                StatusCode::UNAUTHORIZED,
                "tampered",
            ),
            (
                Some(foreign.as_str()),
                StatusCode::UNAUTHORIZED,
                "another key",
            ),
            (Some(nobody.as_str()), StatusCode::FORBIDDEN, "in no group"),
        ] {
            let (status, answer) = api.call(method, path, token, body).await;
            assert_eq!(status, expected, "{what} with {who}: {answer}");
            assert!(answer["error"].is_string(), "{what} with {who}: {answer}");
        }
        if *admin_only {
            let (status, answer) = api.call(method, path, Some(&alice), body).await;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "{what} as a non-admin: {answer}"
            );
        }
        // Another force's operator: refused on the order, shown nothing of it.
        let (status, answer) = api.call(method, path, Some(&kim), body).await;
        match (*admin_only, path.contains("/o1")) {
            (true, _) => assert_eq!(status, StatusCode::FORBIDDEN, "{what} by kim"),
            (false, true) => assert_eq!(status, StatusCode::FORBIDDEN, "{what} by kim: {answer}"),
            (false, false) => {
                assert_eq!(status, StatusCode::OK, "{what} by kim");
                assert!(
                    !answer.to_string().contains("o1"),
                    "{what} by kim: {answer}"
                );
            }
        }
        // Another force's administrator: refused by vigil-admin's force rule.
        if *admin_only && path.contains("/o1") {
            let (status, answer) = api.call(method, path, Some(&tom), body).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{what} by tom: {answer}");
        }
    }
    assert_eq!(
        store.read(&o1).await.unwrap().len(),
        chain_before,
        "a refused request changed the order's audit"
    );

    // The operator's queue: the breach, urgent, first.
    let (status, queue) = api
        .call(&Method::GET, "/api/alerts", Some(&alice), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(queue[0]["order_id"], "o1");
    assert_eq!(queue[0]["zone_id"], "home");
    assert_eq!(queue[0]["level"], "breach");
    assert_eq!(queue[0]["urgent"], true);

    // The order's picture: the zone, the track, the state; the phone masked.
    let (status, picture) = api
        .call(&Method::GET, "/api/orders/o1", Some(&alice), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{picture}");
    assert_eq!(picture["zones"][0]["zone_id"], "home");
    assert_eq!(picture["zones"][0]["circle"]["radius_m"], 100.0);
    assert_eq!(picture["track"].as_array().unwrap().len(), 3);
    assert_eq!(picture["track"][0]["at_ms"], T0 + 3 * 60_000);
    assert_eq!(picture["states"][0]["level"], "breach");
    assert_eq!(picture["health"]["battery_pct"], 71);
    assert_eq!(picture["order"]["order"]["victim"]["phone"], "+44…23");
    assert!(picture["history"][0]["kind"].is_string());

    // Tags' health.
    let (_, tags) = api
        .call(&Method::GET, "/api/tags", Some(&alice), None)
        .await;
    assert_eq!(tags[0]["tag_id"], "tag-1");
    assert_eq!(tags[0]["last_seen_ms"], T0 + 3 * 60_000);
    assert_eq!(tags[0]["silent"], false);
    now.store(T0 + 60 * 60_000, std::sync::atomic::Ordering::SeqCst);
    let (_, tags) = api
        .call(&Method::GET, "/api/tags", Some(&alice), None)
        .await;
    assert_eq!(tags[0]["silent"], true, "{tags}");
    now.store(T0 + 4 * 60_000, std::sync::atomic::Ordering::SeqCst);

    // Acknowledged: in the audit with the operator's identity, and no longer urgent.
    let (status, ack) = api
        .call(
            &Method::POST,
            "/api/orders/o1/zones/home/ack",
            Some(&alice),
            Some(&json!({"note": "called her"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{ack}");
    let last = store.read(&o1).await.unwrap().pop().unwrap();
    assert_eq!(last.kind, "alert_acknowledged");
    assert_eq!(last.detail["operator"], "local:alice");
    assert_eq!(last.detail["note"], "called her");
    let (_, queue) = api
        .call(&Method::GET, "/api/alerts", Some(&alice), None)
        .await;
    assert_eq!(queue[0]["acknowledged_by"], "local:alice");
    assert_eq!(queue[0]["urgent"], false);
    let (status, _) = api
        .call(
            &Method::POST,
            "/api/orders/o1/zones/nowhere/ack",
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The administrator's changes, each through vigil-admin and in the audit.
    let (status, _) = api
        .call(
            &Method::POST,
            "/api/orders/o1/zones",
            Some(&adam),
            Some(&zone("work")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, again) = api
        .call(
            &Method::POST,
            "/api/orders/o1/zones",
            Some(&adam),
            Some(&zone("work")),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    let (status, replaced) = api
        .call(
            &Method::PUT,
            "/api/orders/o1/zones/work",
            Some(&adam),
            Some(&zone("work")),
        )
        .await;
    assert_eq!(
        (status, &replaced["replaced"]),
        (StatusCode::OK, &json!(true))
    );
    let (status, mismatch) = api
        .call(
            &Method::PUT,
            "/api/orders/o1/zones/school",
            Some(&adam),
            Some(&zone("work")),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{mismatch}");
    let (status, _) = api
        .call(
            &Method::DELETE,
            "/api/orders/o1/zones/work",
            Some(&adam),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, bad) = api
        .call(
            &Method::POST,
            "/api/orders/o1/zones",
            Some(&adam),
            Some(&json!({"zone_id": "x", "circle": {"lat": 95, "lon": 0, "radius_m": 10}, "buffer_m": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    let changes: Vec<(String, String)> = store
        .read(&o1)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == "admin_change")
        .map(|r| {
            let d = &r.detail;
            (
                d["action"].as_str().unwrap().to_owned(),
                d["operator"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for action in ["zone_added", "zone_replaced", "zone_removed"] {
        assert!(
            changes.contains(&(action.to_owned(), "local:adam".to_owned())),
            "{action} by adam not audited: {changes:?}"
        );
    }

    // A national administrator names the force; the order is that force's.
    let (status, missing) = api
        .call(
            &Method::POST,
            "/api/orders",
            Some(&nadia),
            Some(&json!({"order": order_spec("o2", "tag-2")})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{missing}");
    let (status, o2) = api
        .call(
            &Method::POST,
            "/api/orders",
            Some(&nadia),
            Some(&json!({"force": "tvp", "order": order_spec("o2", "tag-2")})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{o2}");
    let (_, kims) = api
        .call(&Method::GET, "/api/orders", Some(&kim), None)
        .await;
    assert_eq!(kims.as_array().unwrap().len(), 1);
    assert_eq!(kims[0]["order"]["order_id"], "o2");

    // Ending an order.
    let (status, ended) = api
        .call(&Method::POST, "/api/orders/o1/end", Some(&adam), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{ended}");
    assert_eq!(ended["in_force"], false);

    // Logs: each request and refusal, with the route's template, never the phone or a place.
    let text = logs.text();
    assert!(text.contains(r#"route="/api/orders/:order""#), "{text}");
    assert!(text.contains("refused"), "{text}");
    assert!(text.contains("operator=local:alice"), "{text}");
    for secret in [VICTIM_PHONE, "51.5", "called her"] {
        assert!(!text.contains(secret), "the logs hold {secret}: {text}");
    }
}
