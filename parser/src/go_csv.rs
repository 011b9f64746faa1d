//! Go's `encoding/csv` reading one record, as BuildKit splits `RUN --mount` values and buildx splits
//! `--secret`, `--ssh`, `--output` and `--cache-to` values. The [`csv`] crate splits and unquotes
//! (`"a,b"`, `""` for a quote); it accepts stray quotes that Go rejects, so Go's two quote errors
//! are checked first, with Go's texts and columns.
//!
//! Owns: splitting one comma-separated value. Must not touch: what the fields mean.

/// The fields of the first record of `value`, or Go's error text (`EOF` for an empty value,
/// `parse error on line 1, column N: ...` for a stray quote).
pub fn read_record(value: &str) -> Result<Vec<String>, String> {
    check_quotes(value)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_reader(value.as_bytes());
    let mut record = csv::StringRecord::new();
    match reader.read_record(&mut record) {
        Ok(true) => Ok(record.iter().map(str::to_string).collect()),
        Ok(false) => Err("EOF".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Go's strict quoting in the first record: a field is either quoted whole (its closing quote
/// followed by `,` or the end) or has no `"` at all. Columns are Go's, 1-based bytes: the stray
/// quote, the closing quote followed by more, or the byte after an unclosed opening quote.
fn check_quotes(value: &str) -> Result<(), String> {
    let bytes = value.as_bytes();
    let error = |at: usize, what: &str| format!("parse error on line 1, column {}: {what}", at + 1);
    let mut start = 0;
    loop {
        let end = if bytes.get(start) == Some(&b'"') {
            let mut i = start + 1;
            loop {
                match bytes.get(i) {
                    None => {
                        return Err(error(start + 1, "extraneous or missing \" in quoted-field"));
                    }
                    Some(b'"') if bytes.get(i + 1) == Some(&b'"') => i += 2,
                    Some(b'"') => break,
                    Some(_) => i += 1,
                }
            }
            match bytes.get(i + 1) {
                None | Some(b',' | b'\n') => i + 1,
                Some(b'\r') if bytes.get(i + 2) == Some(&b'\n') => i + 1,
                Some(_) => return Err(error(i, "extraneous or missing \" in quoted-field")),
            }
        } else {
            let len = bytes[start..]
                .iter()
                .position(|b| matches!(b, b',' | b'\n'))
                .unwrap_or(bytes.len() - start);
            if let Some(j) = bytes[start..start + len].iter().position(|&b| b == b'"') {
                return Err(error(start + j, "bare \" in non-quoted-field"));
            }
            start + len
        };
        match bytes.get(end) {
            Some(b',') => start = end + 1,
            _ => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::read_record;

    fn ok(v: &str) -> Vec<String> {
        read_record(v).unwrap()
    }

    #[test]
    fn quoted_fields_keep_commas_and_doubled_quotes() {
        assert_eq!(ok("type=bind,target=/x"), ["type=bind", "target=/x"]);
        assert_eq!(ok("\"target=/a,b\",ro"), ["target=/a,b", "ro"]);
        assert_eq!(ok("\"a\"\"b\",c"), ["a\"b", "c"]);
        assert_eq!(ok("a,,b,"), ["a", "", "b", ""]);
        assert_eq!(ok(" a , b"), [" a ", " b"]);
        assert_eq!(ok("\"\""), [""]);
    }

    #[test]
    fn go_quote_errors_with_columns() {
        let err = |v: &str| read_record(v).unwrap_err();
        let bare = "bare \" in non-quoted-field";
        let quote = "extraneous or missing \" in quoted-field";
        let at = |col: usize, what: &str| format!("parse error on line 1, column {col}: {what}");
        assert_eq!(err("target=\"/x\""), at(8, bare));
        assert_eq!(err("a,b\"c"), at(4, bare));
        // Columns as current BuildKit reports them.
        assert_eq!(err("type=bind,\"x"), at(12, quote));
        assert_eq!(err("a,\""), at(4, quote));
        assert_eq!(err("\"a\"b,c"), at(3, quote));
        assert_eq!(err("\"\"x"), at(2, quote));
        assert_eq!(err("ab,\"a\"\"b\"c"), at(9, quote));
        // Columns count bytes, as Go's do.
        assert_eq!(err("é\""), at(3, bare));
        assert_eq!(err("\"é\"x"), at(4, quote));
        assert_eq!(err(""), "EOF");
        assert_eq!(err("\n"), "EOF");
    }

    #[test]
    fn only_the_first_record_counts() {
        assert_eq!(ok("a,b\nc\"d"), ["a", "b"]);
        assert_eq!(ok("\"a\nb\",c"), ["a\nb", "c"]);
    }
}
