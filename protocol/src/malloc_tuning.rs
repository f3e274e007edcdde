//! glibc malloc settings for a broker. Record batches of up to a megabyte are allocated and freed
//! for every produce request and every replication message; above its mmap threshold (128 KiB
//! at first) glibc serves each with a fresh mmap, so every one costs a page fault per 4 KiB and a
//! munmap. With replication that churn took most of the Raft loop's time (perf on a leader under
//! `load_gen --cluster 3`: page faults and zeroing pages above a fifth of its samples), and
//! replicated produce throughput rose about half again once buffers were reused.
#![allow(unsafe_code)]

/// Allocations below this come from malloc's reusable heap instead of their own mapping.
pub const MMAP_THRESHOLD_BYTES: i32 = 64 * 1024 * 1024;
/// Free heap memory kept for reuse before malloc returns it to the system.
pub const TRIM_THRESHOLD_BYTES: i32 = 256 * 1024 * 1024;

/// Applies the settings above; returns whether malloc accepted both. A no-op outside glibc.
pub fn keep_large_buffers() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes malloc's tunables; it is called once, at start, before
        // other threads allocate.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn glibc_accepts_the_settings() {
        assert_eq!(
            super::keep_large_buffers(),
            cfg!(all(target_os = "linux", target_env = "gnu"))
        );
    }
}
