//! Manifests over the distribution API: get (verified against a pinned digest), find (404 is
//! `None`), put.

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header;

use super::transport::content_type;
use super::{Access, Client};
use crate::manifest::ACCEPT_MANIFESTS;
use hoist_image::Reference;

impl Client {
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
}
