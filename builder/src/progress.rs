//! Build progress: BuildKit's plain lines (`#N [stage i/n] INSTRUCTION`, `#N 0.123 output`,
//! `#N CACHED`, `#N DONE 0.3s`), live indicatif spinners on a terminal, or nothing.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// How progress is shown (`--progress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Plain,
    Tty,
    Quiet,
}

impl Mode {
    /// `auto|tty|plain|quiet` (and `rawjson` is not supported). `auto` picks tty when stderr is one.
    pub fn parse(s: &str) -> Option<Mode> {
        use std::io::IsTerminal;
        match s {
            "auto" => Some(if std::io::stderr().is_terminal() {
                Mode::Tty
            } else {
                Mode::Plain
            }),
            "tty" => Some(Mode::Tty),
            "plain" => Some(Mode::Plain),
            "quiet" => Some(Mode::Quiet),
            _ => None,
        }
    }
}

/// The progress sink shared by every running step.
pub struct Progress {
    mode: Mode,
    next: AtomicUsize,
    out: Mutex<Box<dyn Write + Send>>,
    multi: Option<MultiProgress>,
}

/// One vertex (FROM, RUN, COPY...) as progress shows it.
pub struct Vertex {
    id: usize,
    name: String,
    start: Instant,
    bar: Option<ProgressBar>,
    progress: Arc<Progress>,
    tail: Mutex<VecDeque<String>>,
}

impl Progress {
    /// Progress in `mode`, written to stderr.
    pub fn new(mode: Mode) -> Arc<Progress> {
        Progress::with_writer(mode, Box::new(std::io::stderr()))
    }

    /// Progress written to `out` (plain mode) — for tests.
    pub fn with_writer(mode: Mode, out: Box<dyn Write + Send>) -> Arc<Progress> {
        let multi = (mode == Mode::Tty).then(MultiProgress::new);
        Arc::new(Progress {
            mode,
            next: AtomicUsize::new(1),
            out: Mutex::new(out),
            multi,
        })
    }

    fn line(&self, s: &str) {
        if self.mode == Mode::Plain {
            let mut o = self.out.lock().unwrap();
            let _ = writeln!(o, "{s}");
            let _ = o.flush();
        }
    }

    /// Prints a free-standing message (warnings, "writing image").
    pub fn message(&self, s: &str) {
        match (&self.multi, self.mode) {
            (Some(m), _) => {
                let _ = m.println(s);
            }
            (None, Mode::Plain) => self.line(s),
            _ => {}
        }
    }

    /// Starts a vertex named `name` (printed at once).
    pub fn vertex(self: &Arc<Self>, name: &str) -> Vertex {
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        self.line(&format!("#{id} {name}"));
        let bar = self.multi.as_ref().map(|m| {
            let b = m.add(ProgressBar::new_spinner());
            b.set_style(
                ProgressStyle::with_template("{spinner} {prefix} {msg} {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b.set_prefix(name.to_string());
            b.enable_steady_tick(Duration::from_millis(100));
            b
        });
        Vertex {
            id,
            name: name.to_string(),
            start: Instant::now(),
            bar,
            progress: self.clone(),
            tail: Mutex::new(VecDeque::new()),
        }
    }
}

impl Vertex {
    /// One line of the step's output.
    pub fn log(&self, line: &str) {
        let t = self.start.elapsed().as_secs_f64();
        self.progress.line(&format!("#{} {t:.3} {line}", self.id));
        if let Some(b) = &self.bar {
            b.set_message(line.chars().take(60).collect::<String>());
        }
        let mut tail = self.tail.lock().unwrap();
        // BuildKit's failure report shows each line with its time, as progress does.
        tail.push_back(format!("{t:.3} {line}"));
        if tail.len() > 10 {
            tail.pop_front();
        }
    }

    /// A status line without a timestamp, as BuildKit prints transfers
    /// (`#3 transferring context: 2.05kB done`).
    pub fn status(&self, line: &str) {
        self.progress.line(&format!("#{} {line}", self.id));
        if let Some(b) = &self.bar {
            b.set_message(line.to_string());
        }
    }

    /// Time since the vertex started.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// The last lines of output (for failure reports).
    pub fn tail(&self) -> Vec<String> {
        self.tail.lock().unwrap().iter().cloned().collect()
    }

    /// The step was a cache hit.
    pub fn cached(self) {
        self.progress.line(&format!("#{} CACHED", self.id));
        if let Some(b) = &self.bar {
            b.finish_with_message("CACHED");
        }
    }

    /// The step finished.
    pub fn done(self) {
        let t = self.start.elapsed().as_secs_f64();
        self.progress.line(&format!("#{} DONE {t:.1}s", self.id));
        if let Some(b) = &self.bar {
            b.finish_with_message(format!("DONE {t:.1}s"));
        }
    }

    /// The step failed.
    pub fn error(self, msg: &str) {
        self.progress.line(&format!("#{} ERROR: {msg}", self.id));
        if let Some(b) = &self.bar {
            b.abandon_with_message(format!("ERROR: {msg}"));
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}
