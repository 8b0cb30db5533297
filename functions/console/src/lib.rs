//! Vigil's operator API: what the monitoring centre's console calls (docs/CONSOLE.md).
//!
//! A `lambda_http` function behind API Gateway's HTTP API, whose JWT authorizer verifies the
//! console user's Cognito token before the function sees the request; the same router runs
//! in the local stack behind a local sign-in (feature `local`). Every action is vigil-admin's,
//! the code the CLI calls: this crate turns HTTP into vigil-admin's typed input and renders
//! its results, and decides nothing about safety or forces itself.
//!
//! # Layout
//! - [`auth`]: who is asking ([`auth::Principal`], from an [`auth::Authenticator`]) and what
//!   their groups let them do ([`auth::Role`]).
//! - [`api`]: the routes ([`api::router`]), the refusal of unauthenticated and unauthorized
//!   requests, errors as HTTP statuses.
//! - [`views`]: the alert queue by urgency, an order's picture, tags' health: phones masked,
//!   her own positions as distances only.
//! - `local` (feature `local`): the local stand-in for Cognito: known users, HS256 tokens of a
//!   per-run secret.

pub mod api;
pub mod auth;
#[cfg(feature = "local")]
pub mod local;
pub mod views;

pub use api::{Console, router};
