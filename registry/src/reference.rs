//! Image references as Docker normalizes them (`busybox` -> `docker.io/library/busybox:latest`) and the
//! registry endpoint (scheme + API host) each one is fetched from.

use std::fmt;
use std::net::IpAddr;

use anyhow::{Result, bail};

/// The registry Docker uses when a name has no domain.
pub const DOCKER_HUB: &str = "docker.io";
/// Where Docker Hub's registry API actually lives.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// The key Docker Hub credentials are stored under in `config.json`.
pub const DOCKER_HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";

/// A fully normalized image reference: registry host, repository path, and a tag and/or digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// `docker.io`, `127.0.0.1:5000`, `ghcr.io` (normalized: `index.docker.io` -> `docker.io`).
    pub registry: String,
    /// `library/busybox`, `org/app`.
    pub repository: String,
    /// `latest` when neither a tag nor a digest was given.
    pub tag: Option<String>,
    /// `sha256:...` when given as `name@sha256:...`.
    pub digest: Option<String>,
}

impl ImageRef {
    /// Parses and normalizes a reference the way `docker pull` does.
    pub fn parse(s: &str) -> Result<ImageRef> {
        let s = s.trim();
        if s.is_empty() {
            bail!("invalid reference format: empty image name");
        }
        let (name, digest) = match s.split_once('@') {
            Some((n, d)) => {
                validate_digest(d)?;
                (n, Some(d.to_string()))
            }
            None => (s, None),
        };
        let (name, tag) = match name.rfind(':') {
            Some(i) if !name[i + 1..].contains('/') => {
                let tag = &name[i + 1..];
                validate_tag(tag)?;
                (&name[..i], Some(tag.to_string()))
            }
            _ => (name, None),
        };
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let registry = match registry.as_str() {
            "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
            _ => registry,
        };
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        validate_repository(&repository, s)?;
        let tag = if tag.is_none() && digest.is_none() {
            Some("latest".to_string())
        } else {
            tag
        };
        Ok(ImageRef {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// What to ask the registry's manifest endpoint for: the digest when pinned, else the tag.
    pub fn reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// The same repository with another tag (and no digest).
    pub fn with_tag(&self, tag: &str) -> ImageRef {
        ImageRef {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }

    /// The same repository pinned to a digest (tag kept for display).
    pub fn with_digest(&self, digest: &str) -> ImageRef {
        ImageRef {
            digest: Some(digest.to_string()),
            ..self.clone()
        }
    }

    /// `registry/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

fn validate_digest(d: &str) -> Result<()> {
    let Some((algo, hex)) = d.split_once(':') else {
        bail!("invalid reference format: digest {d:?} has no algorithm");
    };
    let ok = match algo {
        "sha256" => hex.len() == 64,
        "sha512" => hex.len() == 128,
        _ => false,
    };
    if !ok
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        bail!("invalid reference format: bad digest {d:?}");
    }
    Ok(())
}

fn validate_tag(t: &str) -> Result<()> {
    let valid = !t.is_empty()
        && t.len() <= 128
        && t.bytes().enumerate().all(|(i, b)| {
            b.is_ascii_alphanumeric() || b == b'_' || (i > 0 && (b == b'.' || b == b'-'))
        });
    if !valid {
        bail!("invalid reference format: bad tag {t:?}");
    }
    Ok(())
}

fn validate_repository(repo: &str, whole: &str) -> Result<()> {
    if repo.is_empty() || repo.split('/').any(|c| c.is_empty()) {
        bail!("invalid reference format: {whole:?}");
    }
    if repo.bytes().any(|b| b.is_ascii_uppercase()) {
        bail!("invalid reference format: repository name must be lowercase: {whole:?}");
    }
    let ok = repo.bytes().all(|b| {
        b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-' | b'/')
    });
    if !ok {
        bail!("invalid reference format: {whole:?}");
    }
    Ok(())
}

/// The scheme and host a registry's API is reached at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `https` or `http`.
    pub scheme: &'static str,
    /// `registry-1.docker.io`, `127.0.0.1:5000`.
    pub host: String,
}

impl Endpoint {
    /// Maps a registry name to its API endpoint: Docker Hub -> `registry-1.docker.io`; loopback hosts
    /// (`localhost`, `127.0.0.0/8`, `::1`) and those listed in `insecure` use http, all others https.
    pub fn for_registry(registry: &str, insecure: &[String]) -> Endpoint {
        let host = if registry == DOCKER_HUB {
            DOCKER_HUB_API.to_string()
        } else {
            registry.to_string()
        };
        let plain = is_loopback(registry)
            || insecure.iter().any(|i| {
                let i = i
                    .trim_start_matches("http://")
                    .trim_start_matches("https://");
                i == registry || i == host_only(registry)
            });
        Endpoint {
            scheme: if plain { "http" } else { "https" },
            host,
        }
    }

    /// `scheme://host`.
    pub fn base(&self) -> String {
        format!("{}://{}", self.scheme, self.host)
    }
}

/// The host part of `host:port` (IPv6 in brackets kept bare).
fn host_only(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match registry.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => registry,
    }
}

fn is_loopback(registry: &str) -> bool {
    let host = host_only(registry);
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_normalization() {
        let r = ImageRef::parse("busybox").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        let r = ImageRef::parse("org/app:1.0").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("docker.io", "org/app")
        );
        assert_eq!(r.tag.as_deref(), Some("1.0"));
        let r = ImageRef::parse("index.docker.io/busybox").unwrap();
        assert_eq!(r.name(), "docker.io/library/busybox");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = ImageRef::parse(&format!("localhost:5000/x/y@{d}")).unwrap();
        assert_eq!(r.registry, "localhost:5000");
        assert_eq!(r.tag, None);
        assert_eq!(r.reference(), d);
        let r = ImageRef::parse("localhost/app").unwrap();
        assert_eq!(r.registry, "localhost");
        assert!(ImageRef::parse("Busybox").is_err());
        assert!(ImageRef::parse("a@sha256:zz").is_err());
        assert!(ImageRef::parse("a:-x").is_err());
    }

    #[test]
    fn endpoints() {
        let e = Endpoint::for_registry("docker.io", &[]);
        assert_eq!(e.base(), "https://registry-1.docker.io");
        assert_eq!(Endpoint::for_registry("127.0.0.1:5000", &[]).scheme, "http");
        assert_eq!(Endpoint::for_registry("127.9.9.9", &[]).scheme, "http");
        assert_eq!(Endpoint::for_registry("[::1]:5000", &[]).scheme, "http");
        assert_eq!(Endpoint::for_registry("localhost:1", &[]).scheme, "http");
        assert_eq!(Endpoint::for_registry("reg.lan:5000", &[]).scheme, "https");
        let insecure = vec!["reg.lan:5000".to_string()];
        assert_eq!(
            Endpoint::for_registry("reg.lan:5000", &insecure).scheme,
            "http"
        );
        assert_eq!(
            Endpoint::for_registry("reg.lan", &["reg.lan".into()]).scheme,
            "http"
        );
    }
}
