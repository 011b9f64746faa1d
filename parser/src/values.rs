//! Value parsers BuildKit applies at conversion time, after expansion: EXPOSE port specs,
//! STOPSIGNAL names, and `--platform` strings. Messages follow INSTRUCTIONS.md.

use serde::Serialize;

use crate::dump::go_quote;

/// Parses one (already expanded) EXPOSE word into `port/proto` entries, one per port of a range.
/// Accepts `80`, `80/tcp`, `53/udp`, `9/sctp`, `8000-8010`, and `[ip:][hostPort:]containerPort`.
pub fn parse_expose(raw: &str) -> Result<Vec<String>, String> {
    let parts: Vec<&str> = raw.split(':').collect();
    let n = parts.len();
    let container = parts[n - 1];
    let (ip, host) = match n {
        1 => (String::new(), ""),
        2 => (String::new(), parts[0]),
        3 => (parts[0].to_string(), parts[1]),
        _ => (parts[..n - 2].join(":"), parts[n - 2]),
    };
    let (port, proto) = match container.split_once('/') {
        None => (container, "tcp"),
        Some((p, "")) => (p, "tcp"),
        Some((p, proto)) => (p, proto),
    };
    let ip = ip
        .strip_prefix('[')
        .and_then(|i| i.strip_suffix(']'))
        .map_or(ip.clone(), str::to_string);
    if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
        return Err(format!("invalid IP address: {ip}"));
    }
    if port.is_empty() {
        return Err(format!(
            "invalid port: {}: no port specified",
            go_quote(raw)
        ));
    }
    let (start, end) = port_range(port).ok_or_else(|| format!("invalid containerPort: {port}"))?;
    if !host.is_empty() {
        let (hs, he) = port_range(host).ok_or_else(|| format!("invalid hostPort: {host}"))?;
        if end - start != he - hs && end != start {
            return Err(format!(
                "invalid ranges specified for container and host Ports: {port} and {host}"
            ));
        }
    }
    let proto = proto.to_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!(
            "invalid port: {}: invalid proto: {proto}",
            go_quote(raw)
        ));
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

/// `80` or `8000-8010` as an inclusive range of valid ports.
fn port_range(s: &str) -> Option<(u32, u32)> {
    let num = |p: &str| -> Option<u32> {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        p.parse::<u32>().ok().filter(|n| *n <= 65535)
    };
    match s.split_once('-') {
        None => num(s).map(|n| (n, n)),
        Some((a, b)) => {
            let (a, b) = (num(a)?, num(b)?);
            (a <= b).then_some((a, b))
        }
    }
}

/// Linux signal names (without `SIG`) and numbers.
const SIGNALS: [(&str, u32); 35] = [
    ("ABRT", 6),
    ("ALRM", 14),
    ("BUS", 7),
    ("CHLD", 17),
    ("CLD", 17),
    ("CONT", 18),
    ("FPE", 8),
    ("HUP", 1),
    ("ILL", 4),
    ("INT", 2),
    ("IO", 29),
    ("IOT", 6),
    ("KILL", 9),
    ("PIPE", 13),
    ("POLL", 29),
    ("PROF", 27),
    ("PWR", 30),
    ("QUIT", 3),
    ("SEGV", 11),
    ("STKFLT", 16),
    ("STOP", 19),
    ("SYS", 31),
    ("TERM", 15),
    ("TRAP", 5),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("USR1", 10),
    ("USR2", 12),
    ("VTALRM", 26),
    ("WINCH", 28),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("UNUSED", 31),
];

/// A STOPSIGNAL value (`SIGTERM`, `term`, `RTMIN+3`, `9`) as a signal number.
pub fn parse_signal(raw: &str) -> Result<u32, String> {
    let invalid = || format!("invalid signal: {raw}");
    if let Ok(n) = raw.parse::<i64>() {
        return u32::try_from(n)
            .ok()
            .filter(|n| *n != 0)
            .ok_or_else(invalid);
    }
    let upper = raw.to_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(&(_, n)) = SIGNALS.iter().find(|(s, _)| *s == name) {
        return Ok(n);
    }
    let rt = |rest: &str, base: u32, up: bool| -> Option<u32> {
        if rest.is_empty() {
            return Some(base);
        }
        let off: u32 = rest
            .strip_prefix(if up { '+' } else { '-' })?
            .parse()
            .ok()?;
        let n = if up {
            base.checked_add(off)?
        } else {
            base.checked_sub(off)?
        };
        (34..=64).contains(&n).then_some(n)
    };
    let found = if let Some(rest) = name.strip_prefix("RTMIN") {
        rt(rest, 34, true)
    } else if let Some(rest) = name.strip_prefix("RTMAX") {
        rt(rest, 64, false)
    } else {
        None
    };
    found.ok_or_else(invalid)
}

/// A target platform: `os/arch[/variant]`, normalized as containerd does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Platform {
    /// Operating system (`linux`).
    pub os: String,
    /// Architecture (`amd64`, `arm64`, ...).
    pub architecture: String,
    /// Variant (`v7`), empty when none.
    pub variant: String,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

const KNOWN_OS: [&str; 12] = [
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "illumos",
    "ios",
    "js",
    "linux",
    "netbsd",
    "openbsd",
    "windows",
];

/// Normalizes an architecture and variant: (`x86_64`, "") -> (`amd64`, ""), (`armhf`, "") -> (`arm`, `v7`).
fn normalize_arch(arch: &str, variant: &str) -> (String, String) {
    let arch = arch.to_lowercase();
    let variant = variant.to_lowercase();
    match arch.as_str() {
        "i386" => ("386".into(), String::new()),
        "x86_64" | "x86-64" | "amd64" => {
            let v = if variant == "v1" {
                String::new()
            } else {
                variant
            };
            ("amd64".into(), v)
        }
        "aarch64" | "arm64" => {
            let v = match variant.as_str() {
                "8" | "v8" | "v8.0" => String::new(),
                "9" | "9.0" | "v9.0" => "v9".into(),
                _ => variant,
            };
            ("arm64".into(), v)
        }
        "armhf" => ("arm".into(), "v7".into()),
        "armel" => ("arm".into(), "v6".into()),
        "arm" => {
            let v = match variant.as_str() {
                "" | "7" => "v7".into(),
                "5" | "6" | "8" => format!("v{variant}"),
                _ => variant,
            };
            ("arm".into(), v)
        }
        _ => (arch, variant),
    }
}

fn is_known_arch(a: &str) -> bool {
    matches!(
        a,
        "386"
            | "amd64"
            | "arm"
            | "arm64"
            | "ppc64"
            | "ppc64le"
            | "s390x"
            | "riscv64"
            | "mips"
            | "mipsle"
            | "mips64"
            | "mips64le"
            | "loong64"
            | "wasm"
    )
}

/// The host's architecture in OCI terms.
pub fn host_arch() -> String {
    normalize_arch(std::env::consts::ARCH, "").0
}

/// Parses `linux`, `linux/arm64`, `linux/arm/v7`, `arm64`, ... into a normalized [`Platform`].
pub fn parse_platform(spec: &str) -> Result<Platform, String> {
    let fail = |why: &str| format!("failed to parse platform {spec}: {}: {why}", go_quote(spec));
    if spec.contains('*') {
        return Err(fail("wildcards not yet supported: invalid argument"));
    }
    let parts: Vec<&str> = spec.split('/').collect();
    let valid = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    };
    if parts.iter().any(|p| !valid(p)) || parts.len() > 3 {
        return Err(fail("invalid platform component: invalid argument"));
    }
    let os_of = |s: &str| s.to_lowercase();
    match parts.as_slice() {
        [one] => {
            let os = os_of(one);
            if KNOWN_OS.contains(&os.as_str()) {
                return Ok(Platform {
                    os,
                    architecture: host_arch(),
                    variant: String::new(),
                });
            }
            let (arch, variant) = normalize_arch(one, "");
            if is_known_arch(&arch) {
                return Ok(Platform {
                    os: "linux".into(),
                    architecture: arch,
                    variant,
                });
            }
            Err(fail(
                "unknown operating system or architecture: invalid argument",
            ))
        }
        [os, arch] => {
            let (architecture, variant) = normalize_arch(arch, "");
            Ok(Platform {
                os: os_of(os),
                architecture,
                variant,
            })
        }
        [os, arch, variant] => {
            let (architecture, variant) = normalize_arch(arch, variant);
            Ok(Platform {
                os: os_of(os),
                architecture,
                variant,
            })
        }
        _ => Err(fail("invalid argument")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expose() {
        assert_eq!(parse_expose("80").unwrap(), ["80/tcp"]);
        assert_eq!(parse_expose("53/UDP").unwrap(), ["53/udp"]);
        assert_eq!(parse_expose("9/sctp").unwrap(), ["9/sctp"]);
        assert_eq!(
            parse_expose("8000-8002").unwrap(),
            ["8000/tcp", "8001/tcp", "8002/tcp"]
        );
        assert_eq!(parse_expose("127.0.0.1:8080:80").unwrap(), ["80/tcp"]);
        assert_eq!(parse_expose("[::1]:8080:80/udp").unwrap(), ["80/udp"]);
        assert_eq!(
            parse_expose("/tcp").unwrap_err(),
            "invalid port: \"/tcp\": no port specified"
        );
        assert_eq!(
            parse_expose("80/xyz").unwrap_err(),
            "invalid port: \"80/xyz\": invalid proto: xyz"
        );
        assert_eq!(
            parse_expose("http").unwrap_err(),
            "invalid containerPort: http"
        );
        assert_eq!(
            parse_expose("70000").unwrap_err(),
            "invalid containerPort: 70000"
        );
        assert_eq!(parse_expose("x:80").unwrap_err(), "invalid hostPort: x");
        assert_eq!(
            parse_expose("300.1.1.1:1:80").unwrap_err(),
            "invalid IP address: 300.1.1.1"
        );
        assert_eq!(
            parse_expose("1-3:80-81").unwrap_err(),
            "invalid ranges specified for container and host Ports: 80-81 and 1-3"
        );
    }

    #[test]
    fn signals() {
        assert_eq!(parse_signal("SIGTERM"), Ok(15));
        assert_eq!(parse_signal("quit"), Ok(3));
        assert_eq!(parse_signal("SigKill"), Ok(9));
        assert_eq!(parse_signal("9"), Ok(9));
        assert_eq!(parse_signal("RTMIN+3"), Ok(37));
        assert_eq!(parse_signal("SIGRTMAX-1"), Ok(63));
        assert_eq!(parse_signal("0").unwrap_err(), "invalid signal: 0");
        assert_eq!(
            parse_signal("SIGNOPE").unwrap_err(),
            "invalid signal: SIGNOPE"
        );
    }

    #[test]
    fn platforms() {
        let p = |s: &str| parse_platform(s).unwrap().to_string();
        assert_eq!(p("linux/amd64"), "linux/amd64");
        assert_eq!(p("Linux/x86_64"), "linux/amd64");
        assert_eq!(p("linux/arm64/v8"), "linux/arm64");
        assert_eq!(p("linux/aarch64"), "linux/arm64");
        assert_eq!(p("linux/arm"), "linux/arm/v7");
        assert_eq!(p("linux/armhf"), "linux/arm/v7");
        assert_eq!(p("linux/arm/6"), "linux/arm/v6");
        assert_eq!(p("arm64"), "linux/arm64");
        assert_eq!(p("windows/amd64"), "windows/amd64");
        assert_eq!(p("linux"), format!("linux/{}", host_arch()));
        assert!(
            parse_platform("nonsense")
                .unwrap_err()
                .starts_with("failed to parse platform nonsense: ")
        );
        assert!(parse_platform("linux//x").is_err());
        assert!(parse_platform("a/b/c/d").is_err());
    }
}
