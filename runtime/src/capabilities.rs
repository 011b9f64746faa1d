//! Capabilities: Docker's default set, applied as the bounding set (everyone) and as the permitted,
//! effective and inheritable sets of a root process. A non-root user ends up with none, as in Docker.

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

/// A capability set to apply in the child (plain data, no allocation).
#[derive(Debug, Clone, Copy)]
pub struct CapSet {
    pub keep: u64,
    pub last_cap: u32,
}

impl CapSet {
    /// Docker's defaults on this kernel.
    pub fn docker_default() -> Self {
        let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(40);
        CapSet {
            keep: DOCKER_DEFAULT.iter().fold(0, |m, (c, _)| m | 1 << c),
            last_cap,
        }
    }

    /// Drops every capability outside `keep` from the bounding set. Call while still privileged.
    pub fn drop_bounding(&self) -> bool {
        for cap in 0..=self.last_cap {
            if self.keep & (1 << cap) == 0
                && unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } != 0
            {
                return false;
            }
        }
        true
    }

    /// Sets permitted, effective and inheritable to `keep`, and clears the ambient set.
    pub fn apply(&self) -> bool {
        #[repr(C)]
        struct Header {
            version: u32,
            pid: i32,
        }
        #[repr(C)]
        #[derive(Clone, Copy)]
        struct Data {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        let header = Header {
            version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
            pid: 0,
        };
        let lo = self.keep as u32;
        let hi = (self.keep >> 32) as u32;
        let data = [
            Data {
                effective: lo,
                permitted: lo,
                inheritable: 0,
            },
            Data {
                effective: hi,
                permitted: hi,
                inheritable: 0,
            },
        ];
        unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL,
                0,
                0,
                0,
            );
            libc::syscall(libc::SYS_capset, &header as *const Header, data.as_ptr()) == 0
        }
    }
}
