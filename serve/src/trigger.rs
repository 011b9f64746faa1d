//! The `post-receive` hook `hoist trigger` prints: for every pushed ref it POSTs hoist's plain JSON
//! trigger (`{"ref","before","after"}`), signed with HMAC-SHA256 of the shared secret, to `hoist serve`.

/// Quotes a string for POSIX sh.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A ready-to-install `post-receive` hook posting to `url` with `secret`. Needs sh, curl, openssl.
pub fn post_receive_hook(url: &str, secret: &str) -> String {
    format!(
        r#"#!/bin/sh
# post-receive hook printed by `hoist trigger`: asks `hoist serve` to build every pushed ref.
# Install: save as hooks/post-receive in the bare repository and chmod +x it. Needs curl and openssl.
# HOIST_URL / HOIST_SECRET in the environment override the values below.
HOIST_URL=${{HOIST_URL:-{url}}}
HOIST_SECRET=${{HOIST_SECRET:-{secret}}}
export HOIST_SECRET
status=0
while read -r old new ref; do
  ref_json=$(printf '%s' "$ref" | sed 's/[\\"]/\\&/g')
  body=$(printf '{{"ref":"%s","before":"%s","after":"%s"}}' "$ref_json" "$old" "$new")
  sig=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$HOIST_SECRET" | sed 's/^.* //')
  if reply=$(curl -sS --fail-with-body --max-time 15 -X POST \
      -H 'Content-Type: application/json' \
      -H "X-Hoist-Signature-256: sha256=$sig" \
      --data-binary "$body" "$HOIST_URL"); then
    echo "hoist: $ref: $reply"
  else
    echo "hoist: $ref: could not queue a build: $reply" >&2
    status=1
  fi
done
exit $status
"#,
        url = sh_quote(url),
        secret = sh_quote(secret),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn quotes_values() {
        let s = super::post_receive_hook("http://127.0.0.1:1/hooks/a", "it's");
        assert!(
            s.contains(r#"HOIST_SECRET=${HOIST_SECRET:-'it'\''s'}"#),
            "{s}"
        );
        assert!(s.starts_with("#!/bin/sh\n"));
    }
}
