//! The child's side of the metrics region (`privsep_core::region`, whose constants and
//! creation are re-exported here): checking that a passed descriptor is a region, and mapping it.

use crate::sys;
use privsep_core::Result;

pub use privsep_core::region::*;

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
        let _ = sys::close(fd);
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
