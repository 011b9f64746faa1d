//! The OCI distribution HTTP client: authentication on challenge, retries with backoff, manifests,
//! streamed and verified blob downloads with Range resume, and blob uploads (HEAD-skip, cross-repo
//! mount, monolithic or chunked).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{self, HeaderMap};
use reqwest::{RequestBuilder, Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::auth::{Challenge, Credentials, DockerConfig, default_config_path};
use crate::digest::{Hasher, sha256};
use crate::manifest::{ACCEPT_MANIFESTS, Descriptor};
use crate::reference::{Endpoint, ImageRef};

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
    /// `Authorization` header values per (registry, repository, access).
    auth: Mutex<HashMap<(String, String, Access), String>>,
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
        })
    }

    /// The endpoint `registry` is reached at.
    pub fn endpoint(&self, registry: &str) -> Endpoint {
        Endpoint::for_registry(registry, &self.opts.insecure_registries)
    }

    fn url(&self, r: &ImageRef, tail: &str) -> String {
        format!(
            "{}/v2/{}/{}",
            self.endpoint(&r.registry).base(),
            r.repository,
            tail
        )
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
    pub async fn send(
        &self,
        r: &ImageRef,
        access: Access,
        extra_scopes: &[String],
        build: &(dyn Fn(&reqwest::Client) -> Result<RequestBuilder> + Sync),
    ) -> Result<Response> {
        let key = (r.registry.clone(), r.repository.clone(), access);
        let mut attempt = 0;
        let mut authed = false;
        loop {
            let mut rb = build(&self.http)?;
            let cached = self.auth.lock().unwrap().get(&key).cloned();
            if let Some(h) = cached {
                rb = rb.header(header::AUTHORIZATION, h);
            }
            match rb.send().await {
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED && !authed => {
                    authed = true;
                    let challenge = resp
                        .headers()
                        .get(header::WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .and_then(Challenge::parse);
                    let Some(challenge) = challenge else {
                        return Ok(resp);
                    };
                    let value = self
                        .authenticate(r, access, extra_scopes, &challenge)
                        .await?;
                    self.auth.lock().unwrap().insert(key.clone(), value);
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
                    return Err(anyhow!(e).context(format!("connecting to {}", r.registry)));
                }
            }
        }
    }

    /// Answers a challenge: a bearer token from the realm (with basic credentials when configured,
    /// anonymous otherwise), or basic credentials.
    async fn authenticate(
        &self,
        r: &ImageRef,
        access: Access,
        extra_scopes: &[String],
        challenge: &Challenge,
    ) -> Result<String> {
        let creds = self.credentials(&r.registry)?;
        match challenge.scheme.as_str() {
            "basic" => match creds {
                Some(c) => Ok(c.basic_header()),
                None => bail!(
                    "{}: authentication required (run `hoist login {}`)",
                    r.registry,
                    r.registry
                ),
            },
            "bearer" => {
                let realm = challenge
                    .params
                    .get("realm")
                    .ok_or_else(|| anyhow!("{}: bearer challenge without realm", r.registry))?;
                let actions = match access {
                    Access::Pull => "pull",
                    Access::Push => "pull,push",
                };
                let mut scopes = BTreeSet::new();
                scopes.insert(format!("repository:{}:{actions}", r.repository));
                scopes.extend(extra_scopes.iter().cloned());
                if let Some(s) = challenge.params.get("scope") {
                    scopes.insert(s.clone());
                }
                let mut url = url::Url::parse(realm)
                    .with_context(|| format!("{}: bad token realm {realm:?}", r.registry))?;
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(service) = challenge.params.get("service") {
                        q.append_pair("service", service);
                    }
                    for s in &scopes {
                        q.append_pair("scope", s);
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
                    bail!(
                        "{}: token request to {realm} failed: {status}: {}",
                        r.registry,
                        body.trim()
                    );
                }
                let v: serde_json::Value =
                    serde_json::from_slice(&resp.bytes().await?).context("token response")?;
                let token = v
                    .get("token")
                    .or_else(|| v.get("access_token"))
                    .and_then(|t| t.as_str())
                    .ok_or_else(|| anyhow!("{}: token response without token", r.registry))?;
                Ok(format!("Bearer {token}"))
            }
            other => bail!(
                "{}: unsupported authentication scheme {other:?}",
                r.registry
            ),
        }
    }

    /// Checks that the registry answers `/v2/` with the configured credentials (`hoist login`).
    pub async fn ping(&self, registry: &str) -> Result<()> {
        let r = ImageRef {
            registry: registry.to_string(),
            repository: String::new(),
            tag: None,
            digest: None,
        };
        let url = format!("{}/v2/", self.endpoint(registry).base());
        let resp = self
            .send(&r, Access::Pull, &[], &|h| Ok(h.get(&url)))
            .await?;
        check(resp, &format!("login to {registry}")).await?;
        Ok(())
    }

    /// Fetches a manifest (any of the four types) by tag or digest: (bytes, media type, digest).
    /// The digest is computed from the bytes and checked against a pinned digest.
    pub async fn get_manifest(
        &self,
        r: &ImageRef,
        reference: &str,
    ) -> Result<(Bytes, String, String)> {
        match self.find_manifest(r, reference).await? {
            Some(m) => Ok(m),
            None => bail!("manifest for {}:{reference} not found", r.name()),
        }
    }

    /// Like [`Client::get_manifest`], but `None` when the registry answers 404 (no such tag,
    /// digest or repository), e.g. a build cache that was never exported.
    pub async fn find_manifest(
        &self,
        r: &ImageRef,
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
        let resp = check(resp, &format!("manifest for {}:{reference}", r.name())).await?;
        let media_type = content_type(resp.headers());
        let len = resp.content_length().unwrap_or(0);
        if len > 8 << 20 {
            bail!("manifest for {} is too large ({len} bytes)", r.name());
        }
        let body = resp.bytes().await.context("reading manifest")?;
        let digest = sha256(&body);
        if reference.contains(':') && reference != digest {
            crate::digest::verify(&body, reference)
                .with_context(|| format!("manifest {reference} from {}", r.name()))?;
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
        r: &ImageRef,
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
        check(resp, &format!("pushing manifest {}:{reference}", r.name())).await?;
        Ok(sha256(&body))
    }

    /// Whether the repository has the blob (HEAD).
    pub async fn blob_exists(&self, r: &ImageRef, digest: &str, access: Access) -> Result<bool> {
        let url = self.url(r, &format!("blobs/{digest}"));
        let resp = self.send(r, access, &[], &|h| Ok(h.head(&url))).await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => {
                check(resp, &format!("checking blob {digest}")).await?;
                Ok(false)
            }
        }
    }

    /// Reads a small blob (a config) whole, verified against `desc`.
    pub async fn get_blob_bytes(&self, r: &ImageRef, desc: &Descriptor) -> Result<Bytes> {
        if desc.size > 16 << 20 {
            bail!("blob {} is too large to read into memory", desc.digest);
        }
        let url = self.url(r, &format!("blobs/{}", desc.digest));
        let resp = self
            .send(r, Access::Pull, &[], &|h| Ok(h.get(&url)))
            .await?;
        let resp = check(resp, &format!("blob {}", desc.digest)).await?;
        let body = resp.bytes().await?;
        crate::digest::verify(&body, &desc.digest)
            .with_context(|| format!("blob from {}", r.name()))?;
        Ok(body)
    }

    /// Streams a blob into `dest` (created or truncated), hashing as it goes. A broken connection
    /// is retried, resuming with `Range` when the registry allows it. Wrong size or digest removes
    /// `dest` and fails. `on_bytes` is told each chunk's length (negative on restart from zero).
    pub async fn fetch_blob(
        &self,
        r: &ImageRef,
        desc: &Descriptor,
        dest: &Path,
        on_bytes: &OnBytes,
    ) -> Result<()> {
        let result = self.fetch_blob_inner(r, desc, dest, on_bytes).await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(dest).await;
        }
        result
    }

    async fn fetch_blob_inner(
        &self,
        r: &ImageRef,
        desc: &Descriptor,
        dest: &Path,
        on_bytes: &OnBytes,
    ) -> Result<()> {
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
            let resp = check(resp, &format!("blob {}", desc.digest)).await?;
            if offset > 0 && resp.status() != StatusCode::PARTIAL_CONTENT {
                // The registry ignored the range: start over.
                file.set_len(0).await?;
                file.seek(std::io::SeekFrom::Start(0)).await?;
                hasher = Hasher::for_digest(&desc.digest)?;
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
                                r.name(),
                                desc.size
                            );
                        }
                        hasher.update(&chunk);
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
                            r.name(),
                            desc.size
                        );
                    }
                }
                Some(e) => {
                    if attempt + 1 >= self.opts.max_attempts {
                        return Err(anyhow!(e).context(format!(
                            "blob {} from {}: download failed after {written} bytes",
                            desc.digest,
                            r.name()
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
                r.name(),
                desc.digest
            );
        }
        Ok(())
    }

    /// Puts a blob into the repository unless it is there: HEAD first, then a cross-repository
    /// mount from each of `mount_from` (repositories of the same registry), then an upload
    /// (monolithic, or chunked at or above the chunked threshold).
    pub async fn push_blob(
        &self,
        r: &ImageRef,
        desc: &Descriptor,
        source: &BlobSource,
        mount_from: &[String],
        on_bytes: &OnBytes,
    ) -> Result<BlobPush> {
        if self.blob_exists(r, &desc.digest, Access::Push).await? {
            return Ok(BlobPush::Exists);
        }
        for from in mount_from.iter().filter(|f| **f != r.repository) {
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

    async fn start_upload(&self, r: &ImageRef) -> Result<url::Url> {
        let url = self.url(r, "blobs/uploads/");
        let resp = self
            .send(r, Access::Push, &[], &|h| {
                Ok(h.post(&url).header(header::CONTENT_LENGTH, 0))
            })
            .await?;
        let resp = check(resp, &format!("starting upload to {}", r.name())).await?;
        location(&url, &resp)
    }

    async fn upload(
        &self,
        r: &ImageRef,
        desc: &Descriptor,
        source: &BlobSource,
        on_bytes: &OnBytes,
    ) -> Result<()> {
        let mut loc = self.start_upload(r).await?;
        let size = desc.size;
        let chunked = size >= self.opts.chunked_threshold && self.opts.chunk_size > 0;
        let what = format!("uploading {} to {}", desc.digest, r.name());
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
                let resp = check(resp, &what).await?;
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
            check(resp, &what).await?;
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
            check(resp, &what).await?;
        }
        Ok(())
    }

    /// One attempt of a request whose body cannot be replayed, with the cached authorization.
    async fn http_send_once(
        &self,
        r: &ImageRef,
        access: Access,
        build: impl FnOnce() -> RequestBuilder,
    ) -> Result<Response> {
        let key = (r.registry.clone(), r.repository.clone(), access);
        let mut rb = build();
        let cached = self.auth.lock().unwrap().get(&key).cloned();
        if let Some(h) = cached {
            rb = rb.header(header::AUTHORIZATION, h);
        }
        rb.send()
            .await
            .map_err(|e| anyhow!(e).context(format!("sending to {}", r.registry)))
    }

    /// Uploads an in-memory blob (config, cache metadata) and returns its descriptor.
    pub async fn push_bytes(
        &self,
        r: &ImageRef,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<Descriptor> {
        let desc = Descriptor::new(media_type, &sha256(&bytes), bytes.len() as u64);
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
