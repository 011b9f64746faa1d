//! The sandboxed process's privileges: its capability set, seccomp profile and no_new_privs, and
//! whether Docker's `--privileged` mounts apply (no masked or read-only /proc paths, /sys
//! read-write, the host's devices in /dev: those mounts are [`crate::mounts`]' and
//! [`crate::devices`]'). Must not touch: the mount plan itself.

use std::sync::Arc;

use crate::capabilities;
use crate::error::{Error, Result};
use crate::seccomp::{self, Filters};
use crate::seccomp_profile::Profile;

/// Privileges of the sandboxed process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Security {
    /// Capabilities kept (bit n = capability n): the bounding set, and the permitted and effective
    /// sets of a root process. Default: Docker's ([`crate::DEFAULT_CAPABILITIES`]).
    pub capabilities: u64,
    pub seccomp: Seccomp,
    /// Set no_new_privs (setuid binaries and file capabilities grant nothing).
    pub no_new_privileges: bool,
    /// Docker's `--privileged` mounts: /proc unmasked and writable where Docker protects it, /sys
    /// read-write, the host's device nodes. (Capabilities and seccomp are the fields above:
    /// [`Security::privileged`] sets them all.)
    pub privileged: bool,
    /// `--security-opt systempaths=unconfined`: no masked or read-only paths in /proc and /sys
    /// (as with `privileged`, which implies it).
    pub unmasked_paths: bool,
}

/// The seccomp filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Seccomp {
    /// Docker's default profile for the capability set.
    #[default]
    Default,
    /// None (`--security-opt seccomp=unconfined`, `--privileged`).
    Unconfined,
    /// A profile in Docker's JSON format (`--security-opt seccomp=FILE`), for the capability set.
    Profile(Arc<Profile>),
}

impl Seccomp {
    /// The profile in Docker's JSON format at `file`; errors name it.
    pub fn from_file(file: &str) -> std::result::Result<Seccomp, String> {
        crate::seccomp_json::load(file).map(|p| Seccomp::Profile(Arc::new(p)))
    }
}

impl Default for Security {
    /// Docker's capabilities and seccomp profile, with no_new_privs.
    fn default() -> Self {
        Security {
            capabilities: capabilities::docker_default_mask(),
            seccomp: Seccomp::Default,
            no_new_privileges: true,
            privileged: false,
            unmasked_paths: false,
        }
    }
}

impl Security {
    /// `docker run --privileged`: every capability, no seccomp, no no_new_privs, privileged mounts.
    /// In a user namespace (rootless) the capabilities are those of that namespace.
    pub fn privileged() -> Self {
        Security {
            capabilities: capabilities::all_mask(),
            seccomp: Seccomp::Unconfined,
            no_new_privileges: false,
            privileged: true,
            unmasked_paths: true,
        }
    }

    /// The seccomp filters to install in the child.
    pub(crate) fn filters(&self) -> Result<Filters> {
        match &self.seccomp {
            Seccomp::Default => seccomp::for_capabilities(self.capabilities),
            Seccomp::Profile(p) => seccomp::for_profile(p, self.capabilities),
            Seccomp::Unconfined => Ok(Filters::default()),
        }
        .map_err(|e| Error::Invalid(format!("seccomp profile: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_privileged() {
        let d = Security::default();
        assert_eq!(d.capabilities, capabilities::docker_default_mask());
        assert!(d.no_new_privileges && !d.privileged);
        let p = Security::privileged();
        assert_eq!(p.capabilities, capabilities::all_mask());
        assert_eq!(p.seccomp, Seccomp::Unconfined);
        let filters = p.filters().unwrap();
        assert!(filters.programs.is_empty());
    }
}
