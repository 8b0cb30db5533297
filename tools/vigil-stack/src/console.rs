//! [`LocalConsole`]: the monitoring centre's console on the local stack, on one free loopback
//! port: the operator API (vigil-console's router, the same code as the Lambda, over the
//! stack's store, key and clock), the local sign-in that stands in for Cognito (local only:
//! a username from a fixed list, HS256 tokens of a secret drawn for this run), and the built
//! console (`functions/console/web/dist`, built by [`build_web`] when missing or older than
//! its sources) with its `config.json`. Every response carries the console's security
//! headers, the same content security policy the CDK app sets on CloudFront.

use crate::stack::{LocalStack, StackError};
use axum::Router;
use axum::extract::{Json, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use vigil_aws::Aws;
use vigil_console::local::{LocalTokens, LocalUsers};
use vigil_console::{Console, router};

/// The console's content security policy (`functions/console/web/csp.json`, which CloudFront's
/// response headers use too), its directives in the order of their names: scripts, styles and
/// data from its own origin only; images also from `tiles` (a tile server's origin, when one
/// is configured).
pub fn content_security_policy(tiles: Option<&str>) -> String {
    let policy: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(include_str!("../../../functions/console/web/csp.json"))
            .expect("csp.json is a JSON object");
    policy
        .iter()
        .filter(|(directive, _)| !directive.starts_with('$'))
        .map(|(directive, sources)| {
            let mut sources: Vec<&str> = sources
                .as_array()
                .expect("csp.json: each directive is a list")
                .iter()
                .filter_map(|s| s.as_str())
                .collect();
            if directive == "img-src" {
                sources.extend(tiles);
            }
            format!("{directive} {}", sources.join(" "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Where the console's web app lives in the workspace.
pub fn web_dir() -> PathBuf {
    vigil_local::workspace_root().join("functions/console/web")
}

/// Builds the console into `functions/console/web/dist` when it is missing or older than a
/// source: `npm ci` (pinned by its lock file, into its `node_modules`) when that is missing or
/// older than the lock, then `node build.mjs`. Returns `dist`.
///
/// Fails when node or npm is missing, or a step fails (with its output's tail).
pub fn build_web() -> Result<PathBuf, String> {
    let web = web_dir();
    let dist = web.join("dist");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let installed = modified(&web.join("node_modules/.package-lock.json"));
    if installed.is_none() || installed < modified(&web.join("package-lock.json")) {
        run(
            &web,
            "npm",
            &["ci", "--no-audit", "--no-fund", "--loglevel=error"],
        )?;
    }
    let built = modified(&dist.join("app.js"));
    let newest_source = ["src", "build.mjs", "package-lock.json"]
        .iter()
        .flat_map(|p| {
            let p = web.join(p);
            match std::fs::read_dir(&p) {
                Ok(entries) => entries
                    .flatten()
                    .filter_map(|e| modified(&e.path()))
                    .collect::<Vec<_>>(),
                Err(_) => modified(&p).into_iter().collect(),
            }
        })
        .max();
    if built.is_none() || built < newest_source {
        run(&web, "node", &["build.mjs"])?;
    }
    Ok(dist)
}

fn run(dir: &Path, program: &str, args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| {
            format!(
                "{program} {}: {e} (Node 20 and npm are needed)",
                args.join(" ")
            )
        })?;
    if out.status.success() {
        Ok(())
    } else {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        Err(format!(
            "{program} {} failed in {}:\n{}",
            args.join(" "),
            dir.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ))
    }
}

/// The console, served.
pub struct LocalConsole {
    url: String,
    users: LocalUsers,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for LocalConsole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalConsole")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl LocalConsole {
    /// Serves the console of `stack` from `dist` (see [`build_web`]) on a free loopback port;
    /// `tile_url` is a tile server's URL template for the map (none: a plain background).
    ///
    /// Fails when the destination key is not configured or no port can be bound.
    pub async fn start(
        stack: &LocalStack,
        dist: PathBuf,
        tile_url: Option<String>,
    ) -> Result<LocalConsole, StackError> {
        let fail = |message: String| StackError {
            part: "the console",
            message,
        };
        let functions = &stack.functions;
        let aws = Aws {
            config: functions.config.clone(),
            sdk: functions.emulator.sdk_config(),
        };
        let forces = vigil_core::forces::Forces::parse(functions.emulator.forces_document())
            .map_err(|e| fail(format!("the forces: {e}")))?;
        let mut key = [0u8; 32];
        for chunk in key.chunks_mut(8) {
            chunk.copy_from_slice(&fastrand::u64(..).to_le_bytes());
        }
        let tokens = Arc::new(LocalTokens::new(key.to_vec(), || {
            chrono::Utc::now().timestamp()
        }));
        let clock = stack.now.clone();
        let api = router(Console {
            store: functions.store.clone(),
            mac: aws
                .destination_mac()
                .map_err(|e| fail(format!("the destination key: {e}")))?,
            forces: Arc::new(forces),
            auth: tokens.clone(),
            now_ms: Arc::new(move || clock.now_ms()),
        });
        let users = LocalUsers::demo();
        let tiles_origin = tile_url.as_deref().and_then(origin);
        let config = json!({
            "apiBase": "",
            "signIn": {"kind": "local"},
            "tileUrl": tile_url,
            "pollMs": 2000,
        });
        let csp = content_security_policy(tiles_origin.as_deref());
        let app = api
            .merge(local_routes(tokens, users.clone(), config))
            .fallback({
                let dist = Arc::new(dist);
                move |request: Request| {
                    let dist = dist.clone();
                    async move { serve_file(&dist, request.uri().path()).await }
                }
            })
            .layer(axum::middleware::map_response(move |mut r: Response| {
                let csp = csp.clone();
                async move {
                    let h = r.headers_mut();
                    if let Ok(v) = HeaderValue::from_str(&csp) {
                        h.insert(header::CONTENT_SECURITY_POLICY, v);
                    }
                    h.insert(
                        header::X_CONTENT_TYPE_OPTIONS,
                        HeaderValue::from_static("nosniff"),
                    );
                    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
                    h.insert(
                        header::REFERRER_POLICY,
                        HeaderValue::from_static("no-referrer"),
                    );
                    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                    r
                }
            }));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| fail(format!("binding a port: {e}")))?;
        let url = format!(
            "http://127.0.0.1:{}",
            listener
                .local_addr()
                .map_err(|e| fail(e.to_string()))?
                .port()
        );
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "the local console stopped");
            }
        });
        Ok(LocalConsole { url, users, task })
    }

    /// Its URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The users the local sign-in knows.
    pub fn users(&self) -> &LocalUsers {
        &self.users
    }
}

impl Drop for LocalConsole {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `scheme://host[:port]` of a URL template.
fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split('/').next()?;
    (!host.is_empty() && !host.contains('{')).then(|| format!("{scheme}://{host}"))
}

/// `GET /local/users`, `POST /local/sign-in` (`{"username"}` -> `{"token"}`), `GET
/// /config.json`.
fn local_routes(tokens: Arc<LocalTokens>, users: LocalUsers, config: serde_json::Value) -> Router {
    let listed = users.users.clone();
    Router::new()
        .route("/local/users", get(move || async move { Json(listed) }))
        .route(
            "/local/sign-in",
            post(move |Json(body): Json<serde_json::Value>| async move {
                let name = body["username"].as_str().unwrap_or_default();
                match users.get(name) {
                    Some(user) => {
                        tracing::info!(target: "vigil_console::access", operator = %format!("local:{name}"), "signed in (local)");
                        (StatusCode::OK, Json(json!({ "token": tokens.issue(user) })))
                    }
                    None => (
                        StatusCode::UNAUTHORIZED,
                        Json(json!({ "error": "no such local user" })),
                    ),
                }
            }),
        )
        .route("/config.json", get(move || async move { Json(config) }))
}

/// A file of `dist` by its URL path (`/` is `index.html`); 404 for anything else, including a
/// path that tries to leave `dist`.
async fn serve_file(dist: &Path, path: &str) -> Response {
    let relative = path.trim_start_matches('/');
    let relative = if relative.is_empty() {
        "index.html"
    } else {
        relative
    };
    let safe = relative
        .split('/')
        .all(|part| !part.is_empty() && part != ".." && part != "." && !part.contains('\\'));
    let content_type = match relative.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    };
    if !safe {
        return StatusCode::NOT_FOUND.into_response();
    }
    match tokio::fs::read(dist.join(relative)).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, content_type)], bytes).into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_a_configured_tile_origin_only() {
        let plain = content_security_policy(None);
        assert!(plain.contains("img-src 'self' data:;"));
        // Every directive of csp.json, in the order of their names (as CloudFront's).
        assert_eq!(
            plain,
            "base-uri 'none'; connect-src 'self'; default-src 'none'; font-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; img-src 'self' data:; \
             script-src 'self'; style-src 'self'"
        );
        assert!(plain.contains("script-src 'self';"));
        assert_eq!(
            origin("https://tile.example.org/{z}/{x}/{y}.png").as_deref(),
            Some("https://tile.example.org")
        );
        assert_eq!(origin("https://{s}.tiles.example/{z}/{x}/{y}.png"), None);
        assert!(
            content_security_policy(Some("https://tile.example.org"))
                .contains("img-src 'self' data: https://tile.example.org;")
        );
    }
}
