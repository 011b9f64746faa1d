//! The generated /etc files: Docker's `/etc/hosts` and `/etc/resolv.conf` for `hoist run`, and
//! BuildKit's for RUN steps (its executor/oci/hosts.go and resolvconf.go, with the resolv.conf
//! parsing of its util/resolvconf).

use std::fs;
use std::net::IpAddr;

use crate::spec::Network;

/// BuildKit's sandbox host name (`BUILDKIT_SANDBOX_HOSTNAME` changes it there).
pub const BUILD_HOSTNAME: &str = "buildkitsandbox";

/// Docker-like default /etc/hosts for `hostname`.
pub fn default_hosts(hostname: &str) -> String {
    format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
         ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n127.0.1.1\t{hostname}\n"
    )
}

/// BuildKit's /etc/hosts of a RUN step for `hostname` (empty: [`BUILD_HOSTNAME`]); `--add-host`
/// lines (`IP\tNAME`) go after it.
pub fn build_hosts(hostname: &str) -> String {
    let hostname = if hostname.is_empty() {
        BUILD_HOSTNAME
    } else {
        hostname
    };
    format!("127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n")
}

/// The host's resolv.conf without loopback nameservers (unreachable from a new network namespace),
/// falling back to public resolvers as Docker does.
pub fn default_resolv_conf(network: Network) -> String {
    let host = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    if network == Network::Host {
        return host;
    }
    let mut out = String::new();
    let mut has_ns = false;
    for line in host.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver") {
            let addr = words.next().unwrap_or("");
            if addr.starts_with("127.") || addr == "::1" {
                continue;
            }
            has_ns = true;
        }
        out.push_str(line);
        out.push('\n');
    }
    if !has_ns {
        out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
    out
}

/// BuildKit's /etc/resolv.conf of a RUN step on `network`, from the host's. Without the host
/// network, a host that only names systemd-resolved's stub (127.0.0.53) is read through the file
/// that daemon keeps for its upstream servers, as BuildKit does.
pub fn build_resolv_conf(network: Network) -> String {
    let read = |p: &str| fs::read_to_string(p).ok();
    let mut host = read("/etc/resolv.conf");
    if network != Network::Host
        && host
            .as_deref()
            .is_some_and(|h| ResolvConf::parse(h).nameservers == ["127.0.0.53"])
    {
        host = read("/run/systemd/resolve/resolv.conf");
    }
    build_resolv_conf_from(&host.unwrap_or_default(), network)
}

/// [`build_resolv_conf`] of the host file `host`.
pub fn build_resolv_conf_from(host: &str, network: Network) -> String {
    let mut rc = ResolvConf::parse(host);
    if network != Network::Host || rc.nameservers.is_empty() {
        rc.legacy_network();
    }
    rc.generate()
}

/// A parsed resolv.conf, as BuildKit's `resolvconf.Parse` keeps it.
#[derive(Debug, Default)]
struct ResolvConf {
    /// Valid addresses, as written back (`IP` or `IP%zone`).
    nameservers: Vec<String>,
    /// The last `search` (or `domain`) line's domains.
    search: Vec<String>,
    /// Every `options` line's options, in order.
    options: Vec<String>,
    /// Lines of any other directive, verbatim.
    other: Vec<String>,
}

impl ResolvConf {
    fn parse(text: &str) -> ResolvConf {
        let mut rc = ResolvConf::default();
        for line in text.lines() {
            if line.is_empty() || line.starts_with(['#', ';']) {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                [] => {}
                ["nameserver", addr, ..] => {
                    if let Some(addr) = nameserver(addr) {
                        rc.nameservers.push(addr);
                    }
                }
                ["search" | "domain", domains @ ..] if !domains.is_empty() => {
                    rc.search = domains.iter().map(|d| d.to_string()).collect();
                }
                ["options", options @ ..] if !options.is_empty() => {
                    rc.options.extend(options.iter().map(|o| o.to_string()));
                }
                ["nameserver" | "search" | "domain" | "options", ..] => {}
                _ => rc.other.push(line.to_string()),
            }
        }
        rc
    }

    /// BuildKit's `TransformForLegacyNw(ipv6=true)`: no loopback nameservers; Google's public ones
    /// when none is left.
    fn legacy_network(&mut self) {
        self.nameservers.retain(|ns| {
            let addr = ns.split('%').next().unwrap_or(ns);
            !addr.parse::<IpAddr>().is_ok_and(|a| a.is_loopback())
        });
        if self.nameservers.is_empty() {
            self.nameservers = [
                "8.8.8.8",
                "8.8.4.4",
                "2001:4860:4860::8888",
                "2001:4860:4860::8844",
            ]
            .map(String::from)
            .to_vec();
        }
    }

    fn generate(&self) -> String {
        let mut out = String::new();
        for ns in &self.nameservers {
            out.push_str(&format!("nameserver {ns}\n"));
        }
        if !self.search.is_empty() {
            out.push_str(&format!("search {}\n", self.search.join(" ")));
        }
        if !self.options.is_empty() {
            out.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        for line in &self.other {
            out.push_str(line);
            out.push('\n');
        }
        out
    }
}

/// A nameserver address in its canonical form (an IPv6 zone kept), or None if it is not one.
fn nameserver(text: &str) -> Option<String> {
    let (addr, zone) = match text.split_once('%') {
        Some((a, z)) => (a, Some(z)),
        None => (text, None),
    };
    let addr: IpAddr = addr.parse().ok()?;
    Some(match zone {
        Some(z) if addr.is_ipv6() && !z.is_empty() => format!("{addr}%{z}"),
        Some(_) => return None,
        None => addr.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_hosts_is_buildkits() {
        assert_eq!(
            build_hosts(""),
            "127.0.0.1\tlocalhost buildkitsandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        );
        assert!(build_hosts("box").starts_with("127.0.0.1\tlocalhost box\n"));
    }

    #[test]
    fn build_resolv_conf_is_regenerated_as_buildkit_does() {
        let host = "# generated\n; comment\nnameserver 127.0.0.53\nnameserver 10.0.0.2\n\
                    nameserver bogus\nnameserver fe80::1%eth0\nsearch a.example\ndomain b.example\n\
                    options ndots:2\noptions edns0 trust-ad\nsortlist 10.0.0.0/8\nnameserver\n";
        // Host network: only parsed and written back.
        assert_eq!(
            build_resolv_conf_from(host, Network::Host),
            "nameserver 127.0.0.53\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\n\
             search b.example\noptions ndots:2 edns0 trust-ad\nsortlist 10.0.0.0/8\n"
        );
        // Own network: loopback servers dropped.
        assert_eq!(
            build_resolv_conf_from(host, Network::None),
            "nameserver 10.0.0.2\nnameserver fe80::1%eth0\n\
             search b.example\noptions ndots:2 edns0 trust-ad\nsortlist 10.0.0.0/8\n"
        );
        // None left (or none at all, even on the host network): Google's.
        let google = "nameserver 8.8.8.8\nnameserver 8.8.4.4\nnameserver 2001:4860:4860::8888\n\
                      nameserver 2001:4860:4860::8844\n";
        assert_eq!(
            build_resolv_conf_from("nameserver 127.0.0.1\nnameserver ::1\n", Network::None),
            google
        );
        assert_eq!(build_resolv_conf_from("", Network::Host), google);
        assert_eq!(
            build_resolv_conf_from("nameserver 0:0::0:8888\n", Network::Host),
            "nameserver ::8888\n"
        );
    }
}
