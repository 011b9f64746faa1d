//! Docker's human-readable sizes and durations (go-units), for command output, and the one parser
//! of Docker's size flags ([`ram_in_bytes`]: `--memory`, `--shm-size`, `tmpfs-size`, `size=`).

/// `HumanSizeWithPrecision(size, 3)`: decimal units, e.g. `4.26MB`, `123kB`, `0B` (`docker images`).
pub fn human_size(size: u64) -> String {
    human_size_with_precision(size, 3)
}

/// go-units `HumanSize` (4 significant digits): `15.87MB`, `1.982MB`, `0B` (`docker system df`).
pub fn human_size4(size: u64) -> String {
    human_size_with_precision(size, 4)
}

/// go-units `HumanSizeWithPrecision`: decimal units, `precision` significant digits.
fn human_size_with_precision(size: u64, precision: usize) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut s = size as f64;
    let mut i = 0;
    while s >= 1000.0 && i < units.len() - 1 {
        s /= 1000.0;
        i += 1;
    }
    format!("{}{}", go_g(s, precision), units[i])
}

/// Go's `%.Ng` for the values `human_size_with_precision` produces (below 1000, so no exponent;
/// a value that rounds up to 1000, e.g. 999.6 at precision 3, is kept as `1000`).
fn go_g(v: f64, precision: usize) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let int_digits = if v >= 100.0 {
        3
    } else if v >= 10.0 {
        2
    } else {
        1
    };
    let digits = precision.saturating_sub(int_digits);
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// `HumanDuration`: `Less than a second`, `3 seconds`, `About a minute`, `5 days`, `2 years`...
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    let (m, h) = (s / 60, s / 3600);
    match () {
        _ if s < 1 => "Less than a second".into(),
        _ if s == 1 => "1 second".into(),
        _ if s < 60 => format!("{s} seconds"),
        _ if m == 1 => "About a minute".into(),
        _ if m < 60 => format!("{m} minutes"),
        _ if h == 1 => "About an hour".into(),
        _ if h < 48 => format!("{h} hours"),
        _ if h < 24 * 7 * 2 => format!("{} days", h / 24),
        _ if h < 24 * 30 * 2 => format!("{} weeks", h / 24 / 7),
        _ if h < 24 * 365 * 2 => format!("{} months", h / 24 / 30),
        _ => format!("{} years", h / 24 / 365),
    }
}

/// `"5 minutes ago"` for an RFC 3339 timestamp (`N/A` when missing or invalid).
pub fn since(rfc3339: Option<&str>) -> String {
    match rfc3339.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()) {
        Some(t) => format!(
            "{} ago",
            human_duration((chrono::Utc::now() - t.to_utc()).num_seconds())
        ),
        None => "N/A".into(),
    }
}

/// Docker's `CreatedAt` form: `2024-01-02 03:04:05 +0000 UTC`.
pub fn created_at(rfc3339: Option<&str>) -> String {
    match rfc3339.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()) {
        Some(t) => t.to_utc().format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string(),
        None => String::new(),
    }
}

/// Cuts `s` to `max` characters with a trailing `…` (Docker's `Ellipsis`).
pub fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Columns aligned like Docker's tabwriter (min width 10, padding 3).
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count() + 3)
                .max()
                .unwrap_or(0)
                .max(10)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            line.push_str(cell);
            if c + 1 < r.len() {
                line.extend(std::iter::repeat_n(' ', widths[c] - cell.chars().count()));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// go-units `RAMInBytes`: a number (optionally fractional, optionally followed by one space) and a
/// case-insensitive suffix `b`, or `k`/`m`/`g`/`t`/`p` with an optional `b` or `ib`, all binary
/// multiples: `1024`, `512k`, `512KiB`, `64mb`, `1.5g`, `10 MiB`. Errors are go-units' texts.
pub fn ram_in_bytes(s: &str) -> Result<u64, String> {
    let invalid = || format!("invalid size: '{s}'");
    let sep = s
        .rfind(|c: char| c.is_ascii_digit() || c == '.' || c == ' ')
        .ok_or_else(invalid)?;
    let (num, sfx) = if s.as_bytes()[sep] == b' ' {
        (&s[..sep], &s[sep + 1..])
    } else {
        (&s[..sep + 1], &s[sep + 1..])
    };
    let size = parse_go_float(num)?;
    if size < 0.0 {
        return Err(invalid());
    }
    if sfx.is_empty() {
        return Ok(size as u64);
    }
    let sfx = sfx.to_ascii_lowercase();
    let bad = || format!("invalid suffix: '{sfx}'");
    if sfx.len() > 3 {
        return Err(bad());
    }
    let b = sfx.as_bytes();
    if b[0] == b'b' {
        return if b.len() == 1 {
            Ok(size as u64)
        } else {
            Err(bad())
        };
    }
    let shift = match b[0] {
        b'k' => 10,
        b'm' => 20,
        b'g' => 30,
        b't' => 40,
        b'p' => 50,
        _ => return Err(bad()),
    };
    if (b.len() == 2 && b[1] != b'b') || (b.len() == 3 && &sfx[1..] != "ib") {
        return Err(bad());
    }
    Ok((size * (1u64 << shift) as f64) as u64)
}

/// Go's `strconv.ParseFloat(num, 64)` for decimal input, with its error text.
fn parse_go_float(num: &str) -> Result<f64, String> {
    let syntax = || format!("strconv.ParseFloat: parsing {num:?}: invalid syntax");
    // Rust also takes "inf"/"nan"; Go's ParseFloat does too, but only spelled out, never after a digit.
    if !num.bytes().any(|b| b.is_ascii_digit()) {
        return Err(syntax());
    }
    num.parse::<f64>().map_err(|_| syntax())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_in_bytes_is_go_units() {
        for (s, want) in [
            ("1024", 1024),
            ("0", 0),
            ("512k", 512 << 10),
            ("512kb", 512 << 10),
            ("512KiB", 512 << 10),
            ("512kib", 512 << 10),
            ("512K", 512 << 10),
            ("64m", 64 << 20),
            ("64MB", 64 << 20),
            ("1.5g", 3 << 29),
            ("10 MiB", 10 << 20),
            ("2t", 2 << 40),
            ("1p", 1 << 50),
            ("100b", 100),
            ("100B", 100),
        ] {
            assert_eq!(ram_in_bytes(s), Ok(want), "{s}");
        }
        assert_eq!(ram_in_bytes("lots").unwrap_err(), "invalid size: 'lots'");
        assert_eq!(ram_in_bytes("-1m").unwrap_err(), "invalid size: '-1m'");
        assert_eq!(ram_in_bytes("1ki").unwrap_err(), "invalid suffix: 'ki'");
        assert_eq!(ram_in_bytes("1kbb").unwrap_err(), "invalid suffix: 'kbb'");
        assert_eq!(ram_in_bytes("1bi").unwrap_err(), "invalid suffix: 'bi'");
        assert_eq!(ram_in_bytes("1x").unwrap_err(), "invalid suffix: 'x'");
        assert_eq!(
            ram_in_bytes("1.5.5m").unwrap_err(),
            "strconv.ParseFloat: parsing \"1.5.5\": invalid syntax"
        );
    }

    #[test]
    fn sizes_and_durations_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(4_262_912), "4.26MB");
        assert_eq!(human_size(123_456), "123kB");
        assert_eq!(human_size(1_000_000), "1MB");
        assert_eq!(human_size(12_340_000), "12.3MB");
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(75), "About a minute");
        assert_eq!(human_duration(3 * 86400), "3 days");
        assert_eq!(ellipsis("abcdef", 4), "abc…");
    }
}
