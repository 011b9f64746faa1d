//! Reading a finished run: how its command ended, or which setup step failed ([`outcome`]), from
//! what the children wrote on the shared page and PID 1's wait status; and the timing trace.

use std::io;
use std::sync::atomic::Ordering;

use rustix::process::WaitStatus;

use crate::error::{Error, Result};
use crate::init::{Mark, Shared, Stage};
use crate::spec::{ExitStatus, Pid1};

/// How the run ended: the command's status, or the children's setup or exec failure.
pub(crate) fn outcome(
    shared: &Shared,
    status: WaitStatus,
    pid1: Pid1,
    program: &str,
) -> Result<ExitStatus> {
    let stage = shared.stage.load(Ordering::SeqCst);
    if stage != 0 {
        let errno = shared.errno.load(Ordering::SeqCst);
        let index = shared.index.load(Ordering::SeqCst);
        let name = Stage::from_repr(stage).map_or("?", Stage::name);
        return Err(Error::setup(
            format!("{name} (step {index})"),
            io::Error::from_raw_os_error(errno),
        ));
    }
    let exec_errno = shared.exec_errno.load(Ordering::SeqCst);
    if exec_errno != 0 {
        return Err(Error::Exec {
            program: program.to_string(),
            source: io::Error::from_raw_os_error(exec_errno),
        });
    }
    let value = shared.status.load(Ordering::SeqCst);
    match shared.status_kind.load(Ordering::SeqCst) {
        1 => Ok(ExitStatus::Code(value)),
        2 => Ok(ExitStatus::Signal(value)),
        // PID 1 killed (the command, or the init: the OOM killer may pick it, as it counts the pages
        // it shares with hoist): the whole sandbox died of that signal.
        _ if status.terminating_signal().is_some() => {
            Ok(ExitStatus::Signal(status.terminating_signal().unwrap_or(0)))
        }
        // The command was PID 1: its own status.
        _ if pid1 == Pid1::Command => Ok(ExitStatus::Code(status.exit_status().unwrap_or(0))),
        _ => Err(Error::setup(
            "the sandbox's init exited without a status",
            io::Error::other(format!("exit code {}", status.exit_status().unwrap_or(0))),
        )),
    }
}

/// Prints the run's phases (`HOIST_RUNTIME_TRACE`), in microseconds since `run` was called.
pub(crate) fn trace(start: u64, clone: u64, shared: &Shared, reaped: u64, end: u64) {
    let us = |t: u64| t.saturating_sub(start) / 1000;
    let mut line = format!("hoist-runtime trace (us): clone {}", us(clone));
    for mark in Mark::ALL {
        let t = shared.marks[mark as usize].load(Ordering::SeqCst);
        line.push_str(&format!(", {mark} {}", us(t)));
    }
    line.push_str(&format!(", reaped {}, returned {}", us(reaped), us(end)));
    eprintln!("{line}");
}
