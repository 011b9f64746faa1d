//! The registry endpoint (scheme + API host) each registry name is reached at. Image references
//! themselves are [`hoist_image::Reference`].

use std::net::IpAddr;

/// The registry Docker uses when a name has no domain.
pub const DOCKER_HUB: &str = hoist_image::reference::DEFAULT_DOMAIN;
/// Where Docker Hub's registry API actually lives.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// The key Docker Hub credentials are stored under in `config.json`.
pub const DOCKER_HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";

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
