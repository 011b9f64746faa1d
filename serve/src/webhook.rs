//! Push webhooks: recognising the sender from its headers, authenticating it in constant time, and
//! reading the pushed ref and commit from its payload.
//!
//! - GitHub: `X-GitHub-Event`, `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`.
//! - GitLab: `X-Gitlab-Event`, `X-Gitlab-Token: <secret>`.
//! - Gitea/Forgejo: `X-Gitea-Event`/`X-Forgejo-Event`, `X-Gitea-Signature`/`X-Forgejo-Signature: <hex HMAC>`.
//! - hoist's own trigger (the `post-receive` hook `hoist trigger` prints):
//!   `X-Hoist-Signature-256: sha256=<hex HMAC>`, body `{"ref": ..., "before": ..., "after": ...,
//!   "delivery": <random hex>}`.
//!
//! Each delivery's id ([`delivery_id`]: `X-GitHub-Delivery`, `X-Gitea-Delivery`/`X-Forgejo-Delivery`,
//! GitLab's `Idempotency-Key`/`X-Gitlab-Event-UUID`, the hook's signed `delivery` field) lets the
//! service refuse a captured request sent again.

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::rules::Push;

/// Who sent a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    GitHub,
    GitLab,
    Gitea,
    Hoist,
}

/// What a verified webhook asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A ref moved to a commit.
    Push(Push),
    /// A ping, or a ref deletion, or an event that is not a push: answered, nothing built.
    Ignored(String),
}

/// Why a webhook was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Rejection {
    /// Missing or wrong signature/token: 401.
    Unauthorized(&'static str),
    /// Malformed payload: 400.
    BadRequest(String),
}

/// The all-zero object name git uses for "no commit" (a created or deleted ref's other side).
fn is_zero(sha: &str) -> bool {
    !sha.is_empty() && sha.bytes().all(|b| b == b'0')
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Identifies the sender by its headers.
pub fn provider(headers: &HeaderMap) -> Option<Provider> {
    if headers.contains_key("x-hoist-signature-256") {
        Some(Provider::Hoist)
    } else if headers.contains_key("x-gitea-event")
        || headers.contains_key("x-forgejo-event")
        || headers.contains_key("x-gitea-signature")
        || headers.contains_key("x-forgejo-signature")
    {
        // Gitea also sends X-GitHub-Event for compatibility: check it first.
        Some(Provider::Gitea)
    } else if headers.contains_key("x-github-event") {
        Some(Provider::GitHub)
    } else if headers.contains_key("x-gitlab-event") || headers.contains_key("x-gitlab-token") {
        Some(Provider::GitLab)
    } else {
        None
    }
}

/// Hex HMAC-SHA256 of `body` under `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Checks a hex HMAC-SHA256 signature (optionally `sha256=`-prefixed) in constant time.
pub fn verify_hmac(secret: &str, body: &[u8], signature: &str) -> bool {
    let hex_sig = signature
        .trim()
        .strip_prefix("sha256=")
        .unwrap_or(signature.trim());
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// Compares a plain token in constant time (over digests, so the length is not leaked either).
pub fn verify_token(secret: &str, token: &str) -> bool {
    let a = Sha256::digest(secret.as_bytes());
    let b = Sha256::digest(token.as_bytes());
    bool::from(a.ct_eq(&b)) && !secret.is_empty()
}

/// Authenticates a webhook and reads the event out of it. Nothing in the body is trusted before the
/// signature is checked.
pub fn parse(
    provider: Provider,
    headers: &HeaderMap,
    body: &[u8],
    secret: &str,
) -> Result<Event, Rejection> {
    if secret.is_empty() {
        return Err(Rejection::Unauthorized("no secret configured"));
    }
    let authentic = match provider {
        Provider::GitHub => {
            header(headers, "x-hub-signature-256").is_some_and(|s| verify_hmac(secret, body, s))
        }
        Provider::Gitea => header(headers, "x-gitea-signature")
            .or_else(|| header(headers, "x-forgejo-signature"))
            .is_some_and(|s| verify_hmac(secret, body, s)),
        Provider::GitLab => {
            header(headers, "x-gitlab-token").is_some_and(|t| verify_token(secret, t))
        }
        Provider::Hoist => {
            header(headers, "x-hoist-signature-256").is_some_and(|s| verify_hmac(secret, body, s))
        }
    };
    if !authentic {
        return Err(Rejection::Unauthorized("invalid or missing signature"));
    }

    let event = match provider {
        Provider::GitHub => header(headers, "x-github-event").unwrap_or(""),
        Provider::Gitea => header(headers, "x-gitea-event")
            .or_else(|| header(headers, "x-forgejo-event"))
            .unwrap_or("push"),
        Provider::GitLab => header(headers, "x-gitlab-event").unwrap_or(""),
        Provider::Hoist => "push",
    };
    match (provider, event) {
        (_, "ping") => return Ok(Event::Ignored("pong".into())),
        (Provider::GitLab, "Push Hook" | "Tag Push Hook" | "System Hook") => {}
        (Provider::GitLab, other) => return Ok(Event::Ignored(format!("event {other:?} ignored"))),
        (_, "push") => {}
        (_, other) => return Ok(Event::Ignored(format!("event {other:?} ignored"))),
    }

    let v: Value = serde_json::from_slice(body)
        .map_err(|e| Rejection::BadRequest(format!("payload is not JSON: {e}")))?;
    let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let git_ref = field("ref");
    // GitLab's checkout_sha is the commit a tag points at (after is the tag object for annotated tags).
    let mut sha = field("checkout_sha");
    if sha.is_empty() {
        sha = field("after");
    }
    if git_ref.is_empty() {
        return Err(Rejection::BadRequest("payload has no \"ref\"".into()));
    }
    if v.get("deleted").and_then(Value::as_bool) == Some(true) || sha.is_empty() || is_zero(&sha) {
        return Ok(Event::Ignored(format!("{git_ref} deleted")));
    }
    if !(sha.len() == 40 || sha.len() == 64) || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Rejection::BadRequest(format!("{sha:?} is not a commit id")));
    }
    Ok(Event::Push(Push {
        git_ref,
        sha: sha.to_ascii_lowercase(),
    }))
}

/// The sender's id of this delivery, when it gives one. Header ids are not covered by the signature:
/// they stop a request replayed as captured, while the service's tip check stops a re-signed body.
pub fn delivery_id(provider: Provider, headers: &HeaderMap, body: &[u8]) -> Option<String> {
    let names: &[&str] = match provider {
        Provider::GitHub => &["x-github-delivery"],
        Provider::Gitea => &[
            "x-gitea-delivery",
            "x-forgejo-delivery",
            "x-github-delivery",
        ],
        Provider::GitLab => &["idempotency-key", "x-gitlab-event-uuid"],
        Provider::Hoist => {
            let v: Value = serde_json::from_slice(body).ok()?;
            return v
                .get("delivery")
                .and_then(Value::as_str)
                .filter(|d| !d.is_empty())
                .map(|d| format!("hoist:{d}"));
        }
    };
    names
        .iter()
        .find_map(|n| header(headers, n))
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| format!("{provider:?}:{d}").to_ascii_lowercase())
}

/// The repository's full name as the payload gives it (`owner/name`), to route `/hooks` without a name.
pub fn repository_name(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    ["repository", "project"].iter().find_map(|k| {
        let r = v.get(k)?;
        r.get("full_name")
            .or_else(|| r.get("path_with_namespace"))
            .and_then(Value::as_str)
            .map(str::to_string)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const SHA: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn github_signature_checked() {
        let body = format!(r#"{{"ref":"refs/heads/main","after":"{SHA}"}}"#);
        let sig = format!("sha256={}", sign("k", body.as_bytes()));
        let h = headers(&[("x-github-event", "push"), ("x-hub-signature-256", &sig)]);
        assert_eq!(provider(&h), Some(Provider::GitHub));
        assert_eq!(
            parse(Provider::GitHub, &h, body.as_bytes(), "k"),
            Ok(Event::Push(Push {
                git_ref: "refs/heads/main".into(),
                sha: SHA.into()
            }))
        );
        assert!(matches!(
            parse(Provider::GitHub, &h, body.as_bytes(), "other"),
            Err(Rejection::Unauthorized(_))
        ));
        let tampered = body.replace("main", "prod");
        assert!(matches!(
            parse(Provider::GitHub, &h, tampered.as_bytes(), "k"),
            Err(Rejection::Unauthorized(_))
        ));
        let unsigned = headers(&[("x-github-event", "push")]);
        assert!(parse(Provider::GitHub, &unsigned, body.as_bytes(), "k").is_err());
    }

    #[test]
    fn gitlab_token_and_events() {
        let body = format!(
            r#"{{"ref":"refs/tags/v1","after":"{}","checkout_sha":"{SHA}"}}"#,
            "b".repeat(40)
        );
        let h = headers(&[
            ("x-gitlab-event", "Tag Push Hook"),
            ("x-gitlab-token", "tok"),
        ]);
        assert_eq!(provider(&h), Some(Provider::GitLab));
        let Ok(Event::Push(p)) = parse(Provider::GitLab, &h, body.as_bytes(), "tok") else {
            panic!()
        };
        assert_eq!(p.sha, SHA, "annotated tag builds the commit");
        assert!(parse(Provider::GitLab, &h, body.as_bytes(), "tok2").is_err());
        let issue = headers(&[("x-gitlab-event", "Issue Hook"), ("x-gitlab-token", "tok")]);
        assert!(matches!(
            parse(Provider::GitLab, &issue, body.as_bytes(), "tok"),
            Ok(Event::Ignored(_))
        ));
    }

    #[test]
    fn gitea_and_deletions() {
        let body = format!(r#"{{"ref":"refs/heads/x","after":"{}"}}"#, "0".repeat(40));
        let sig = sign("k", body.as_bytes());
        let h = headers(&[
            ("x-gitea-event", "push"),
            ("x-github-event", "push"),
            ("x-gitea-signature", &sig),
        ]);
        assert_eq!(provider(&h), Some(Provider::Gitea));
        assert!(matches!(
            parse(Provider::Gitea, &h, body.as_bytes(), "k"),
            Ok(Event::Ignored(_))
        ));
        let h = headers(&[("x-forgejo-event", "push"), ("x-forgejo-signature", "zz")]);
        assert!(parse(Provider::Gitea, &h, body.as_bytes(), "k").is_err());
    }

    #[test]
    fn delivery_ids_per_provider() {
        let gh = headers(&[("x-github-delivery", "72d3162e-cc78-11e3")]);
        assert_eq!(
            delivery_id(Provider::GitHub, &gh, b"{}").as_deref(),
            Some("github:72d3162e-cc78-11e3")
        );
        let gl = headers(&[("x-gitlab-event-uuid", "u-1")]);
        assert_eq!(
            delivery_id(Provider::GitLab, &gl, b"").as_deref(),
            Some("gitlab:u-1")
        );
        let gl = headers(&[("x-gitlab-event-uuid", "u-1"), ("idempotency-key", "k-1")]);
        assert_eq!(
            delivery_id(Provider::GitLab, &gl, b"").as_deref(),
            Some("gitlab:k-1")
        );
        let fj = headers(&[("x-forgejo-delivery", "F")]);
        assert_eq!(
            delivery_id(Provider::Gitea, &fj, b"").as_deref(),
            Some("gitea:f")
        );
        let body = br#"{"ref":"refs/heads/x","delivery":"abc"}"#;
        assert_eq!(
            delivery_id(Provider::Hoist, &HeaderMap::new(), body).as_deref(),
            Some("hoist:abc")
        );
        assert_eq!(
            delivery_id(Provider::GitHub, &HeaderMap::new(), b"{}"),
            None
        );
        assert_eq!(delivery_id(Provider::Hoist, &HeaderMap::new(), b"{}"), None);
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(verify_token("abc", "abc"));
        assert!(!verify_token("abc", "abd"));
        assert!(!verify_token("abc", "abcd"));
        assert!(!verify_token("", ""));
    }
}
