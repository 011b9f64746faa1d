//! RUN at solve time: the runtime spec of an exec over the layers below, its output streamed into
//! progress, its exit status as BuildKit words it.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Result, anyhow, bail};
use hoist_runtime as rt;

use super::{ChainResult, Solver};
use crate::plan::{ExecOp, NetworkMode};
use crate::progress::Vertex;

impl Solver {
    pub(super) fn exec(
        &self,
        e: &ExecOp,
        lowers: Vec<PathBuf>,
        upper: &Path,
        work: &Path,
        wait: &dyn Fn(usize) -> Result<Arc<ChainResult>>,
        v: &Vertex,
    ) -> Result<()> {
        fs::create_dir_all(work)?;
        let prepared = self.prepare_mounts(e, wait)?;
        let mut env: Vec<String> = e
            .env
            .iter()
            .filter(|kv| {
                let k = kv.split('=').next().unwrap_or("");
                !prepared.env.iter().any(|x| x.split('=').next() == Some(k))
            })
            .cloned()
            .collect();
        env.extend(prepared.env.iter().cloned());
        let spec = rt::Spec {
            rootfs: rt::Rootfs::Overlay {
                lowers,
                upper: upper.to_path_buf(),
                work: work.to_path_buf(),
            },
            process: rt::Process {
                args: e.args.clone(),
                env,
                cwd: e.cwd.clone(),
                user: e.user.clone(),
                rlimits: prepared.rlimits.clone(),
                ..Default::default()
            },
            hostname: e
                .sandbox
                .hostname
                .clone()
                .unwrap_or_else(|| rt::BUILD_HOSTNAME.into()),
            flavor: rt::Flavor::Build,
            network: match e.network {
                NetworkMode::Host => rt::Network::Host,
                NetworkMode::None => rt::Network::None,
            },
            mounts: prepared.mounts.clone(),
            etc: rt::EtcFiles {
                hosts: prepared.hosts.clone(),
                ..Default::default()
            },
            // BuildKit's RUN may gain privileges (setuid binaries work, no no_new_privs).
            security: rt::Security {
                no_new_privileges: false,
                ..Default::default()
            },
            ..Default::default()
        };
        let (out_r, out_w) = rustix::pipe::pipe()?;
        let (err_r, err_w) = rustix::pipe::pipe()?;
        let (out_r, err_r) = (fs::File::from(out_r), fs::File::from(err_r));
        let done = std::sync::atomic::AtomicBool::new(false);
        let status = std::thread::scope(|s| {
            let runner = s.spawn(|| {
                let st = rt::run(
                    &spec,
                    rt::Stdio::Fds {
                        stdin: None,
                        stdout: out_w,
                        stderr: err_w,
                    },
                );
                done.store(true, std::sync::atomic::Ordering::SeqCst);
                st
            });
            // Stream output while the process runs; stop at EOF on both pipes, or shortly after the
            // run returned even if something still holds a write end.
            pump_output(&[&out_r, &err_r], &done, v);
            runner
                .join()
                .unwrap_or_else(|_| Err(rt::Error::Invalid("runtime thread panicked".into())))
        });
        drop(prepared);
        let status = status.map_err(|e| anyhow!("{e}"))?;
        if !status.success() {
            // BuildKit: `process %q did not complete successfully` (Go-quoted: `\n` shows as
            // `\\n`, quotes as `\"`, a tab as `\t`).
            bail!(
                "process {} did not complete successfully: exit code: {}",
                hoist_parser::dump::go_quote(&e.args.join(" ")),
                status.code()
            );
        }
        Ok(())
    }
}

/// Reads lines from the pipes into the vertex log until every pipe is at EOF, or `done` is set and
/// nothing more arrives for a moment.
fn pump_output(pipes: &[&fs::File], done: &std::sync::atomic::AtomicBool, v: &Vertex) {
    use rustix::event::{PollFd, PollFlags, poll};
    use std::io::Read;
    let mut bufs: Vec<Vec<u8>> = vec![Vec::new(); pipes.len()];
    let mut open: Vec<bool> = vec![true; pipes.len()];
    let mut idle_after_done = 0;
    while open.iter().any(|o| *o) {
        let mut fds: Vec<PollFd> = pipes
            .iter()
            .zip(&open)
            .filter(|(_, o)| **o)
            .map(|(p, _)| PollFd::new(*p, PollFlags::IN))
            .collect();
        let idx: Vec<usize> = (0..pipes.len()).filter(|i| open[*i]).collect();
        let timeout = rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: 100_000_000,
        };
        let n = poll(&mut fds, Some(&timeout)).unwrap_or(0);
        let ready: Vec<bool> = fds.iter().map(|f| !f.revents().is_empty()).collect();
        drop(fds);
        if n == 0 {
            if done.load(std::sync::atomic::Ordering::SeqCst) {
                idle_after_done += 1;
                if idle_after_done > 5 {
                    break;
                }
            }
            continue;
        }
        for (k, i) in idx.into_iter().enumerate() {
            if !ready[k] {
                continue;
            }
            let mut chunk = [0u8; 8192];
            match { pipes[i] }.read(&mut chunk) {
                Ok(0) | Err(_) => open[i] = false,
                Ok(m) => {
                    bufs[i].extend_from_slice(&chunk[..m]);
                    while let Some(pos) = bufs[i].iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = bufs[i].drain(..=pos).collect();
                        v.log(String::from_utf8_lossy(&line[..line.len() - 1]).as_ref());
                    }
                }
            }
        }
    }
    for b in bufs {
        if !b.is_empty() {
            v.log(&String::from_utf8_lossy(&b));
        }
    }
}
