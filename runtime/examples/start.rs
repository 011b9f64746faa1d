//! One sandbox start-to-exit on a directory: `start ROOTFS_LOWER [ARGS...]` runs ARGS (default `true`)
//! with ROOTFS_LOWER as the only overlay lower and a fresh upper, network none. Used by
//! bench/run-start.sh, one process per run like `runc run`; rootless when started unprivileged.

use hoist_runtime::{Process, Rootfs, Spec, Stdio, run};

fn main() {
    // Unprivileged (bench/run-start.sh's rootless runs): into a user namespace first, as hoist does.
    hoist_runtime::userns::enter();
    let mut args = std::env::args().skip(1);
    let lower = args.next().expect("usage: start ROOTFS [ARGS...]");
    let mut argv: Vec<String> = args.collect();
    if argv.is_empty() {
        argv.push("true".into());
    }
    let tmp = std::env::temp_dir().join(format!("hoist-start-{}", std::process::id()));
    let (upper, work) = (tmp.join("upper"), tmp.join("work"));
    std::fs::create_dir_all(&upper).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    let spec = Spec {
        rootfs: Rootfs::Overlay {
            lowers: vec![lower.into()],
            upper,
            work,
        },
        process: Process {
            args: argv,
            ..Default::default()
        },
        network: if std::env::var_os("START_NET_HOST").is_some() {
            hoist_runtime::Network::Host
        } else {
            hoist_runtime::Network::None
        },
        ..Default::default()
    };
    let t = std::time::Instant::now();
    let status = run(&spec, Stdio::Inherit);
    if std::env::var_os("START_TIME").is_some() {
        eprintln!("run() took {:?}", t.elapsed());
    }
    let _ = std::fs::remove_dir_all(&tmp);
    match status {
        Ok(s) => std::process::exit(s.code()),
        Err(e) => {
            eprintln!("start: {e}");
            std::process::exit(e.exit_code());
        }
    }
}
