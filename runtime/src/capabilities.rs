//! Capabilities: names, Docker's default set and its `--cap-add`/`--cap-drop`/`--privileged` rules
//! (moby `oci/caps`), applied as the bounding set (everyone) and as the permitted and effective sets
//! of a root process. A non-root user ends up with none, as in Docker.

use rustix::thread::{CapabilitySet, CapabilitySets};

/// Docker's default capabilities (moby `oci/caps/defaults.go`).
pub const DOCKER_DEFAULT: &[(u32, &str)] = &[
    (0, "CAP_CHOWN"),
    (1, "CAP_DAC_OVERRIDE"),
    (3, "CAP_FOWNER"),
    (4, "CAP_FSETID"),
    (5, "CAP_KILL"),
    (6, "CAP_SETGID"),
    (7, "CAP_SETUID"),
    (8, "CAP_SETPCAP"),
    (10, "CAP_NET_BIND_SERVICE"),
    (13, "CAP_NET_RAW"),
    (18, "CAP_SYS_CHROOT"),
    (27, "CAP_MKNOD"),
    (29, "CAP_AUDIT_WRITE"),
    (31, "CAP_SETFCAP"),
];

/// Every capability name, indexed by number.
pub const NAMES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The highest capability number this kernel knows (`/proc/sys/kernel/cap_last_cap`).
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
        .min(NAMES.len() as u32 - 1)
}

/// Docker's default set as a mask (bit n = capability n).
pub fn docker_default_mask() -> u64 {
    DOCKER_DEFAULT.iter().fold(0, |m, (c, _)| m | 1 << c)
}

/// Every capability hoist itself may hand out: those of this kernel in hoist's bounding set (a
/// restricted environment may lack some; Docker's "all" is likewise the daemon's own).
pub fn all_mask() -> u64 {
    bounding()
}

/// This process's bounding set, as a mask.
fn bounding() -> u64 {
    (0..=last_cap())
        .filter(|&c| rustix::thread::capability_is_in_bounding_set(one(c)).unwrap_or(false))
        .fold(0, |m, c| m | 1 << c)
}

/// Capability `c` alone, as rustix's set.
fn one(c: u32) -> CapabilitySet {
    CapabilitySet::from_bits_retain(1 << c)
}

/// The number of capability `name`: `CAP_NET_ADMIN`, `net_admin`, `NET_ADMIN` (not `ALL`).
pub fn number(name: &str) -> Option<u32> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    let n = NAMES.iter().position(|n| *n == full)? as u32;
    (n <= last_cap()).then_some(n)
}

/// One `--cap-add`/`--cap-drop` entry: a capability number, or `ALL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    All,
    Cap(u32),
}

/// Docker's `NormalizeLegacyCapabilities`: names in any case, with or without `CAP_`, or `ALL`.
/// `what` names the list in the error ("CapAdd", "CapDrop").
fn normalize(names: &[String], what: &str) -> Result<Vec<Entry>, String> {
    names
        .iter()
        .map(|n| {
            let upper = n.to_ascii_uppercase();
            if upper == "ALL" {
                return Ok(Entry::All);
            }
            number(&upper).map(Entry::Cap).ok_or_else(|| {
                let full = if upper.starts_with("CAP_") {
                    upper.clone()
                } else {
                    format!("CAP_{upper}")
                };
                format!("invalid {what}: unknown capability: \"{full}\"")
            })
        })
        .collect()
}

/// Docker's `TweakCapabilities`: the capability mask for `--privileged` (all), or the default set
/// with `drops` removed and `adds` added; `ALL` in `adds` means every capability but `drops`, `ALL`
/// in `drops` means only `adds`. Unknown names are Docker's "invalid CapAdd: unknown capability".
pub fn tweak(adds: &[String], drops: &[String], privileged: bool) -> Result<u64, String> {
    let adds = normalize(adds, "CapAdd")?;
    let drops = normalize(drops, "CapDrop")?;
    if privileged {
        return Ok(all_mask());
    }
    let mask = |list: &[Entry]| {
        list.iter().fold(0u64, |m, e| match e {
            Entry::Cap(c) => m | 1 << c,
            Entry::All => m,
        })
    };
    Ok(if adds.contains(&Entry::All) {
        all_mask() & !mask(&drops)
    } else if drops.contains(&Entry::All) {
        mask(&adds)
    } else {
        (docker_default_mask() & !mask(&drops)) | mask(&adds)
    })
}

/// A capability set to apply in the child (plain data, no allocation).
#[derive(Debug, Clone, Copy)]
pub struct CapSet {
    pub keep: u64,
    pub last_cap: u32,
}

impl CapSet {
    /// Drops every capability outside `keep` from the bounding set. Call while still privileged.
    /// Raw system calls only: usable in the child of a raw `clone`.
    pub fn drop_bounding(&self) -> rustix::io::Result<()> {
        for cap in 0..=self.last_cap {
            if self.keep & (1 << cap) == 0 {
                rustix::thread::remove_capability_from_bounding_set(one(cap))?;
            }
        }
        Ok(())
    }

    /// Sets permitted and effective to `keep`, inheritable and ambient to nothing.
    pub fn apply(&self) -> rustix::io::Result<()> {
        let _ = rustix::thread::clear_ambient_capability_set();
        let keep = CapabilitySet::from_bits_retain(self.keep);
        rustix::thread::set_capabilities(
            None,
            CapabilitySets {
                effective: keep,
                permitted: keep,
                inheritable: CapabilitySet::empty(),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_with_or_without_prefix_any_case() {
        assert_eq!(number("CAP_NET_ADMIN"), Some(12));
        assert_eq!(number("net_admin"), Some(12));
        assert_eq!(number("Sys_Admin"), Some(21));
        assert_eq!(number("ALL"), None);
        assert_eq!(number("CAP_NOPE"), None);
    }

    #[test]
    fn docker_tweak_rules() {
        let def = docker_default_mask();
        assert_eq!(tweak(&[], &[], false).unwrap(), def);
        assert_eq!(tweak(&[], &s(&["ALL"]), false).unwrap(), 0);
        assert_eq!(
            tweak(&s(&["net_admin"]), &s(&["all"]), false).unwrap(),
            1 << 12
        );
        assert_eq!(
            tweak(&s(&["ALL"]), &s(&["CAP_SYS_ADMIN"]), false).unwrap(),
            all_mask() & !(1 << 21)
        );
        let t = tweak(&s(&["SYS_ADMIN"]), &s(&["chown", "CAP_MKNOD"]), false).unwrap();
        assert_eq!(t, (def & !(1 | 1 << 27)) | 1 << 21);
        // --privileged: everything, drops ignored (names still validated).
        assert_eq!(tweak(&[], &s(&["ALL"]), true).unwrap(), all_mask());
        assert_eq!(
            tweak(&s(&["FOO"]), &[], false).unwrap_err(),
            "invalid CapAdd: unknown capability: \"CAP_FOO\""
        );
        assert_eq!(
            tweak(&[], &s(&["cap_bar"]), true).unwrap_err(),
            "invalid CapDrop: unknown capability: \"CAP_BAR\""
        );
    }
}
