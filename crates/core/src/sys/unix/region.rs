//! The metrics region's system calls (docs/PROTOCOL.md, "The metrics region"): the sealed
//! memfd the monitor creates (and never maps), and its pwrite of the upgrade counts. Linux
//! only: elsewhere there is no memfd, and every function says so (ENOSYS). The child's
//! checks and mapping are the addon's.

use super::*;

/// The seals the region carries: its size is fixed for good, and no seal can be added (a
/// child adding F_SEAL_WRITE would stop every other generation's counting).
#[cfg(target_os = "linux")]
pub const SEALS: i32 = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
#[cfg(not(target_os = "linux"))]
pub const SEALS: i32 = 0;

/// A close-on-exec memfd of `size` zero bytes, sealed with `SEALS`.
#[cfg(target_os = "linux")]
pub fn create_sealed(size: usize) -> SysResult<RawFd> {
    let name = b"privsep-metrics\0";
    // SAFETY: `name` is NUL-terminated; the flags are valid for memfd_create.
    let fd = cvt("memfd_create", unsafe {
        libc::memfd_create(name.as_ptr().cast(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
    })?;
    // SAFETY: `fd` is the memfd just created; ftruncate and fcntl take no pointers.
    let sized = cvt("ftruncate", unsafe { libc::ftruncate(fd, size as libc::off_t) })
        .and_then(|_| cvt("fcntl", unsafe { libc::fcntl(fd, libc::F_ADD_SEALS, SEALS) }));
    if let Err(err) = sized {
        // SAFETY: `fd` is ours and not used after this.
        unsafe { libc::close(fd) };
        return Err(err);
    }
    Ok(fd)
}

#[cfg(not(target_os = "linux"))]
pub fn create_sealed(_size: usize) -> SysResult<RawFd> {
    Err(SysError::new(
        "memfd_create",
        io::Error::from_raw_os_error(libc::ENOSYS),
    ))
}

/// Writes `bytes` at byte `offset` of `fd` (`pwrite`: the file offset is left alone).
pub fn write_at(fd: RawFd, offset: u64, bytes: &[u8]) -> SysResult<()> {
    let mut done = 0;
    while done < bytes.len() {
        // SAFETY: the slice is valid for the rest of its length.
        let n = unsafe {
            libc::pwrite(
                fd,
                bytes[done..].as_ptr().cast(),
                bytes.len() - done,
                (offset + done as u64) as libc::off_t,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(SysError::new("pwrite", err));
        }
        done += n as usize;
    }
    Ok(())
}
