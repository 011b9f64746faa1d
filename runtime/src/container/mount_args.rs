//! `-v`, `--mount` and `--tmpfs`, parsed and checked as Docker does (volumes are created later, when
//! the container is prepared).

use std::path::PathBuf;

use super::args::parse_bytes;
use crate::volume::Volumes;

/// One parsed `-v`, `--mount` or `--tmpfs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSpec {
    /// A host path. `create`: made (a directory) when missing, as `-v` does; `--mount` requires it.
    Bind {
        src: PathBuf,
        target: String,
        readonly: bool,
        create: bool,
    },
    /// A named volume (created when missing), or an anonymous one (`None`: removed after the run).
    Volume {
        name: Option<String>,
        target: String,
        readonly: bool,
    },
    /// A tmpfs with `MS_*` flags and tmpfs options.
    Tmpfs {
        target: String,
        flags: u64,
        data: String,
    },
}

/// `-v` modes Docker accepts (SELinux labels, propagation and the macOS consistency hints are
/// accepted and have no effect here).
const VOLUME_MODES: &[&str] = &[
    "ro",
    "rw",
    "z",
    "Z",
    "private",
    "rprivate",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "nocopy",
    "consistent",
    "cached",
    "delegated",
];

/// A container path: absolute and not `/`.
fn check_target(target: &str, kind: &str) -> Result<(), String> {
    if !target.starts_with('/') {
        return Err(format!(
            "invalid mount config for type \"{kind}\": invalid mount path: '{target}' mount path must be absolute"
        ));
    }
    if target.split('/').all(|c| c.is_empty() || c == ".") {
        return Err("invalid specification: destination can't be '/'".into());
    }
    Ok(())
}

/// `-v SRC:DST[:MODE]` (SRC a host path, `./relative`, or a volume name) or `-v DST` (anonymous).
pub fn parse_volume(v: &str) -> Result<MountSpec, String> {
    let parts: Vec<&str> = v.split(':').collect();
    let (src, target, mode) = match parts.as_slice() {
        [dst] => (None, *dst, ""),
        [src, dst] => (Some(*src), *dst, ""),
        [src, dst, mode] => (Some(*src), *dst, *mode),
        _ => return Err(format!("invalid volume specification: '{v}'")),
    };
    if let Some(bad) = mode
        .split(',')
        .find(|m| !m.is_empty() && !VOLUME_MODES.contains(m))
    {
        return Err(format!("invalid mode: {bad}"));
    }
    let readonly = mode.split(',').any(|m| m == "ro");
    let kind = match src {
        Some(s) if s.starts_with('/') || s.starts_with('.') => "bind",
        _ => "volume",
    };
    check_target(target, kind).map_err(|e| format!("invalid volume specification: '{v}': {e}"))?;
    Ok(match src {
        Some(s) if kind == "bind" => MountSpec::Bind {
            src: std::path::absolute(s).map_err(|e| format!("{s}: {e}"))?,
            target: target.into(),
            readonly,
            create: true,
        },
        Some(name) => {
            if !Volumes::valid_name(name) {
                return Err(format!(
                    "\"{name}\" includes invalid characters for a local volume name, only \
                     \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host \
                     directory, use absolute path"
                ));
            }
            MountSpec::Volume {
                name: Some(name.into()),
                target: target.into(),
                readonly,
            }
        }
        None => MountSpec::Volume {
            name: None,
            target: target.into(),
            readonly,
        },
    })
}

fn parse_bool(key: &str, v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        _ => Err(format!("invalid value for {key}: {v}")),
    }
}

/// `--mount type=bind|volume|tmpfs,source=...,target=...[,readonly][,tmpfs-size=N][,tmpfs-mode=M]`.
pub fn parse_mount(spec: &str) -> Result<MountSpec, String> {
    let err = |e: String| format!("invalid argument \"{spec}\" for \"--mount\" flag: {e}");
    let mut kind = "volume".to_string();
    let (mut src, mut target, mut readonly) = (None, None, false);
    let (mut size, mut mode) = (None, None);
    for field in spec.split(',') {
        let (k, v) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.trim())),
            None => (field.trim().to_ascii_lowercase(), None),
        };
        match (k.as_str(), v) {
            ("type", Some(v)) => kind = v.to_ascii_lowercase(),
            ("source" | "src", Some(v)) => src = Some(v.to_string()),
            ("target" | "destination" | "dst", Some(v)) => target = Some(v.to_string()),
            ("readonly" | "ro", None) => readonly = true,
            ("readonly" | "ro", Some(v)) => readonly = parse_bool(&k, v).map_err(err)?,
            ("tmpfs-size", Some(v)) => size = Some(parse_bytes(v).map_err(err)?),
            ("tmpfs-mode", Some(v)) => {
                mode = Some(
                    u32::from_str_radix(v, 8)
                        .map_err(|_| err(format!("invalid value for tmpfs-mode: {v}")))?,
                )
            }
            (
                "bind-propagation" | "bind-nonrecursive" | "consistency" | "volume-nocopy"
                | "volume-driver" | "volume-label" | "volume-opt",
                _,
            ) => {}
            (_, Some(_)) => return Err(err(format!("unexpected key '{k}' in '{field}'"))),
            (_, None) => {
                return Err(err(format!(
                    "invalid field '{field}' must be a key=value pair"
                )));
            }
        }
    }
    let target = target.ok_or_else(|| err("target is required".into()))?;
    check_target(&target, &kind)?;
    let invalid = |e: &str| format!("invalid mount config for type \"{kind}\": {e}");
    Ok(match kind.as_str() {
        "bind" => {
            let src = src.ok_or_else(|| invalid("field Source must not be empty"))?;
            let src = std::path::absolute(&src).map_err(|e| format!("{src}: {e}"))?;
            if !src.exists() {
                return Err(invalid(&format!(
                    "bind source path does not exist: {}",
                    src.display()
                )));
            }
            MountSpec::Bind {
                src,
                target,
                readonly,
                create: false,
            }
        }
        "volume" => MountSpec::Volume {
            name: src.filter(|s| !s.is_empty()),
            target,
            readonly,
        },
        "tmpfs" => {
            if src.is_some() {
                return Err(invalid("field Source must not be specified"));
            }
            let mut opts = Vec::new();
            if readonly {
                opts.push("ro".to_string());
            }
            if let Some(mode) = mode {
                opts.push(format!("mode={mode:o}"));
            }
            if let Some(size) = size {
                opts.push(format!("size={}", size_with_suffix(size)));
            }
            let (flags, data) = tmpfs_options(&opts)?;
            MountSpec::Tmpfs {
                target,
                flags,
                data,
            }
        }
        other => return Err(format!("mount type unknown: \"{other}\"")),
    })
}

/// Docker's `ConvertTmpfsOptions` size: the largest of k, m, g that divides it.
fn size_with_suffix(mut size: u64) -> String {
    let mut suffix = "";
    for s in ["k", "m", "g"] {
        if size == 0 || size % 1024 != 0 {
            break;
        }
        size /= 1024;
        suffix = s;
    }
    format!("{size}{suffix}")
}

/// `--tmpfs DST[:OPTIONS]` (OPTIONS as mount(8) takes them for tmpfs).
pub fn parse_tmpfs(v: &str) -> Result<MountSpec, String> {
    let (target, options) = v.split_once(':').unwrap_or((v, ""));
    check_target(target, "tmpfs")?;
    let opts: Vec<String> = options
        .split(',')
        .filter(|o| !o.is_empty())
        .map(String::from)
        .collect();
    let (flags, data) = tmpfs_options(&opts)?;
    Ok(MountSpec::Tmpfs {
        target: target.into(),
        flags,
        data,
    })
}

/// mount(8) flag options: (name, clears the flag, flag). Propagation options carry no flag here
/// (every sandbox mount is private).
const FLAGS: &[(&str, bool, u64)] = &[
    ("ro", false, libc::MS_RDONLY),
    ("rw", true, libc::MS_RDONLY),
    ("suid", true, libc::MS_NOSUID),
    ("nosuid", false, libc::MS_NOSUID),
    ("dev", true, libc::MS_NODEV),
    ("nodev", false, libc::MS_NODEV),
    ("exec", true, libc::MS_NOEXEC),
    ("noexec", false, libc::MS_NOEXEC),
    ("sync", false, libc::MS_SYNCHRONOUS),
    ("async", true, libc::MS_SYNCHRONOUS),
    ("dirsync", false, libc::MS_DIRSYNC),
    ("mand", false, libc::MS_MANDLOCK),
    ("nomand", true, libc::MS_MANDLOCK),
    ("atime", true, libc::MS_NOATIME),
    ("noatime", false, libc::MS_NOATIME),
    ("diratime", true, libc::MS_NODIRATIME),
    ("nodiratime", false, libc::MS_NODIRATIME),
    ("relatime", false, libc::MS_RELATIME),
    ("norelatime", true, libc::MS_RELATIME),
    ("strictatime", false, libc::MS_STRICTATIME),
    ("nostrictatime", true, libc::MS_STRICTATIME),
];
const PROPAGATION: &[&str] = &[
    "bind",
    "rbind",
    "unbindable",
    "runbindable",
    "private",
    "rprivate",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "remount",
];
/// tmpfs data options Docker accepts.
const DATA: &[&str] = &[
    "size",
    "mode",
    "uid",
    "gid",
    "nr_inodes",
    "nr_blocks",
    "mpol",
];

/// Docker's tmpfs options: `noexec,nosuid,nodev` then `opts`, merged as `MergeTmpfsOptions` does (a
/// later option wins over an earlier one for the same flag or key), as (`MS_*` flags, data).
pub fn tmpfs_options(opts: &[String]) -> Result<(u64, String), String> {
    let all: Vec<&str> = ["noexec", "nosuid", "nodev"]
        .into_iter()
        .chain(opts.iter().map(String::as_str))
        .collect();
    let mut seen_flags: Vec<u64> = Vec::new();
    let mut seen_keys: Vec<&str> = Vec::new();
    let (mut set, mut clear) = (0u64, 0u64);
    let mut data: Vec<&str> = Vec::new();
    for opt in all.iter().rev() {
        if *opt == "defaults" || PROPAGATION.contains(opt) {
            continue;
        }
        if let Some((_, clears, flag)) = FLAGS.iter().find(|(n, _, _)| n == opt) {
            if !seen_flags.contains(flag) {
                seen_flags.push(*flag);
                if *clears {
                    clear |= flag;
                } else {
                    set |= flag;
                }
            }
            continue;
        }
        match opt.split_once('=') {
            Some((k, _)) if DATA.contains(&k) => {
                if !seen_keys.contains(&k) {
                    seen_keys.push(k);
                    data.insert(0, opt);
                }
            }
            _ => {
                let quoted: Vec<String> = opt.splitn(2, '=').map(|p| format!("\"{p}\"")).collect();
                return Err(format!("Invalid tmpfs option [{}]", quoted.join(" ")));
            }
        }
    }
    Ok((set & !clear, data.join(",")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes() {
        assert_eq!(
            parse_volume("/host:/c:ro").unwrap(),
            MountSpec::Bind {
                src: "/host".into(),
                target: "/c".into(),
                readonly: true,
                create: true
            }
        );
        assert_eq!(
            parse_volume("data:/d").unwrap(),
            MountSpec::Volume {
                name: Some("data".into()),
                target: "/d".into(),
                readonly: false
            }
        );
        assert_eq!(
            parse_volume("/anon").unwrap(),
            MountSpec::Volume {
                name: None,
                target: "/anon".into(),
                readonly: false
            }
        );
        assert!(matches!(
            parse_volume("./rel:/r:rw,z").unwrap(),
            MountSpec::Bind { src, .. } if src.is_absolute()
        ));
        assert_eq!(parse_volume("/a:/b:xx").unwrap_err(), "invalid mode: xx");
        assert_eq!(
            parse_volume("a:b:c:d").unwrap_err(),
            "invalid volume specification: 'a:b:c:d'"
        );
        assert!(
            parse_volume("/a:rel")
                .unwrap_err()
                .contains("must be absolute")
        );
        assert!(parse_volume("/a:/").unwrap_err().contains("can't be '/'"));
        assert!(
            parse_volume("b@d:/x")
                .unwrap_err()
                .contains("invalid characters")
        );
    }

    #[test]
    fn mounts() {
        let dir = std::env::temp_dir();
        let bind = format!("type=bind,source={},target=/m,readonly", dir.display());
        assert_eq!(
            parse_mount(&bind).unwrap(),
            MountSpec::Bind {
                src: dir.clone(),
                target: "/m".into(),
                readonly: true,
                create: false
            }
        );
        assert!(
            parse_mount("type=bind,src=/nonexistent-hoist,dst=/m")
                .unwrap_err()
                .contains("bind source path does not exist: /nonexistent-hoist")
        );
        assert_eq!(
            parse_mount("type=volume,target=/v,ro=false").unwrap(),
            MountSpec::Volume {
                name: None,
                target: "/v".into(),
                readonly: false
            }
        );
        assert_eq!(
            parse_mount("type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=700").unwrap(),
            MountSpec::Tmpfs {
                target: "/t".into(),
                flags: libc::MS_NOEXEC | libc::MS_NOSUID | libc::MS_NODEV,
                data: "mode=700,size=1m".into()
            }
        );
        assert!(
            parse_mount("type=bind,src=/")
                .unwrap_err()
                .ends_with("target is required")
        );
        assert!(
            parse_mount("type=tmpfs,dst=/t,foo=1")
                .unwrap_err()
                .contains("unexpected key 'foo'")
        );
        assert_eq!(
            parse_mount("type=nfs,dst=/t").unwrap_err(),
            "mount type unknown: \"nfs\""
        );
    }

    #[test]
    fn tmpfs() {
        let default = libc::MS_NOEXEC | libc::MS_NOSUID | libc::MS_NODEV;
        assert_eq!(
            parse_tmpfs("/run").unwrap(),
            MountSpec::Tmpfs {
                target: "/run".into(),
                flags: default,
                data: String::new()
            }
        );
        assert_eq!(
            parse_tmpfs("/run:exec,size=64m,mode=1770,ro,size=1m").unwrap(),
            MountSpec::Tmpfs {
                target: "/run".into(),
                flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_RDONLY,
                data: "mode=1770,size=1m".into()
            }
        );
        assert_eq!(
            parse_tmpfs("/run:foo").unwrap_err(),
            "Invalid tmpfs option [\"foo\"]"
        );
        assert_eq!(
            parse_tmpfs("/run:foo=1").unwrap_err(),
            "Invalid tmpfs option [\"foo\" \"1\"]"
        );
        assert!(parse_tmpfs("run").unwrap_err().contains("must be absolute"));
        assert!(parse_tmpfs("/").is_err());
    }
}
