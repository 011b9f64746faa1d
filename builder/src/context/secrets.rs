//! What `hoist build --secret` and `--ssh` hand to a build: secret values by id (read once, kept
//! in memory, never printed: `Debug` shows ids only) and SSH agent sockets by id.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use anyhow::{Context as _, Result, anyhow, bail};

/// Build secrets by id.
#[derive(Clone, Default)]
pub struct Secrets {
    values: BTreeMap<String, Vec<u8>>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.values.keys()).finish()
    }
}

impl Secrets {
    /// Parses `--secret` values as buildx does: `id=ID[,src=FILE|,env=VAR][,type=file|env]`;
    /// with neither `src` nor `env`, the environment variable named like the id, else the file
    /// named like it.
    pub fn from_specs(specs: &[String]) -> Result<Secrets> {
        let mut s = Secrets::default();
        for spec in specs {
            let (id, value) = parse_secret(spec)?;
            s.values.insert(id, value);
        }
        Ok(s)
    }

    /// Adds a secret.
    pub fn insert(&mut self, id: &str, value: Vec<u8>) {
        self.values.insert(id.to_string(), value);
    }

    /// The value of a secret.
    pub fn get(&self, id: &str) -> Option<&[u8]> {
        self.values.get(id).map(Vec::as_slice)
    }
}

fn parse_secret(spec: &str) -> Result<(String, Vec<u8>)> {
    let mut id = None;
    let mut src = None;
    let mut env = None;
    let mut typ = None;
    for field in spec.split(',') {
        let (k, v) = field.split_once('=').ok_or_else(|| {
            anyhow!("invalid secret {spec:?}: field {field:?} must be a key=value pair")
        })?;
        match k.to_ascii_lowercase().as_str() {
            "id" => id = Some(v.to_string()),
            "src" | "source" => src = Some(v.to_string()),
            "env" => env = Some(v.to_string()),
            "type" => typ = Some(v.to_ascii_lowercase()),
            other => bail!("unexpected key '{other}' in '{field}'"),
        }
    }
    let id = id
        .or_else(|| src.clone())
        .or_else(|| env.clone())
        .filter(|i| !i.is_empty())
        .ok_or_else(|| anyhow!("invalid secret {spec:?}: id is required"))?;
    let (src, env) = match typ.as_deref() {
        Some("file") => (Some(src.unwrap_or_else(|| id.clone())), None),
        Some("env") => (None, Some(env.or(src).unwrap_or_else(|| id.clone()))),
        Some(t) => bail!("unsupported secret type {t:?}"),
        None if src.is_none() && env.is_none() => {
            if std::env::var_os(&id).is_some() {
                (None, Some(id.clone()))
            } else {
                (Some(id.clone()), None)
            }
        }
        None => (src, env),
    };
    let value = match (src, env) {
        (Some(path), _) => std::fs::read(&path)
            .with_context(|| format!("failed to read secret {id:?} from {path}"))?,
        (None, Some(var)) => std::env::var_os(&var)
            .ok_or_else(|| anyhow!("secret {id:?}: environment variable {var} is not set"))?
            .into_encoded_bytes(),
        (None, None) => unreachable!(),
    };
    Ok((id, value))
}

/// SSH agent sockets by id (`--ssh default`, `--ssh id=/path/to/agent.sock`).
#[derive(Debug, Clone, Default)]
pub struct SshAgents {
    sockets: BTreeMap<String, PathBuf>,
}

impl SshAgents {
    /// Parses `--ssh` values: `ID` (the socket is `$SSH_AUTH_SOCK`) or `ID=SOCKET`.
    pub fn from_specs(specs: &[String]) -> Result<SshAgents> {
        let mut s = SshAgents::default();
        for spec in specs {
            let (id, path) = match spec.split_once('=') {
                Some((id, p)) => (id.to_string(), PathBuf::from(p)),
                None => (
                    spec.clone(),
                    std::env::var_os("SSH_AUTH_SOCK").map(PathBuf::from).ok_or_else(|| {
                        anyhow!("invalid empty ssh agent socket: make sure SSH_AUTH_SOCK is set (--ssh {spec})")
                    })?,
                ),
            };
            if path.as_os_str().to_string_lossy().contains(',') {
                bail!("--ssh {spec}: only one agent socket per id is supported");
            }
            let md = std::fs::metadata(&path)
                .with_context(|| format!("--ssh {spec}: {}", path.display()))?;
            use std::os::unix::fs::FileTypeExt;
            if !md.file_type().is_socket() {
                bail!(
                    "--ssh {spec}: {} is not an agent socket (key files are not supported; run ssh-agent and ssh-add)",
                    path.display()
                );
            }
            s.sockets.insert(id, path);
        }
        Ok(s)
    }

    /// The socket for an id.
    pub fn get(&self, id: &str) -> Option<&PathBuf> {
        self.sockets.get(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_from_file_and_env_and_debug_hides_values() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("tok");
        std::fs::write(&f, "s3cr3t").unwrap();
        let s = Secrets::from_specs(&[format!("id=a,src={}", f.display())]).unwrap();
        assert_eq!(s.get("a"), Some(&b"s3cr3t"[..]));
        assert!(!format!("{s:?}").contains("s3cr3t"));
        let s = Secrets::from_specs(&["id=b,env=PATH".to_string()]).unwrap();
        assert!(s.get("b").is_some());
        assert!(Secrets::from_specs(&["id=c,src=/nonexistent/x".to_string()]).is_err());
        assert!(Secrets::from_specs(&["src".to_string()]).is_err());
    }
}
