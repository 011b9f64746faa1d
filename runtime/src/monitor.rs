//! A detached container's monitor (conmon-like): it owns the container's PID 1, writes its stdout
//! and stderr to a json-file log (one `{"log","stream","time"}` object per line, rotated once past a
//! size cap), and returns the exit code for the caller to record. Signals sent to the monitor are
//! forwarded to the container by [`crate::run_foreground`].

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::spec::{Spec, Stdio};
use crate::state::{now, rfc3339};

/// Docker's json-file default is unbounded; hoist caps each file at this size and keeps one rotated
/// file (`container.log.1`).
pub const LOG_MAX_BYTES: u64 = 10 * 1024 * 1024;

/// The json-file log being written.
struct Log {
    path: PathBuf,
    file: File,
    size: u64,
    max: u64,
}

impl Log {
    fn open(path: &Path, max: u64) -> std::io::Result<Log> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(Log {
            path: path.to_path_buf(),
            file,
            size,
            max,
        })
    }

    fn write_line(&mut self, stream: &str, line: &[u8]) -> std::io::Result<()> {
        let mut record = serde_json::to_vec(&serde_json::json!({
            "log": String::from_utf8_lossy(line),
            "stream": stream,
            "time": rfc3339(now()),
        }))?;
        record.push(b'\n');
        if self.size > 0 && self.size + record.len() as u64 > self.max {
            let rotated = self.path.with_extension("log.1");
            fs::rename(&self.path, rotated)?;
            *self = Log::open(&self.path, self.max)?;
        }
        self.file.write_all(&record)?;
        self.size += record.len() as u64;
        Ok(())
    }
}

/// One json-file record, as `hoist logs` reads it back.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Record {
    pub log: String,
    pub stream: String,
    pub time: String,
}

/// Reads `path`'s records (the rotated file first when there is one).
pub fn read_log(path: &Path) -> Vec<Record> {
    let mut out = Vec::new();
    for p in [path.with_extension("log.1"), path.to_path_buf()] {
        if let Ok(f) = File::open(&p) {
            for line in BufReader::new(f).lines().map_while(Result::ok) {
                if let Ok(r) = serde_json::from_str(&line) {
                    out.push(r);
                }
            }
        }
    }
    out
}

/// Runs `spec` to completion with its output logged to `log`. Stdin is /dev/null, or with
/// `open_stdin` (`-i`) a pipe the monitor keeps open, so the command never sees its end (as
/// Docker's `-di`). Returns Docker's exit code (128 + signal when killed).
pub fn run_logged(spec: &Spec, log: &Path, max: u64, open_stdin: bool) -> crate::Result<i32> {
    let log = Arc::new(Mutex::new(Log::open(log, max).map_err(|e| {
        crate::Error::Invalid(format!("opening the log {}: {e}", log.display()))
    })?));
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let readers: Vec<_> = [(out_r, "stdout"), (err_r, "stderr")]
        .into_iter()
        .map(|(fd, stream)| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(File::from(fd));
                let mut line = Vec::new();
                while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                    if let Ok(mut l) = log.lock() {
                        let _ = l.write_line(stream, &line);
                    }
                    line.clear();
                }
            })
        })
        .collect();
    let (stdin, _stdin_writer) = if open_stdin {
        let (r, w) = pipe()?;
        (Some(r), Some(w))
    } else {
        (None, None)
    };
    let status = crate::run_foreground(
        spec,
        Stdio::Fds {
            stdin,
            stdout: out_w,
            stderr: err_w,
        },
    );
    for r in readers {
        let _ = r.join();
    }
    Ok(status?.code())
}

fn pipe() -> crate::Result<(OwnedFd, OwnedFd)> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| crate::Error::Invalid(format!("creating a pipe: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_rotate_past_the_cap() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("container.log");
        let mut log = Log::open(&path, 200).unwrap();
        for i in 0..5 {
            log.write_line("stdout", format!("line {i}\n").as_bytes())
                .unwrap();
        }
        assert!(path.with_extension("log.1").exists(), "not rotated");
        let records = read_log(&path);
        assert_eq!(records.last().unwrap().log, "line 4\n");
        assert_eq!(records.last().unwrap().stream, "stdout");
        assert!(fs::metadata(&path).unwrap().len() <= 200);
    }
}
