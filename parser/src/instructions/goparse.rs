//! Go's scalar parsers BuildKit applies to flag and option values, with Go's error texts:
//! `time.ParseDuration` and `strconv.ParseInt`/`ParseBool` (go-units' `RAMInBytes` is `hoist_image::display::ram_in_bytes`).

/// Go's `strconv.ParseInt(v, 10, 32)` with its error text.
pub(super) fn parse_go_int32(v: &str) -> Result<i64, String> {
    let digits = v.strip_prefix(['+', '-']).unwrap_or(v);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "strconv.ParseInt: parsing {}: invalid syntax",
            crate::dump::go_quote(v)
        ));
    }
    match v.parse::<i64>() {
        Ok(n) if (i32::MIN as i64..=i32::MAX as i64).contains(&n) => Ok(n),
        _ => Err(format!(
            "strconv.ParseInt: parsing {}: value out of range",
            crate::dump::go_quote(v)
        )),
    }
}

/// Go's `time.ParseDuration`, in nanoseconds (may be negative).
pub fn parse_go_duration(s: &str) -> Result<i128, String> {
    let invalid = || format!("time: invalid duration {}", crate::dump::go_quote(s));
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_len];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(invalid());
        }
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let mult: f64 = match unit {
            "" => {
                return Err(format!(
                    "time: missing unit in duration {}",
                    crate::dump::go_quote(s)
                ));
            }
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            u => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    crate::dump::go_quote(u),
                    crate::dump::go_quote(s)
                ));
            }
        };
        let n: f64 = num.parse().map_err(|_| invalid())?;
        total += n * mult;
    }
    if total > i64::MAX as f64 {
        return Err(invalid());
    }
    let t = total as i128;
    Ok(if neg { -t } else { t })
}

/// Go's `strconv.ParseBool`.
pub fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}
