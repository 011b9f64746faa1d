//! Small files created on worker threads while the layer tar is written. Creating a file is the
//! costly part of laying a layer down (inode allocation: on an ext4 without a journal, it scans past
//! every inode freed in the last minute), and creations in one directory serialize on its lock, so
//! each directory's files go to one worker and different directories' to different workers.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

use anyhow::{Result, anyhow};
use rustix::fs::{Mode, OFlags, Timespec, Timestamps};

/// One file to create.
pub struct Job {
    pub dir: Arc<OwnedFd>,
    pub name: Vec<u8>,
    pub data: Vec<u8>,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub mtime: i64,
}

/// Workers, each fed through a bounded queue (at most [`QUEUE`] files in flight per worker).
pub struct Pool {
    lanes: Vec<SyncSender<Job>>,
    workers: Vec<JoinHandle<Result<()>>>,
    next: usize,
}

const QUEUE: usize = 64;

fn os(b: &[u8]) -> &std::ffi::OsStr {
    std::os::unix::ffi::OsStrExt::from_bytes(b)
}

/// The timestamps of a layer entry (atime = mtime, whole seconds).
pub fn times(mtime: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// Owner then mode (a chown clears set-id bits) of an open file or directory.
pub fn own(fd: impl AsFd, uid: u32, gid: u32, mode: u32) -> std::io::Result<()> {
    rustix::fs::fchown(
        &fd,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
    )?;
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
    Ok(())
}

/// Creates `name` in `dir` (it must not exist) with `data`, owner, mode and mtime.
pub fn write_file(dir: BorrowedFd<'_>, job: &Job) -> std::io::Result<()> {
    let fd = rustix::fs::openat(
        dir,
        os(&job.name),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    let mut f = std::fs::File::from(fd);
    std::io::Write::write_all(&mut f, &job.data)?;
    own(&f, job.uid, job.gid, job.mode)?;
    rustix::fs::futimens(&f, &times(job.mtime))?;
    Ok(())
}

impl Pool {
    /// `n` workers (at least one).
    pub fn new(n: usize) -> Pool {
        let (lanes, workers) = (0..n.max(1))
            .map(|_| {
                let (tx, rx) = sync_channel::<Job>(QUEUE);
                let h = std::thread::spawn(move || -> Result<()> {
                    for job in rx {
                        write_file(job.dir.as_fd(), &job).map_err(|e| {
                            anyhow!("creating {}: {e}", String::from_utf8_lossy(&job.name))
                        })?;
                    }
                    Ok(())
                });
                (tx, h)
            })
            .unzip();
        Pool {
            lanes,
            workers,
            next: 0,
        }
    }

    /// A worker for the next directory's files.
    pub fn lane(&mut self) -> usize {
        self.next = (self.next + 1) % self.lanes.len();
        self.next
    }

    /// Queues `job` on worker `lane`; fails if that worker stopped (its error comes from
    /// [`Pool::finish`]).
    pub fn send(&self, lane: usize, job: Job) -> Result<()> {
        self.lanes[lane]
            .send(job)
            .map_err(|_| anyhow!("a file-creating worker stopped"))
    }

    /// Waits for every queued file; the first worker error, if any.
    pub fn finish(self) -> Result<()> {
        drop(self.lanes);
        let mut first = Ok(());
        for h in self.workers {
            let r = h
                .join()
                .unwrap_or_else(|_| Err(anyhow!("a file-creating worker panicked")));
            if first.is_ok() {
                first = r;
            }
        }
        first
    }
}
