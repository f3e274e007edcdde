//! The threads that fsync a pass's partition logs in parallel ([`crate::group_driver::ReadyPass::sync`]).
//!
//! They live as long as the process: a busy broker runs a hundred fsync rounds a second, and
//! starting threads for each round (a scoped spawn per round) cost it more CPU than the fsyncs
//! themselves (`clone3` was 6 % of a replicating broker's profile).

use std::sync::OnceLock;
use std::sync::mpsc;

use crate::group_driver::MAX_PARALLEL_SYNCS;
use crate::raft_log::{LogStorage, RaftLogError};

/// One log's fsync result: whether anything was written since the last one.
pub(crate) type SyncResult = Result<bool, RaftLogError>;

/// Logs to fsync, by their place in the caller's list, and where to report each.
struct Job {
    stores: Vec<(usize, LogStorage)>,
    now_ms: i64,
    done: mpsc::Sender<(usize, SyncResult)>,
}

impl Job {
    fn run(self) {
        for (at, store) in self.stores {
            // The caller is gone only if it panicked; nothing is left to report to.
            let _ = self.done.send((at, store.sync(self.now_ms)));
        }
    }
}

pub(crate) struct SyncPool {
    workers: Vec<mpsc::Sender<Job>>,
}

impl SyncPool {
    /// The process's pool of `MAX_PARALLEL_SYNCS - 1` workers (the caller is the last), started
    /// on first use.
    pub(crate) fn shared() -> &'static SyncPool {
        static POOL: OnceLock<SyncPool> = OnceLock::new();
        POOL.get_or_init(|| SyncPool::start(MAX_PARALLEL_SYNCS - 1))
    }

    /// Starts up to `n` workers; fewer if the system refuses threads (the caller then does more).
    fn start(n: usize) -> SyncPool {
        let mut workers = Vec::with_capacity(n);
        for i in 0..n {
            let (tx, rx) = mpsc::channel::<Job>();
            let spawned = std::thread::Builder::new()
                .name(format!("log-fsync-{i}"))
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        job.run();
                    }
                });
            match spawned {
                Ok(_) => workers.push(tx),
                Err(e) => {
                    tracing::warn!(error = %e, started = i, "cannot start more log fsync threads");
                    break;
                }
            }
        }
        SyncPool { workers }
    }

    /// fsyncs every store, spread over the workers and the calling thread; returns when all are
    /// done, with each result at its store's place (`None` only if a worker died on it).
    pub(crate) fn sync_all(&self, stores: Vec<LogStorage>, now_ms: i64) -> Vec<Option<SyncResult>> {
        let mut results: Vec<Option<SyncResult>> = (0..stores.len()).map(|_| None).collect();
        let per_thread = stores.len().div_ceil(self.workers.len() + 1).max(1);
        let mut chunks = Vec::new();
        let mut numbered = stores.into_iter().enumerate().peekable();
        while numbered.peek().is_some() {
            chunks.push(numbered.by_ref().take(per_thread).collect::<Vec<_>>());
        }
        let own = chunks.pop().unwrap_or_default();
        let (done, finished) = mpsc::channel();
        for (chunk, worker) in chunks.into_iter().zip(&self.workers) {
            let job = Job {
                stores: chunk,
                now_ms,
                done: done.clone(),
            };
            // A worker that is gone hands the job back: run it here.
            if let Err(mpsc::SendError(job)) = worker.send(job) {
                job.run();
            }
        }
        Job {
            stores: own,
            now_ms,
            done,
        }
        .run();
        // Ends when every job's sender is dropped: all done (or a worker died mid-job).
        for (at, result) in finished {
            results[at] = Some(result);
        }
        results
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::prelude::ConfState;
    use skiff_storage::LogConfig;

    #[test]
    fn every_store_gets_a_result_from_the_workers_or_from_the_caller_alone() {
        let dir = tempfile::tempdir().unwrap();
        let stores: Vec<LogStorage> = (0..13)
            .map(|i| {
                LogStorage::open(
                    dir.path().join(format!("p{i}")),
                    LogConfig::default(),
                    ConfState::from((vec![1], vec![])),
                )
                .unwrap()
            })
            .collect();
        let results = SyncPool::shared().sync_all(stores.clone(), 0);
        assert_eq!(results.len(), 13);
        // Nothing was written: no fsync ran, and each says so.
        assert!(results.iter().all(|r| matches!(r, Some(Ok(false)))), "{results:?}");
        // A pool with no worker left does all the work on the caller.
        let results = SyncPool { workers: Vec::new() }.sync_all(stores, 0);
        assert_eq!(results.len(), 13);
        assert!(results.iter().all(|r| matches!(r, Some(Ok(false)))), "{results:?}");
    }
}
