//! The OCI distribution HTTP client: authentication on challenge, retries with backoff, manifests,
//! streamed and verified blob downloads with Range resume, and blob uploads (HEAD-skip, cross-repo
//! mount, monolithic or chunked).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use futures_util::StreamExt;
use hoist_image::layer::{Compression, DiffIdWriter};
use reqwest::header::{self, HeaderMap};
use reqwest::{RequestBuilder, Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::auth::{Challenge, Credentials, DockerConfig, default_config_path};
use crate::endpoint::Endpoint;
use crate::manifest::{ACCEPT_MANIFESTS, Descriptor};
use hoist_image::Reference;
use hoist_image::digest::AlgoHasher as Hasher;

/// Told the length of each chunk moved (negative when a download restarts from zero).
pub type OnBytes = std::sync::Arc<dyn Fn(i64) + Send + Sync>;

/// A progress callback that ignores everything.
pub fn no_progress() -> OnBytes {
    std::sync::Arc::new(|_| {})
}

/// How a [`Client`] reaches registries.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Registries (`host[:port]`) reached over plain http although not on loopback.
    pub insecure_registries: Vec<String>,
    /// The Docker config file credentials come from (default: [`default_config_path`]).
    pub config_path: Option<PathBuf>,
    /// Attempts per request on 5xx, 429 and broken connections (>= 1).
    pub max_attempts: u32,
    /// First backoff delay; doubles each retry.
    pub backoff: Duration,
    /// Blobs at least this large are uploaded in chunks of `chunk_size`.
    pub chunked_threshold: u64,
    pub chunk_size: u64,
    /// Credentials that override the config file (e.g. `hoist login -u -p` verifying them).
    pub credentials: Option<Credentials>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            insecure_registries: Vec::new(),
            config_path: None,
            max_attempts: 5,
            backoff: Duration::from_millis(200),
            chunked_threshold: 128 << 20,
            chunk_size: 32 << 20,
            credentials: None,
        }
    }
}

/// What a request needs the token to allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    Pull,
    Push,
}

/// How [`Client::push_blob`] got the blob into the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobPush {
    /// The registry already had it (HEAD answered 200).
    Exists,
    /// Mounted from another repository of the same registry.
    Mounted { from: String },
    /// Uploaded in full.
    Uploaded,
}

/// Where the bytes of a blob to upload come from.
#[derive(Debug, Clone)]
pub enum BlobSource {
    File(PathBuf),
    Bytes(Bytes),
}

/// A registry client shared by every transfer of one command (cheap to share by reference).
pub struct Client {
    http: reqwest::Client,
    opts: ClientOptions,
    config: DockerConfig,
    /// `Authorization` values per (registry, scopes), until they expire.
    auth: Mutex<HashMap<AuthKey, CachedAuth>>,
    /// The last challenge of each registry, to authenticate its next requests up front.
    challenges: Mutex<HashMap<String, Challenge>>,
    /// Held while fetching a token, so concurrent requests share one.
    fetching: tokio::sync::Mutex<()>,
}

/// (registry, space-joined scopes).
type AuthKey = (String, String);

/// An `Authorization` value and when to stop sending it (`None`: never expires, basic auth).
#[derive(Clone)]
struct CachedAuth {
    value: String,
    refresh_at: Option<Instant>,
}

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
    /// A client with `opts`, reading credentials from the Docker config file.
    pub fn new(opts: ClientOptions) -> Result<Client> {
        let path = opts.config_path.clone().unwrap_or_else(default_config_path);
        let config = DockerConfig::load(&path)?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("hoist/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(120))
            .build()
            .context("building the HTTP client")?;
        Ok(Client {
            http,
            opts,
            config,
            auth: Mutex::new(HashMap::new()),
            challenges: Mutex::new(HashMap::new()),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    /// The endpoint `registry` is reached at.
    pub fn endpoint(&self, registry: &str) -> Endpoint {
        Endpoint::for_registry(registry, &self.opts.insecure_registries)
    }

    fn url(&self, r: &Reference, tail: &str) -> String {
        format!("{}/v2/{}/{}", self.endpoint(&r.domain).base(), r.path, tail)
    }

    fn credentials(&self, registry: &str) -> Result<Option<Credentials>> {
        if let Some(c) = &self.opts.credentials {
            return Ok(Some(c.clone()));
        }
        self.config.credentials(registry)
    }

    async fn backoff(&self, attempt: u32) {
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
    ) -> Result<Response> {
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
                Err(e) => {
                    return Err(anyhow!(e).context(format!("connecting to {}", r.domain)));
                }
            }
        }
    }

    /// The `Authorization` value to send for `key`: a cached one still fresh, else (when the
    /// registry has challenged before) a new one obtained up front, else none. A failure to
    /// authenticate up front sends nothing: the registry's own challenge then reports it.
    async fn authorization(
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

    fn cached(&self, key: &AuthKey) -> Option<String> {
        let auth = self.auth.lock().unwrap();
        auth.get(key)
            .filter(|c| c.refresh_at.is_none_or(|t| Instant::now() < t))
            .map(|c| c.value.clone())
    }

    /// Keeps a registry's challenge (without its request-specific scope and error) for
    /// authenticating its next requests up front.
    fn remember_challenge(&self, registry: &str, challenge: &Challenge) {
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
    async fn refresh(
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
    async fn authenticate(
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

    /// Fetches a manifest (any of the four types) by tag or digest: (bytes, media type, digest).
    /// The digest is computed from the bytes and checked against a pinned digest.
    pub async fn get_manifest(
        &self,
        r: &Reference,
        reference: &str,
    ) -> Result<(Bytes, String, String)> {
        match self.find_manifest(r, reference).await? {
            Some(m) => Ok(m),
            None => bail!("manifest for {}:{reference} not found", r.repository()),
        }
    }

    /// Like [`Client::get_manifest`], but `None` when the registry answers 404 (no such tag,
    /// digest or repository), e.g. a build cache that was never exported.
    pub async fn find_manifest(
        &self,
        r: &Reference,
        reference: &str,
    ) -> Result<Option<(Bytes, String, String)>> {
        let url = self.url(r, &format!("manifests/{reference}"));
        let resp = self
            .send(r, Access::Pull, &[], &|h| {
                Ok(h.get(&url).header(header::ACCEPT, ACCEPT_MANIFESTS))
            })
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let resp = self
            .check_access(
                r,
                resp,
                &format!("manifest for {}:{reference}", r.repository()),
            )
            .await?;
        let media_type = content_type(resp.headers());
        let len = resp.content_length().unwrap_or(0);
        if len > 8 << 20 {
            bail!("manifest for {} is too large ({len} bytes)", r.repository());
        }
        let body = resp.bytes().await.context("reading manifest")?;
        let digest = hoist_image::Digest::of(&body).to_string();
        if reference.contains(':') && reference != digest {
            hoist_image::digest::verify(&body, reference)
                .with_context(|| format!("manifest {reference} from {}", r.repository()))?;
        }
        let media_type = match media_type {
            Some(m) if m != "application/json" && !m.is_empty() => m,
            _ => serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| {
                    v.get("mediaType")
                        .and_then(|m| m.as_str())
                        .map(String::from)
                })
                .unwrap_or_else(|| crate::manifest::OCI_MANIFEST.to_string()),
        };
        Ok(Some((body, media_type, digest)))
    }

    /// Uploads a manifest under `reference` (a tag or its digest); returns its digest.
    pub async fn put_manifest(
        &self,
        r: &Reference,
        reference: &str,
        media_type: &str,
        body: Bytes,
    ) -> Result<String> {
        let url = self.url(r, &format!("manifests/{reference}"));
        let resp = self
            .send(r, Access::Push, &[], &|h| {
                Ok(h.put(&url)
                    .header(header::CONTENT_TYPE, media_type)
                    .body(body.clone()))
            })
            .await?;
        self.check_access(
            r,
            resp,
            &format!("pushing manifest {}:{reference}", r.repository()),
        )
        .await?;
        Ok(hoist_image::Digest::of(&body).to_string())
    }

    /// Whether the repository has the blob (HEAD).
    pub async fn blob_exists(&self, r: &Reference, digest: &str, access: Access) -> Result<bool> {
        let url = self.url(r, &format!("blobs/{digest}"));
        let resp = self.send(r, access, &[], &|h| Ok(h.head(&url))).await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => {
                self.check_access(r, resp, &format!("checking blob {digest}"))
                    .await?;
                Ok(false)
            }
        }
    }

    /// Reads a small blob (a config) whole, verified against `desc`.
    pub async fn get_blob_bytes(&self, r: &Reference, desc: &Descriptor) -> Result<Bytes> {
        if desc.size > 16 << 20 {
            bail!("blob {} is too large to read into memory", desc.digest);
        }
        let url = self.url(r, &format!("blobs/{}", desc.digest));
        let resp = self
            .send(r, Access::Pull, &[], &|h| Ok(h.get(&url)))
            .await?;
        let resp = self
            .check_access(r, resp, &format!("blob {}", desc.digest))
            .await?;
        let body = resp.bytes().await?;
        hoist_image::digest::verify(&body, &desc.digest)
            .with_context(|| format!("blob from {}", r.repository()))?;
        Ok(body)
    }

    /// Streams a blob into `dest` (created or truncated), hashing as it goes. A broken connection
    /// is retried, resuming with `Range` when the registry allows it. Wrong size or digest removes
    /// `dest` and fails. `on_bytes` is told each chunk's length (negative on restart from zero).
    pub async fn fetch_blob(
        &self,
        r: &Reference,
        desc: &Descriptor,
        dest: &Path,
        on_bytes: &OnBytes,
    ) -> Result<()> {
        self.fetch_layer(r, desc, None, dest, on_bytes)
            .await
            .map(drop)
    }

    /// [`Client::fetch_blob`] for a layer whose uncompressed digest must be `diff_id` (the image
    /// config's): checked while the blob streams, by decompressing it on the fly. Returns the
    /// blob's compression when `diff_id` was given and matched.
    pub async fn fetch_layer(
        &self,
        r: &Reference,
        desc: &Descriptor,
        diff_id: Option<&str>,
        dest: &Path,
        on_bytes: &OnBytes,
    ) -> Result<Option<Compression>> {
        let result = self
            .fetch_blob_inner(r, desc, diff_id, dest, on_bytes)
            .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(dest).await;
        }
        result
    }

    async fn fetch_blob_inner(
        &self,
        r: &Reference,
        desc: &Descriptor,
        diff_id: Option<&str>,
        dest: &Path,
        on_bytes: &OnBytes,
    ) -> Result<Option<Compression>> {
        let mut layer = diff_id.map(|_| DiffIdWriter::new());
        let url = self.url(r, &format!("blobs/{}", desc.digest));
        let mut file = tokio::fs::File::create(dest)
            .await
            .with_context(|| format!("creating {}", dest.display()))?;
        let mut hasher = Hasher::for_digest(&desc.digest)?;
        let mut written: u64 = 0;
        let mut attempt = 0;
        loop {
            let offset = written;
            let resp = self
                .send(r, Access::Pull, &[], &|h| {
                    let mut rb = h.get(&url);
                    if offset > 0 {
                        rb = rb.header(header::RANGE, format!("bytes={offset}-"));
                    }
                    Ok(rb)
                })
                .await?;
            let resp = self
                .check_access(r, resp, &format!("blob {}", desc.digest))
                .await?;
            if offset > 0 && resp.status() != StatusCode::PARTIAL_CONTENT {
                // The registry ignored the range: start over.
                file.set_len(0).await?;
                file.seek(std::io::SeekFrom::Start(0)).await?;
                hasher = Hasher::for_digest(&desc.digest)?;
                layer = diff_id.map(|_| DiffIdWriter::new());
                on_bytes(-(written as i64));
                written = 0;
            }
            let mut stream = resp.bytes_stream();
            let mut broken = None;
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(chunk) => {
                        written += chunk.len() as u64;
                        if written > desc.size {
                            bail!(
                                "blob {} from {}: more than the {} bytes its descriptor says",
                                desc.digest,
                                r.repository(),
                                desc.size
                            );
                        }
                        hasher.update(&chunk);
                        if let Some(l) = &mut layer {
                            std::io::Write::write_all(l, &chunk).with_context(|| {
                                format!(
                                    "layer {} from {}: decompressing",
                                    desc.digest,
                                    r.repository()
                                )
                            })?;
                        }
                        file.write_all(&chunk).await?;
                        on_bytes(chunk.len() as i64);
                    }
                    Err(e) => {
                        broken = Some(e);
                        break;
                    }
                }
            }
            match broken {
                None if written == desc.size => break,
                None => {
                    // The body ended early without an error: treat as a cut connection.
                    if attempt + 1 >= self.opts.max_attempts {
                        bail!(
                            "blob {} from {}: connection closed after {written} of {} bytes",
                            desc.digest,
                            r.repository(),
                            desc.size
                        );
                    }
                }
                Some(e) => {
                    if attempt + 1 >= self.opts.max_attempts {
                        return Err(anyhow!(e).context(format!(
                            "blob {} from {}: download failed after {written} bytes",
                            desc.digest,
                            r.repository()
                        )));
                    }
                }
            }
            attempt += 1;
            self.backoff(attempt).await;
        }
        file.flush().await?;
        file.sync_all().await?;
        let got = hasher.finish();
        if got != desc.digest {
            bail!(
                "blob from {} failed verification: expected {}, got {got}",
                r.repository(),
                desc.digest
            );
        }
        let (Some(l), Some(want)) = (layer, diff_id) else {
            return Ok(None);
        };
        let (actual, c) = l.finish().with_context(|| {
            format!(
                "layer {} from {}: decompressing",
                desc.digest,
                r.repository()
            )
        })?;
        if actual.as_str() != want {
            return Err(crate::LayerMismatch {
                blob: desc.digest.clone(),
                source: r.repository().to_string(),
                actual: actual.to_string(),
                expected: want.to_string(),
            }
            .into());
        }
        Ok(Some(c))
    }

    /// Puts a blob into the repository unless it is there: HEAD first, then a cross-repository
    /// mount from each of `mount_from` (repositories of the same registry), then an upload
    /// (monolithic, or chunked at or above the chunked threshold).
    pub async fn push_blob(
        &self,
        r: &Reference,
        desc: &Descriptor,
        source: &BlobSource,
        mount_from: &[String],
        on_bytes: &OnBytes,
    ) -> Result<BlobPush> {
        if self.blob_exists(r, &desc.digest, Access::Push).await? {
            return Ok(BlobPush::Exists);
        }
        for from in mount_from.iter().filter(|f| **f != r.path) {
            let url = self.url(r, "blobs/uploads/");
            let scopes = [format!("repository:{from}:pull")];
            let resp = self
                .send(r, Access::Push, &scopes, &|h| {
                    Ok(h.post(&url)
                        .query(&[("mount", desc.digest.as_str()), ("from", from.as_str())])
                        .header(header::CONTENT_LENGTH, 0))
                })
                .await?;
            match resp.status() {
                StatusCode::CREATED => return Ok(BlobPush::Mounted { from: from.clone() }),
                // 202: the registry opened a normal upload instead; abandon it.
                _ => continue,
            }
        }
        let mut attempt = 0;
        loop {
            match self.upload(r, desc, source, on_bytes).await {
                Ok(()) => return Ok(BlobPush::Uploaded),
                Err(e) if attempt + 1 < self.opts.max_attempts && is_transient_any(&e) => {
                    attempt += 1;
                    self.backoff(attempt).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn start_upload(&self, r: &Reference) -> Result<url::Url> {
        let url = self.url(r, "blobs/uploads/");
        let resp = self
            .send(r, Access::Push, &[], &|h| {
                Ok(h.post(&url).header(header::CONTENT_LENGTH, 0))
            })
            .await?;
        let resp = self
            .check_access(r, resp, &format!("starting upload to {}", r.repository()))
            .await?;
        location(&url, &resp)
    }

    async fn upload(
        &self,
        r: &Reference,
        desc: &Descriptor,
        source: &BlobSource,
        on_bytes: &OnBytes,
    ) -> Result<()> {
        let mut loc = self.start_upload(r).await?;
        let size = desc.size;
        let chunked = size >= self.opts.chunked_threshold && self.opts.chunk_size > 0;
        let what = format!("uploading {} to {}", desc.digest, r.repository());
        if chunked {
            let mut offset = 0u64;
            while offset < size {
                let len = self.opts.chunk_size.min(size - offset);
                let body = body_of(source, offset, len, on_bytes).await?;
                let range = format!("{}-{}", offset, offset + len - 1);
                let target = loc.clone();
                let resp = self
                    .http_send_once(r, Access::Push, || {
                        self.http
                            .patch(target.clone())
                            .header(header::CONTENT_TYPE, "application/octet-stream")
                            .header(header::CONTENT_LENGTH, len)
                            .header(header::CONTENT_RANGE, range.clone())
                            .body(body)
                    })
                    .await?;
                let resp = self.check_access(r, resp, &what).await?;
                loc = location(loc.as_str(), &resp)?;
                offset += len;
            }
            let mut target = loc.clone();
            target.query_pairs_mut().append_pair("digest", &desc.digest);
            let resp = self
                .http_send_once(r, Access::Push, || {
                    self.http
                        .put(target.clone())
                        .header(header::CONTENT_LENGTH, 0)
                })
                .await?;
            self.check_access(r, resp, &what).await?;
        } else {
            let body = body_of(source, 0, size, on_bytes).await?;
            let mut target = loc.clone();
            target.query_pairs_mut().append_pair("digest", &desc.digest);
            let resp = self
                .http_send_once(r, Access::Push, || {
                    self.http
                        .put(target.clone())
                        .header(header::CONTENT_TYPE, "application/octet-stream")
                        .header(header::CONTENT_LENGTH, size)
                        .body(body)
                })
                .await?;
            self.check_access(r, resp, &what).await?;
        }
        Ok(())
    }

    /// One attempt of a request whose body cannot be replayed, with the cached authorization
    /// (renewed first when it has expired).
    async fn http_send_once(
        &self,
        r: &Reference,
        access: Access,
        build: impl FnOnce() -> RequestBuilder,
    ) -> Result<Response> {
        let scopes = scopes_for(r, access, &[]);
        let key = (r.domain.clone(), scopes.join(" "));
        let mut rb = build();
        if let Some(h) = self.authorization(r, &key, &scopes).await {
            rb = rb.header(header::AUTHORIZATION, h);
        }
        rb.send()
            .await
            .map_err(|e| anyhow!(e).context(format!("sending to {}", r.domain)))
    }

    /// [`check`], saying what to do when the registry refused access: log in when no credentials
    /// are configured for it, or which user it refused.
    async fn check_access(&self, r: &Reference, resp: Response, what: &str) -> Result<Response> {
        let status = resp.status();
        let result = check(resp, what).await;
        if !matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            return result;
        }
        let registry = &r.domain;
        result.with_context(|| match self.credentials(registry) {
            Ok(Some(c)) => format!("{registry}: access denied for user {}", c.username),
            _ => format!(
                "{registry}: authentication required: no credentials for it (run `hoist login {registry}`)"
            ),
        })
    }

    /// Uploads an in-memory blob (config, cache metadata) and returns its descriptor.
    pub async fn push_bytes(
        &self,
        r: &Reference,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<Descriptor> {
        let desc = Descriptor::new(
            media_type,
            &hoist_image::Digest::of(&bytes).to_string(),
            bytes.len() as u64,
        );
        self.push_blob(r, &desc, &BlobSource::Bytes(bytes), &[], &no_progress())
            .await?;
        Ok(desc)
    }
}

/// A request body for `len` bytes of `source` from `offset`, streamed from disk for files.
async fn body_of(
    source: &BlobSource,
    offset: u64,
    len: u64,
    on_bytes: &OnBytes,
) -> Result<reqwest::Body> {
    match source {
        BlobSource::Bytes(b) => {
            on_bytes(len as i64);
            Ok(reqwest::Body::from(
                b.slice(offset as usize..(offset + len) as usize),
            ))
        }
        BlobSource::File(path) => {
            let mut f = tokio::fs::File::open(path)
                .await
                .with_context(|| format!("opening {}", path.display()))?;
            f.seek(std::io::SeekFrom::Start(offset)).await?;
            let progress = on_bytes.clone();
            let stream = tokio_util::io::ReaderStream::with_capacity(f.take(len), 256 << 10)
                .inspect(move |c| {
                    if let Ok(c) = c {
                        progress(c.len() as i64)
                    }
                });
            Ok(reqwest::Body::wrap_stream(stream))
        }
    }
}

/// The absolute upload URL from a `Location` header (relative ones resolve against `base`).
fn location(base: &str, resp: &Response) -> Result<url::Url> {
    let loc = resp
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| anyhow!("registry answered an upload without a Location header"))?;
    let base = url::Url::parse(base)?;
    base.join(loc).context("bad upload Location")
}

fn content_type(h: &HeaderMap) -> Option<String> {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.split(';').next().unwrap_or(s).trim().to_string())
}

/// Passes a successful response through; turns an error status into an error carrying the
/// registry's `errors[].code/message`.
pub async fn check(resp: Response, what: &str) -> Result<Response> {
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
    match status {
        StatusCode::NOT_FOUND => bail!("{what}: not found ({detail})"),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            bail!("{what}: {status}: access denied ({detail})")
        }
        _ => bail!("{what}: {status} {detail}"),
    }
}

fn is_transient(e: &reqwest::Error) -> bool {
    e.is_connect() || e.is_timeout() || e.is_request() || e.is_body()
}

fn is_transient_any(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<reqwest::Error>().is_some_and(is_transient)
            || c.downcast_ref::<std::io::Error>().is_some_and(|io| {
                matches!(
                    io.kind(),
                    std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::BrokenPipe
                        | std::io::ErrorKind::UnexpectedEof
                )
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(repository: &str) -> Reference {
        Reference {
            domain: "127.0.0.1:5000".into(),
            path: repository.into(),
            tag: None,
            digest: None,
        }
    }

    #[test]
    fn scopes_merge_per_resource() {
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
    fn cached_authorization_expires() {
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
