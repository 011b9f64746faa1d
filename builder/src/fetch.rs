//! ADD of http(s) URLs: downloads into a temp dir, verifies `--checksum`, and names the file after the
//! URL's last path component (as Docker does). The file gets mode 0600 and the server's Last-Modified.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use sha2::{Digest as _, Sha256};

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
    let resp = reqwest::blocking::Client::builder()
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
    let mut hashing = HashingFile {
        file: fs::File::create(&path)?,
        hash: Sha256::new(),
    };
    let mut resp = resp;
    resp.copy_to(&mut hashing)
        .with_context(|| format!("failed to load {url}"))?;
    hashing.file.flush()?;
    let digest = format!("sha256:{}", hex::encode(hashing.hash.finalize()));
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

/// A file that hashes what is written to it.
struct HashingFile {
    file: fs::File,
    hash: Sha256,
}

impl Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}
