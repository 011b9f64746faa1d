//! Detached containers' state on disk: one directory per container under the store's `containers/`
//! (`<id>/state.json`, written atomically by rename), one lock per container (`<id>/monitor.lock`,
//! held by its monitor for as long as it lives), and a lock for the name table (`names.lock`). A
//! state that says "running" whose monitor lock is free belongs to a dead monitor: it reads as
//! exited, never as a stale "running".

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::fs::{FlockOperation, flock};
use serde::{Deserialize, Serialize};

/// What `ps`/`inspect` know of a container.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct State {
    pub id: String,
    pub name: String,
    pub image: String,
    /// The command as `ps` shows it (arguments joined by spaces).
    pub command: String,
    /// The command line (`Path` and `Args` of `inspect`).
    #[serde(default)]
    pub args: Vec<String>,
    /// The image's STOPSIGNAL (`stop` sends it; SIGTERM when unset).
    #[serde(default)]
    pub stop_signal: Option<String>,
    /// Unix time in nanoseconds.
    pub created: u128,
    pub running: bool,
    /// The monitor's process id while running.
    pub pid: u32,
    pub exit_code: i32,
    pub started: u128,
    pub finished: u128,
    /// `--rm`: the monitor removes the container when it exits.
    pub auto_remove: bool,
}

/// The directory holding every container's state.
#[derive(Debug, Clone)]
pub struct Containers {
    root: PathBuf,
}

/// Nanoseconds since the Unix epoch.
pub fn now() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// RFC 3339 in UTC with nanoseconds, as Docker prints times (`2026-12-03T20:54:24.123456789Z`).
pub fn rfc3339(nanos: u128) -> String {
    if nanos == 0 {
        return "0001-01-01T00:00:00Z".into();
    }
    let secs = (nanos / 1_000_000_000) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        nanos % 1_000_000_000
    )
}

fn io(what: &str, path: &Path, e: impl std::fmt::Display) -> String {
    format!("{what} {}: {e}", path.display())
}

impl Containers {
    pub fn new(root: PathBuf) -> Self {
        Containers { root }
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    fn state_path(&self, id: &str) -> PathBuf {
        self.dir(id).join("state.json")
    }

    /// The monitor's json-file log.
    pub fn log_path(&self, id: &str) -> PathBuf {
        self.dir(id).join("container.log")
    }

    /// Writes `state` atomically (a temporary file renamed over the old one).
    pub fn save(&self, state: &State) -> Result<(), String> {
        let path = self.state_path(&state.id);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let body = serde_json::to_vec_pretty(state).map_err(|e| e.to_string())?;
        let write = || -> std::io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        };
        write().map_err(|e| io("writing container state", &path, e))
    }

    /// The state of `id` as recorded, corrected for a monitor that died without recording an end.
    pub fn load(&self, id: &str) -> Result<State, String> {
        let path = self.state_path(id);
        let text = fs::read(&path).map_err(|e| io("reading container state", &path, e))?;
        let mut state: State =
            serde_json::from_slice(&text).map_err(|e| io("parsing container state", &path, e))?;
        if state.running && !self.monitor_alive(id) {
            state.running = false;
            state.exit_code = 137;
            if state.finished == 0 {
                state.finished = fs::metadata(self.dir(id).join("monitor.lock"))
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or_else(now, |d| d.as_nanos());
            }
        }
        Ok(state)
    }

    /// Every container with a state, newest first.
    pub fn list(&self) -> Result<Vec<State>, String> {
        let mut out = Vec::new();
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io("listing", &self.root, e)),
        };
        for entry in entries.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            if self.state_path(&id).exists()
                && let Ok(s) = self.load(&id)
            {
                out.push(s);
            }
        }
        out.sort_by_key(|s| std::cmp::Reverse(s.created));
        Ok(out)
    }

    /// The container named by a full id, a unique id prefix or a name (Docker's lookup order).
    pub fn find(&self, key: &str) -> Result<State, String> {
        let all = self.list()?;
        let key = key.strip_prefix('/').unwrap_or(key);
        if let Some(s) = all.iter().find(|s| s.id == key || s.name == key) {
            return Ok(s.clone());
        }
        let matches: Vec<_> = all.iter().filter(|s| s.id.starts_with(key)).collect();
        match matches.as_slice() {
            [one] if !key.is_empty() => Ok((*one).clone()),
            [] | [_] => Err(format!("No such container: {key}")),
            _ => Err(format!("multiple IDs found with provided prefix: {key}")),
        }
    }

    /// Takes the lock on the name table (held while a name is checked and claimed).
    pub fn lock_names(&self) -> Result<fs::File, String> {
        fs::create_dir_all(&self.root).map_err(|e| io("creating", &self.root, e))?;
        let path = self.root.join("names.lock");
        let f = fs::File::create(&path).map_err(|e| io("opening", &path, e))?;
        flock(&f, FlockOperation::LockExclusive).map_err(|e| io("locking", &path, e))?;
        Ok(f)
    }

    /// Docker's conflict error when `name` is taken (call with [`Self::lock_names`] held).
    pub fn check_name(&self, name: &str) -> Result<(), String> {
        let mut chars = name.chars();
        let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
            && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !ok {
            return Err(format!(
                "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            ));
        }
        match self.list()?.into_iter().find(|s| s.name == name) {
            Some(s) => Err(format!(
                "Conflict. The container name \"/{name}\" is already in use by container \"{}\". \
                 You have to remove (or rename) that container to be able to reuse that name.",
                s.id
            )),
            None => Ok(()),
        }
    }

    /// Takes this container's monitor lock for the life of the returned file (the monitor holds it).
    pub fn lock_monitor(&self, id: &str) -> Result<fs::File, String> {
        let path = self.dir(id).join("monitor.lock");
        let f = fs::File::create(&path).map_err(|e| io("opening", &path, e))?;
        flock(&f, FlockOperation::NonBlockingLockExclusive).map_err(|e| io("locking", &path, e))?;
        Ok(f)
    }

    /// Whether a monitor holds `id`'s lock.
    pub fn monitor_alive(&self, id: &str) -> bool {
        let Ok(f) = fs::File::open(self.dir(id).join("monitor.lock")) else {
            return false;
        };
        if flock(&f, FlockOperation::NonBlockingLockShared).is_ok() {
            let _ = flock(&f, FlockOperation::Unlock);
            false
        } else {
            true
        }
    }

    /// Removes the container's directory (its state, log and writable layer).
    pub fn remove(&self, id: &str) -> Result<(), String> {
        let dir = self.dir(id);
        fs::remove_dir_all(&dir).map_err(|e| io("removing", &dir, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(1), "1970-01-01T00:00:00.000000001Z");
        // 2024-02-29T12:34:56Z (a leap day).
        assert_eq!(
            rfc3339(1_709_210_096 * 1_000_000_000),
            "2024-02-29T12:34:56.000000000Z"
        );
    }

    #[test]
    fn save_load_find_and_dead_monitor() {
        let tmp = tempfile::tempdir().unwrap();
        let c = Containers::new(tmp.path().to_path_buf());
        let mut s = State {
            id: "abc123".into(),
            name: "web".into(),
            running: true,
            created: 5,
            ..Default::default()
        };
        fs::create_dir_all(c.dir("abc123")).unwrap();
        c.save(&s).unwrap();
        // No monitor holds the lock: it reads as exited.
        let got = c.load("abc123").unwrap();
        assert!(!got.running && got.exit_code == 137);
        let lock = c.lock_monitor("abc123").unwrap();
        assert!(c.find("abc").unwrap().running);
        assert_eq!(c.find("web").unwrap().id, "abc123");
        assert!(c.find("zz").unwrap_err().contains("No such container: zz"));
        assert!(
            c.check_name("web")
                .unwrap_err()
                .contains("\"/web\" is already in use")
        );
        drop(lock);
        s.running = false;
        c.save(&s).unwrap();
        assert_eq!(c.load("abc123").unwrap().exit_code, 0);
    }
}
