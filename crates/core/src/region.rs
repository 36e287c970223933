//! The metrics region (docs/PROTOCOL.md, "The metrics region"): a small shared memory file
//! the monitor creates once, sealed so that its size never changes, and passes to every
//! generation of the program, which map it and count in it (`src/program-metrics.ts` holds
//! the layout). The monitor creates it and never maps or reads it: what a child writes there
//! can only mislead the children's own numbers.

use crate::Result;

#[cfg(unix)]
#[path = "sys/region_unix.rs"]
mod sys;
#[cfg(windows)]
use privsep_windows::region_sys as sys;

/// The region's size in bytes: the layout in `src/program-metrics.ts` fits in it exactly.
pub const SIZE: usize = 96 * 1024;

/// A new region: a close-on-exec memfd of `SIZE` zero bytes, sealed against shrinking,
/// growing and further seals (Linux; elsewhere Unsupported).
pub fn create() -> Result<i32> {
    sys::create_sealed(SIZE).map_err(|e| e.about("creating the metrics region"))
}

/// Where the monitor records how its upgrades ended: two little-endian u64 at this byte,
/// succeeded then failed (`src/program-metrics.ts` reads them; docs/PROTOCOL.md).
pub const UPGRADES_AT: u64 = 16;

/// Writes the monitor's upgrade counts into region `fd` (never reading it back).
pub fn record_upgrades(fd: i32, succeeded: u64, failed: u64) -> Result<()> {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&succeeded.to_le_bytes());
    bytes[8..].copy_from_slice(&failed.to_le_bytes());
    sys::write_at(fd, UPGRADES_AT, &bytes).map_err(|e| e.about("the metrics region's upgrade counts"))
}

/// True when `fd` is a region: a memfd of `SIZE` bytes carrying exactly its seals. Mapping
/// anything else could fault (a file that shrinks under the mapping) or share nothing.
pub fn is_region(fd: i32) -> bool {
    matches!(sys::seals(fd), Ok(seals) if seals == sys::SEALS && seals != 0)
        && matches!(sys::size(fd), Ok(size) if size == SIZE as u64)
}

/// Maps the region `fd` (checked with `is_region` first) shared and writable: its first
/// byte's address; `SIZE` bytes, mapped for the rest of the process.
pub fn map(fd: i32) -> Result<*mut u8> {
    sys::map_shared(fd, SIZE).map_err(|e| e.about(format!("mapping the metrics region (fd {})", fd)))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// A child holds the region writable: it must not be able to resize it (the others'
    /// mappings would fault past the end) nor seal it against writing.
    #[test]
    fn a_region_cannot_be_resized_or_sealed_further() {
        let fd = create().unwrap();
        assert!(is_region(fd));
        for size in [0, SIZE as u64 - 1, SIZE as u64 + 1, 1 << 30] {
            let err = sys::truncate(fd, size).unwrap_err();
            assert_eq!(err.err.raw_os_error(), Some(libc::EPERM), "ftruncate to {}", size);
        }
        let err = sys::add_seals(fd, libc::F_SEAL_WRITE).unwrap_err();
        assert_eq!(err.err.raw_os_error(), Some(libc::EPERM));
        assert!(is_region(fd));
        assert!(!map(fd).unwrap().is_null());
        let _ = crate::socket::close(fd);
    }

    #[test]
    fn other_descriptors_are_not_regions() {
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        use std::os::unix::io::AsRawFd;
        assert!(!is_region(file.as_raw_fd()));
        assert!(!is_region(-1));
        assert!(!is_region(1 << 20));
    }
}
