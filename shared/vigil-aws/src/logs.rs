//! How the Lambda functions log: one JSON line per event (what the functions' JSON log format
//! and CloudWatch Logs Insights read), no colour, the level from `RUST_LOG` (default `info`),
//! no span fields. Ingest still has its own set-up (no timestamp, no level filter), older than
//! this one; making it use this one would change its lines, so it is left as it is.

use tracing_subscriber::EnvFilter;

/// Installs the functions' subscriber; call once, first thing in `main`.
pub fn init() {
    tracing_subscriber::fmt()
        .json()
        .with_ansi(false)
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_current_span(false)
        .init();
}
