//! Sending requests to a registry: authorization up front or on challenge, retries with
//! exponential backoff on 5xx/429/broken connections, and turning error statuses into
//! [`RegistryError`]s.

use anyhow::Result;
use reqwest::header::{self, HeaderMap};
use reqwest::{RequestBuilder, Response, StatusCode};

use super::token::{merge_scopes, scopes_for};
use super::{Access, Client};
use crate::auth::Challenge;
use crate::error::{RegistryError, is_transient};
use hoist_image::Reference;

impl Client {
    pub(super) async fn backoff(&self, attempt: u32) {
        let delay = self.opts.backoff * 2u32.saturating_pow(attempt.min(8));
        tokio::time::sleep(delay).await;
    }

    /// Sends a request built by `build` (called again for every attempt), answering auth
    /// challenges and retrying 5xx/429/connection failures with exponential backoff. Returns the
    /// first response that is neither (its status may still be an error).
    ///
    /// Tokens are cached per registry and scope set until they expire, so the blobs of one push
    /// share one token; once a registry has challenged, later requests authenticate up front.
    pub async fn send(
        &self,
        r: &Reference,
        access: Access,
        extra_scopes: &[String],
        build: &(dyn Fn(&reqwest::Client) -> Result<RequestBuilder> + Sync),
    ) -> Result<Response, RegistryError> {
        let scopes = scopes_for(r, access, extra_scopes);
        let key = (r.domain.clone(), scopes.join(" "));
        let mut attempt = 0;
        let mut answered = false;
        loop {
            let sent = self.authorization(r, &key, &scopes).await;
            let mut rb = build(&self.http)?;
            if let Some(h) = &sent {
                rb = rb.header(header::AUTHORIZATION, h);
            }
            match rb.send().await {
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED && !answered => {
                    answered = true;
                    let challenge = resp
                        .headers()
                        .get(header::WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .and_then(Challenge::parse);
                    let Some(challenge) = challenge else {
                        return Ok(resp);
                    };
                    let mut wanted = scopes.clone();
                    if let Some(s) = challenge.params.get("scope") {
                        wanted.extend(s.split_whitespace().map(str::to_string));
                    }
                    let wanted = merge_scopes(&wanted);
                    self.remember_challenge(&r.domain, &challenge);
                    self.refresh(r, &key, &wanted, &challenge, sent.as_deref())
                        .await?;
                }
                Ok(resp)
                    if (resp.status().is_server_error()
                        || resp.status() == StatusCode::TOO_MANY_REQUESTS)
                        && attempt + 1 < self.opts.max_attempts =>
                {
                    attempt += 1;
                    self.backoff(attempt).await;
                }
                Ok(resp) => return Ok(resp),
                Err(e) if is_transient(&e) && attempt + 1 < self.opts.max_attempts => {
                    attempt += 1;
                    self.backoff(attempt).await;
                }
                Err(error) => {
                    return Err(RegistryError::Transport {
                        context: format!("connecting to {}", r.domain),
                        error,
                    });
                }
            }
        }
    }

    /// One attempt of a request whose body cannot be replayed, with the cached authorization
    /// (renewed first when it has expired).
    pub(super) async fn http_send_once(
        &self,
        r: &Reference,
        access: Access,
        build: impl FnOnce() -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let scopes = scopes_for(r, access, &[]);
        let key = (r.domain.clone(), scopes.join(" "));
        let mut rb = build();
        if let Some(h) = self.authorization(r, &key, &scopes).await {
            rb = rb.header(header::AUTHORIZATION, h);
        }
        rb.send().await.map_err(|error| RegistryError::Transport {
            context: format!("sending to {}", r.domain),
            error,
        })
    }

    /// [`check`], saying what to do when the registry refused access: log in when no credentials
    /// are configured for it, or which user it refused.
    pub(super) async fn check_access(
        &self,
        r: &Reference,
        resp: Response,
        what: &str,
    ) -> Result<Response, RegistryError> {
        let error = match check(resp, what).await {
            Err(e @ RegistryError::Unauthorized { .. }) => e,
            other => return other,
        };
        let registry = &r.domain;
        let hint = match self.credentials(registry) {
            Ok(Some(c)) => format!("{registry}: access denied for user {}", c.username),
            _ => format!(
                "{registry}: authentication required: no credentials for it (run `hoist login {registry}`)"
            ),
        };
        Err(RegistryError::Denied {
            hint,
            error: Box::new(error),
        })
    }
}

/// The absolute upload URL from a `Location` header (relative ones resolve against `base`).
pub(super) fn location(base: &str, resp: &Response) -> Result<url::Url, RegistryError> {
    let loc = resp
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            RegistryError::Protocol("registry answered an upload without a Location header".into())
        })?;
    url::Url::parse(base)
        .and_then(|b| b.join(loc))
        .map_err(|e| RegistryError::Protocol(format!("bad upload Location: {e}")))
}

pub(super) fn content_type(h: &HeaderMap) -> Option<String> {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.split(';').next().unwrap_or(s).trim().to_string())
}

/// Passes a successful response through; turns an error status into an error carrying the
/// registry's `errors[].code/message`.
pub async fn check(resp: Response, what: &str) -> Result<Response, RegistryError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body = resp.text().await.unwrap_or_default();
    let detail = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            let errs = v.get("errors")?.as_array()?.clone();
            Some(
                errs.iter()
                    .map(|e| {
                        format!(
                            "{}: {}",
                            e.get("code").and_then(|c| c.as_str()).unwrap_or("ERROR"),
                            e.get("message").and_then(|c| c.as_str()).unwrap_or("")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })
        .unwrap_or_else(|| body.trim().chars().take(300).collect());
    let what = what.to_string();
    Err(match status {
        StatusCode::NOT_FOUND => RegistryError::NotFound { what, detail },
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => RegistryError::Unauthorized {
            what,
            status,
            detail,
        },
        _ => RegistryError::Status {
            what,
            status,
            detail,
        },
    })
}
