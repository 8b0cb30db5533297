//! Who is asking, and what they may do.
//!
//! A request's [`Principal`] (a username and the groups of the user pool) comes from an
//! [`Authenticator`]: in AWS, [`ApiGatewayJwt`] reads the claims API Gateway's JWT authorizer
//! verified against the Cognito user pool (the function never sees a request the authorizer
//! refused; one without claims, say invoked directly, is refused here too); locally, the local
//! stack's sign-in verifies its own tokens (`crate::local`, feature `local`).
//!
//! Groups decide the rest ([`Role::of`]): `force-<id>` makes a force's operator (exactly one),
//! `national` a national administrator, and `admin` may also create and end orders and change
//! zones. A user in no force group and not national is refused everything; so is a user in
//! two force groups (which force a change is for must never be guessed).

use vigil_admin::{Caller, Operator, Scope};
use vigil_core::ForceId;

/// The group whose members may create and end orders and change zones.
pub const ADMIN_GROUP: &str = "admin";
/// The group of national administrators (every force's records, each access audited).
pub const NATIONAL_GROUP: &str = "national";
/// The prefix of a force's group: `force-met` is force `met`'s operators.
pub const FORCE_GROUP_PREFIX: &str = "force-";

/// Who a verified token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The username (Cognito's `username` claim, or the local sign-in's).
    pub username: String,
    /// The user pool groups (`cognito:groups`).
    pub groups: Vec<String>,
    /// Whether it comes from the local stand-in for Cognito.
    pub local: bool,
}

/// Why a request was refused before any handler ran.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No credentials, or credentials that do not verify: HTTP 401.
    #[error("{0}")]
    Unauthenticated(String),
    /// A verified user who may not do this: HTTP 403.
    #[error("{0}")]
    Forbidden(String),
}

/// Turns a request's headers and extensions into a verified [`Principal`].
pub trait Authenticator: Send + Sync + 'static {
    /// The principal of a request.
    ///
    /// Fails with [`Refusal::Unauthenticated`] when the request carries no valid credentials.
    fn authenticate(&self, request: &axum::http::request::Parts) -> Result<Principal, Refusal>;
}

/// The claims of API Gateway's JWT authorizer (HTTP API), in the Lambda request's context.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiGatewayJwt;

impl Authenticator for ApiGatewayJwt {
    fn authenticate(&self, request: &axum::http::request::Parts) -> Result<Principal, Refusal> {
        let claims = match request
            .extensions
            .get::<lambda_http::request::RequestContext>()
        {
            Some(lambda_http::request::RequestContext::ApiGatewayV2(ctx)) => ctx
                .authorizer
                .as_ref()
                .and_then(|a| a.jwt.as_ref())
                .map(|jwt| &jwt.claims),
            _ => None,
        }
        .ok_or_else(|| {
            Refusal::Unauthenticated(
                "no verified token: the console API answers only through its API Gateway's JWT authorizer"
                    .into(),
            )
        })?;
        principal_of_claims(|name| claims.get(name).map(String::as_str), false)
    }
}

/// A principal from verified claims (`claim(name)`): the username from `username` (access
/// tokens) or `cognito:username` (ID tokens), the groups from `cognito:groups`.
///
/// Fails with [`Refusal::Unauthenticated`] when no username is present.
pub fn principal_of_claims<'a>(
    claim: impl Fn(&str) -> Option<&'a str>,
    local: bool,
) -> Result<Principal, Refusal> {
    let username = claim("username")
        .or_else(|| claim("cognito:username"))
        .map(str::trim)
        .filter(|u| !u.is_empty() && u.len() <= 128)
        .ok_or_else(|| Refusal::Unauthenticated("the token names no user".into()))?;
    Ok(Principal {
        username: username.to_owned(),
        groups: claim("cognito:groups").map(groups_of).unwrap_or_default(),
        local,
    })
}

/// The groups of a `cognito:groups` claim as API Gateway hands it over: an array claim becomes
/// the string `[a b]`; a JSON array (`["a","b"]`) or a single name are read too.
pub fn groups_of(claim: &str) -> Vec<String> {
    let claim = claim.trim();
    if let Ok(list) = serde_json::from_str::<Vec<String>>(claim) {
        return list;
    }
    claim
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split([' ', ','])
        .map(|g| g.trim().trim_matches('"'))
        .filter(|g| !g.is_empty())
        .map(str::to_owned)
        .collect()
}

/// What a principal may do: the caller vigil-admin's actions take, and whether they may change
/// orders and zones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// Who, for whom (vigil-admin applies the force rule to every record).
    pub caller: Caller,
    /// In the `admin` group.
    pub admin: bool,
}

impl Role {
    /// The role of `principal`.
    ///
    /// Fails with [`Refusal::Forbidden`] for a user in no force group and not national, in two
    /// force groups, or in a force group whose name is not a force id.
    pub fn of(principal: &Principal) -> Result<Role, Refusal> {
        let operator = if principal.local {
            Operator::Local(principal.username.clone())
        } else {
            Operator::Cognito(principal.username.clone())
        };
        let national = principal.groups.iter().any(|g| g == NATIONAL_GROUP);
        let forces: Vec<&str> = principal
            .groups
            .iter()
            .filter_map(|g| g.strip_prefix(FORCE_GROUP_PREFIX))
            .collect();
        let scope = match (national, forces.as_slice()) {
            (true, _) => Scope::National,
            (false, [force]) => Scope::Force(ForceId::new(*force).map_err(|e| {
                Refusal::Forbidden(format!("group {FORCE_GROUP_PREFIX}{force}: {e}"))
            })?),
            (false, []) => {
                return Err(Refusal::Forbidden(format!(
                    "not an operator of any force: the user is in no {FORCE_GROUP_PREFIX}<force> group and not in {NATIONAL_GROUP}"
                )));
            }
            (false, _) => {
                return Err(Refusal::Forbidden(format!(
                    "in {} force groups: a user acts for one force (or is national)",
                    forces.len()
                )));
            }
        };
        Ok(Role {
            caller: Caller::new(operator, scope),
            admin: principal.groups.iter().any(|g| g == ADMIN_GROUP),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(groups: &[&str]) -> Principal {
        Principal {
            username: "alice".into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            local: false,
        }
    }

    #[test]
    fn api_gateway_flattens_array_claims_and_both_forms_are_read() {
        assert_eq!(groups_of("[admin force-met]"), ["admin", "force-met"]);
        assert_eq!(
            groups_of(r#"["admin","force-met"]"#),
            ["admin", "force-met"]
        );
        assert_eq!(groups_of("force-met"), ["force-met"]);
        assert!(groups_of("[]").is_empty());
    }

    #[test]
    fn a_role_needs_exactly_one_force_or_national() {
        let met = Role::of(&principal(&["force-met"])).unwrap();
        assert_eq!(met.caller.scope, Scope::Force(ForceId::new("met").unwrap()));
        assert!(!met.admin);
        assert_eq!(met.caller.operator.label(), "cognito:alice");
        let admin = Role::of(&principal(&["admin", "force-met"])).unwrap();
        assert!(admin.admin);
        assert_eq!(
            Role::of(&principal(&["national", "force-met"]))
                .unwrap()
                .caller
                .scope,
            Scope::National
        );
        assert!(matches!(
            Role::of(&principal(&["admin"])),
            Err(Refusal::Forbidden(_))
        ));
        assert!(matches!(
            Role::of(&principal(&["force-met", "force-kent"])),
            Err(Refusal::Forbidden(_))
        ));
        assert!(matches!(
            Role::of(&principal(&["force-"])),
            Err(Refusal::Forbidden(_))
        ));
    }

    #[test]
    fn claims_must_name_a_user() {
        let none = principal_of_claims(|_| None, false);
        assert!(matches!(none, Err(Refusal::Unauthenticated(_))));
        let p = principal_of_claims(
            |n| match n {
                "cognito:username" => Some("bob"),
                "cognito:groups" => Some("[force-met]"),
                _ => None,
            },
            false,
        )
        .unwrap();
        assert_eq!(p.username, "bob");
        assert_eq!(p.groups, ["force-met"]);
    }

    #[test]
    fn a_request_without_the_authorizers_claims_is_unauthenticated() {
        let (parts, ()) = axum::http::Request::builder()
            .uri("/api/alerts")
            .header("authorization", "Bearer forged")
            .body(())
            .unwrap()
            .into_parts();
        assert!(matches!(
            ApiGatewayJwt.authenticate(&parts),
            Err(Refusal::Unauthenticated(_))
        ));
    }
}
