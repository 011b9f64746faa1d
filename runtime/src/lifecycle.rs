//! Acting on a detached container from another `hoist` process: its PID 1 found through its monitor,
//! `stop` (the stop signal, then SIGKILL after the timeout), `kill`, and `rm [-f]`.

use std::fs;
use std::time::{Duration, Instant};

use crate::state::{Containers, State};

/// The container's PID 1 as seen from here: the monitor's child.
pub fn pid1(monitor: u32) -> Option<i32> {
    let tasks = fs::read_dir(format!("/proc/{monitor}/task")).ok()?;
    tasks.flatten().find_map(|t| {
        let children = fs::read_to_string(t.path().join("children")).ok()?;
        children.split_whitespace().next()?.parse().ok()
    })
}

/// Sends `signal` to the container's PID 1 (a PID 1 only gets the signals it handles, SIGKILL
/// always, as in Docker).
pub fn kill(state: &State, signal: i32) -> Result<(), String> {
    let pid = pid1(state.pid).ok_or_else(|| format!("container {} is not running", state.id))?;
    // SAFETY: kill takes no pointers; `pid` is the monitor's child, the container's PID 1.
    if unsafe { libc::kill(pid, signal) } != 0 {
        return Err(format!(
            "cannot kill container {}: {}",
            state.id,
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Waits up to `timeout` for the monitor to record the end; the state then.
fn wait_exited(containers: &Containers, id: &str, timeout: Duration) -> Option<State> {
    let deadline = Instant::now() + timeout;
    loop {
        match containers.load(id) {
            Ok(s) if !s.running => return Some(s),
            Err(_) => return None, // removed (--rm)
            Ok(_) => {}
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `docker stop`: `signal`, then SIGKILL once `timeout` has passed (a negative timeout waits
/// forever). Stopping a container that is not running is not an error.
pub fn stop(
    containers: &Containers,
    state: &State,
    signal: i32,
    timeout: i64,
) -> Result<(), String> {
    if !state.running {
        return Ok(());
    }
    let _ = kill(state, signal);
    let wait = if timeout < 0 {
        Duration::from_secs(u64::MAX / 4)
    } else {
        Duration::from_secs(timeout as u64)
    };
    if wait_exited(containers, &state.id, wait).is_some() || !containers.monitor_alive(&state.id) {
        return Ok(());
    }
    let _ = kill(state, libc::SIGKILL);
    match wait_exited(containers, &state.id, Duration::from_secs(30)) {
        Some(_) => Ok(()),
        None if !containers.monitor_alive(&state.id) => Ok(()),
        None => Err(format!(
            "cannot stop container {}: it did not exit",
            state.id
        )),
    }
}

/// `docker rm [-f]`: a running container needs `force` (then it is killed first).
pub fn remove(containers: &Containers, state: &State, force: bool) -> Result<(), String> {
    if state.running {
        if !force {
            return Err(format!(
                "cannot remove container \"/{}\": container is running: stop the container \
                 before removing or force remove",
                state.name
            ));
        }
        stop(containers, state, libc::SIGKILL, 10)?;
    }
    match containers.remove(&state.id) {
        Err(_) if !containers.dir(&state.id).exists() => Ok(()), // --rm got there first
        r => r,
    }
}
