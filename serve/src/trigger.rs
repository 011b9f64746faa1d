//! The `post-receive` hook `hoist trigger` prints: for every pushed ref it POSTs hoist's plain JSON
//! trigger (`{"ref","before","after","delivery"}`, `delivery` a fresh random id so that the service
//! can refuse the same request sent again), signed with HMAC-SHA256 of the shared secret, to `hoist serve`.
//!
//! The secret never appears on a command line (which any local user can read in `ps`): the hook holds
//! the HMAC key as its two pads, `key ^ ipad` and `key ^ opad` (RFC 2104), written as octal escapes that
//! the shell's builtin `printf` turns into bytes; `openssl dgst -sha256` only hashes what it reads on
//! stdin. curl reads the signed request (signature header and body) from stdin too (`--config -`), so
//! no signature can be lifted from the process list and replayed. The hook file itself is the secret:
//! it is written with mode 0700 by `hoist trigger --output`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::Context;
use sha2::{Digest, Sha256};

/// SHA-256's block size: HMAC keys are hashed when longer, then zero-padded to it.
const BLOCK: usize = 64;

/// Quotes a string for POSIX sh.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The HMAC-SHA256 pads of `secret`: (`key ^ 0x36..`, `key ^ 0x5c..`).
fn hmac_pads(secret: &str) -> ([u8; BLOCK], [u8; BLOCK]) {
    let mut key = [0u8; BLOCK];
    if secret.len() > BLOCK {
        key[..32].copy_from_slice(&Sha256::digest(secret.as_bytes()));
    } else {
        key[..secret.len()].copy_from_slice(secret.as_bytes());
    }
    (key.map(|b| b ^ 0x36), key.map(|b| b ^ 0x5c))
}

/// Bytes as a printf format of octal escapes (`\ooo` each: no `%`, no quote, no shell syntax).
fn printf_octal(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:03o}")).collect()
}

/// A ready-to-install `post-receive` hook posting to `url`, signed with `secret`. Needs sh (with a
/// builtin printf: dash, bash, busybox ash, ksh, zsh), curl, openssl, sed and cut.
pub fn post_receive_hook(url: &str, secret: &str) -> String {
    let (ipad, opad) = hmac_pads(secret);
    format!(
        r#"#!/bin/sh
# post-receive hook printed by `hoist trigger`: asks `hoist serve` to build every pushed ref.
# Install: `hoist trigger REPOSITORY --output hooks/post-receive` in the bare repository (mode 0700).
# Needs curl and openssl. HOIST_URL in the environment overrides the URL below.
# This file holds the webhook key (as HMAC pads): keep it private. The key, and each request's
# signature, never appear on a command line: printf is a shell builtin and openssl/curl read stdin.
HOIST_URL=${{HOIST_URL:-{url}}}
HOIST_IPAD='{ipad}'
HOIST_OPAD='{opad}'
# Hex HMAC-SHA256 of stdin: sha256(opad || sha256(ipad || message)).
hoist_hmac() {{
  {{ printf "$HOIST_OPAD"; {{ printf "$HOIST_IPAD"; cat; }} | openssl dgst -sha256 -binary; }} |
    openssl dgst -sha256 -r | cut -d ' ' -f 1
}}
# A double-quoted string for curl's config syntax.
curl_quote() {{
  printf '"%s"' "$(printf '%s' "$1" | sed 's/[\\"]/\\&/g')"
}}
status=0
while read -r old new ref; do
  ref_json=$(printf '%s' "$ref" | sed 's/[\\"]/\\&/g')
  delivery=$(openssl rand -hex 16)
  body=$(printf '{{"ref":"%s","before":"%s","after":"%s","delivery":"%s"}}' "$ref_json" "$old" "$new" "$delivery")
  sig=$(printf '%s' "$body" | hoist_hmac)
  if reply=$(printf 'header = "Content-Type: application/json"\nheader = "X-Hoist-Signature-256: sha256=%s"\ndata-binary = %s\n' \
      "$sig" "$(curl_quote "$body")" |
      curl -sS --fail-with-body --max-time 15 --config - "$HOIST_URL"); then
    echo "hoist: $ref: $reply"
  else
    echo "hoist: $ref: could not queue a build: $reply" >&2
    status=1
  fi
done
exit $status
"#,
        url = sh_quote(url),
        ipad = printf_octal(&ipad),
        opad = printf_octal(&opad),
    )
}

/// Writes a hook atomically (temp file + rename) with mode 0700: executable, readable by its owner only.
pub fn write_hook(path: &Path, hook: &str) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file name", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o700)
            .open(&tmp)?;
        f.write_all(hook.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.with_context(|| format!("writing hook {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read};
    use std::net::TcpListener;
    use std::process::{Command, Stdio};

    #[test]
    fn pads_match_rfc2104() {
        let (i, o) = hmac_pads("key");
        assert_eq!(&i[..4], &[b'k' ^ 0x36, b'e' ^ 0x36, b'y' ^ 0x36, 0x36]);
        assert_eq!(o[63], 0x5c);
        let long = "k".repeat(100);
        let (i, _) = hmac_pads(&long);
        assert_eq!(i[0], Sha256::digest(long.as_bytes())[0] ^ 0x36);
        assert_eq!(i[40], 0x36);
        assert_eq!(printf_octal(&[0, 8, 0o377]), r"\000\010\377");
    }

    /// Receives one request, answers 202 when its `X-Hoist-Signature-256` verifies; returns
    /// (signature verified, body).
    fn serve_once(
        listener: TcpListener,
        secret: String,
    ) -> std::thread::JoinHandle<(bool, String)> {
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut len, mut sig) = (0usize, String::new());
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                let (k, v) = line.split_once(':').unwrap_or((&line, ""));
                match k.to_ascii_lowercase().as_str() {
                    "content-length" => len = v.trim().parse().unwrap(),
                    "x-hoist-signature-256" => sig = v.trim().to_string(),
                    _ => {}
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            let ok = crate::webhook::verify_hmac(&secret, &body, &sig);
            let reply = if ok { r#"{"queued":[7]}"# } else { "bad" };
            let status = if ok {
                "202 Accepted"
            } else {
                "401 Unauthorized"
            };
            write!(
                &stream,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            )
            .unwrap();
            (ok, String::from_utf8(body).unwrap())
        })
    }

    /// Shims that log their command line, then run the real command.
    fn shims(dir: &Path, log: &Path) {
        for cmd in ["openssl", "curl", "cut", "sed", "cat", "printf", "od", "tr"] {
            let real = ["/usr/bin", "/bin"]
                .iter()
                .map(|d| Path::new(d).join(cmd))
                .find(|p| p.exists())
                .unwrap();
            let shim = dir.join(cmd);
            std::fs::write(
                &shim,
                format!(
                    "#!/bin/sh\nprintf '%s\\n' \"{cmd} $*\" >> '{}'\nexec {} \"$@\"\n",
                    log.display(),
                    real.display()
                ),
            )
            .unwrap();
            Command::new("chmod").arg("+x").arg(&shim).status().unwrap();
        }
    }

    fn run_hook(secret: &str) {
        let dir = tempfile::tempdir().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hooks/app", listener.local_addr().unwrap());
        let server = serve_once(listener, secret.to_string());
        let hook = dir.path().join("post-receive");
        std::fs::write(&hook, post_receive_hook(&url, secret)).unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let argv_log = dir.path().join("argv.log");
        shims(&bin, &argv_log);
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
        let (old, new) = ("1".repeat(40), "2".repeat(40));
        let mut child = Command::new("sh")
            .arg(&hook)
            .env("PATH", path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{old} {new} refs/heads/it\"s").unwrap();
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let (verified, body) = server.join().unwrap();
        assert!(out.status.success(), "{stdout}{stderr}");
        assert!(verified, "the service checks the hook's signature: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["ref"], "refs/heads/it\"s");
        assert_eq!(
            (v["before"].as_str(), v["after"].as_str()),
            (Some(&*old), Some(&*new))
        );
        let delivery = v["delivery"].as_str().unwrap_or_default();
        assert!(
            delivery.len() == 32 && delivery.bytes().all(|b| b.is_ascii_hexdigit()),
            "a random delivery id: {body}"
        );
        assert!(
            stdout.contains(r#"hoist: refs/heads/it"s: {"queued":[7]}"#),
            "{stdout}"
        );

        // What ran, with which arguments: openssl and curl did, and nothing secret was on a command line.
        let argv = std::fs::read_to_string(&argv_log).unwrap();
        assert!(argv.contains("openssl dgst -sha256"), "{argv}");
        assert!(argv.contains("curl -sS"), "{argv}");
        let (ipad, opad) = hmac_pads(secret);
        let signature = crate::webhook::sign(secret, body.as_bytes());
        for leak in [
            secret.to_string(),
            hex::encode(secret),
            hex::encode(ipad),
            hex::encode(opad),
            printf_octal(&ipad[..8]),
            printf_octal(&opad[..8]),
            signature,
        ] {
            assert!(!argv.contains(&leak), "{leak:?} on a command line:\n{argv}");
        }
    }

    #[test]
    fn hook_signs_without_the_key_on_any_command_line() {
        // Bytes whose pads are NUL (0x36 '6', 0x5c '\'), quotes and printf's '%'.
        run_hook(r#"66\\'%s"s3cr3t"#);
    }

    #[test]
    fn hook_hashes_keys_longer_than_a_block() {
        run_hook(&"long-secret-".repeat(10));
    }

    #[test]
    fn hook_file_is_private_and_replaced_whole() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("post-receive");
        std::fs::write(&path, "old hook, world-readable").unwrap();
        write_hook(&path, "#!/bin/sh\n").unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o700);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "#!/bin/sh\n");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
        let err = write_hook(&dir.path().join("missing/post-receive"), "x").unwrap_err();
        assert!(
            format!("{err:#}").contains("missing/post-receive"),
            "{err:#}"
        );
    }

    #[test]
    fn hook_fails_when_the_service_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hooks/app", listener.local_addr().unwrap());
        let server = serve_once(listener, "the-right-one".into());
        let hook = dir.path().join("post-receive");
        std::fs::write(&hook, post_receive_hook(&url, "a-wrong-one")).unwrap();
        let mut child = Command::new("sh")
            .arg(&hook)
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        writeln!(
            child.stdin.take().unwrap(),
            "{} {} refs/tags/v1",
            "0".repeat(40),
            "3".repeat(40)
        )
        .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(!server.join().unwrap().0);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("could not queue a build"), "{stderr}");
    }
}
