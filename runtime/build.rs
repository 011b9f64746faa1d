//! Compiles Docker's default seccomp profile (src/seccomp_profile.rs) for Docker's default
//! capabilities (src/capabilities.rs) to BPF for the target architecture and writes it as Rust
//! constants, so no default run pays for compiling it.

#[allow(dead_code)]
#[path = "src/seccomp_profile.rs"]
mod seccomp_profile;

#[allow(dead_code)]
#[path = "src/capabilities.rs"]
mod capabilities;

use std::fmt::Write;

fn main() {
    println!("cargo:rerun-if-changed=src/seccomp_profile.rs");
    println!("cargo:rerun-if-changed=src/capabilities.rs");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").expect("CARGO_CFG_TARGET_ARCH");
    let (main, clone3) = seccomp_profile::compile(&arch, capabilities::docker_default_mask())
        .expect("compiling the seccomp profile");
    let mut out = String::new();
    for (name, prog) in [("MAIN", main), ("CLONE3", clone3)] {
        writeln!(out, "static {name}: &[libc::sock_filter] = &[").unwrap();
        for (code, jt, jf, k) in prog {
            writeln!(out, "    insn({code}, {jt}, {jf}, {k}),").unwrap();
        }
        writeln!(out, "];").unwrap();
    }
    let path = std::path::Path::new(&std::env::var("OUT_DIR").unwrap()).join("seccomp_bpf.rs");
    std::fs::write(path, out).unwrap();
}
