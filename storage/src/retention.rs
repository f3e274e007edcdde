//! Time and size retention (`retention.ms`, `retention.bytes`): whole segments are deleted from the
//! old end of the log, and the log start offset moves to the first one kept.

use crate::error::Result;
use crate::log::Log;

impl Log {
    /// Deletes the oldest segments whose newest record is older than `retention.ms`, or that take
    /// the log over `retention.bytes`. The active segment goes too once it is expired (it is rolled
    /// first, as Kafka does). Returns how many segments were deleted.
    pub fn enforce_retention(&mut self, now_ms: i64) -> Result<usize> {
        let Some((count, first_kept)) = self.retention_cutoff(now_ms)? else {
            return Ok(0);
        };
        self.set_log_start_offset(first_kept.max(self.log_start_offset()))?;
        Ok(count)
    }

    /// Where retention would start the log: the number of old segments it deletes and the base
    /// offset of the first one kept (rolling the active segment first when every segment is
    /// expired, as Kafka does). `None` when nothing is due. The caller moves the log start, so
    /// that a replicated log can record the cut in its Raft log first.
    pub fn retention_cutoff(&mut self, now_ms: i64) -> Result<Option<(usize, u64)>> {
        let config = self.config().clone();
        let sizes: Vec<(u64, i64, bool)> = self
            .segments()
            .map(|s| (s.size(), s.max_timestamp().0, s.is_empty()))
            .collect();

        let by_time = if config.retention_ms < 0 {
            0
        } else {
            sizes
                .iter()
                .take_while(|&&(_, max_ts, empty)| !empty && now_ms.saturating_sub(max_ts) > config.retention_ms)
                .count()
        };
        let by_size = if config.retention_bytes < 0 {
            0
        } else {
            let mut excess = self.size_bytes() as i64 - config.retention_bytes;
            sizes
                .iter()
                .take_while(|&&(size, _, empty)| {
                    let delete = !empty && excess - size as i64 >= 0;
                    excess -= size as i64;
                    delete
                })
                .count()
        };
        let count = by_time.max(by_size);
        if count == 0 {
            return Ok(None);
        }
        if count == sizes.len() {
            self.roll()?;
        }
        let Some(&first_kept) = self.segment_base_offsets().get(count) else {
            return Ok(None);
        };
        tracing::info!(
            dir = %self.dir().display(),
            segments = count,
            by_time,
            by_size,
            new_log_start = first_kept,
            "retention deletes segments"
        );
        Ok(Some((count, first_kept)))
    }
}
