//! Tag templates of build rules: `{sourceref}`, `{sha}`, `{shortsha}` and `{\N}` (a capture of the
//! rule's source regex), checked when the config loads and expanded into valid image tags.

/// Checks that a tag template uses only known placeholders.
pub fn check_template(template: &str) -> Result<(), String> {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("tag template {template:?}: unclosed '{{'"))?;
        let key = &after[..close];
        let capture = key
            .strip_prefix('\\')
            .is_some_and(|n| n.parse::<usize>().is_ok());
        if !capture && !matches!(key, "sourceref" | "sha" | "shortsha") {
            return Err(format!(
                "tag template {template:?}: unknown placeholder {{{key}}} \
                 (expected {{sourceref}}, {{sha}}, {{shortsha}} or {{\\N}})"
            ));
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

/// Expands `{sourceref}`, `{sha}`, `{shortsha}` and `{\N}` in a tag template, then makes the result a
/// valid tag (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`: other characters such as `/` become `-`).
pub fn expand(template: &str, sourceref: &str, sha: &str, captures: &[String]) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            rest = "";
            break;
        };
        let key = &after[..close];
        match key {
            "sourceref" => out.push_str(sourceref),
            "sha" => out.push_str(sha),
            "shortsha" => out.push_str(&sha[..sha.len().min(7)]),
            k if k.starts_with('\\') && k[1..].parse::<usize>().is_ok() => {
                let n: usize = k[1..].parse().unwrap();
                out.push_str(captures.get(n).map(String::as_str).unwrap_or(""));
            }
            _ => {
                out.push('{');
                out.push_str(key);
                out.push('}');
            }
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    sanitize_tag(&out)
}

fn sanitize_tag(s: &str) -> String {
    let mut t: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    while t.starts_with(['.', '-']) {
        t.remove(0);
    }
    t.truncate(128);
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expand_leaves_unknown_and_sanitizes() {
        assert_eq!(expand("{\\3}x", "a", "s", &[]), "x");
        assert_eq!(expand("{nope}", "a", "s", &[]), "nope-");
        assert!(check_template("{sourceref}-{\\1}-{sha}-{shortsha}").is_ok());
        assert!(check_template("{branch}").is_err());
        assert_eq!(expand("-x/y", "a", "s", &[]), "x-y");
    }
}
