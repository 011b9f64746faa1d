//! ADD of http(s) URLs: downloads into a temp dir, verifies `--checksum`, and names the file after the
//! URL's last path component (as Docker does). The file gets mode 0600 and the server's Last-Modified.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context as _, Result, bail};

/// A downloaded file.
#[derive(Debug)]
pub struct Download {
    pub dir: tempfile::TempDir,
    /// File name inside `dir`.
    pub name: String,
    /// `sha256:<hex>` of the content.
    pub digest: String,
}

/// Downloads `url` into a fresh temp dir under `tmp`; with `checksum` (`sha256:<hex>`), refuses
/// other content.
pub fn download(url: &str, tmp: &Path, checksum: Option<&str>) -> Result<Download> {
    let mut resp = reqwest::blocking::Client::builder()
        .user_agent("hoist")
        .build()?
        .get(url)
        .send()
        .with_context(|| format!("failed to load {url}"))?;
    if !resp.status().is_success() {
        bail!(
            "invalid response status {} for {url}",
            resp.status().as_u16()
        );
    }
    let mtime = resp
        .headers()
        .get(reqwest::header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
        .map(|t| t.timestamp());
    let name = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty() && !n.contains(':'))
        .unwrap_or("__unnamed__")
        .to_string();
    let dir = tempfile::Builder::new().prefix("add-").tempdir_in(tmp)?;
    let path = dir.path().join(&name);
    // Streamed to disk and hashed on the way: a large download never sits in memory.
    let mut hashing = hoist_image::HashingWriter::new(fs::File::create(&path)?);
    resp.copy_to(&mut hashing)
        .with_context(|| format!("failed to load {url}"))?;
    hashing.flush()?;
    let (_, digest, _) = hashing.finish();
    let digest = digest.to_string();
    if let Some(want) = checksum
        && want != digest
    {
        bail!("digest mismatch {digest}: {want}");
    }
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
    if let Some(t) = mtime {
        filetime::set_file_mtime(&path, filetime::FileTime::from_unix_time(t, 0))?;
    }
    Ok(Download { dir, name, digest })
}
