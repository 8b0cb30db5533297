//! The local stand-in for Cognito (feature `local`; local stack only, never deployed): a
//! fixed list of users with their groups ([`LocalUsers`]) and HS256 tokens signed with a
//! secret drawn for each run ([`LocalTokens`]). Signing in asks only for a username: there is
//! nothing to protect on a developer's loopback, and the point is to exercise the same roles
//! and refusals as the deployed API. A token that was not issued by this run, is altered, or
//! has expired is refused as the JWT authorizer refuses one.

use crate::auth::{Authenticator, Principal, Refusal, principal_of_claims};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit as _, Mac as _};
use serde::{Deserialize, Serialize};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The issuer the local tokens carry.
pub const LOCAL_ISSUER: &str = "vigil-local-console";
/// How long a local token lasts, seconds (as Cognito's access tokens by default: one hour).
pub const TOKEN_LIFETIME_S: i64 = 3600;

/// A user of the local sign-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalUser {
    /// The username.
    pub username: String,
    /// Their groups (`force-<id>`, `national`, `admin`).
    pub groups: Vec<String>,
}

/// The users the local sign-in knows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalUsers {
    /// The users.
    pub users: Vec<LocalUser>,
}

impl LocalUsers {
    /// The demo's users: an operator and an administrator of force `met` (alice, adam), an
    /// operator and an administrator of `tvp` (kim, tom), a national administrator (nadia), and
    /// a user in no group (nobody: refused everything).
    pub fn demo() -> LocalUsers {
        let user = |name: &str, groups: &[&str]| LocalUser {
            username: name.to_owned(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        };
        LocalUsers {
            users: vec![
                user("alice", &["force-met"]),
                user("adam", &["force-met", "admin"]),
                user("kim", &["force-tvp"]),
                user("tom", &["force-tvp", "admin"]),
                user("nadia", &["national", "admin"]),
                user("nobody", &[]),
            ],
        }
    }

    /// The user named `username`.
    pub fn get(&self, username: &str) -> Option<&LocalUser> {
        self.users.iter().find(|u| u.username == username)
    }
}

#[derive(Serialize, Deserialize)]
struct Claims {
    iss: String,
    iat: i64,
    exp: i64,
    username: String,
    #[serde(rename = "cognito:groups")]
    groups: Vec<String>,
}

/// Issues and verifies the local sign-in's tokens.
pub struct LocalTokens {
    key: Vec<u8>,
    now_s: Box<dyn Fn() -> i64 + Send + Sync>,
}

impl std::fmt::Debug for LocalTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalTokens").finish_non_exhaustive()
    }
}

impl LocalTokens {
    /// Tokens signed with `key` (32 random bytes per run in the local stack), dated by `now_s`
    /// (Unix seconds).
    pub fn new(key: Vec<u8>, now_s: impl Fn() -> i64 + Send + Sync + 'static) -> LocalTokens {
        LocalTokens {
            key,
            now_s: Box::new(now_s),
        }
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.key).expect("HMAC takes a key of any length")
    }

    /// A token for `user`, valid for [`TOKEN_LIFETIME_S`].
    pub fn issue(&self, user: &LocalUser) -> String {
        let now = (self.now_s)();
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let claims = Claims {
            iss: LOCAL_ISSUER.to_owned(),
            iat: now,
            exp: now + TOKEN_LIFETIME_S,
            username: user.username.clone(),
            groups: user.groups.clone(),
        };
        let payload =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("claims serialize"));
        let signed = format!("{header}.{payload}");
        let mut mac = self.mac();
        mac.update(signed.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signed}.{signature}")
    }

    /// The principal of a token this run issued.
    ///
    /// Fails with [`Refusal::Unauthenticated`] for a malformed, altered, foreign or expired
    /// token.
    pub fn verify(&self, token: &str) -> Result<Principal, Refusal> {
        let bad = |why: &str| Refusal::Unauthenticated(format!("invalid token: {why}"));
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("not a JWT (three dot-separated parts)"));
        };
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| bad("signature is not base64url"))?;
        let mut mac = self.mac();
        mac.update(header.as_bytes());
        mac.update(b".");
        mac.update(payload.as_bytes());
        mac.verify_slice(&signature)
            .map_err(|_| bad("signature does not verify"))?;
        let header: serde_json::Value = URL_SAFE_NO_PAD
            .decode(header)
            .ok()
            .and_then(|h| serde_json::from_slice(&h).ok())
            .ok_or_else(|| bad("header is not JSON"))?;
        if header["alg"] != "HS256" {
            return Err(bad("algorithm is not HS256"));
        }
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|p| serde_json::from_slice(&p).ok())
            .ok_or_else(|| bad("claims are not as issued"))?;
        if claims.iss != LOCAL_ISSUER {
            return Err(bad("another issuer"));
        }
        if claims.exp <= (self.now_s)() {
            return Err(bad("expired"));
        }
        let groups = serde_json::to_string(&claims.groups).expect("groups serialize");
        principal_of_claims(
            |name| match name {
                "username" => Some(claims.username.as_str()),
                "cognito:groups" => Some(groups.as_str()),
                _ => None,
            },
            true,
        )
    }
}

impl Authenticator for LocalTokens {
    fn authenticate(&self, request: &axum::http::request::Parts) -> Result<Principal, Refusal> {
        let header = request
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| Refusal::Unauthenticated("no token: sign in first".into()))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(|| {
                Refusal::Unauthenticated("the Authorization header is not Bearer".into())
            })?;
        self.verify(token.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};

    fn tokens(clock: Arc<AtomicI64>) -> LocalTokens {
        LocalTokens::new(vec![7; 32], move || clock.load(Ordering::SeqCst))
    }

    #[test]
    fn an_issued_token_verifies_and_names_the_user_and_groups() {
        let t = tokens(Arc::new(AtomicI64::new(1_000)));
        let user = LocalUsers::demo().get("adam").unwrap().clone();
        let p = t.verify(&t.issue(&user)).unwrap();
        assert_eq!(p.username, "adam");
        assert_eq!(p.groups, ["force-met", "admin"]);
        assert!(p.local);
    }

    #[test]
    fn altered_foreign_and_expired_tokens_are_refused() {
        let clock = Arc::new(AtomicI64::new(1_000));
        let t = tokens(clock.clone());
        let alice = LocalUsers::demo().get("alice").unwrap().clone();
        let token = t.issue(&alice);
        // Claims changed to an admin's, the signature kept.
        let [h, _, s]: [&str; 3] = token.split('.').collect::<Vec<_>>().try_into().unwrap();
        let forged = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&serde_json::json!({
                "iss": LOCAL_ISSUER, "iat": 1000, "exp": 99999,
                "username": "alice", "cognito:groups": ["force-met", "admin"]
            }))
            .unwrap(),
        );
        let err = t.verify(&format!("{h}.{forged}.{s}")).unwrap_err();
        assert_eq!(
            err,
            Refusal::Unauthenticated("invalid token: signature does not verify".into())
        );
        // Signed with another run's key.
        let other = LocalTokens::new(vec![8; 32], || 1_000);
        assert!(t.verify(&other.issue(&alice)).is_err());
        // "alg": "none" with no signature.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            token.split('.').nth(1).unwrap()
        );
        assert!(t.verify(&none).is_err());
        assert!(t.verify("garbage").is_err());
        clock.store(1_000 + TOKEN_LIFETIME_S, Ordering::SeqCst);
        assert_eq!(
            t.verify(&token).unwrap_err(),
            Refusal::Unauthenticated("invalid token: expired".into())
        );
    }
}
