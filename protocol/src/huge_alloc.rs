//! The global allocator of every process that decodes Kafka requests. kafka-protocol's array
//! decoders call `Vec::with_capacity(count)` with `count` taken from the wire before reading a
//! single element, so a 100-byte request that claims 2^31 elements of a 96-byte struct asks for
//! 192 GiB. The system allocator refuses that (it exceeds RAM + swap under the kernel's default
//! overcommit heuristic), and Rust answers an allocation failure by aborting the whole process:
//! it does not unwind, so no `catch_unwind` or task boundary can contain it.
//!
//! [`HugeAlloc`] serves every allocation of at least [`HUGE_ALLOCATION_BYTES`] with its own
//! anonymous `mmap(MAP_NORESERVE)`: the kernel hands out address space without charging it
//! against memory, and backs pages only when they are first touched. The bogus reservation then
//! succeeds, the decoder runs out of bytes a few elements later and returns an error, and the
//! mapping goes back untouched. Genuine large buffers behave as they would with malloc, which
//! also maps them lazily. Everything smaller goes to the system allocator unchanged.
//!
//! It cannot help where the kernel refuses address space itself: under `vm.overcommit_memory=2`
//! (MAP_NORESERVE is ignored there) or with an address-space rlimit (`ulimit -v`).
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr;

/// Allocations at least this large get their own lazily backed mapping. Far above any buffer the
/// broker needs for one request (`socket.request.max.bytes` is 100 MiB), far below the RAM of any
/// machine that runs it.
pub const HUGE_ALLOCATION_BYTES: usize = 256 * 1024 * 1024;

/// The alignment every mapping has (the smallest page size); stricter alignments go to the
/// system allocator.
const MAPPING_ALIGN: usize = 4096;

/// Register it in a binary with `#[global_allocator] static ALLOC: HugeAlloc = HugeAlloc;`.
#[derive(Debug, Default, Clone, Copy)]
pub struct HugeAlloc;

fn is_huge(size: usize, align: usize) -> bool {
    size >= HUGE_ALLOCATION_BYTES && align <= MAPPING_ALIGN
}

/// A fresh private anonymous mapping of `size` bytes, zero-filled and charged to no one until
/// touched; null if the kernel refuses.
fn map(size: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping at an address of the kernel's choosing aliases no
    // existing memory; failure is reported as MAP_FAILED, which becomes null.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        ptr::null_mut()
    } else {
        p.cast()
    }
}

/// # Safety
/// `ptr` and `size` must be exactly a mapping returned by [`map`] (or grown by `mremap`) that
/// nobody uses any more.
unsafe fn unmap(ptr: *mut u8, size: usize) {
    // SAFETY: per the caller, the whole mapping is ours and dead. munmap can only fail on
    // arguments that are not a mapping, which the caller rules out.
    let _ = unsafe { libc::munmap(ptr.cast(), size) };
}

// SAFETY: every block comes either from `System` (and goes back to it, because whether a block
// is huge depends only on the size and alignment of its layout, which the caller must pass back
// unchanged) or from its own mmap, which is page aligned (so at least `MAPPING_ALIGN` aligned,
// and only layouts with an alignment up to that are mapped), at least `size` bytes long, and
// unmapped exactly once in `dealloc` or `realloc`.
unsafe impl GlobalAlloc for HugeAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_huge(layout.size(), layout.align()) {
            map(layout.size())
        } else {
            // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::alloc`'s contract.
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_huge(layout.size(), layout.align()) {
            // Anonymous mappings are zero-filled.
            map(layout.size())
        } else {
            // SAFETY: forwarded unchanged; the caller upholds the contract.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_huge(layout.size(), layout.align()) {
            // SAFETY: a huge layout was served by `map` with exactly this size.
            unsafe { unmap(ptr, layout.size()) }
        } else {
            // SAFETY: a small layout was served by `System`; the caller upholds the contract.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let align = layout.align();
        match (is_huge(layout.size(), align), is_huge(new_size, align)) {
            // SAFETY: both sides belong to `System`; the caller upholds the contract.
            (false, false) => unsafe { System.realloc(ptr, layout, new_size) },
            #[cfg(target_os = "linux")]
            (true, true) => {
                // SAFETY: `ptr` is a whole mapping of `layout.size()` bytes of ours; with
                // MREMAP_MAYMOVE the kernel may move it and keeps its contents and flags
                // (MAP_NORESERVE included). On failure the old mapping is left as it was.
                let p = unsafe { libc::mremap(ptr.cast(), layout.size(), new_size, libc::MREMAP_MAYMOVE) };
                if p == libc::MAP_FAILED {
                    ptr::null_mut()
                } else {
                    p.cast()
                }
            }
            _ => {
                // SAFETY: `GlobalAlloc::realloc`'s contract says `new_size`, rounded up to
                // `align`, does not overflow isize, which makes this a valid layout.
                let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, align) };
                // SAFETY: `new_size` is non-zero per the contract.
                let new = unsafe { self.alloc(new_layout) };
                if !new.is_null() {
                    // SAFETY: both blocks are live, distinct, and at least this long; the old
                    // block is released exactly once, with the layout it was allocated with.
                    unsafe {
                        ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                }
                new
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The protocol crate's unit tests run on it, so the decoding tests below exercise it too.
    #[global_allocator]
    static GLOBAL: HugeAlloc = HugeAlloc;

    #[test]
    fn a_capacity_far_beyond_memory_is_reserved_lazily() {
        // 2^32 elements of 96 bytes: 384 GiB of address space, none of it touched.
        let mut v: Vec<[u64; 12]> = Vec::with_capacity(1 << 32);
        v.push([7; 12]);
        assert_eq!(v[0][11], 7);
        assert!(v.capacity() >= 1 << 32);
    }

    #[test]
    fn huge_blocks_keep_their_contents_when_they_grow_and_shrink() {
        let mut v: Vec<u8> = Vec::with_capacity(HUGE_ALLOCATION_BYTES - 1);
        v.extend_from_slice(b"small");
        v.reserve_exact(HUGE_ALLOCATION_BYTES); // small -> huge: copied into a mapping
        v.extend_from_slice(b" huge");
        v.reserve_exact(4 * HUGE_ALLOCATION_BYTES); // huge -> huge: remapped
        assert_eq!(&v[..], b"small huge");
        v.shrink_to_fit(); // huge -> small: copied back to the system allocator
        assert_eq!(&v[..], b"small huge");
        let zeroed = vec![0u8; HUGE_ALLOCATION_BYTES];
        let len = zeroed.len();
        assert_eq!((zeroed[0], zeroed[len / 2], zeroed[len - 1]), (0, 0, 0));
    }
}
