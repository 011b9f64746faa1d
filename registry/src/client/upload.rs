//! Writing blobs: HEAD-skip, cross-repository mount, then a monolithic or chunked upload, retried
//! as a whole on transient failures.

use anyhow::Result;
use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::header;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::transport::location;
use super::{Access, BlobPush, BlobSource, Client, OnBytes, no_progress};
use crate::error::RegistryError;
use crate::manifest::Descriptor;
use hoist_image::Reference;

impl Client {
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
                Err(e) if attempt + 1 < self.opts.max_attempts && e.is_transient() => {
                    attempt += 1;
                    self.backoff(attempt).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    pub(super) async fn start_upload(&self, r: &Reference) -> Result<url::Url, RegistryError> {
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

    pub(super) async fn upload(
        &self,
        r: &Reference,
        desc: &Descriptor,
        source: &BlobSource,
        on_bytes: &OnBytes,
    ) -> Result<(), RegistryError> {
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
pub(super) async fn body_of(
    source: &BlobSource,
    offset: u64,
    len: u64,
    on_bytes: &OnBytes,
) -> Result<reqwest::Body, RegistryError> {
    match source {
        BlobSource::Bytes(b) => {
            on_bytes(len as i64);
            Ok(reqwest::Body::from(
                b.slice(offset as usize..(offset + len) as usize),
            ))
        }
        BlobSource::File(path) => {
            let mut f = tokio::fs::File::open(path).await.map_err(|e| {
                anyhow::Error::new(e).context(format!("opening {}", path.display()))
            })?;
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
