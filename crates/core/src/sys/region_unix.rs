//! The metrics region's system calls (docs/PROTOCOL.md, "The metrics region"): the sealed
//! memfd the monitor creates (and never maps), and the child's shared mapping of it. Linux
//! only: elsewhere there is no memfd, and every function says so (ENOSYS).

use crate::error::{SysError, SysResult};
use std::io;
use std::os::raw::c_int;
use std::os::unix::io::RawFd;

fn cvt(syscall: &'static str, ret: c_int) -> SysResult<c_int> {
    if ret == -1 {
        Err(SysError::new(syscall, io::Error::last_os_error()))
    } else {
        Ok(ret)
    }
}

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

/// The seals of `fd` (EINVAL: not a memfd).
#[cfg(target_os = "linux")]
pub fn seals(fd: RawFd) -> SysResult<i32> {
    // SAFETY: F_GET_SEALS takes no argument and only reads the descriptor's file.
    cvt("fcntl", unsafe { libc::fcntl(fd, libc::F_GET_SEALS) })
}

#[cfg(not(target_os = "linux"))]
pub fn seals(_fd: RawFd) -> SysResult<i32> {
    Err(SysError::new("fcntl", io::Error::from_raw_os_error(libc::ENOSYS)))
}

/// The size of the file `fd` refers to.
pub fn size(fd: RawFd) -> SysResult<u64> {
    // SAFETY: all-zero is a valid `stat`; fstat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid, writable stat buffer.
    cvt("fstat", unsafe { libc::fstat(fd, &mut st) })?;
    Ok(st.st_size as u64)
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

/// Maps `size` bytes of `fd` shared, readable and writable. The mapping outlives `fd` (the
/// caller may close it) and is never unmapped: it lives as long as the process.
pub fn map_shared(fd: RawFd, size: usize) -> SysResult<*mut u8> {
    // SAFETY: a new mapping chosen by the kernel (no address given) aliases nothing of ours;
    // a failure is MAP_FAILED, checked below.
    let address = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        )
    };
    if address == libc::MAP_FAILED {
        return Err(SysError::new("mmap", io::Error::last_os_error()));
    }
    Ok(address.cast())
}

/// Sets the size of the file `fd` refers to (tests: a sealed region refuses).
#[cfg(test)]
pub fn truncate(fd: RawFd, size: u64) -> SysResult<()> {
    // SAFETY: ftruncate takes no pointers.
    cvt("ftruncate", unsafe { libc::ftruncate(fd, size as libc::off_t) }).map(drop)
}

/// Adds `seals` to `fd` (tests: a region sealed with F_SEAL_SEAL refuses).
#[cfg(all(test, target_os = "linux"))]
pub fn add_seals(fd: RawFd, seals: i32) -> SysResult<()> {
    // SAFETY: F_ADD_SEALS takes an int and no pointers.
    cvt("fcntl", unsafe { libc::fcntl(fd, libc::F_ADD_SEALS, seals) }).map(drop)
}

#[cfg(all(test, not(target_os = "linux")))]
pub fn add_seals(_fd: RawFd, _seals: i32) -> SysResult<()> {
    Err(SysError::new("fcntl", io::Error::from_raw_os_error(libc::ENOSYS)))
}
