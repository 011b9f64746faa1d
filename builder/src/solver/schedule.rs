//! The scheduler: runs a graph of jobs, each in its own thread, a job blocking only when it asks for
//! another's result ([`Scheduler::wait`]), so independent chains run in parallel and dependencies in
//! order. Knows nothing of what a job does (the solver's chains, or fake jobs in tests).
//!
//! A failed job's dependents get its error from `wait` and so never run past it. [`Scheduler::cancel`]
//! stops pending work: waits return an error, and jobs check [`Scheduler::is_cancelled`] between steps.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use anyhow::{Result, anyhow, bail};

type Slot<T> = Option<std::result::Result<Arc<T>, String>>;

/// The results of `n` jobs as they complete.
pub struct Scheduler<T> {
    slots: Mutex<Vec<Slot<T>>>,
    cv: Condvar,
    cancelled: AtomicBool,
}

/// What `wait` returns once the build is cancelled.
#[derive(Debug, thiserror::Error)]
#[error("build cancelled")]
pub struct Cancelled;

impl<T: Send + Sync> Scheduler<T> {
    pub fn new(jobs: usize) -> Scheduler<T> {
        Scheduler {
            slots: Mutex::new((0..jobs).map(|_| None).collect()),
            cv: Condvar::new(),
            cancelled: AtomicBool::new(false),
        }
    }

    /// Blocks until job `i` is done: its result, or its error as text.
    pub fn wait(&self, i: usize) -> Result<Arc<T>> {
        let mut g = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            match &g[i] {
                Some(Ok(r)) => return Ok(r.clone()),
                Some(Err(e)) => bail!("{e}"),
                None if self.is_cancelled() => return Err(Cancelled.into()),
                None => g = self.cv.wait(g).unwrap_or_else(|p| p.into_inner()),
            }
        }
    }

    /// Stops pending work: blocked and later `wait`s fail with [`Cancelled`].
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        let _g = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        self.cv.notify_all();
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Runs every job (`job(i, self)`) in its own thread and returns each one's result, in order.
    pub fn run<F>(&self, job: F) -> Vec<Result<Arc<T>>>
    where
        F: Fn(usize, &Scheduler<T>) -> Result<T> + Sync,
    {
        let n = self.slots.lock().unwrap_or_else(|p| p.into_inner()).len();
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..n)
                .map(|i| {
                    let job = &job;
                    s.spawn(move || {
                        let r = job(i, self).map(Arc::new);
                        let slot = match &r {
                            Ok(v) => Ok(v.clone()),
                            Err(e) => Err(format!("{e:#}")),
                        };
                        self.slots.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(slot);
                        self.cv.notify_all();
                        r
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow!("build thread panicked")))
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// A generous bound so that a wrong scheduler fails instead of hanging; never a timing assertion.
    const LIMIT: Duration = Duration::from_secs(20);

    #[test]
    fn independent_jobs_run_at_the_same_time() {
        // Each job waits until the other has started: only possible when both run at once.
        let (tx0, rx0) = mpsc::channel::<()>();
        let (tx1, rx1) = mpsc::channel::<()>();
        let txs = [tx0, tx1];
        let rxs = [Mutex::new(rx1), Mutex::new(rx0)];
        let s = Scheduler::<usize>::new(2);
        let out = s.run(|i, _| {
            txs[i].send(()).unwrap();
            rxs[i]
                .lock()
                .unwrap()
                .recv_timeout(LIMIT)
                .map_err(|_| anyhow!("job {i} ran alone"))?;
            Ok(i)
        });
        assert_eq!(*out[0].as_ref().unwrap().as_ref(), 0);
        assert_eq!(*out[1].as_ref().unwrap().as_ref(), 1);
    }

    #[test]
    fn dependencies_come_first() {
        // 0 <- 1 <- 2, and 3 reads 0 and 2: each job logs after it has its inputs.
        let log = Mutex::new(Vec::new());
        let deps: [&[usize]; 4] = [&[], &[0], &[1], &[2, 0]];
        let s = Scheduler::<usize>::new(4);
        let out = s.run(|i, s| {
            let mut sum = i;
            for d in deps[i] {
                sum += *s.wait(*d)?;
            }
            log.lock().unwrap().push(i);
            Ok(sum)
        });
        let log = log.into_inner().unwrap();
        let pos = |i| log.iter().position(|x| *x == i).unwrap();
        assert!(
            pos(0) < pos(1) && pos(1) < pos(2) && pos(2) < pos(3),
            "{log:?}"
        );
        // 3 + (2 + 1 + 0) + 0: each job saw its inputs' finished results.
        assert_eq!(*out[3].as_ref().unwrap().as_ref(), 6);
    }

    #[test]
    fn a_failed_job_fails_its_dependents_before_they_run() {
        let ran = Mutex::new(Vec::new());
        let s = Scheduler::<()>::new(3);
        let out = s.run(|i, s| {
            match i {
                0 => bail!("step 0 failed"),
                1 => {
                    s.wait(0)?;
                }
                _ => {}
            }
            ran.lock().unwrap().push(i);
            Ok(())
        });
        assert_eq!(out[0].as_ref().unwrap_err().to_string(), "step 0 failed");
        assert_eq!(out[1].as_ref().unwrap_err().to_string(), "step 0 failed");
        assert!(out[2].is_ok());
        assert_eq!(ran.into_inner().unwrap(), [2]);
    }

    #[test]
    fn cancelling_stops_pending_work() {
        // Job 0 runs steps, checking for cancellation between them; job 1 cancels after job 0's
        // first step; job 2 waits for job 0 and must not run.
        let (first_done, first_seen) = mpsc::channel::<()>();
        let (cancelled, cancel_seen) = mpsc::channel::<()>();
        let (first_seen, cancel_seen) = (Mutex::new(first_seen), Mutex::new(cancel_seen));
        let steps = Mutex::new(0);
        let ran2 = AtomicBool::new(false);
        let s = Scheduler::<()>::new(3);
        let out = s.run(|i, s| match i {
            0 => {
                for step in 0..3 {
                    if s.is_cancelled() {
                        return Err(Cancelled.into());
                    }
                    *steps.lock().unwrap() += 1;
                    if step == 0 {
                        first_done.send(()).unwrap();
                        cancel_seen.lock().unwrap().recv_timeout(LIMIT)?;
                    }
                }
                Ok(())
            }
            1 => {
                first_seen.lock().unwrap().recv_timeout(LIMIT)?;
                s.cancel();
                cancelled.send(()).unwrap();
                Ok(())
            }
            _ => {
                s.wait(0)?;
                ran2.store(true, Ordering::SeqCst);
                Ok(())
            }
        });
        assert_eq!(*steps.lock().unwrap(), 1);
        assert!(out[0].as_ref().unwrap_err().is::<Cancelled>());
        assert!(out[2].is_err());
        assert!(!ran2.load(Ordering::SeqCst));
    }
}
