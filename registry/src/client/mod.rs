//! The OCI distribution HTTP client: authentication on challenge, retries with backoff, manifests,
//! streamed and verified blob downloads with Range resume, and blob uploads (HEAD-skip, cross-repo
//! mount, monolithic or chunked).
//!
//! Owns: the [`Client`] and its options. The transport concerns — [`transport`] (sending,
//! retries, error statuses) and [`token`] (scopes, challenges, tokens) — are apart from the
//! protocol — [`manifests`], [`download`], [`upload`]. Must not touch: the hoist store (transfers
//! go through [`crate::ContentStore`]) or progress display (callers pass [`OnBytes`]).

mod download;
mod manifests;
mod token;
mod transport;
mod upload;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;

use crate::auth::{Challenge, Credentials, DockerConfig, default_config_path};
use crate::endpoint::Endpoint;
use hoist_image::Reference;

pub use token::{merge_scopes, scopes_for};
pub use transport::check;

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
}
