//! Compiles Docker's default seccomp profile for Docker's default capabilities (src/capabilities.rs)
//! to BPF for the target architecture with the runtime's own compiler (src/seccomp_profile.rs,
//! included here), and writes the programs as Rust constants, so no default run compiles them.

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
    let programs = seccomp_profile::compile(
        &seccomp_profile::docker_default(),
        &arch,
        capabilities::docker_default_mask(),
    )
    .expect("compiling the seccomp profile");
    let mut out = String::from("static PROGRAMS: &[&[libc::sock_filter]] = &[\n");
    for prog in programs {
        writeln!(out, "    &[").unwrap();
        for (code, jt, jf, k) in prog {
            writeln!(out, "        insn({code}, {jt}, {jf}, {k}),").unwrap();
        }
        writeln!(out, "    ],").unwrap();
    }
    out.push_str("];\n");
    let path = std::path::Path::new(&std::env::var("OUT_DIR").unwrap()).join("seccomp_bpf.rs");
    std::fs::write(path, out).unwrap();
}
