//! "Did you mean" hints (BuildKit's `util/suggest`): the closest option by Levenshtein distance
//! ([`strsim`]), at most two edits away.
//!
//! Owns: choosing a suggestion and phrasing it. Must not touch: what the options are.

/// The first option at the smallest edit distance below 3 from `value`, or `None` when `value` is
/// itself an option. Without `case_sensitive` both sides are compared lower-cased.
pub fn closest<'a>(
    value: &str,
    options: impl IntoIterator<Item = &'a str>,
    case_sensitive: bool,
) -> Option<&'a str> {
    let fold = |s: &str| {
        if case_sensitive {
            s.to_string()
        } else {
            s.to_lowercase()
        }
    };
    let value = fold(value);
    let mut best = None;
    let mut min = 3;
    for opt in options {
        let folded = fold(opt);
        if folded == value {
            return None;
        }
        let d = strsim::levenshtein(&value, &folded);
        if d < min {
            min = d;
            best = Some(opt);
        }
    }
    best
}

/// `msg` with ` (did you mean x?)` appended when an option is close to `value`. Case-insensitively
/// the hint takes the value's case as BuildKit's `matchCase`: upper for an upper-case value (`FRM`
/// gives `FROM`), lower otherwise.
pub fn with_suggestion(msg: String, value: &str, options: &[&str], case_sensitive: bool) -> String {
    let Some(hint) = closest(value, options.iter().copied(), case_sensitive) else {
        return msg;
    };
    let hint = if case_sensitive {
        hint.to_string()
    } else if value == value.to_uppercase() && value != value.to_lowercase() {
        hint.to_uppercase()
    } else {
        hint.to_lowercase()
    };
    format!("{msg} (did you mean {hint}?)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_option_within_two_edits() {
        assert_eq!(closest("taget", ["type", "target"], true), Some("target"));
        assert_eq!(closest("target", ["targt", "target"], true), None);
        assert_eq!(closest("xyzzy", ["target"], true), None);
        // Ties keep the first option.
        assert_eq!(closest("ab", ["aa", "bb"], true), Some("aa"));
    }

    #[test]
    fn hint_matches_the_value_case() {
        let opts = ["from", "run"];
        assert_eq!(
            with_suggestion("x".into(), "FRM", &opts, false),
            "x (did you mean FROM?)"
        );
        assert_eq!(
            with_suggestion("x".into(), "Frm", &opts, false),
            "x (did you mean from?)"
        );
        assert_eq!(with_suggestion("x".into(), "FROM", &opts, false), "x");
        assert_eq!(
            with_suggestion("x".into(), "rn", &opts, true),
            "x (did you mean run?)"
        );
        assert_eq!(with_suggestion("x".into(), "RN", &opts, true), "x");
        assert_eq!(with_suggestion("x".into(), "COPY", &opts, false), "x");
    }
}
