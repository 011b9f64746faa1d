//! Reading blobs: HEAD checks, small blobs whole, and large ones streamed to disk with `Range`
//! resume, verified against their digest (and a layer's diff_id) as they stream.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use futures_util::StreamExt;
use hoist_image::layer::Compression;
use reqwest::StatusCode;
use reqwest::header;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use super::{Access, Client, OnBytes};
use crate::manifest::Descriptor;
use crate::verify::BlobCheck;
use hoist_image::Reference;

impl Client {
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

    pub(super) async fn fetch_blob_inner(
        &self,
        r: &Reference,
        desc: &Descriptor,
        diff_id: Option<&str>,
        dest: &Path,
        on_bytes: &OnBytes,
    ) -> Result<Option<Compression>> {
        let url = self.url(r, &format!("blobs/{}", desc.digest));
        let mut file = tokio::fs::File::create(dest)
            .await
            .with_context(|| format!("creating {}", dest.display()))?;
        let mut check = BlobCheck::new(&desc.digest, diff_id, &r.repository())?;
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
                check.restart()?;
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
                        check.update(&chunk)?;
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
        check.finish()
    }
}
