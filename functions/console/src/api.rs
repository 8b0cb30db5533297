//! The operator API's routes (all under `/api`, JSON in and out). Every request passes
//! [`authenticate`] first: no verified principal, HTTP 401; a principal with no force (or two),
//! HTTP 403; then each handler calls vigil-admin, which applies the force rule to the record
//! itself. Changes to orders and zones also need the `admin` group ([`require_admin`]). Each
//! request is logged with the operator's label, the route's template (never its ids), the
//! method and the status; changes and acknowledgements are in the order's audit chain, and a
//! national administrator's look at an order too (vigil-admin's `access`).
//!
//! | method and route | what | who |
//! |---|---|---|
//! | `GET /api/me` | who the token names, their scope, whether admin | any operator |
//! | `GET /api/alerts` | open alerts, most urgent first | any operator |
//! | `POST /api/orders/{order}/zones/{zone}/ack` | acknowledge that zone's open alert (`{"note"}`) | any operator |
//! | `GET /api/orders` | the orders (phones masked) | any operator |
//! | `GET /api/orders/{order}` | the order's picture: zones, states, track, distance to her, health, history | any operator |
//! | `GET /api/tags` | tags' health | any operator |
//! | `POST /api/orders` | create an order (vigil-admin's order spec; `force` for a national administrator) | admin |
//! | `POST /api/orders/{order}/end` | end it now, or at `{"at"}` | admin |
//! | `POST /api/orders/{order}/zones` | add a zone (a zone spec) | admin |
//! | `PUT /api/orders/{order}/zones/{zone}` | replace that zone | admin |
//! | `DELETE /api/orders/{order}/zones/{zone}` | remove it | admin |

use crate::auth::{Authenticator, Refusal, Role};
use crate::views::{self, Picture, PictureParts};
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use vigil_admin::orders::OrderView;
use vigil_admin::{AdminError, OrderSpec, alerts, input, orders, zones};
use vigil_aws::ports::{AdminStore, AuditLog, DestinationMac, WatchStore};
use vigil_core::forces::Forces;
use vigil_core::{ForceId, OrderId, ZoneId, ZoneKey, ZoneSpec};

/// The ports the console's actions need.
pub trait ConsoleStore: AdminStore + AuditLog + WatchStore + Send + Sync + 'static {}
impl<T: AdminStore + AuditLog + WatchStore + Send + Sync + 'static> ConsoleStore for T {}

/// The largest request body the API reads (an order with many polygon zones fits easily).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Everything a request is served with.
pub struct Console<S, M> {
    /// Orders, zones, alerts, the audit log and the watchdog's tables.
    pub store: S,
    /// The keyed hash of victims' phones (`order_created` records it instead of the number).
    pub mac: M,
    /// The deployment's forces.
    pub forces: Arc<Forces>,
    /// Who is asking.
    pub auth: Arc<dyn Authenticator>,
    /// The time, Unix ms (the wall clock in Lambda; the stack's clock locally).
    pub now_ms: Arc<dyn Fn() -> i64 + Send + Sync>,
}

type Shared<S, M> = Arc<Console<S, M>>;

/// The API's routes over `console`.
pub fn router<S: ConsoleStore, M: DestinationMac + 'static>(console: Console<S, M>) -> Router {
    let state = Arc::new(console);
    Router::new()
        .route("/api/me", get(me))
        .route("/api/alerts", get(list_alerts::<S, M>))
        .route(
            "/api/orders/:order/zones/:zone/ack",
            post(acknowledge::<S, M>),
        )
        .route(
            "/api/orders",
            get(list_orders::<S, M>).post(create_order::<S, M>),
        )
        .route("/api/orders/:order", get(picture::<S, M>))
        .route("/api/orders/:order/end", post(end_order::<S, M>))
        .route("/api/orders/:order/zones", post(add_zone::<S, M>))
        .route(
            "/api/orders/:order/zones/:zone",
            put(replace_zone::<S, M>).delete(remove_zone::<S, M>),
        )
        .route("/api/tags", get(tags::<S, M>))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            authenticate::<S, M>,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// An error as the API answers it: a status and `{"error": message}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> ApiError {
        let status = match &e {
            AdminError::Invalid(_) => StatusCode::BAD_REQUEST,
            AdminError::NotFound(_) => StatusCode::NOT_FOUND,
            AdminError::Forbidden(_) => StatusCode::FORBIDDEN,
            AdminError::Conflict(_) => StatusCode::CONFLICT,
            AdminError::Store { .. } if e.is_retryable() => StatusCode::SERVICE_UNAVAILABLE,
            AdminError::Store { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> ApiError {
        match r {
            Refusal::Unauthenticated(m) => ApiError::new(StatusCode::UNAUTHORIZED, m),
            Refusal::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, m),
        }
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Authenticates every request and puts its [`Role`] in the request's extensions; logs the
/// outcome without personal data (the route's template, never its ids or body).
async fn authenticate<S: ConsoleStore, M: DestinationMac + 'static>(
    State(console): State<Shared<S, M>>,
    matched: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let route = matched
        .as_ref()
        .map_or("(unmatched)", MatchedPath::as_str)
        .to_owned();
    let method = request.method().clone();
    let (mut parts, body) = request.into_parts();
    let role = console
        .auth
        .authenticate(&parts)
        .and_then(|p| Role::of(&p).map(|r| (p, r)));
    match role {
        Err(refusal) => {
            let response = ApiError::from(refusal.clone()).into_response();
            tracing::warn!(
                target: "vigil_console::access",
                %method, route, status = response.status().as_u16(),
                reason = %refusal, "refused"
            );
            response
        }
        Ok((_, role)) => {
            let label = role.caller.operator.label();
            parts.extensions.insert(role);
            let response = next.run(Request::from_parts(parts, body)).await;
            tracing::info!(
                target: "vigil_console::access",
                operator = %label, %method, route, status = response.status().as_u16(),
                "served"
            );
            response
        }
    }
}

/// Refuses a caller outside the `admin` group.
fn require_admin(role: &Role, action: &str) -> ApiResult<()> {
    if role.admin {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "{action}: only the {} group may change orders and zones",
                crate::auth::ADMIN_GROUP
            ),
        ))
    }
}

fn order_id(text: &str) -> ApiResult<OrderId> {
    Ok(input::order_id(text)?)
}

fn zone_id(text: &str) -> ApiResult<ZoneId> {
    Ok(input::zone_id(text)?)
}

/// A JSON body as vigil-admin's input, with serde's path to a bad field.
fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "the body is not UTF-8"))?;
    input::parse_json(text).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))
}

/// An optional JSON body: none is `T::default()`.
fn optional_body<T: serde::de::DeserializeOwned + Default>(bytes: &[u8]) -> ApiResult<T> {
    if bytes.is_empty() {
        Ok(T::default())
    } else {
        body(bytes)
    }
}

async fn me(Extension(role): Extension<Role>) -> Json<serde_json::Value> {
    Json(json!({
        "operator": role.caller.operator.label(),
        "scope": role.caller.scope.name(),
        "admin": role.admin,
    }))
}

async fn list_alerts<S: ConsoleStore, M: DestinationMac>(
    State(c): State<Shared<S, M>>,
    Extension(role): Extension<Role>,
) -> ApiResult<Json<Vec<views::QueuedAlert>>> {
    let open = alerts::list_alerts(&c.store, &role.caller).await?;
    Ok(Json(views::queue(open)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AckBody {
    #[serde(default)]
    note: Option<String>,
}

async fn acknowledge<S: ConsoleStore, M: DestinationMac>(
    State(c): State<Shared<S, M>>,
    Extension(role): Extension<Role>,
    Path((order, zone)): Path<(String, String)>,
    bytes: axum::body::Bytes,
) -> ApiResult<Json<alerts::Acknowledged>> {
    let (order, zone) = (order_id(&order)?, zone_id(&zone)?);
    let ack: AckBody = optional_body(&bytes)?;
    if ack.note.as_ref().is_some_and(|n| n.len() > 1000) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "note: at most 1000 bytes",
        ));
    }
    let done = alerts::acknowledge(
        &c.store,
        &role.caller,
        &order,
        &zone,
        ack.note.as_deref(),
        (c.now_ms)(),
    )
    .await?;
    Ok(Json(done))
}

fn now(c: &Console<impl Sized, impl Sized>) -> (i64, chrono::DateTime<chrono::Utc>) {
    let ms = (c.now_ms)();
    (
        ms,
        chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default(),
    )
}

async fn list_orders<S: ConsoleStore, M: DestinationMac>(
    State(c): State<Shared<S, M>>,
    Extension(role): Extension<Role>,
) -> ApiResult<Json<Vec<OrderView>>> {
    let (_, now) = now(&c);
    let all = orders::list_orders(&c.store, &role.caller).await?;
    Ok(Json(
        all.iter()
            .map(|(o, z)| OrderView::new(o, z, false, now))
            .collect(),
    ))
}

async fn picture<S: ConsoleStore, M: DestinationMac>(
    State(c): State<Shared<S, M>>,
    Extension(role): Extension<Role>,
    Path(order): Path<String>,
) -> ApiResult<Json<Picture>> {
    let id = order_id(&order)?;
    let (now_ms, now) = now(&c);
    let (order, zones) = orders::show_order(&c.store, &role.caller, &id, now_ms).await?;
    let store_err = |what: &str| AdminError::store(format!("reading {what} of order {id}"));
    let states = c
        .store
        .zone_records(&id)
        .await
        .map_err(store_err("the zone states"))?;
    let tag = c
        .store
        .watched(std::slice::from_ref(&order.tag_id))
        .await
        .map_err(store_err("the tag"))?;
    let chain = c
        .store
        .read(&id)
        .await
        .map_err(store_err("the audit log"))?;
    let parts = PictureParts {
        order: OrderView::new(&order, &zones, false, now),
        zones: &zones,
        states,
        tag: tag.first(),
        chain,
    };
    Ok(Json(Picture::new(&id, parts, now_ms)))
}

async fn tags<S: ConsoleStore, M: DestinationMac>(
    State(c): State<Shared<S, M>>,
    Extension(role): Extension<Role>,
) -> ApiResult<Json<Vec<views::TagHealth>>> {
    let now_ms = (c.now_ms)();
    let visible = orders::list_orders(&c.store, &role.caller).await?;
    let ids: Vec<OrderId> = visible.iter().map(|(o, _)| o.order_id.clone()).collect();
    let mut tags: Vec<_> = visible.iter().map(|(o, _)| o.tag_id.clone()).collect();
    tags.sort();
    tags.dedup();
    let watched = c
        .store
        .watched(&tags)
        .await
        .map_err(AdminError::store("reading the tags"))?;
    Ok(Json(
        watched
            .iter()
            .map(|t| views::health(t, &ids, now_ms))
            .collect(),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    /// The force the order is for: a national administrator must name one.
    #[serde(default)]
    force: Option<String>,
    order: serde_json::Value,
}

async fn create_order<S: ConsoleStore, M: DestinationMac>(
    State(c): State<Shared<S, M>>,
    Extension(role): Extension<Role>,
    bytes: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<OrderView>)> {
    require_admin(&role, "orders create")?;
    let request: CreateBody = body(&bytes)?;
    let spec: OrderSpec = input::deserialize(request.order)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("order: {e}")))?;
    let force = request
        .force
        .as_deref()
        .map(|f| {
            ForceId::new(f)
                .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("force: {e}")))
        })
        .transpose()?;
    let (now_ms, now) = now(&c);
    let (order, zones) = orders::create_order(
        &c.store,
        &c.mac,
        &role.caller,
        &c.forces,
        force.as_ref(),
        &spec,
        now_ms,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(OrderView::new(&order, &zones, false, now)),
    ))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct EndBody {
    #[serde(default)]
    at: Option<String>,
}

async fn end_order<S: ConsoleStore, M: DestinationMac>(
    State(c): State<Shared<S, M>>,
    Extension(role): Extension<Role>,
    Path(order): Path<String>,
    bytes: axum::body::Bytes,
) -> ApiResult<Json<OrderView>> {
    require_admin(&role, "orders end")?;
    let id = order_id(&order)?;
    let end: EndBody = optional_body(&bytes)?;
    let (now_ms, now) = now(&c);
    let at = match end.at.as_deref() {
        Some(text) => input::parse_instant("at", text, None)?,
        None => now,
    };
    let ended = orders::end_order(&c.store, &role.caller, &id, at, now_ms).await?;
    let zones = c
        .store
        .zones_of_order(&id)
        .await
        .map_err(AdminError::store(format!("listing zones of {id}")))?;
    Ok(Json(OrderView::new(&ended, &zones, false, now)))
}

/// A zone spec from a body, its `order_id` (and `zone_id`, when the route names one) filled
/// from the route or checked against it.
fn zone_spec(bytes: &[u8], order: &OrderId, zone: Option<&ZoneId>) -> ApiResult<ZoneSpec> {
    let mut value: serde_json::Value = body(bytes)?;
    let obj = value
        .as_object_mut()
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "a zone must be an object"))?;
    for (field, expected) in [
        ("order_id", Some(order.as_str())),
        ("zone_id", zone.map(ZoneId::as_str)),
    ] {
        let Some(expected) = expected else { continue };
        match obj.get(field) {
            None => {
                obj.insert(field.into(), expected.into());
            }
            Some(v) if v == expected => {}
            Some(v) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("{field}: the body says {v} but the route says {expected:?}"),
                ));
            }
        }
    }
    input::deserialize(value).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))
}

async fn put_zone<S: ConsoleStore, M: DestinationMac>(
    c: &Console<S, M>,
    role: &Role,
    spec: ZoneSpec,
    replace: bool,
) -> ApiResult<Json<serde_json::Value>> {
    let zone = input::check_zone(spec)?;
    let (now_ms, now) = now(c);
    let replaced = zones::add_zone(&c.store, &role.caller, &zone, replace, now_ms).await?;
    Ok(Json(json!({
        "zone": zones::ZoneView::new(&zone, now),
        "replaced": replaced,
    })))
}

async fn add_zone<S: ConsoleStore, M: DestinationMac>(
    State(c): State<Shared<S, M>>,
    Extension(role): Extension<Role>,
    Path(order): Path<String>,
    bytes: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    require_admin(&role, "zones add")?;
    let order = order_id(&order)?;
    let spec = zone_spec(&bytes, &order, None)?;
    Ok((StatusCode::CREATED, put_zone(&c, &role, spec, false).await?))
}

async fn replace_zone<S: ConsoleStore, M: DestinationMac>(
    State(c): State<Shared<S, M>>,
    Extension(role): Extension<Role>,
    Path((order, zone)): Path<(String, String)>,
    bytes: axum::body::Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    require_admin(&role, "zones replace")?;
    let (order, zone) = (order_id(&order)?, zone_id(&zone)?);
    let spec = zone_spec(&bytes, &order, Some(&zone))?;
    put_zone(&c, &role, spec, true).await
}

async fn remove_zone<S: ConsoleStore, M: DestinationMac>(
    State(c): State<Shared<S, M>>,
    Extension(role): Extension<Role>,
    Path((order, zone)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    require_admin(&role, "zones remove")?;
    let key = ZoneKey {
        order_id: order_id(&order)?,
        zone_id: zone_id(&zone)?,
    };
    zones::remove_zone(&c.store, &role.caller, &key, (c.now_ms)()).await?;
    Ok(StatusCode::NO_CONTENT)
}
