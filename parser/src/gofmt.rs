//! Go's `fmt` renderings that BuildKit writes into image history: `%q` of a string slice and
//! `time.Duration`'s `String`.

use crate::dump::go_quote;

/// Go's `%q` of a `[]string`: `["a" "b"]`.
pub fn go_quote_list(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| go_quote(s)).collect();
    format!("[{}]", items.join(" "))
}

/// `v` units of `unit` nanoseconds as Go prints them: the integer part, then the fraction with
/// trailing zeros dropped.
fn fraction(v: u64, unit: u64) -> String {
    let (int, rem) = (v / unit, v % unit);
    if rem == 0 {
        return int.to_string();
    }
    let width = unit.ilog10() as usize;
    let frac = format!("{rem:0width$}");
    format!("{int}.{}", frac.trim_end_matches('0'))
}

/// Go's `time.Duration.String` of `ns` nanoseconds: `0s`, `100ms`, `1.5µs`, `1m30s`, `1h0m0s`.
pub fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let u = ns.unsigned_abs();
    let s = if u < 1_000 {
        format!("{u}ns")
    } else if u < 1_000_000 {
        format!("{}µs", fraction(u, 1_000))
    } else if u < 1_000_000_000 {
        format!("{}ms", fraction(u, 1_000_000))
    } else {
        const MINUTE: u64 = 60_000_000_000;
        let (minutes, rest) = (u / MINUTE, u % MINUTE);
        let (h, m) = (minutes / 60, minutes % 60);
        let mut out = String::new();
        if h > 0 {
            out.push_str(&format!("{h}h"));
        }
        if minutes > 0 {
            out.push_str(&format!("{m}m"));
        }
        out.push_str(&format!("{}s", fraction(rest, 1_000_000_000)));
        out
    };
    if ns < 0 { format!("-{s}") } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_go_prints_them() {
        let cases = [
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5µs"),
            (100_000_000, "100ms"),
            (1_000_000_000, "1s"),
            (1_500_000_000, "1.5s"),
            (60_000_000_000, "1m0s"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (3_661_000_000_001, "1h1m1.000000001s"),
            (-2_000_000, "-2ms"),
        ];
        for (ns, want) in cases {
            assert_eq!(go_duration(ns), want, "{ns}");
        }
    }

    #[test]
    fn lists_as_go_quotes_them() {
        assert_eq!(
            go_quote_list(&["CMD-SHELL".into(), "echo \"x\"\t\u{1b}".into()]),
            "[\"CMD-SHELL\" \"echo \\\"x\\\"\\t\\x1b\"]"
        );
    }
}
