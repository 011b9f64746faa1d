//! `RUN --mount` values: the option list (BuildKit's `parseMount`) and the validated [`Mount`].

use serde::Serialize;

use super::goparse::parse_go_bool;
use crate::go_csv;
use crate::suggest::with_suggestion;

/// `RUN --mount` type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub enum MountType {
    /// Read-only view of a stage, image or the context.
    #[default]
    Bind,
    /// Persistent cache directory.
    Cache,
    /// Fresh in-memory directory.
    Tmpfs,
    /// A build secret as a file or env var.
    Secret,
    /// An SSH agent socket.
    Ssh,
}

impl MountType {
    /// BuildKit's lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Tmpfs => "tmpfs",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
        }
    }
}

/// Cache mount sharing mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Sharing {
    /// Concurrent writers share it.
    Shared,
    /// A writer gets its own copy.
    Private,
    /// Writers wait for each other.
    Locked,
}

/// A validated `RUN --mount` (values expanded by the caller's expander).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Mount {
    /// Mount type.
    pub mount_type: MountType,
    /// `from` (stage, index or image); never expanded.
    pub from: Option<String>,
    /// `source`/`src`.
    pub source: Option<String>,
    /// `target`/`dst`/`destination`.
    pub target: Option<String>,
    /// Read-only (defaults: bind/secret/ssh yes, cache/tmpfs no).
    pub read_only: bool,
    /// `id`.
    pub id: Option<String>,
    /// `sharing` (cache only).
    pub sharing: Option<Sharing>,
    /// `size` in bytes (tmpfs only).
    pub size: Option<u64>,
    /// `mode` (cache/secret/ssh).
    pub mode: Option<u32>,
    /// `uid` (cache/secret/ssh).
    pub uid: Option<u32>,
    /// `gid` (cache/secret/ssh).
    pub gid: Option<u32>,
    /// `required` (secret/ssh).
    pub required: bool,
    /// `env` (secret only): expose as this environment variable.
    pub env: Option<String>,
}

const MOUNT_KEYS: [&str; 19] = [
    "type",
    "from",
    "source",
    "target",
    "readonly",
    "id",
    "sharing",
    "required",
    "size",
    "mode",
    "uid",
    "gid",
    "src",
    "dst",
    "destination",
    "ro",
    "rw",
    "readwrite",
    "env",
];

/// A value expander for mount options (e.g. a closure over [`expand`](super::expand) with the step's env).
pub type Expander<'a> = &'a dyn Fn(&str) -> Result<String, String>;

/// Parses a `--mount` value. With `expand = None` (instruction parse) only the structure and `from`
/// are checked; with an expander (conversion) every value is expanded and validated.
pub fn parse_mount(value: &str, expand: Option<Expander>) -> Result<Mount, String> {
    let fields =
        go_csv::read_record(value).map_err(|e| format!("failed to parse csv mounts: {e}"))?;
    let mut m = Mount::default();
    let mut ro_auto = true;
    // The type decides which keys are allowed; read it first.
    for field in &fields {
        if let Some((k, v)) = field.split_once('=') {
            if k.eq_ignore_ascii_case("type") {
                let v = match expand {
                    Some(x) => x(v)?,
                    None if v.contains('$') => continue,
                    None => v.to_string(),
                };
                m.mount_type = match v.to_lowercase().as_str() {
                    "bind" => MountType::Bind,
                    "cache" => MountType::Cache,
                    "tmpfs" => MountType::Tmpfs,
                    "secret" => MountType::Secret,
                    "ssh" => MountType::Ssh,
                    _ => {
                        return Err(with_suggestion(
                            format!("unsupported mount type {}", crate::dump::go_quote(&v)),
                            &v,
                            &["bind", "cache", "tmpfs", "secret", "ssh"],
                            true,
                        ));
                    }
                };
            }
        }
    }
    let t = m.mount_type;
    let secret_or_ssh = matches!(t, MountType::Secret | MountType::Ssh);
    let unexpected = |k: &str| format!("unexpected key '{k}' for mount type '{}'", t.as_str());
    for field in &fields {
        if field.is_empty() {
            continue;
        }
        let Some((key, raw)) = field.split_once('=') else {
            match field.to_lowercase().as_str() {
                "readonly" | "ro" => {
                    m.read_only = true;
                    ro_auto = false;
                }
                "readwrite" | "rw" => {
                    m.read_only = false;
                    ro_auto = false;
                }
                "required" if secret_or_ssh => m.required = true,
                "required" => return Err(unexpected("required")),
                _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
            }
            continue;
        };
        let key = key.to_lowercase();
        let value = match expand {
            _ if key == "from" => {
                if let Some(i) = raw.find('$') {
                    if i != raw.len() - 1 {
                        return Err(
                            "'from' doesn't support variable expansion, define alias stage instead"
                                .into(),
                        );
                    }
                }
                raw.to_string()
            }
            Some(x) => x(raw)?,
            None => continue,
        };
        let bad = || format!("invalid value for {key}: {value}");
        match key.as_str() {
            "type" => {}
            "from" => m.from = Some(value),
            "source" | "src" => m.source = Some(value),
            "target" | "dst" | "destination" => m.target = Some(value),
            "readonly" | "ro" => {
                m.read_only = parse_go_bool(&value).ok_or_else(bad)?;
                ro_auto = false;
            }
            "readwrite" | "rw" => {
                m.read_only = !parse_go_bool(&value).ok_or_else(bad)?;
                ro_auto = false;
            }
            "required" if secret_or_ssh => m.required = parse_go_bool(&value).ok_or_else(bad)?,
            "required" => return Err(unexpected("required")),
            "size" if t == MountType::Tmpfs => {
                m.size = Some(hoist_image::display::ram_in_bytes(&value).map_err(|_| bad())?)
            }
            "size" => return Err(unexpected("size")),
            "id" => m.id = Some(value),
            "sharing" => {
                m.sharing = Some(match value.to_lowercase().as_str() {
                    "shared" => Sharing::Shared,
                    "private" => Sharing::Private,
                    "locked" => Sharing::Locked,
                    _ => {
                        return Err(with_suggestion(
                            format!(
                                "unsupported sharing value {}",
                                crate::dump::go_quote(&value)
                            ),
                            &value,
                            &["shared", "private", "locked"],
                            true,
                        ));
                    }
                })
            }
            "mode" => {
                m.mode = Some(
                    u32::from_str_radix(&value, 8)
                        .map_err(|_| format!("invalid value {value} for mode"))?,
                )
            }
            "uid" | "gid" => {
                let n: u32 = value
                    .parse()
                    .map_err(|_| format!("invalid value {value} for {key}"))?;
                if key == "uid" {
                    m.uid = Some(n);
                } else {
                    m.gid = Some(n);
                }
            }
            "env" => m.env = Some(value),
            _ => {
                return Err(with_suggestion(
                    format!("unexpected key '{key}' in '{field}'"),
                    &key,
                    &MOUNT_KEYS,
                    true,
                ));
            }
        }
    }
    if expand.is_none() {
        return Ok(m);
    }
    let file_info = matches!(t, MountType::Secret | MountType::Ssh | MountType::Cache);
    if !file_info {
        for (set, what) in [
            (m.mode.is_some(), "mode"),
            (m.uid.is_some(), "uid"),
            (m.gid.is_some(), "gid"),
        ] {
            if set {
                return Err(format!(
                    "{what} not allowed for \"{}\" type mounts",
                    t.as_str()
                ));
            }
        }
    }
    if ro_auto {
        m.read_only = !matches!(t, MountType::Cache | MountType::Tmpfs);
    }
    if t == MountType::Secret {
        if m.from.is_some() {
            return Err("secret mount should not have a from".into());
        }
        if m.sharing.is_some() {
            return Err("secret mount should not define sharing".into());
        }
        if m.source.is_none() && m.target.is_none() && m.id.is_none() && m.env.is_none() {
            return Err("invalid secret mount. one of source, target required".into());
        }
        if m.source.is_some() && m.id.is_some() {
            return Err("both source and id can't be set".into());
        }
    } else if m.sharing.is_some() && t != MountType::Cache {
        return Err(format!(
            "invalid cache sharing set for {} mount",
            t.as_str()
        ));
    }
    if t == MountType::Ssh && m.source.is_some() {
        return Err("ssh does not support source".into());
    }
    if m.target
        .as_deref()
        .is_some_and(|t| !t.is_empty() && t.trim_end_matches('/').is_empty())
    {
        return Err("invalid mount target \"/\"".into());
    }
    Ok(m)
}
