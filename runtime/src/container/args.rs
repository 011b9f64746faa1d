//! `docker run` flag values, parsed and validated as the Docker CLI and daemon do, with their errors:
//! sizes, `--ulimit`, `--add-host`, `--dns*`, `--security-opt`, `--network`, `-e`/`--env-file`.

use std::net::IpAddr;

use crate::security::Seccomp;
use crate::spec::{Network, Rlimit};

#[cfg(target_env = "gnu")]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
type Resource = libc::c_int;

/// pflag's wrapping of a bad flag value.
fn invalid_argument(value: &str, flag: &str, err: impl std::fmt::Display) -> String {
    format!("invalid argument \"{value}\" for \"{flag}\" flag: {err}")
}

/// Docker's size syntax (go-units `RAMInBytes`: `1024`, `512k`, `64m`, `1.5g`, `512KiB`): the one
/// parser the workspace has, in the image crate next to the size formatter.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    hoist_image::display::ram_in_bytes(s.trim())
}

/// `--ulimit` names (go-units) and their `RLIMIT_*` resources.
const ULIMITS: &[(&str, Resource)] = &[
    ("core", libc::RLIMIT_CORE),
    ("cpu", libc::RLIMIT_CPU),
    ("data", libc::RLIMIT_DATA),
    ("fsize", libc::RLIMIT_FSIZE),
    ("locks", libc::RLIMIT_LOCKS),
    ("memlock", libc::RLIMIT_MEMLOCK),
    ("msgqueue", libc::RLIMIT_MSGQUEUE),
    ("nice", libc::RLIMIT_NICE),
    ("nofile", libc::RLIMIT_NOFILE),
    ("nproc", libc::RLIMIT_NPROC),
    ("rss", libc::RLIMIT_RSS),
    ("rtprio", libc::RLIMIT_RTPRIO),
    ("rttime", libc::RLIMIT_RTTIME),
    ("sigpending", libc::RLIMIT_SIGPENDING),
    ("stack", libc::RLIMIT_STACK),
];

/// `--ulimit NAME=SOFT[:HARD]` (go-units `ParseUlimit`; -1 is unlimited; HARD defaults to SOFT).
pub fn parse_ulimit(value: &str) -> Result<Rlimit, String> {
    let err = |e: String| invalid_argument(value, "--ulimit", e);
    let (name, limits) = value
        .split_once('=')
        .ok_or_else(|| err(format!("invalid ulimit argument: {value}")))?;
    let resource = ULIMITS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, r)| *r)
        .ok_or_else(|| err(format!("invalid ulimit type: {name}")))?;
    let int = |s: &str| {
        s.parse::<i64>()
            .map_err(|_| err(format!("strconv.ParseInt: parsing \"{s}\": invalid syntax")))
    };
    let parts: Vec<&str> = limits.split(':').collect();
    let (soft, hard) = match parts.as_slice() {
        [soft] => (int(soft)?, int(soft)?),
        [soft, hard] => (int(soft)?, int(hard)?),
        _ => {
            return Err(err(format!(
                "too many limit value arguments - {limits}, can only have up to two, `soft[:hard]`"
            )));
        }
    };
    if hard != -1 && soft > hard {
        return Err(err(format!(
            "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
        )));
    }
    let value = |v: i64| {
        if v < 0 { libc::RLIM_INFINITY } else { v as u64 }
    };
    #[allow(clippy::unnecessary_cast)] // u32 on glibc, c_int on musl
    Ok(Rlimit {
        resource: resource as u32,
        soft: value(soft),
        hard: value(hard),
    })
}

/// `--add-host NAME:IP` or `NAME=IP` (an IPv6 address may be in brackets): an /etc/hosts line.
/// `host-gateway` needs a bridge network hoist does not have.
pub fn parse_add_host(value: &str) -> Result<String, String> {
    let err = |e: String| invalid_argument(value, "--add-host", e);
    let (name, ip) = value
        .split_once('=')
        .or_else(|| value.split_once(':'))
        .filter(|(name, _)| !name.is_empty())
        .ok_or_else(|| err(format!("bad format for add-host: \"{value}\"")))?;
    if ip == "host-gateway" {
        return Err(
            "unable to derive the IP value for host-gateway: hoist has no bridge network".into(),
        );
    }
    let bare = ip
        .strip_prefix('[')
        .and_then(|i| i.strip_suffix(']'))
        .unwrap_or(ip);
    let addr: IpAddr = bare
        .parse()
        .map_err(|_| err(format!("invalid IP address in add-host: \"{ip}\"")))?;
    Ok(format!("{addr}\t{name}"))
}

/// `--dns IP`.
pub fn parse_dns(value: &str) -> Result<IpAddr, String> {
    value.trim().parse().map_err(|_| {
        invalid_argument(
            value,
            "--dns",
            format!("IP address is not correctly formatted: {value}"),
        )
    })
}

/// `--dns-search DOMAIN` ("." clears the search list).
pub fn parse_dns_search(value: &str) -> Result<String, String> {
    let d = value.trim_end_matches('.');
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if value == "." || (value.len() <= 255 && d.split('.').all(label_ok)) {
        Ok(value.to_string())
    } else {
        Err(invalid_argument(
            value,
            "--dns-search",
            format!("{value} is not a valid domain"),
        ))
    }
}

/// /etc/resolv.conf from `base` (the host's) with `--dns`, `--dns-search` and `--dns-option`
/// replacing its nameservers, search list and options, as Docker builds it.
pub fn resolv_conf(base: &str, dns: &[IpAddr], search: &[String], options: &[String]) -> String {
    let lines = |key: &str| -> Vec<String> {
        base.lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some(key)).then(|| w.collect::<Vec<_>>().join(" "))
            })
            .collect()
    };
    let mut out = String::new();
    let search: Vec<String> = if search.is_empty() {
        lines("search")
    } else if search == ["."] {
        Vec::new()
    } else {
        vec![search.join(" ")]
    };
    for s in search.iter().filter(|s| !s.is_empty()) {
        out.push_str(&format!("search {s}\n"));
    }
    let servers: Vec<String> = if dns.is_empty() {
        lines("nameserver")
    } else {
        dns.iter().map(|ip| ip.to_string()).collect()
    };
    for ns in servers {
        out.push_str(&format!("nameserver {ns}\n"));
    }
    let options = if options.is_empty() {
        lines("options")
    } else {
        vec![options.join(" ")]
    };
    for o in options.iter().filter(|o| !o.is_empty()) {
        out.push_str(&format!("options {o}\n"));
    }
    out
}

/// What `--security-opt` sets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SecurityOpts {
    pub seccomp: Seccomp,
    pub no_new_privileges: bool,
    /// `systempaths=unconfined`.
    pub unmasked_paths: bool,
}

/// `--security-opt`, as the Docker CLI (values required, `seccomp=FILE` read) and daemon (known
/// keys, the profile's contents) check them. `label=...` and `apparmor=...` are accepted and ignored, as Docker does on a
/// host without SELinux or AppArmor.
pub fn parse_security_opts(opts: &[String]) -> Result<SecurityOpts, String> {
    let mut out = SecurityOpts::default();
    for opt in opts {
        if opt == "no-new-privileges" {
            out.no_new_privileges = true;
            continue;
        }
        if opt == "disable" {
            continue;
        }
        // The CLI's own option (other spellings reach the daemon, which refuses them).
        if opt == "systempaths=unconfined" {
            out.unmasked_paths = true;
            continue;
        }
        let (k, v) = opt
            .split_once('=')
            .or_else(|| opt.split_once(':'))
            .filter(|(_, v)| !v.is_empty())
            .ok_or_else(|| format!("Invalid --security-opt: \"{opt}\""))?;
        match k {
            "label" | "apparmor" => {}
            "seccomp" => {
                out.seccomp = match v {
                    "unconfined" => Seccomp::Unconfined,
                    "builtin" => Seccomp::Default,
                    file => Seccomp::from_file(file)?,
                }
            }
            "no-new-privileges" => {
                out.no_new_privileges = match v {
                    "1" | "t" | "T" | "true" | "TRUE" | "True" => true,
                    "0" | "f" | "F" | "false" | "FALSE" | "False" => false,
                    _ => return Err(format!("invalid --security-opt 2: \"{opt}\"")),
                }
            }
            _ => return Err(format!("invalid --security-opt 2: \"{opt}\"")),
        }
    }
    Ok(out)
}

/// `--network`: `none`, or `host` (also for `default` and `bridge`: hoist has no bridge network).
pub fn parse_network(value: Option<&str>) -> Result<Network, String> {
    match value {
        None | Some("host" | "default" | "bridge") => Ok(Network::Host),
        Some("none") => Ok(Network::None),
        Some(other) => Err(format!(
            "network {other} not found (hoist has the networks none and host)"
        )),
    }
}

/// The lines of an `--env-file`: `KEY=VALUE` or `KEY` (copied from this environment when set),
/// comments and blank lines skipped (Docker's `ParseEnvFile`).
pub fn env_file_lines(text: &str, file: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = line.split('=').next().unwrap_or("");
        if key.is_empty() {
            return Err(format!(
                "{file}:{}: no variable name on line '{line}'",
                n + 1
            ));
        }
        if key.contains(char::is_whitespace) {
            return Err(format!("variable '{key}' contains whitespaces"));
        }
        out.push(line.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("1024").unwrap(), 1024);
        assert_eq!(parse_bytes("64m").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_bytes("512KB").unwrap(), 512 << 10);
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("-1m").is_err());
        // go-units: `kib` is 1024 too, in any case (the runtime's old parser refused it).
        assert_eq!(parse_bytes("2KiB").unwrap(), 2 << 10);
        assert_eq!(parse_bytes("3 mib").unwrap(), 3 << 20);
    }

    #[test]
    fn ulimits() {
        let r = parse_ulimit("nofile=512:1024").unwrap();
        assert_eq!(
            (r.resource, r.soft, r.hard),
            (libc::RLIMIT_NOFILE, 512, 1024)
        );
        let r = parse_ulimit("core=-1").unwrap();
        assert_eq!((r.soft, r.hard), (libc::RLIM_INFINITY, libc::RLIM_INFINITY));
        let r = parse_ulimit("nproc=10:-1").unwrap();
        assert_eq!((r.soft, r.hard), (10, libc::RLIM_INFINITY));
        assert_eq!(
            parse_ulimit("nofiles=1").unwrap_err(),
            "invalid argument \"nofiles=1\" for \"--ulimit\" flag: invalid ulimit type: nofiles"
        );
        assert_eq!(
            parse_ulimit("nofile").unwrap_err(),
            "invalid argument \"nofile\" for \"--ulimit\" flag: invalid ulimit argument: nofile"
        );
        assert!(
            parse_ulimit("nofile=2048:1024").unwrap_err().ends_with(
                "ulimit soft limit must be less than or equal to hard limit: 2048 > 1024"
            )
        );
        assert!(
            parse_ulimit("nofile=x")
                .unwrap_err()
                .contains("invalid syntax")
        );
        assert!(
            parse_ulimit("nofile=1:2:3")
                .unwrap_err()
                .contains("too many")
        );
    }

    #[test]
    fn add_host() {
        assert_eq!(parse_add_host("db:10.0.0.2").unwrap(), "10.0.0.2\tdb");
        assert_eq!(parse_add_host("db=10.0.0.2").unwrap(), "10.0.0.2\tdb");
        assert_eq!(parse_add_host("v6:::1").unwrap(), "::1\tv6");
        assert_eq!(
            parse_add_host("v6=[2001:db8::1]").unwrap(),
            "2001:db8::1\tv6"
        );
        assert_eq!(
            parse_add_host("db").unwrap_err(),
            "invalid argument \"db\" for \"--add-host\" flag: bad format for add-host: \"db\""
        );
        assert!(
            parse_add_host("db:999.1.1.1")
                .unwrap_err()
                .ends_with("invalid IP address in add-host: \"999.1.1.1\"")
        );
        assert!(parse_add_host("gw:host-gateway").is_err());
    }

    #[test]
    fn dns() {
        assert_eq!(parse_dns("1.1.1.1").unwrap().to_string(), "1.1.1.1");
        assert_eq!(
            parse_dns("one").unwrap_err(),
            "invalid argument \"one\" for \"--dns\" flag: IP address is not correctly formatted: one"
        );
        assert!(parse_dns_search("example.com").is_ok());
        assert!(parse_dns_search(".").is_ok());
        assert!(parse_dns_search("-bad-.com").is_err());
        let host = "search corp\nnameserver 10.0.0.1\noptions ndots:2\n";
        let ip: IpAddr = "9.9.9.9".parse().unwrap();
        assert_eq!(
            resolv_conf(host, &[ip], &[], &[]),
            "search corp\nnameserver 9.9.9.9\noptions ndots:2\n"
        );
        assert_eq!(
            resolv_conf(host, &[], &[".".into()], &["rotate".into()]),
            "nameserver 10.0.0.1\noptions rotate\n"
        );
    }

    #[test]
    fn security_opts() {
        let s =
            |v: &[&str]| parse_security_opts(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(s(&[]).unwrap(), SecurityOpts::default());
        assert!(s(&["no-new-privileges"]).unwrap().no_new_privileges);
        assert!(s(&["no-new-privileges:true"]).unwrap().no_new_privileges);
        assert!(!s(&["no-new-privileges=false"]).unwrap().no_new_privileges);
        assert_eq!(
            s(&["seccomp=unconfined"]).unwrap().seccomp,
            Seccomp::Unconfined
        );
        assert_eq!(s(&["seccomp:builtin"]).unwrap().seccomp, Seccomp::Default);
        assert!(s(&["label=disable", "apparmor=unconfined"]).is_ok());
        assert_eq!(
            s(&["foo=bar"]).unwrap_err(),
            "invalid --security-opt 2: \"foo=bar\""
        );
        assert_eq!(s(&["foo"]).unwrap_err(), "Invalid --security-opt: \"foo\"");
        assert_eq!(
            s(&["no-new-privileges=maybe"]).unwrap_err(),
            "invalid --security-opt 2: \"no-new-privileges=maybe\""
        );
        assert!(
            s(&["seccomp=/nonexistent.json"])
                .unwrap_err()
                .starts_with("opening seccomp profile (/nonexistent.json) failed")
        );
    }

    #[test]
    fn networks_and_env_files() {
        assert_eq!(parse_network(None).unwrap(), Network::Host);
        assert_eq!(parse_network(Some("none")).unwrap(), Network::None);
        assert!(parse_network(Some("mynet")).is_err());
        assert_eq!(
            env_file_lines("# c\n\n  A=1\nB\n", "f").unwrap(),
            vec!["A=1", "B"]
        );
        assert_eq!(
            env_file_lines("A B=1\n", "f").unwrap_err(),
            "variable 'A B' contains whitespaces"
        );
    }
}
