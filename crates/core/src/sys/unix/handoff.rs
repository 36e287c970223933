//! The hand-off's calls: the anonymous file that carries the description, reading and writing
//! it whole, and the exec into the monitor keeping only the descriptors it names.

use super::*;

/// A close-on-exec anonymous file holding `bytes`, its offset at 0 (memfd on Linux; an
/// unlinked root-only temporary file elsewhere).
pub fn anonymous_file(bytes: &[u8]) -> SysResult<RawFd> {
    #[cfg(target_os = "linux")]
    // SAFETY: the name is a NUL-terminated literal.
    let file = owned("memfd_create", unsafe {
        libc::memfd_create(b"privsep-handoff\0".as_ptr().cast(), libc::MFD_CLOEXEC)
    })?;
    #[cfg(not(target_os = "linux"))]
    let file = {
        let mut template = *b"/tmp/privsep-handoff.XXXXXX\0";
        // SAFETY: `template` is a writable NUL-terminated template.
        let file = owned("mkstemp", unsafe { libc::mkstemp(template.as_mut_ptr().cast()) })?;
        // SAFETY: mkstemp wrote the file's name into `template`.
        unsafe { libc::unlink(template.as_ptr().cast()) };
        set_cloexec(file.as_raw_fd())?;
        file
    };
    write_all(file.as_raw_fd(), bytes)?;
    // SAFETY: lseek on a descriptor we own.
    if unsafe { libc::lseek(file.as_raw_fd(), 0, libc::SEEK_SET) } != 0 {
        return Err(SysError::new("lseek", io::Error::last_os_error()));
    }
    Ok(file.into_raw_fd())
}

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
        let left = deadline.saturating_duration_since(std::time::Instant::now()).as_millis() as c_int;
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
            libc::send(fd, piece.as_ptr().cast(), piece.len(), libc::MSG_DONTWAIT | MSG_NOSIGNAL)
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

/// Replaces this process with `program` (argv `argv`, an empty environment), keeping stdio
/// and `keep` open across the exec and every signal blocked: signals that arrive meanwhile stay pending
/// for the new program, which sets up its own handling first. Returns only on failure.
pub fn exec_keeping(program: &CStr, argv: &[CString], keep: &[RawFd]) -> SysError {
    let argv: Vec<*const c_char> = argv.iter().map(|a| a.as_ptr()).chain(Some(ptr::null())).collect();
    let envp: [*const c_char; 1] = [ptr::null()];
    // Stdio too, where it is open: Node marks it close-on-exec.
    for fd in (0..3).chain(keep.iter().copied()) {
        // SAFETY: fcntl on any integer is sound.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        if flags == -1 && fd < 3 {
            continue;
        }
        // SAFETY: as above.
        if flags == -1 || unsafe { libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) } == -1 {
            return SysError::new("fcntl", io::Error::last_os_error());
        }
    }
    let previous = match SignalMask::all().swap() {
        Ok(previous) => previous,
        Err(e) => return e,
    };
    // SAFETY: argv and envp are NUL-terminated arrays of valid C strings.
    unsafe { libc::execve(program.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    let err = SysError::new("execve", io::Error::last_os_error());
    let _ = previous.swap();
    for &fd in keep {
        let _ = set_cloexec(fd);
    }
    err
}
