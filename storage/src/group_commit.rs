//! Group commit: many producers waiting for durability share one fsync. While one fsync runs, later
//! callers queue; when it ends, one of them runs the next fsync for all of them. Under load this
//! turns N fsyncs into about two, which is what makes fsync-before-ack affordable.

use std::sync::{Condvar, Mutex, MutexGuard};

use crate::error::{Result, StorageError};
use crate::log::{FlushJob, Log};

#[derive(Debug, Default)]
struct State {
    /// Every offset below this is durable.
    durable: u64,
    /// An fsync is under way.
    running: bool,
    /// Once an fsync has failed, nothing can be promised any more.
    failed: Option<String>,
    fsyncs: u64,
}

#[derive(Debug, Default)]
pub struct GroupCommit {
    state: Mutex<State>,
    done: Condvar,
}

impl GroupCommit {
    pub fn new(durable: u64) -> Self {
        GroupCommit {
            state: Mutex::new(State {
                durable,
                ..Default::default()
            }),
            done: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Offsets below this are durable.
    pub fn durable_offset(&self) -> u64 {
        self.lock().durable
    }

    /// How many fsyncs have run, to show how well commits are grouped.
    pub fn fsync_count(&self) -> u64 {
        self.lock().fsyncs
    }

    /// After a truncation the durable mark must not point past the new log end.
    pub fn lower_to(&self, offset: u64) {
        let mut st = self.lock();
        st.durable = st.durable.min(offset);
    }

    /// Returns once every offset below `upto` is durable, running (or joining) an fsync if needed.
    /// `start` snapshots the work under the log's lock; `finish` reports the result back.
    pub fn sync_to(
        &self,
        upto: u64,
        start: impl FnOnce() -> FlushJob,
        finish: impl FnOnce(&FlushJob, Result<()>) -> Result<()>,
    ) -> Result<()> {
        let mut st = self.lock();
        loop {
            if let Some(reason) = &st.failed {
                return Err(StorageError::Offline {
                    dir: Default::default(),
                    reason: reason.clone(),
                });
            }
            if st.durable >= upto {
                return Ok(());
            }
            if !st.running {
                break;
            }
            st = self.done.wait(st).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        st.running = true;
        drop(st);

        let job = start();
        let outcome = finish(&job, job.run());
        let mut st = self.lock();
        st.running = false;
        st.fsyncs += 1;
        match &outcome {
            Ok(()) => st.durable = st.durable.max(job.upto),
            Err(e) => st.failed = Some(e.to_string()),
        }
        self.done.notify_all();
        drop(st);
        outcome
    }
}

/// A log shared between request handlers: appends and reads under one lock, durability through a
/// group commit that runs its fsyncs outside that lock.
#[derive(Debug)]
pub struct SharedLog {
    log: Mutex<Log>,
    commit: GroupCommit,
}

impl SharedLog {
    pub fn new(log: Log) -> Self {
        let durable = log.recovery_point();
        SharedLog {
            log: Mutex::new(log),
            commit: GroupCommit::new(durable),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn commit(&self) -> &GroupCommit {
        &self.commit
    }

    /// Makes every offset below `upto` durable, sharing the fsync with concurrent callers.
    pub fn flush_to(&self, upto: u64, now_ms: i64) -> Result<()> {
        self.commit.sync_to(
            upto,
            || self.lock().flush_job(),
            |job, result| {
                let mut log = self.lock();
                match result {
                    Ok(()) => {
                        log.complete_flush(job.upto, now_ms);
                        Ok(())
                    }
                    Err(e) => Err(log.fail_flush(e)),
                }
            },
        )
    }

    /// Truncates the log's suffix and keeps the durable mark consistent with it.
    pub fn truncate_to(&self, offset: u64) -> Result<u64> {
        let end = self.lock().truncate_to(offset)?;
        self.commit.lower_to(end);
        Ok(end)
    }

    pub fn into_inner(self) -> Log {
        self.log.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
