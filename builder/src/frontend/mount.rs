//! `RUN --mount` lowering: a mount spec (parsed and validated by the parser's
//! `instructions::parse_mount`) -> a plan [`ExecMount`]. Must not touch the file system: what a mount
//! becomes at run time is the solver's (`solver::mounts`).

use anyhow::{Result, anyhow, bail};
use hoist_parser::instructions::{MountType, Sharing as ParsedSharing, parse_mount};

use crate::paths::clean;
use crate::plan::{CacheMount, ExecMount, Input, SecretMount, Sharing, SshMount};

/// Lowers one `--mount` value of a RUN. `index` counts the RUN's mounts (for SSH socket names).
pub fn lower_mount(
    spec: &str,
    escape: char,
    vars: &[(String, String)],
    workdir: &str,
    index: usize,
    input_of: &dyn Fn(&str) -> Result<Input>,
) -> Result<ExecMount> {
    let expand = |s: &str| -> std::result::Result<String, String> {
        hoist_parser::instructions::expand(s, vars, escape).map_err(|e| e.to_string())
    };
    let m = parse_mount(spec, Some(&expand)).map_err(|e| anyhow!(e))?;
    let abs = |t: &str| -> String {
        if t.starts_with('/') {
            clean(t)
        } else {
            clean(&format!("{workdir}/{t}"))
        }
    };
    let target = m.target.as_deref().filter(|t| !t.is_empty()).map(abs);
    // A cache, tmpfs or bind mount without a target goes on the working directory, as in
    // BuildKit (`target` joined onto it); the root itself is refused.
    let dir_target = || -> Result<String> {
        let t = target.clone().unwrap_or_else(|| abs(""));
        if t == "/" {
            bail!("invalid mount target \"/\"");
        }
        Ok(t)
    };
    let from = m.from.as_deref().map(input_of).transpose()?;
    Ok(match m.mount_type {
        MountType::Cache => {
            let target = dir_target()?;
            ExecMount::Cache(CacheMount {
                id: m
                    .id
                    .filter(|i| !i.is_empty())
                    .unwrap_or_else(|| target.clone()),
                target,
                sharing: match m.sharing {
                    None | Some(ParsedSharing::Shared) => Sharing::Shared,
                    Some(ParsedSharing::Private) => Sharing::Private,
                    Some(ParsedSharing::Locked) => Sharing::Locked,
                },
                mode: m.mode,
                uid: m.uid,
                gid: m.gid,
                from,
                source: m.source.unwrap_or_default(),
                readonly: m.read_only,
            })
        }
        MountType::Tmpfs => ExecMount::Tmpfs {
            target: dir_target()?,
            size: m.size,
        },
        MountType::Bind => ExecMount::Bind {
            target: dir_target()?,
            from: from.unwrap_or(Input::Context),
            source: m.source.unwrap_or_default(),
            readwrite: !m.read_only,
        },
        MountType::Secret => {
            let id = m
                .id
                .or(m.source)
                .filter(|i| !i.is_empty())
                .or_else(|| {
                    target
                        .as_deref()
                        .and_then(|t| t.rsplit('/').next())
                        .map(String::from)
                })
                .or_else(|| m.env.clone())
                .ok_or_else(|| anyhow!("invalid secret mount: an id or a target is required"))?;
            let target = match (&target, &m.env) {
                (Some(t), _) => Some(t.clone()),
                (None, Some(_)) => None,
                (None, None) => Some(format!("/run/secrets/{id}")),
            };
            ExecMount::Secret(SecretMount {
                id,
                target,
                env: m.env,
                required: m.required,
                mode: m.mode.unwrap_or(0o400),
                uid: m.uid.unwrap_or(0),
                gid: m.gid.unwrap_or(0),
            })
        }
        MountType::Ssh => ExecMount::Ssh(SshMount {
            id: m
                .id
                .filter(|i| !i.is_empty())
                .unwrap_or_else(|| "default".into()),
            target: target.unwrap_or_else(|| format!("/run/buildkit/ssh_agent.{index}")),
            required: m.required,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lower(spec: &str) -> Result<ExecMount> {
        let vars = vec![("D".to_string(), "/cache".to_string())];
        lower_mount(spec, '\\', &vars, "/work", 0, &|f: &str| {
            Ok(Input::Image(f.to_string()))
        })
    }

    #[test]
    fn cache_mount_fields() {
        match lower(
            "type=cache,target=$D,id=x,sharing=locked,mode=0700,uid=5,gid=6,from=img,source=/s",
        )
        .unwrap()
        {
            ExecMount::Cache(c) => {
                assert_eq!((c.target.as_str(), c.id.as_str()), ("/cache", "x"));
                assert_eq!(c.sharing, Sharing::Locked);
                assert_eq!((c.mode, c.uid, c.gid), (Some(0o700), Some(5), Some(6)));
                assert_eq!(c.from, Some(Input::Image("img".into())));
                assert_eq!(c.source, "/s");
                assert!(!c.readonly);
            }
            other => panic!("{other:?}"),
        }
        match lower("type=cache,target=rel").unwrap() {
            ExecMount::Cache(c) => assert_eq!(
                (c.target.as_str(), c.id.as_str()),
                ("/work/rel", "/work/rel")
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn secret_defaults() {
        match lower("type=secret,id=tok").unwrap() {
            ExecMount::Secret(s) => {
                assert_eq!(s.target.as_deref(), Some("/run/secrets/tok"));
                assert_eq!((s.mode, s.uid, s.gid, s.required), (0o400, 0, 0, false));
            }
            other => panic!("{other:?}"),
        }
        match lower("type=secret,id=tok,env=TOKEN,required").unwrap() {
            ExecMount::Secret(s) => {
                assert_eq!(s.target, None);
                assert_eq!(s.env.as_deref(), Some("TOKEN"));
                assert!(s.required);
            }
            other => panic!("{other:?}"),
        }
        match lower("type=secret,target=/etc/pw").unwrap() {
            ExecMount::Secret(s) => assert_eq!(s.id, "pw"),
            other => panic!("{other:?}"),
        }
        match lower("type=ssh").unwrap() {
            ExecMount::Ssh(s) => {
                assert_eq!(s.id, "default");
                assert_eq!(s.target, "/run/buildkit/ssh_agent.0");
            }
            other => panic!("{other:?}"),
        }
        assert!(lower("type=bogus,target=/x").is_err());
        // No target: the working directory, as BuildKit; the root is refused.
        match lower("type=tmpfs").unwrap() {
            ExecMount::Tmpfs { target, .. } => assert_eq!(target, "/work"),
            other => panic!("{other:?}"),
        }
        let e = lower("type=bind,target=/work/..").unwrap_err();
        assert_eq!(e.to_string(), "invalid mount target \"/\"");
    }
}
