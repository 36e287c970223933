//! Reading and writing a descriptor whole: the hand-off description the monitor reads, the
//! reports it writes (the anonymous file and the exec into the monitor are the addon's).

use super::*;

/// Reads `fd` to its end, refusing more than `max` bytes (EFBIG).
pub fn read_to_end(fd: RawFd, max: usize) -> SysResult<Vec<u8>> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        let n = read_full(fd, &mut chunk)?;
        out.extend_from_slice(&chunk[..n]);
        if out.len() > max {
            return Err(SysError::new("read", io::Error::from_raw_os_error(libc::EFBIG)));
        }
        if n < chunk.len() {
            return Ok(out);
        }
    }
}

pub fn write_all(fd: RawFd, bytes: &[u8]) -> SysResult<()> {
    let mut written = 0;
    while written < bytes.len() {
        // SAFETY: writing from the rest of `bytes`.
        let n = unsafe { libc::write(fd, bytes[written..].as_ptr().cast(), bytes.len() - written) };
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(SysError::new("write", io::Error::last_os_error()));
        }
        written += n as usize;
    }
    Ok(())
}

/// Writes `bytes` to `fd` without ever blocking for more than about `timeout_ms` in all, and
/// without changing the descriptor's flags (its open file description may be shared with a
/// process that set or cleared O_NONBLOCK). Each piece is written only once `poll` says the
/// descriptor takes more, and is small (256 bytes: a pipe that says so has a free page, and a
/// terminal says so only with fewer than 256 bytes waiting), so a blocking write of it does
/// not wait; a socket gets MSG_DONTWAIT. Returns how much was written; an error (EPIPE, say:
/// SIGPIPE is ignored) or ETIMEDOUT when not all of it was.
pub fn write_bounded(fd: RawFd, bytes: &[u8], timeout_ms: u32) -> SysResult<usize> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(timeout_ms as u64);
    let mut written = 0;
    while written < bytes.len() {
        let left = deadline
            .saturating_duration_since(std::time::Instant::now())
            .as_millis() as c_int;
        let mut polled = libc::pollfd {
            fd,
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ret = unsafe { libc::poll(&mut polled, 1, left) };
        if ret == -1 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        if ret == -1 {
            return Err(SysError::new("poll", io::Error::last_os_error()));
        }
        if ret == 0 {
            return Err(SysError::new("poll", io::Error::from_raw_os_error(libc::ETIMEDOUT)));
        }
        let piece = &bytes[written..(written + 256).min(bytes.len())];
        // SAFETY: sending from `piece`; MSG_DONTWAIT does not touch the description's flags.
        let mut n = unsafe {
            libc::send(
                fd,
                piece.as_ptr().cast(),
                piece.len(),
                libc::MSG_DONTWAIT | MSG_NOSIGNAL,
            )
        };
        if n == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOTSOCK) {
            // SAFETY: writing from `piece`.
            n = unsafe { libc::write(fd, piece.as_ptr().cast(), piece.len()) };
        }
        if n >= 0 {
            written += n as usize;
            continue;
        }
        let err = io::Error::last_os_error();
        if !matches!(err.kind(), io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock) {
            return Err(SysError::new("write", err));
        }
        if std::time::Instant::now() >= deadline {
            return Err(SysError::new("write", err));
        }
    }
    Ok(written)
}

#[cfg(target_os = "linux")]
const MSG_NOSIGNAL: c_int = libc::MSG_NOSIGNAL;
#[cfg(not(target_os = "linux"))]
const MSG_NOSIGNAL: c_int = 0;
