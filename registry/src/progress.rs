//! Transfer progress: an indicatif bar per blob on a terminal, plain timestamped lines otherwise,
//! or nothing (`--quiet`).

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::client::OnBytes;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// Bars when stderr is a terminal, lines otherwise.
    Auto,
    /// Bars.
    Tty,
    /// `HH:MM:SS id: status` lines on stderr.
    Plain,
    /// Nothing.
    Quiet,
}

/// The progress display of one command.
#[derive(Clone)]
pub struct Progress {
    mode: ProgressMode,
    multi: Option<MultiProgress>,
}

impl Progress {
    pub fn new(mode: ProgressMode) -> Progress {
        let mode = match mode {
            ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Tty,
            ProgressMode::Auto => ProgressMode::Plain,
            m => m,
        };
        let multi = (mode == ProgressMode::Tty)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Progress { mode, multi }
    }

    /// A status line not tied to a blob (`Digest: ...`).
    pub fn message(&self, text: &str) {
        match (&self.mode, &self.multi) {
            (ProgressMode::Quiet, _) => {}
            (_, Some(m)) => {
                let _ = m.println(text);
            }
            _ => eprintln!("{} {text}", timestamp()),
        }
    }

    /// Starts tracking one blob (`id` is its short digest).
    pub fn blob(&self, id: &str, total: u64, status: &str) -> BlobProgress {
        let bar = self.multi.as_ref().map(|m| {
            let bar = m.add(ProgressBar::new(total));
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix}: {msg:<12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(id.to_string());
            bar.set_message(status.to_string());
            bar
        });
        if self.mode == ProgressMode::Plain {
            eprintln!("{} {id}: {status}", timestamp());
        }
        BlobProgress {
            id: id.to_string(),
            mode: self.mode,
            bar,
        }
    }
}

/// One blob's bar or lines.
pub struct BlobProgress {
    id: String,
    mode: ProgressMode,
    bar: Option<ProgressBar>,
}

impl BlobProgress {
    /// The byte counter to hand to the client.
    pub fn on_bytes(&self) -> OnBytes {
        match &self.bar {
            Some(bar) => {
                let bar = bar.clone();
                Arc::new(move |n| {
                    if n >= 0 {
                        bar.inc(n as u64)
                    } else {
                        bar.set_position(bar.position().saturating_sub(n.unsigned_abs()))
                    }
                })
            }
            None => crate::client::no_progress(),
        }
    }

    /// Ends the blob with a final status (`Pull complete`, `Pushed`, `Layer already exists`).
    pub fn finish(self, status: &str) {
        if let Some(bar) = &self.bar {
            bar.set_style(ProgressStyle::with_template("{prefix}: {msg}").expect("valid template"));
            bar.finish_with_message(status.to_string());
        } else if self.mode == ProgressMode::Plain {
            eprintln!("{} {}: {status}", timestamp(), self.id);
        }
    }
}

/// `HH:MM:SS` in UTC.
fn timestamp() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let s = secs % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}
