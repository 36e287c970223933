//! Processes and signals, the monitor's: catching signals into a pipe (and who queued them),
//! answering a queued signal, waiting, reaping, killing, ending like the child, the subreaper,
//! the parent-death signal, closing every other descriptor, not being dumpable.

use super::*;

pub const SIGCHLD: c_int = libc::SIGCHLD;
pub const SIGPIPE: c_int = libc::SIGPIPE;
pub const SIGUSR1: c_int = libc::SIGUSR1;
pub const SIGTERM: c_int = libc::SIGTERM;
pub const SIGINT: c_int = libc::SIGINT;
pub const EMFILE: i32 = libc::EMFILE;
pub const EINTR: i32 = libc::EINTR;
pub const ETIMEDOUT: i32 = libc::ETIMEDOUT;
pub const SIGKILL: c_int = libc::SIGKILL;

/// The write end of the signal pipe, for the handler; -1 until `catch_signals`.
static SIGNAL_PIPE: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

/// What the handler writes into the pipe per signal: its number, then (sent with sigqueue(3)
/// on Linux) the sender's pid and the value it sent, else zeros. One write of this size is
/// atomic (less than PIPE_BUF), so records never interleave.
const RECORD: usize = 9;

extern "C" fn on_signal(signal: c_int, info: *mut libc::siginfo_t, _context: *mut libc::c_void) {
    // SAFETY: errno is thread-local; write(2) is async-signal-safe; the kernel passes a valid
    // siginfo to an SA_SIGINFO handler. A full pipe drops the record: the signal is pending in
    // the pipe already, and a dropped sender is only not answered.
    unsafe {
        let saved = errno();
        let (pid, value) = queued_by(info);
        let mut record = [0u8; RECORD];
        record[0] = signal as u8;
        record[1..5].copy_from_slice(&pid.to_ne_bytes());
        record[5..9].copy_from_slice(&value.to_ne_bytes());
        libc::write(
            SIGNAL_PIPE.load(std::sync::atomic::Ordering::Relaxed),
            record.as_ptr().cast(),
            RECORD,
        );
        set_errno(saved);
    }
}

/// sigqueue(3)'s `si_code`.
#[cfg(target_os = "linux")]
pub const SI_QUEUE: c_int = -1;

/// The sender and value of a signal sent with sigqueue(3); zeros for any other.
///
/// # Safety
/// `info` is null or points to a siginfo the kernel filled.
#[cfg(target_os = "linux")]
pub unsafe fn queued_by(info: *const libc::siginfo_t) -> (u32, i32) {
    if info.is_null() || (*info).si_code != SI_QUEUE {
        return (0, 0);
    }
    let value = (*info).si_value();
    // sival_int is the union's first four bytes.
    let int = *(&value as *const libc::sigval).cast::<i32>();
    ((*info).si_pid() as u32, int)
}
#[cfg(not(target_os = "linux"))]
pub unsafe fn queued_by(_info: *const libc::siginfo_t) -> (u32, i32) {
    (0, 0)
}

/// Every catchable signal to its default action, `ignored` to SIG_IGN, and `caught` to a
/// handler that writes the signal's number into a pipe; then unblocks everything. Returns the
/// pipe's read end (non-blocking), for `poll`. Signals that arrived blocked (across the exec
/// into the monitor) come out of it first. Once per process.
pub fn catch_signals(caught: &[c_int], ignored: &[c_int]) -> SysResult<RawFd> {
    let (reader, writer) = pipe()?;
    for fd in [reader.as_raw_fd(), writer.as_raw_fd()] {
        // SAFETY: fcntl on descriptors we own.
        let flags = cvt("fcntl", unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
        // SAFETY: as above.
        cvt("fcntl", unsafe {
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK)
        })?;
    }
    SIGNAL_PIPE.store(writer.into_raw_fd(), std::sync::atomic::Ordering::Relaxed);
    for sig in 1..NSIG {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: all-zero is a valid sigaction; the handler only writes to the pipe.
        let mut action: libc::sigaction = unsafe { mem::zeroed() };
        action.sa_sigaction = if caught.contains(&sig) {
            on_signal as extern "C" fn(c_int, *mut libc::siginfo_t, *mut libc::c_void) as libc::sighandler_t
        } else if ignored.contains(&sig) {
            libc::SIG_IGN
        } else {
            libc::SIG_DFL
        };
        action.sa_flags = libc::SA_RESTART | libc::SA_SIGINFO;
        // SAFETY: the mask inside `action` is initialised by sigfillset.
        unsafe {
            libc::sigfillset(&mut action.sa_mask);
            libc::sigaction(sig, &action, ptr::null_mut());
        }
    }
    SignalMask::none().swap()?;
    Ok(reader.into_raw_fd())
}

/// The signals waiting in the pipe `catch_signals` returned, each once, and those of them
/// that were sent with sigqueue(3): (signal, sender's pid, value).
pub fn caught_signals(pipe: RawFd) -> (Vec<c_int>, Vec<(c_int, u32, i32)>) {
    let mut signals = Vec::new();
    let mut queued = Vec::new();
    let mut buf = [0u8; RECORD * 64];
    loop {
        // SAFETY: reading into `buf`; the pipe is non-blocking. Records are written whole, and
        // `buf` holds whole records, so a read returns whole records.
        let n = unsafe { libc::read(pipe, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return (signals, queued);
        }
        for record in buf[..n as usize].chunks_exact(RECORD) {
            let signal = record[0] as c_int;
            if !signals.contains(&signal) {
                signals.push(signal);
            }
            let pid = u32::from_ne_bytes([record[1], record[2], record[3], record[4]]);
            let value = i32::from_ne_bytes([record[5], record[6], record[7], record[8]]);
            if pid != 0 {
                queued.push((signal, pid, value));
            }
        }
    }
}

/// A siginfo for sigqueue(3)-style sending: `si_code` SI_QUEUE, this process as the sender,
/// `value` as `sival_int`. The layout is the kernel's: `_rt` of the `_sifields` union, which
/// follows the three ints at the union's (pointer) alignment.
#[cfg(target_os = "linux")]
pub fn queue_info(signal: c_int, value: i32) -> libc::siginfo_t {
    #[repr(C)]
    struct Rt {
        pid: c_int,
        uid: libc::uid_t,
        value: *mut libc::c_void,
    }
    #[repr(C)]
    struct Head {
        signo_errno_code: [c_int; 3],
        rt: Rt,
    }
    const _: () = assert!(mem::size_of::<Head>() <= mem::size_of::<libc::siginfo_t>());
    #[cfg(target_pointer_width = "64")]
    const _: () = assert!(mem::size_of::<Head>() == 32);
    // SAFETY: all-zero is a valid siginfo and a valid `Head` (a null pointer).
    let mut head: Head = unsafe { mem::zeroed() };
    head.signo_errno_code = [signal, 0, SI_QUEUE];
    // SAFETY: getpid and getuid cannot fail.
    head.rt.pid = unsafe { libc::getpid() };
    head.rt.uid = unsafe { libc::getuid() };
    // SAFETY: sival_int is the first four bytes of the pointer-sized sigval.
    unsafe { ptr::write((&mut head.rt.value as *mut *mut libc::c_void).cast::<i32>(), value) };
    // SAFETY: as above; `Head` fits in a siginfo (asserted) and both are plain data.
    let mut info: libc::siginfo_t = unsafe { mem::zeroed() };
    unsafe { ptr::write((&mut info as *mut libc::siginfo_t).cast::<Head>(), head) };
    info
}

/// The signal the monitor answers a queued upgrade signal with: SIGRTMIN + 2 (glibc and musl
/// keep the first realtime signals for their threads).
#[cfg(target_os = "linux")]
pub fn answer_signal() -> c_int {
    libc::SIGRTMIN() + 2
}

/// Sends `answer_signal()` carrying `value` to thread `tid` of process `pid`: the answer to a
/// signal that thread queued. Fails (ESRCH) when that thread is gone.
pub fn answer_queued(pid: u32, tid: i32, value: i32) -> SysResult<()> {
    #[cfg(target_os = "linux")]
    {
        let mut info = queue_info(answer_signal(), value);
        // SAFETY: `info` is a valid siginfo; the kernel checks the ids and our permission.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_rt_tgsigqueueinfo,
                pid as libc::pid_t,
                tid,
                answer_signal(),
                &mut info,
            )
        };
        cvt("rt_tgsigqueueinfo", ret as c_int).map(|_| ())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (pid, tid, value);
        Err(SysError::new(
            "rt_tgsigqueueinfo",
            io::Error::new(io::ErrorKind::Unsupported, "Linux only"),
        ))
    }
}

/// Waits until one of `fds` is readable (or closed), at most `timeout_ms` (-1: no limit);
/// `true` for each that is. An interrupted wait (a signal) or a timeout returns all `false`.
pub fn poll_readable(fds: &[RawFd], timeout_ms: c_int) -> SysResult<Vec<bool>> {
    let mut polled: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: `polled` is valid for its length; a negative fd is ignored by poll.
    let ret = unsafe { libc::poll(polled.as_mut_ptr(), polled.len() as libc::nfds_t, timeout_ms) };
    if ret == -1 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(vec![false; fds.len()]);
        }
        return Err(SysError::new("poll", err));
    }
    Ok(polled.iter().map(|p| p.fd >= 0 && p.revents != 0).collect())
}
