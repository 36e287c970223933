//! The Node side's own raw system calls on Unix, beside core's (re-exported here, so the
//! addon reaches every call through one `sys`): users and groups by name, the access check as
//! the user, the anonymous file and the exec that hand off to the monitor, `privsep reload`'s
//! queued signal, and the child's settling of its real gid. None of them runs in the monitor.

pub use privsep_core::sys::*;

use privsep_core::error::{SysError, SysResult};
use privsep_core::handoff::Ids;
use std::ffi::{CStr, CString};
use std::io;
use std::mem;
use std::os::raw::{c_char, c_int};
use std::os::unix::io::{AsRawFd, IntoRawFd, RawFd};
use std::ptr;

/// Runs a `get*_r` lookup with a growing buffer; `None` when there is no such entry.
fn lookup_r<T>(
    syscall: &'static str,
    mut call: impl FnMut(&mut Vec<c_char>) -> (c_int, Option<T>),
) -> SysResult<Option<T>> {
    let mut buf: Vec<c_char> = vec![0; 4096];
    loop {
        match call(&mut buf) {
            (0, found) => return Ok(found),
            (libc::ERANGE, _) if buf.len() < 1 << 20 => buf.resize(buf.len() * 4, 0),
            (errno, _) => return Err(SysError::new(syscall, io::Error::from_raw_os_error(errno))),
        }
    }
}

/// `(uid, gid)` of the user `name`.
pub fn user_by_name(name: &CStr) -> SysResult<Option<(u32, u32)>> {
    lookup_r("getpwnam_r", |buf| {
        // SAFETY: all-zero is a valid passwd; getpwnam_r fills it and points into `buf`.
        let mut pw: libc::passwd = unsafe { mem::zeroed() };
        let mut found: *mut libc::passwd = ptr::null_mut();
        // SAFETY: every pointer is valid for the sizes given.
        let ret = unsafe { libc::getpwnam_r(name.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut found) };
        (
            ret,
            if found.is_null() {
                None
            } else {
                Some((pw.pw_uid, pw.pw_gid))
            },
        )
    })
}

pub fn group_by_name(name: &CStr) -> SysResult<Option<u32>> {
    lookup_r("getgrnam_r", |buf| {
        // SAFETY: all-zero is a valid group; getgrnam_r fills it and points into `buf`.
        let mut gr: libc::group = unsafe { mem::zeroed() };
        let mut found: *mut libc::group = ptr::null_mut();
        // SAFETY: every pointer is valid for the sizes given.
        let ret = unsafe { libc::getgrnam_r(name.as_ptr(), &mut gr, buf.as_mut_ptr(), buf.len(), &mut found) };
        (ret, if found.is_null() { None } else { Some(gr.gr_gid) })
    })
}

/// The groups of user `name` with primary group `gid` included.
pub fn group_list(name: &CStr, gid: u32) -> SysResult<Vec<u32>> {
    let mut count: c_int = 32;
    loop {
        let mut groups: Vec<libc::gid_t> = vec![0; count as usize];
        let asked = count;
        // SAFETY: `groups` has room for `count` entries. macOS takes c_int pointers of the same size.
        let ret = unsafe { libc::getgrouplist(name.as_ptr(), gid as _, groups.as_mut_ptr() as *mut _, &mut count) };
        if ret >= 0 {
            groups.truncate(count as usize);
            return Ok(groups);
        }
        if asked >= 1 << 16 {
            return Err(SysError::new("getgrouplist", io::Error::from_raw_os_error(libc::E2BIG)));
        }
        count = count.max(asked * 2);
    }
}

/// Checks each `(path, execute)` as `ids`: execute permission, or that it opens for reading.
/// Returns the first that fails, as its index and errno. The kernel's own answer as that user:
/// permissions, ACLs, every folder on the way.
///
/// On Linux the kernel keeps credentials per thread, and only glibc's wrappers make every
/// thread follow a change: a short-lived thread takes `ids` with the raw system calls, checks,
/// and ends, its credentials with it. No fork of the (large) calling process.
#[cfg(target_os = "linux")]
pub fn access_as(ids: &Ids, paths: &[(&CStr, bool)]) -> SysResult<Option<(usize, i32)>> {
    let groups: Vec<libc::gid_t> = ids.groups.iter().map(|&g| g as libc::gid_t).collect();
    let (uid, gid) = (ids.uid as libc::uid_t, ids.gid as libc::gid_t);
    let paths: Vec<(CString, bool)> = paths
        .iter()
        .map(|&(path, execute)| (path.to_owned(), execute))
        .collect();
    let checker = std::thread::spawn(move || -> Result<Option<(usize, i32)>, i32> {
        // SAFETY: raw credential calls on this thread only, on memory it owns; the thread
        // ends right after, and with it these credentials.
        unsafe {
            if libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) != 0
                || libc::syscall(libc::SYS_setresgid, gid, gid, gid) != 0
                || libc::syscall(libc::SYS_setresuid, uid, uid, uid) != 0
            {
                return Err(errno());
            }
            for (i, (path, execute)) in paths.iter().enumerate() {
                let ok = if *execute {
                    libc::access(path.as_ptr(), libc::X_OK) == 0
                } else {
                    let fd = libc::open(
                        path.as_ptr(),
                        libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY,
                    );
                    fd != -1 && libc::close(fd) == 0
                };
                if !ok {
                    return Ok(Some((i, errno())));
                }
            }
            Ok(None)
        }
    });
    match checker.join() {
        Ok(Ok(failed)) => Ok(failed),
        Ok(Err(errno)) => Err(SysError::new("setresuid", io::Error::from_raw_os_error(errno))),
        Err(_) => Err(SysError::new(
            "pthread_join",
            io::Error::from_raw_os_error(libc::EINVAL),
        )),
    }
}

/// Elsewhere: a forked process takes `ids` as `spawn_as` does and checks.
#[cfg(not(target_os = "linux"))]
pub fn access_as(ids: &Ids, paths: &[(&CStr, bool)]) -> SysResult<Option<(usize, i32)>> {
    let groups: Vec<libc::gid_t> = ids.groups.iter().map(|&g| g as libc::gid_t).collect();
    let (reader, writer) = pipe()?;
    let previous = SignalMask::all().swap()?;
    // SAFETY: the child calls only async-signal-safe functions on prepared memory, then _exit.
    let forked = cvt("fork", unsafe { libc::fork() });
    if let Ok(0) = forked {
        // SAFETY: as above; we are the only thread of the new process.
        unsafe {
            let mut failed = (u32::MAX, 0);
            if libc::setgroups(groups.len() as _, groups.as_ptr()) == -1
                || set_gid(ids.gid, ids.gid) == -1
                || set_uid(ids.uid) == -1
            {
                failed = (0, errno());
            } else {
                for (i, &(path, execute)) in paths.iter().enumerate() {
                    let ok = if execute {
                        libc::access(path.as_ptr(), libc::X_OK) == 0
                    } else {
                        libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK) != -1
                    };
                    if !ok {
                        failed = (i as u32, errno());
                        break;
                    }
                }
            }
            let mut bytes = [0u8; 8];
            bytes[..4].copy_from_slice(&failed.0.to_ne_bytes());
            bytes[4..].copy_from_slice(&failed.1.to_ne_bytes());
            libc::write(writer.as_raw_fd(), bytes.as_ptr().cast(), bytes.len());
            libc::_exit(0)
        }
    }
    previous.swap()?;
    let pid = forked?;
    drop(writer);
    let mut bytes = [0u8; 8];
    let got = read_full(reader.as_raw_fd(), &mut bytes)?;
    wait(pid as u32)?;
    if got != 8 {
        return Err(SysError::new("fork", io::Error::from_raw_os_error(libc::ECHILD)));
    }
    let index = u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let errno = i32::from_ne_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    Ok(if index == u32::MAX {
        None
    } else {
        Some((index as usize, errno))
    })
}

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

/// Queues `signal` to process `pid` with this thread's id as its value, then waits at most
/// `timeout_ms` for `pid`'s answer (`answer_queued`) to this thread: its value, or None when
/// none came in time. The answer signal is blocked in this thread meanwhile.
pub fn queue_and_wait(pid: u32, signal: c_int, timeout_ms: u32) -> SysResult<Option<i32>> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: sigemptyset and sigaddset initialise the set.
        let mut set: libc::sigset_t = unsafe { mem::zeroed() };
        unsafe {
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, answer_signal());
        }
        let mut old: libc::sigset_t = unsafe { mem::zeroed() };
        // SAFETY: valid sets; pthread_sigmask returns the error number.
        let ret = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old) };
        if ret != 0 {
            return Err(SysError::new("pthread_sigmask", io::Error::from_raw_os_error(ret)));
        }
        let waited = queue_then_wait(pid, signal, &set, timeout_ms);
        // SAFETY: restoring the mask saved above.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, ptr::null_mut()) };
        waited
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (pid, signal, timeout_ms);
        Err(SysError::new(
            "sigtimedwait",
            io::Error::new(io::ErrorKind::Unsupported, "Linux only"),
        ))
    }
}

#[cfg(target_os = "linux")]
fn queue_then_wait(pid: u32, signal: c_int, set: &libc::sigset_t, timeout_ms: u32) -> SysResult<Option<i32>> {
    // SAFETY: gettid cannot fail.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) } as i32;
    let mut info = queue_info(signal, tid);
    // SAFETY: `info` is a valid siginfo; the kernel checks our permission to signal `pid`.
    let ret = unsafe { libc::syscall(libc::SYS_rt_sigqueueinfo, pid as libc::pid_t, signal, &mut info) };
    cvt("rt_sigqueueinfo", ret as c_int)?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(timeout_ms as u64);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let timeout = libc::timespec {
            tv_sec: left.as_secs() as libc::time_t,
            tv_nsec: left.subsec_nanos() as libc::c_long,
        };
        // SAFETY: all-zero is a valid siginfo for the kernel to fill.
        let mut got: libc::siginfo_t = unsafe { mem::zeroed() };
        // SAFETY: valid set, siginfo and timeout.
        let ret = unsafe { libc::sigtimedwait(set, &mut got, &timeout) };
        if ret < 0 {
            match errno() {
                libc::EINTR => continue,
                libc::EAGAIN => return Ok(None),
                e => return Err(SysError::new("sigtimedwait", io::Error::from_raw_os_error(e))),
            }
        }
        // SAFETY: the kernel filled `got`.
        let (from, value) = unsafe { queued_by(&got) };
        // An answer from anyone else is not ours (a root process could queue anything).
        if from == pid {
            return Ok(Some(value));
        }
    }
}

/// The child after exec: the real gid becomes the effective one (an unprivileged process may
/// set it to its effective gid), so the ids are the user's again. Changing only the real gid
/// keeps the process not dumpable (the kernel resets dumpability when the effective or
/// file-system ids change), and it clears no parent-death signal. Returns whether they
/// differed (false: nothing done).
pub fn settle_real_gid() -> SysResult<bool> {
    // SAFETY: getegid and getgid have no preconditions.
    let (real, effective) = unsafe { (libc::getgid(), libc::getegid()) };
    if real == effective {
        return Ok(false);
    }
    // SAFETY: plain setresgid to ids the process holds.
    cvt("setresgid", unsafe { libc::setresgid(effective, effective, effective) })?;
    Ok(true)
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
