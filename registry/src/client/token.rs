//! Authenticating to a registry: the token scopes a request needs, bearer tokens from the
//! challenge's realm (cached per registry and scope set until they expire), basic credentials,
//! and `/v2/` pings for `hoist login`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use reqwest::header;

use super::{Access, AuthKey, CachedAuth, Client};
use crate::auth::Challenge;
use crate::error::is_transient;
use hoist_image::Reference;

/// The token scopes a request to `r` needs: `repository:NAME:pull` or `repository:NAME:pull,push`
/// (none for the registry itself, as `/v2/` for login), plus `extra`, merged per resource.
pub fn scopes_for(r: &Reference, access: Access, extra: &[String]) -> Vec<String> {
    let mut all = Vec::new();
    if !r.path.is_empty() {
        let actions = match access {
            Access::Pull => "pull",
            Access::Push => "pull,push",
        };
        all.push(format!("repository:{}:{actions}", r.path));
    }
    all.extend(extra.iter().cloned());
    merge_scopes(&all)
}

/// Merges scopes naming the same resource (`repository:a:pull` and `repository:a:push` become
/// `repository:a:pull,push`), sorted by resource, actions in first-seen order.
pub fn merge_scopes(scopes: &[String]) -> Vec<String> {
    let mut by_resource: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for s in scopes {
        let (resource, actions) = s.rsplit_once(':').unwrap_or((s.as_str(), ""));
        let list = by_resource.entry(resource).or_default();
        for a in actions.split(',').filter(|a| !a.is_empty()) {
            if !list.contains(&a) {
                list.push(a);
            }
        }
    }
    by_resource
        .into_iter()
        .map(|(resource, actions)| format!("{resource}:{}", actions.join(",")))
        .collect()
}

impl Client {
    /// The `Authorization` value to send for `key`: a cached one still fresh, else (when the
    /// registry has challenged before) a new one obtained up front, else none. A failure to
    /// authenticate up front sends nothing: the registry's own challenge then reports it.
    pub(super) async fn authorization(
        &self,
        r: &Reference,
        key: &AuthKey,
        scopes: &[String],
    ) -> Option<String> {
        if let Some(v) = self.cached(key) {
            return Some(v);
        }
        let known = self.challenges.lock().unwrap().get(&r.domain).cloned()?;
        self.refresh(r, key, scopes, &known, None).await.ok()
    }

    pub(super) fn cached(&self, key: &AuthKey) -> Option<String> {
        let auth = self.auth.lock().unwrap();
        auth.get(key)
            .filter(|c| c.refresh_at.is_none_or(|t| Instant::now() < t))
            .map(|c| c.value.clone())
    }

    /// Keeps a registry's challenge (without its request-specific scope and error) for
    /// authenticating its next requests up front.
    pub(super) fn remember_challenge(&self, registry: &str, challenge: &Challenge) {
        let mut c = challenge.clone();
        c.params.remove("scope");
        c.params.remove("error");
        self.challenges
            .lock()
            .unwrap()
            .insert(registry.to_string(), c);
    }

    /// Obtains and caches a new `Authorization` value for `key`, unless another task replaced
    /// `stale` (the value just rejected, or `None`) with a fresh one meanwhile: concurrent requests
    /// that meet the same challenge share one token request.
    pub(super) async fn refresh(
        &self,
        r: &Reference,
        key: &AuthKey,
        scopes: &[String],
        challenge: &Challenge,
        stale: Option<&str>,
    ) -> Result<String> {
        let _one_at_a_time = self.fetching.lock().await;
        if let Some(v) = self.cached(key)
            && Some(v.as_str()) != stale
        {
            return Ok(v);
        }
        let started = Instant::now();
        let (value, lifetime) = self.authenticate(r, scopes, challenge).await?;
        // Stop using a token a little before it expires (a tenth of its life, at most 10 s).
        let refresh_at = lifetime.map(|l| started + l - (l / 10).min(Duration::from_secs(10)));
        self.auth.lock().unwrap().insert(
            key.clone(),
            CachedAuth {
                value: value.clone(),
                refresh_at,
            },
        );
        Ok(value)
    }

    /// Answers a challenge: a bearer token for `scopes` from the realm (with basic credentials
    /// when configured, anonymous otherwise) and its lifetime, or basic credentials.
    pub(super) async fn authenticate(
        &self,
        r: &Reference,
        scopes: &[String],
        challenge: &Challenge,
    ) -> Result<(String, Option<Duration>)> {
        let creds = self.credentials(&r.domain)?;
        match challenge.scheme.as_str() {
            "basic" => match creds {
                Some(c) => Ok((c.basic_header(), None)),
                None => bail!(
                    "{}: authentication required (run `hoist login {}`)",
                    r.domain,
                    r.domain
                ),
            },
            "bearer" => {
                let realm = challenge
                    .params
                    .get("realm")
                    .ok_or_else(|| anyhow!("{}: bearer challenge without realm", r.domain))?;
                let mut url = url::Url::parse(realm)
                    .with_context(|| format!("{}: bad token realm {realm:?}", r.domain))?;
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(service) = challenge.params.get("service") {
                        q.append_pair("service", service);
                    }
                    for s in scopes {
                        q.append_pair("scope", s);
                    }
                    if let Some(c) = &creds {
                        q.append_pair("account", &c.username);
                    }
                }
                let mut attempt = 0;
                let resp = loop {
                    let mut rb = self.http.get(url.clone());
                    if let Some(c) = &creds {
                        rb = rb.header(header::AUTHORIZATION, c.basic_header());
                    }
                    match rb.send().await {
                        Ok(resp)
                            if resp.status().is_server_error()
                                && attempt + 1 < self.opts.max_attempts =>
                        {
                            attempt += 1;
                            self.backoff(attempt).await;
                        }
                        Ok(resp) => break resp,
                        Err(e) if is_transient(&e) && attempt + 1 < self.opts.max_attempts => {
                            attempt += 1;
                            self.backoff(attempt).await;
                        }
                        Err(e) => {
                            return Err(anyhow!(e).context(format!("fetching token from {realm}")));
                        }
                    }
                };
                if !resp.status().is_success() {
                    let status = resp.status();
                    let body = resp.text().await.unwrap_or_default();
                    let who = match &creds {
                        Some(c) => format!("as {}", c.username),
                        None => "anonymously".to_string(),
                    };
                    bail!(
                        "{}: token request to {realm} {who} failed: {status}: {}",
                        r.domain,
                        body.trim()
                    );
                }
                let v: serde_json::Value =
                    serde_json::from_slice(&resp.bytes().await?).context("token response")?;
                let token = ["token", "access_token"]
                    .iter()
                    .filter_map(|f| v.get(f).and_then(|t| t.as_str()))
                    .find(|t| !t.is_empty())
                    .ok_or_else(|| anyhow!("{}: token response without token", r.domain))?;
                // The distribution spec: 60 seconds when the server does not say.
                let lifetime = v
                    .get("expires_in")
                    .and_then(|e| e.as_u64())
                    .filter(|&e| e > 0)
                    .unwrap_or(60);
                Ok((
                    format!("Bearer {token}"),
                    Some(Duration::from_secs(lifetime)),
                ))
            }
            other => bail!("{}: unsupported authentication scheme {other:?}", r.domain),
        }
    }

    /// Checks that the registry answers `/v2/` with the configured credentials (`hoist login`).
    pub async fn ping(&self, registry: &str) -> Result<()> {
        let r = Reference {
            domain: registry.to_string(),
            path: String::new(),
            tag: None,
            digest: None,
        };
        let url = format!("{}/v2/", self.endpoint(registry).base());
        let resp = self
            .send(&r, Access::Pull, &[], &|h| Ok(h.get(&url)))
            .await?;
        self.check_access(&r, resp, &format!("login to {registry}"))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClientOptions;

    pub(super) fn r(repository: &str) -> Reference {
        Reference {
            domain: "127.0.0.1:5000".into(),
            path: repository.into(),
            tag: None,
            digest: None,
        }
    }

    #[test]
    pub(super) fn scopes_merge_per_resource() {
        assert_eq!(
            scopes_for(&r("a/b"), Access::Push, &[]),
            ["repository:a/b:pull,push"]
        );
        // The challenge's own scope adds nothing new; a mount source is its own resource.
        let wanted = [
            "repository:a/b:pull,push".to_string(),
            "repository:a/b:pull".to_string(),
            "repository:c:pull".to_string(),
        ];
        assert_eq!(
            merge_scopes(&wanted),
            ["repository:a/b:pull,push", "repository:c:pull"]
        );
        assert_eq!(
            merge_scopes(&["repository:a:pull".into(), "repository:a:push".into()]),
            ["repository:a:pull,push"]
        );
        // The registry itself (`/v2/`, as login pings it) needs no scope.
        assert!(scopes_for(&r(""), Access::Pull, &[]).is_empty());
    }

    #[test]
    pub(super) fn cached_authorization_expires() {
        let c = Client::new(ClientOptions {
            config_path: Some("/nonexistent/config.json".into()),
            ..Default::default()
        })
        .unwrap();
        let key: AuthKey = ("reg".into(), "repository:a:pull".into());
        let put = |refresh_at| {
            c.auth.lock().unwrap().insert(
                key.clone(),
                CachedAuth {
                    value: "Bearer t".into(),
                    refresh_at,
                },
            );
        };
        put(Some(Instant::now() + Duration::from_secs(30)));
        assert_eq!(c.cached(&key).as_deref(), Some("Bearer t"));
        put(Some(Instant::now() - Duration::from_millis(1)));
        assert_eq!(c.cached(&key), None);
        put(None);
        assert_eq!(c.cached(&key).as_deref(), Some("Bearer t"));
    }
}
