//! A preallocated, memory-mapped file of fixed-size entries: the shared body of the offset and time
//! indexes. Preallocation lets appends be plain memory writes; `trim` cuts the file to its entries
//! when the segment stops being active, and `resize` grows it back if it becomes active again.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use memmap2::MmapMut;

use crate::error::{IoContext, Result};

#[derive(Debug)]
pub(crate) struct IndexFile {
    path: PathBuf,
    file: File,
    /// `None` while the file is empty: a zero-length file cannot be mapped portably.
    mmap: Option<MmapMut>,
    entry_size: usize,
    entries: usize,
    capacity: usize,
}

impl IndexFile {
    /// Opens (or creates) the file; every whole entry in it counts until the owner trims the
    /// invalid tail with `truncate_entries`.
    pub fn open(path: &Path, entry_size: usize) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .io_context("open index", path)?;
        let len = file.metadata().io_context("stat index", path)?.len() as usize;
        let entries = len / entry_size;
        let mut index = IndexFile {
            path: path.to_path_buf(),
            file,
            mmap: None,
            entry_size,
            entries,
            capacity: entries,
        };
        index.remap(entries)?;
        Ok(index)
    }

    fn remap(&mut self, capacity: usize) -> Result<()> {
        self.mmap = None;
        let len = (capacity * self.entry_size) as u64;
        self.file.set_len(len).io_context("resize index", &self.path)?;
        self.capacity = capacity;
        if capacity > 0 {
            // SAFETY: the file is private to this log directory and only this process resizes it,
            // always after dropping the old mapping, so the mapping never outlives the file's length.
            #[allow(unsafe_code)]
            let map = unsafe { MmapMut::map_mut(&self.file) }.io_context("mmap index", &self.path)?;
            // Appends and binary searches touch a page or two: without this, a fault in the sparse
            // preallocated file reads (and zeroes) a whole read-ahead window, up to the disk's
            // `read_ahead_kb`, every time the kernel has paged the index out.
            if let Err(e) = map.advise(memmap2::Advice::Random) {
                tracing::debug!(path = %self.path.display(), error = %e, "madvise(MADV_RANDOM) on an index refused");
            }
            self.mmap = Some(map);
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn is_full(&self) -> bool {
        self.entries >= self.capacity
    }

    pub fn entry(&self, i: usize) -> &[u8] {
        match &self.mmap {
            Some(m) if i < self.entries => &m[i * self.entry_size..(i + 1) * self.entry_size],
            _ => &[],
        }
    }

    /// Appends one entry; the caller checks `is_full` first (a full index means "roll the segment").
    pub fn push(&mut self, entry: &[u8]) {
        debug_assert_eq!(entry.len(), self.entry_size);
        if let Some(m) = &mut self.mmap
            && self.entries < self.capacity
        {
            let at = self.entries * self.entry_size;
            m[at..at + self.entry_size].copy_from_slice(entry);
            self.entries += 1;
        }
    }

    pub fn truncate_entries(&mut self, entries: usize) {
        self.entries = self.entries.min(entries);
    }

    /// Grows the preallocation to `max_bytes` (rounded down to whole entries) for an active segment.
    pub fn resize(&mut self, max_bytes: u64) -> Result<()> {
        let capacity = ((max_bytes as usize) / self.entry_size).max(self.entries);
        if capacity != self.capacity {
            self.remap(capacity)
        } else {
            Ok(())
        }
    }

    /// Cuts the file down to its entries, for a segment that is no longer written to.
    pub fn trim(&mut self) -> Result<()> {
        self.flush()?;
        if self.capacity != self.entries {
            self.remap(self.entries)
        } else {
            Ok(())
        }
    }

    pub fn flush(&self) -> Result<()> {
        match &self.mmap {
            Some(m) => m.flush().io_context("msync index", &self.path),
            None => Ok(()),
        }
    }

    pub fn delete(self) -> Result<()> {
        let path = self.path.clone();
        drop(self);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).io_context("delete index", &path),
            _ => Ok(()),
        }
    }

    /// Binary search over entries for the last one whose key (decoded by `key`) is `<= target`.
    pub fn floor_by<K: Ord>(&self, target: K, key: impl Fn(&[u8]) -> K) -> Option<usize> {
        let (mut lo, mut hi) = (0usize, self.entries);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if key(self.entry(mid)) <= target {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1)
    }
}
