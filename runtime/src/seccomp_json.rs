//! Docker's JSON seccomp profiles (`--security-opt seccomp=FILE`, moby's `profiles/seccomp` format:
//! `defaultAction`, `defaultErrnoRet`, `syscalls[]` with `names`, `action`, `errnoRet`, `args` and
//! `includes`/`excludes` on `caps`, `arches` and `minKernel`), read into a [`Profile`] for this
//! machine as Docker's daemon does: rules for another architecture or a newer kernel are dropped,
//! capability conditions are kept for the compiler, and unknown syscall names are skipped when
//! compiling. Filters apply to the native architecture only (`architectures`/`archMap` are checked,
//! not used).

use serde::Deserialize;

use crate::capabilities;
use crate::seccomp_profile::{Action, Arg, CmpOp, Profile, Rule};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonProfile {
    default_action: String,
    default_errno_ret: Option<u32>,
    architectures: Option<Vec<String>>,
    arch_map: Option<Vec<serde_json::Value>>,
    syscalls: Option<Vec<JsonSyscall>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonSyscall {
    name: Option<String>,
    names: Option<Vec<String>>,
    action: String,
    errno_ret: Option<u32>,
    args: Option<Vec<JsonArg>>,
    #[serde(default)]
    includes: JsonFilter,
    #[serde(default)]
    excludes: JsonFilter,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonArg {
    index: u32,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct JsonFilter {
    caps: Option<Vec<String>>,
    arches: Option<Vec<String>>,
    min_kernel: Option<String>,
}

/// Reads the profile at `file`. Errors name the file (and the line and column of bad JSON).
pub fn load(file: &str) -> Result<Profile, String> {
    let text =
        std::fs::read(file).map_err(|e| format!("opening seccomp profile ({file}) failed: {e}"))?;
    parse(&text, file, go_arch(), kernel_version())
}

/// The profile in `text` (read from `file`) for the Go architecture `arch` and the kernel `kernel`
/// (major, minor), with Docker's CLI and daemon errors.
fn parse(text: &[u8], file: &str, arch: &str, kernel: (u32, u32)) -> Result<Profile, String> {
    let json: JsonProfile = serde_json::from_slice(text).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            format!("Decoding seccomp profile ({file}) failed: {e}")
        }
        _ => format!("compacting json for seccomp profile ({file}) failed: {e}"),
    })?;
    semantics(json, arch, kernel)
        .map_err(|e| format!("Decoding seccomp profile ({file}) failed: {e}"))
}

fn semantics(json: JsonProfile, arch: &str, kernel: (u32, u32)) -> Result<Profile, String> {
    if json.architectures.as_ref().is_some_and(|a| !a.is_empty())
        && json.arch_map.as_ref().is_some_and(|a| !a.is_empty())
    {
        return Err(
            "both 'architectures' and 'archMap' are specified in the seccomp profile, \
                    use either 'architectures' or 'archMap'"
                .into(),
        );
    }
    let default_action = action(&json.default_action, json.default_errno_ret)?;
    let mut rules = Vec::new();
    for call in json.syscalls.unwrap_or_default() {
        let mut names = call.names.unwrap_or_default();
        match call.name {
            Some(_) if !names.is_empty() => {
                return Err("use either 'name' or 'names'".into());
            }
            Some(name) if !name.is_empty() => names.push(name),
            _ => {}
        }
        let applies = |f: &JsonFilter, include: bool| {
            let arch_listed = f
                .arches
                .as_ref()
                .filter(|a| !a.is_empty())
                .map(|a| a.iter().any(|x| x == arch));
            let min_kernel = f.min_kernel.as_deref().filter(|k| !k.is_empty());
            if include {
                arch_listed != Some(false)
                    && min_kernel.is_none_or(|k| parse_kernel(k).is_some_and(|k| kernel >= k))
            } else {
                arch_listed != Some(true)
            }
        };
        if !applies(&call.includes, true) || !applies(&call.excludes, false) {
            continue;
        }
        if let Some(k) = call
            .includes
            .min_kernel
            .as_deref()
            .filter(|k| !k.is_empty())
        {
            parse_kernel(k).ok_or_else(|| format!("invalid kernel version \"{k}\""))?;
        }
        let caps = |f: &JsonFilter| -> Vec<u32> {
            f.caps
                .iter()
                .flatten()
                .map(|c| capabilities::number(c).unwrap_or(64))
                .collect()
        };
        let args = call
            .args
            .unwrap_or_default()
            .iter()
            .map(arg)
            .collect::<Result<Vec<_>, _>>()?;
        rules.push(Rule {
            action: action(&call.action, call.errno_ret)?,
            names,
            args,
            includes_caps: caps(&call.includes),
            excludes_caps: caps(&call.excludes),
        });
    }
    Ok(Profile {
        default_action,
        rules,
    })
}

/// A `SCMP_ACT_*` name; `errno`: `errnoRet` (EPERM if absent, as runc).
fn action(name: &str, errno: Option<u32>) -> Result<Action, String> {
    let errno = errno.unwrap_or(libc::EPERM as u32);
    Ok(match name {
        "SCMP_ACT_ALLOW" => Action::Allow,
        "SCMP_ACT_ERRNO" => Action::Errno(errno),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Action::KillThread,
        "SCMP_ACT_KILL_PROCESS" => Action::KillProcess,
        "SCMP_ACT_TRAP" => Action::Trap,
        "SCMP_ACT_TRACE" => Action::Trace(errno),
        "SCMP_ACT_LOG" => Action::Log,
        "SCMP_ACT_NOTIFY" => {
            return Err("SCMP_ACT_NOTIFY needs a seccomp agent, which hoist does not have".into());
        }
        other => return Err(format!("invalid action \"{other}\"")),
    })
}

/// An argument check: `SCMP_CMP_MASKED_EQ` compares `arg & value` with `valueTwo`.
fn arg(a: &JsonArg) -> Result<Arg, String> {
    let op = match a.op.as_str() {
        "SCMP_CMP_EQ" => CmpOp::Eq,
        "SCMP_CMP_NE" => CmpOp::Ne,
        "SCMP_CMP_LT" => CmpOp::Lt,
        "SCMP_CMP_LE" => CmpOp::Le,
        "SCMP_CMP_GT" => CmpOp::Gt,
        "SCMP_CMP_GE" => CmpOp::Ge,
        "SCMP_CMP_MASKED_EQ" => CmpOp::MaskedEq(a.value),
        other => return Err(format!("invalid operator \"{other}\"")),
    };
    if a.index > 5 {
        return Err(format!("argument index {} out of range (0 to 5)", a.index));
    }
    let value = if let CmpOp::MaskedEq(_) = op {
        a.value_two
    } else {
        a.value
    };
    Ok(Arg {
        index: a.index as u8,
        op,
        value,
    })
}

/// Go's name for this architecture (`includes.arches` lists `runtime.GOARCH` values).
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// "MAJOR.MINOR[...]" as numbers.
fn parse_kernel(v: &str) -> Option<(u32, u32)> {
    let mut parts = v.split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().unwrap_or("0").parse().ok()?;
    Some((major, minor))
}

/// The running kernel's (major, minor).
fn kernel_version() -> (u32, u32) {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .and_then(|r| parse_kernel(r.trim()))
        .unwrap_or((0, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_profile_fields() {
        let text = br#"{
            "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [
                {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                {"name": "mount", "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
                 "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["getpid"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["arm_only"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
                {"names": ["new_kernel"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "99.1"}},
                {"names": ["old_kernel"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}}
            ]
        }"#;
        let p = parse(text, "p.json", "amd64", (6, 1)).unwrap();
        assert_eq!(p.default_action, Action::Errno(38));
        let names: Vec<&str> = p
            .rules
            .iter()
            .flat_map(|r| &r.names)
            .map(String::as_str)
            .collect();
        assert_eq!(
            names,
            ["read", "write", "mount", "clone", "getpid", "old_kernel"]
        );
        assert_eq!(p.rules[1].includes_caps, [21]);
        assert_eq!(
            p.rules[2].args,
            [Arg {
                index: 0,
                op: CmpOp::MaskedEq(2114060288),
                value: 0
            }]
        );
        assert_eq!(p.rules[2].excludes_caps, [21]);
        // errnoRet defaults to EPERM.
        assert_eq!(p.rules[3].action, Action::Errno(1));
        // The rule for arm64 is kept there.
        let arm = parse(text, "p.json", "arm64", (6, 1)).unwrap();
        assert!(arm.rules.iter().any(|r| r.names == ["arm_only"]));
    }

    #[test]
    fn errors() {
        let err = |t: &str| parse(t.as_bytes(), "p.json", "amd64", (6, 1)).unwrap_err();
        assert_eq!(
            err("{"),
            "compacting json for seccomp profile (p.json) failed: \
             EOF while parsing an object at line 1 column 1"
        );
        let decoding = "Decoding seccomp profile (p.json) failed: ";
        assert!(err(r#"{"defaultAction": 1}"#).starts_with(&format!("{decoding}invalid type")));
        assert_eq!(
            err(r#"{"defaultAction": "SCMP_ACT_NOPE"}"#),
            format!("{decoding}invalid action \"SCMP_ACT_NOPE\"")
        );
        assert_eq!(
            err(
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"name": "a", "names": ["b"], "action": "SCMP_ACT_ALLOW"}]}"#
            ),
            format!("{decoding}use either 'name' or 'names'")
        );
        assert!(err(r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ABOUT"}]}]}"#).contains("SCMP_CMP_ABOUT"));
    }
}
