//! The deployed path's request: an API Gateway HTTP API (payload 2.0) event as the JWT
//! authorizer hands it to the function, turned into a request by lambda_http as `main.rs`'s
//! `lambda_http::run` does, then the router with [`ApiGatewayJwt`]: the verified claims name
//! the operator and their groups; an event without the authorizer's claims (the function
//! invoked directly) and a user in no force group are refused.

use axum::body::Body;
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt as _;
use vigil_aws::memory::{MemoryMac, MemoryStore};
use vigil_console::auth::ApiGatewayJwt;
use vigil_console::{Console, router};

/// An HTTP API event for `GET path`, with these authorizer claims (`None`: no authorizer).
fn event(path: &str, claims: Option<Value>) -> Value {
    let mut context = json!({
        "routeKey": "ANY /api/{proxy+}",
        "accountId": "123456789012",
        "stage": "$default",
        "requestId": "id",
        "apiId": "api-id",
        "domainName": "api-id.execute-api.eu-west-2.amazonaws.com",
        "domainPrefix": "api-id",
        "time": "05/Dec/2026:10:00:00 +0000",
        "timeEpoch": 1_796_464_800_000_i64,
        "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1", "userAgent": "test"}
    });
    if let Some(claims) = claims {
        context["authorizer"] = json!({"jwt": {"claims": claims, "scopes": null}});
    }
    json!({
        "version": "2.0",
        "routeKey": "ANY /api/{proxy+}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"authorization": "Bearer verified-by-api-gateway", "host": "api-id.execute-api.eu-west-2.amazonaws.com"},
        "requestContext": context,
        "isBase64Encoded": false
    })
}

async fn call(event: Value) -> (u16, Value) {
    let app = router(Console {
        store: MemoryStore::new(),
        mac: MemoryMac::default(),
        forces: Arc::new(vigil_testkit::forces()),
        auth: Arc::new(ApiGatewayJwt),
        now_ms: Arc::new(|| 1_796_464_800_000),
    });
    let lambda: lambda_http::request::LambdaRequest = serde_json::from_value(event).unwrap();
    let request: lambda_http::Request = lambda.into();
    let (parts, body) = request.into_parts();
    let body = Body::from(body.to_vec());
    let response = app
        .oneshot(axum::http::Request::from_parts(parts, body))
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn the_authorizers_claims_name_the_operator_and_nothing_else_gets_in() {
    let (status, me) = call(event(
        "/api/me",
        Some(
            json!({"username": "alice", "cognito:groups": "[force-met admin]", "client_id": "abc"}),
        ),
    ))
    .await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(
        me,
        json!({"operator": "cognito:alice", "scope": "met", "admin": true})
    );

    let (status, alerts) = call(event(
        "/api/alerts",
        Some(json!({"username": "alice", "cognito:groups": "[force-met]"})),
    ))
    .await;
    assert_eq!((status, alerts), (200, json!([])));

    // Invoked without the authorizer (the Authorization header alone proves nothing here).
    let (status, refused) = call(event("/api/me", None)).await;
    assert_eq!(status, 401, "{refused}");

    // A verified user in no force group.
    let (status, refused) = call(event(
        "/api/alerts",
        Some(json!({"username": "bob", "cognito:groups": "[admin]"})),
    ))
    .await;
    assert_eq!(status, 403, "{refused}");

    // A user of a force the deployment does not know: a valid group name, but no orders of it
    // exist and no order can be made for it.
    let (status, orders) = call(event(
        "/api/orders",
        Some(json!({"username": "eve", "cognito:groups": "[force-nowhere]"})),
    ))
    .await;
    assert_eq!((status, orders), (200, json!([])));
}
