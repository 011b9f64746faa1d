//! Credentials as Docker keeps them: `~/.docker/config.json` (or `$DOCKER_CONFIG/config.json`) with
//! `auths` (base64 `user:password`), `credsStore` and `credHelpers` run as `docker-credential-<name>`;
//! and the `WWW-Authenticate` challenges registries answer with.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value};

use crate::endpoint::{DOCKER_HUB, DOCKER_HUB_AUTH_KEY};

/// A username and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, ***)", self.username)
    }
}

impl Credentials {
    /// The `Authorization: Basic ...` header value.
    pub fn basic_header(&self) -> String {
        format!(
            "Basic {}",
            B64.encode(format!("{}:{}", self.username, self.password))
        )
    }
}

/// The Docker client configuration file, read and written with unknown fields preserved.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    path: PathBuf,
    doc: Map<String, Value>,
    /// Where `docker-credential-*` helpers are looked up; `None` is the process's `PATH`.
    helper_path: Option<OsString>,
}

/// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
pub fn default_config_path() -> PathBuf {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("config.json");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/root".into());
    home.join(".docker").join("config.json")
}

/// The key credentials for `registry` live under (`https://index.docker.io/v1/` for Docker Hub).
pub fn auth_key(registry: &str) -> String {
    if registry == DOCKER_HUB {
        DOCKER_HUB_AUTH_KEY.to_string()
    } else {
        registry.to_string()
    }
}

/// Reduces an `auths` key like `https://host:5000/v1/` to `host:5000` for comparison.
fn normalize_key(key: &str) -> String {
    let k = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let k = k.split('/').next().unwrap_or(k);
    match k {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => DOCKER_HUB.to_string(),
        _ => k.to_string(),
    }
}

impl DockerConfig {
    /// Loads the file at `path`; a missing file is an empty configuration.
    pub fn load(path: &Path) -> Result<DockerConfig> {
        let doc = match std::fs::read(path) {
            Ok(bytes) if bytes.iter().all(|b| b.is_ascii_whitespace()) => Map::new(),
            Ok(bytes) => match serde_json::from_slice(&bytes)
                .with_context(|| format!("{}: invalid JSON", path.display()))?
            {
                Value::Object(m) => m,
                _ => bail!("{}: expected a JSON object", path.display()),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Ok(DockerConfig {
            path: path.to_path_buf(),
            doc,
            helper_path: None,
        })
    }

    /// Looks credential helpers up in `path` (a `PATH`-style list) instead of the process's `PATH`.
    pub fn with_helper_path(mut self, path: impl Into<OsString>) -> DockerConfig {
        self.helper_path = Some(path.into());
        self
    }

    /// Loads the default file ([`default_config_path`]).
    pub fn load_default() -> Result<DockerConfig> {
        Self::load(&default_config_path())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The credential helper responsible for `registry`, if any (`credHelpers`, then `credsStore`).
    pub fn helper_for(&self, registry: &str) -> Option<String> {
        if let Some(Value::Object(h)) = self.doc.get("credHelpers") {
            for (k, v) in h {
                if normalize_key(k) == normalize_key(registry) {
                    return v.as_str().map(str::to_string);
                }
            }
        }
        self.doc
            .get("credsStore")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }

    /// The credentials Docker would use for `registry`, or `None` for anonymous access.
    pub fn credentials(&self, registry: &str) -> Result<Option<Credentials>> {
        if let Some(helper) = self.helper_for(registry) {
            return helper_get(self.helper_path.as_deref(), &helper, &auth_key(registry));
        }
        let Some(Value::Object(auths)) = self.doc.get("auths") else {
            return Ok(None);
        };
        let want = normalize_key(registry);
        for (key, entry) in auths {
            if normalize_key(key) != want {
                continue;
            }
            if let Some(auth) = entry
                .get("auth")
                .and_then(Value::as_str)
                .filter(|a| !a.is_empty())
            {
                let decoded = B64.decode(auth.trim()).with_context(|| {
                    format!("{}: auths.{key}.auth is not base64", self.path.display())
                })?;
                let text = String::from_utf8(decoded).with_context(|| {
                    format!("{}: auths.{key}.auth is not UTF-8", self.path.display())
                })?;
                let Some((u, p)) = text.split_once(':') else {
                    bail!(
                        "{}: auths.{key}.auth is not user:password",
                        self.path.display()
                    );
                };
                return Ok(Some(Credentials {
                    username: u.to_string(),
                    password: p.to_string(),
                }));
            }
            if let (Some(u), Some(p)) = (
                entry.get("username").and_then(Value::as_str),
                entry.get("password").and_then(Value::as_str),
            ) {
                return Ok(Some(Credentials {
                    username: u.into(),
                    password: p.into(),
                }));
            }
        }
        Ok(None)
    }

    /// Stores credentials as `docker login` does: through the helper when one is configured, else
    /// as base64 `auth` in `auths`; then writes the file (mode 0600, atomically).
    pub fn store(&mut self, registry: &str, creds: &Credentials) -> Result<()> {
        let key = auth_key(registry);
        if let Some(helper) = self.helper_for(registry) {
            helper_store(self.helper_path.as_deref(), &helper, &key, creds)?;
            // Docker leaves an empty entry so `auths` lists the registry.
            self.auths_mut().insert(key, Value::Object(Map::new()));
        } else {
            let mut entry = Map::new();
            entry.insert(
                "auth".into(),
                Value::String(B64.encode(format!("{}:{}", creds.username, creds.password))),
            );
            self.auths_mut().insert(key, Value::Object(entry));
        }
        self.save()
    }

    /// Removes stored credentials for `registry`; returns false when there were none.
    pub fn erase(&mut self, registry: &str) -> Result<bool> {
        let want = normalize_key(registry);
        let mut found = false;
        if let Some(helper) = self.helper_for(registry) {
            found = helper_erase(self.helper_path.as_deref(), &helper, &auth_key(registry))?;
        }
        let keys: Vec<String> = self
            .auths_mut()
            .keys()
            .filter(|k| normalize_key(k) == want)
            .cloned()
            .collect();
        for k in keys {
            self.auths_mut().remove(&k);
            found = true;
        }
        if found {
            self.save()?;
        }
        Ok(found)
    }

    fn auths_mut(&mut self) -> &mut Map<String, Value> {
        let v = self
            .doc
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if !v.is_object() {
            *v = Value::Object(Map::new());
        }
        v.as_object_mut().expect("auths is an object")
    }

    /// Writes the file atomically with mode 0600 (the directory is created 0700).
    pub fn save(&self) -> Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        let mut text = serde_json::to_string_pretty(&Value::Object(self.doc.clone()))?;
        text.push('\n');
        hoist_image::outfile::write_atomic(&self.path, text.as_bytes())?;
        Ok(())
    }
}

/// Runs `docker-credential-<helper> <action>`, found through `search` (else the process's `PATH`).
fn run_helper(
    search: Option<&OsStr>,
    helper: &str,
    action: &str,
    input: &str,
) -> Result<(bool, String)> {
    let prog = format!("docker-credential-{helper}");
    let mut cmd = Command::new(&prog);
    if let Some(p) = search {
        // Setting the child's PATH makes std look the program up there.
        cmd.env("PATH", p);
    }
    let mut child = cmd
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running credential helper {prog}"))?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if out.status.success() {
        Ok((true, stdout))
    } else {
        Ok((false, if stdout.is_empty() { stderr } else { stdout }))
    }
}

fn helper_get(search: Option<&OsStr>, helper: &str, server: &str) -> Result<Option<Credentials>> {
    let (ok, out) = run_helper(search, helper, "get", server)?;
    if !ok {
        if out.contains("credentials not found") {
            return Ok(None);
        }
        bail!("docker-credential-{helper} get: {out}");
    }
    let v: Value = serde_json::from_str(&out)
        .with_context(|| format!("docker-credential-{helper} get: invalid JSON output"))?;
    let user = v.get("Username").and_then(Value::as_str).unwrap_or("");
    let secret = v.get("Secret").and_then(Value::as_str).unwrap_or("");
    if secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credentials {
        username: user.to_string(),
        password: secret.to_string(),
    }))
}

fn helper_store(
    search: Option<&OsStr>,
    helper: &str,
    server: &str,
    creds: &Credentials,
) -> Result<()> {
    let input = serde_json::json!({
        "ServerURL": server, "Username": creds.username, "Secret": creds.password
    });
    let (ok, out) = run_helper(search, helper, "store", &input.to_string())?;
    if !ok {
        bail!("docker-credential-{helper} store: {out}");
    }
    Ok(())
}

fn helper_erase(search: Option<&OsStr>, helper: &str, server: &str) -> Result<bool> {
    let (ok, out) = run_helper(search, helper, "erase", server)?;
    if !ok {
        if out.contains("credentials not found") {
            return Ok(false);
        }
        bail!("docker-credential-{helper} erase: {out}");
    }
    Ok(true)
}

/// A parsed `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `bearer` or `basic` (lowercase).
    pub scheme: String,
    /// Parameters (`realm`, `service`, `scope`, ...), keys lowercase.
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    /// Parses `Bearer realm="...",service="...",scope="..."` (quoted or token values).
    pub fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        let mut params = BTreeMap::new();
        let mut s = rest.trim();
        while !s.is_empty() {
            let Some(eq) = s.find('=') else { break };
            let key = s[..eq].trim().trim_start_matches(',').trim().to_lowercase();
            s = &s[eq + 1..];
            let value;
            if let Some(q) = s.strip_prefix('"') {
                let mut out = String::new();
                let mut chars = q.char_indices();
                let mut end = q.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, n)) = chars.next() {
                                out.push(n)
                            }
                        }
                        '"' => {
                            end = i + 1;
                            break;
                        }
                        c => out.push(c),
                    }
                }
                value = out;
                s = &q[end.min(q.len())..];
            } else {
                let end = s.find(',').unwrap_or(s.len());
                value = s[..end].trim().to_string();
                s = &s[end..];
            }
            s = s.trim_start().trim_start_matches(',').trim_start();
            params.insert(key, value);
        }
        Some(Challenge {
            scheme: scheme.to_lowercase(),
            params,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_challenges() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://auth.docker.io/token");
        assert_eq!(c.params["service"], "registry.docker.io");
        assert_eq!(c.params["scope"], "repository:library/busybox:pull");
        let c = Challenge::parse(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.params["realm"], "Registry Realm");
    }

    #[test]
    fn config_round_trip_like_docker() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d/config.json");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            &path,
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"}},"psFormat":"x"}"#,
        )
        .unwrap();
        let mut cfg = DockerConfig::load(&path).unwrap();
        let hub = cfg.credentials("docker.io").unwrap().unwrap();
        assert_eq!((hub.username.as_str(), hub.password.as_str()), ("u", "p"));
        let creds = Credentials {
            username: "alice".into(),
            password: "s:cret".into(),
        };
        cfg.store("127.0.0.1:5000", &creds).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v["auths"]["127.0.0.1:5000"]["auth"],
            B64.encode("alice:s:cret")
        );
        assert_eq!(v["psFormat"], "x");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let again = DockerConfig::load(&path).unwrap();
        assert_eq!(
            again.credentials("http://127.0.0.1:5000").unwrap(),
            Some(creds)
        );
        let mut again = again;
        assert!(again.erase("127.0.0.1:5000").unwrap());
        assert!(!again.erase("127.0.0.1:5000").unwrap());
        assert_eq!(
            DockerConfig::load(&path)
                .unwrap()
                .credentials("127.0.0.1:5000")
                .unwrap(),
            None
        );
    }

    #[test]
    fn credential_helper_is_run() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("docker-credential-hoisttest");
        std::fs::write(
            &bin,
            "#!/bin/sh\nread server\n[ \"$1\" = get ] && [ \"$server\" = reg.example:5000 ] && \
             echo '{\"ServerURL\":\"reg.example:5000\",\"Username\":\"hu\",\"Secret\":\"hs\"}' && exit 0\n\
             echo 'credentials not found in native keychain'; exit 1\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"credHelpers":{"reg.example:5000":"hoisttest"}}"#).unwrap();
        // The helper is found through a PATH, as Docker finds it; this one is handed over rather
        // than set on the process, which other tests' threads share.
        let cfg = DockerConfig::load(&path)
            .unwrap()
            .with_helper_path(dir.path());
        assert!(
            DockerConfig::load(&path)
                .unwrap()
                .credentials("reg.example:5000")
                .is_err(),
            "the helper is not on the process's PATH"
        );
        let c = cfg.credentials("reg.example:5000").unwrap().unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("hu", "hs"));
        assert_eq!(cfg.credentials("other:1").unwrap(), None);
    }
}
