//! Value parsers BuildKit applies at conversion time, after expansion: EXPOSE port specs,
//! STOPSIGNAL names (platforms are `hoist_image::Platform`). Messages follow INSTRUCTIONS.md.

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
}
