//! Starting the child as the user: everything prepared before `fork`, then only
//! async-signal-safe calls (the drop, its checks, the descriptors at 3.., exec); a failure
//! reported through a close-on-exec pipe. And checking access as the user, before.

use super::*;

/// Where the child failed before exec; its index crosses the report pipe.
const STAGES: [&str; 16] = [
    "sigprocmask",
    "setsid",
    "fcntl",
    "dup2",
    "close_range",
    "setgroups",
    "setgid",
    "prctl",
    "setuid",
    "capset",
    "verify",
    "execve",
    "chdir",
    // The process-limit probe: a fork as the user (raw clone on Linux).
    "clone",
    // The sandbox (sandbox.rs), when required.
    "landlock_restrict_self",
    "seccomp",
];
const SETSID: usize = 1;
const FCNTL: usize = 2;
const DUP2: usize = 3;
const CLOSE_RANGE: usize = 4;
const SETGROUPS: usize = 5;
const SETGID: usize = 6;
const PRCTL: usize = 7;
const SETUID: usize = 8;
const CAPSET: usize = 9;
const VERIFY: usize = 10;
const EXECVE: usize = 11;
const CHDIR: usize = 12;
const PROBE: usize = 13;
const LANDLOCK: usize = 14;
const SECCOMP: usize = 15;

/// Forks; the child starts a session of its own, moves `fds` to 3.., drops to `ids` (groups,
/// gid, capabilities, uid, no new privileges), checks the drop, enters `cwd` as the user (by
/// its path: no folder of root's is inherited), and execs. Signals stay
/// blocked across the fork and the child restores default dispositions before unblocking, so
/// no handler of this process ever runs in it. A failure before exec comes back through a
/// close-on-exec pipe as (stage, errno), the way the Rust standard library reports it: returns
/// once forked, with that pipe ([`Starting`]); the start is over when it is readable.
#[allow(clippy::too_many_arguments)] // each is one thing the child is made of, prepared apart
pub fn spawn_as(
    program: &CStr,
    argv: &[CString],
    env: &[CString],
    fds: &[RawFd],
    ids: &Ids,
    exec_gid: u32,
    umask: Option<u32>,
    cwd: &CStr,
    sandbox: Option<&mut Sandboxing>,
) -> SysResult<Starting> {
    // Everything the child touches is prepared here: after fork it may not allocate.
    let argv: Vec<*const c_char> = argv.iter().map(|a| a.as_ptr()).chain(Some(ptr::null())).collect();
    let mut sandbox = sandbox;
    let state = sandbox.as_mut().map(|s| s.state_entry());
    let envp: Vec<*const c_char> = env
        .iter()
        .map(|e| e.as_ptr())
        .chain(state)
        .chain(Some(ptr::null()))
        .collect();
    let sandbox = sandbox.map(|s| s.in_fork());
    let groups: Vec<libc::gid_t> = ids.groups.iter().map(|&g| g as libc::gid_t).collect();
    let mut seen_groups: Vec<libc::gid_t> = vec![0; groups.len() + 1];
    let mut moved: Vec<c_int> = vec![-1; fds.len()];
    // SAFETY: sysconf has no preconditions.
    let open_max = unsafe { libc::sysconf(libc::_SC_OPEN_MAX) }.max(1024) as c_int;
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    let mut dirents = [0u8; 1024];
    let terminal = terminal_stdio()?;
    let stdio: [c_int; 3] = [0, 1, 2].map(|fd| terminal[fd].as_ref().map_or(-1, |f| f.as_raw_fd()));

    let (reader, writer) = pipe()?;
    let all = SignalMask::all();
    let previous = all.swap()?;
    // SAFETY: fork has no preconditions; the child only runs `child`, which is
    // async-signal-safe, then exec or _exit.
    let forked = cvt("fork", unsafe { libc::fork() });
    if let Ok(0) = forked {
        let child = Child {
            program,
            argv: &argv,
            envp: &envp,
            fds,
            moved: &mut moved,
            ids,
            exec_gid,
            groups: &groups,
            seen_groups: &mut seen_groups,
            umask,
            cwd,
            open_max,
            parent,
            dirents: &mut dirents,
            stdio,
            sandbox,
        };
        let mut report_fd = writer.as_raw_fd();
        // SAFETY: we are the only thread of the new process and touch only prepared memory.
        let (stage, errno) = unsafe { child.run(&mut report_fd) };
        let mut report = [0u8; 8];
        report[..4].copy_from_slice(&(stage as u32).to_ne_bytes());
        report[4..].copy_from_slice(&errno.to_ne_bytes());
        // SAFETY: writing a stack buffer to our pipe, then leaving without running any Rust.
        unsafe {
            libc::write(report_fd, report.as_ptr().cast(), report.len());
            libc::_exit(127)
        }
    }
    previous.swap()?;
    let pid = forked?;
    drop(writer);
    Ok(Starting {
        pid: pid as u32,
        report: reader,
    })
}

/// A child `spawn_as` forked, between the fork and its exec. From its setuid on it runs as the
/// user, and any process of the user can stop it there (SIGSTOP): whoever waits for it waits
/// with a deadline, and kills it when that passes.
pub struct Starting {
    pub pid: u32,
    report: OwnedFd,
}

impl Starting {
    /// Readable (a report, or end of file) once the start is over.
    pub fn report_fd(&self) -> RawFd {
        self.report.as_raw_fd()
    }

    /// How the start ended, once `report_fd` is readable: the pid when exec succeeded (end of
    /// file: the pipe closed at exec), else the stage that failed and its errno, with the child
    /// killed and reaped (`reaped`: the caller reaped it already).
    pub fn finish(self, reaped: bool) -> SysResult<u32> {
        let mut report = [0u8; 8];
        let got = read_full(self.report.as_raw_fd(), &mut report)?;
        if got == 0 {
            return Ok(self.pid);
        }
        if !reaped {
            // It exits right after its report, unless something of the user's stopped it.
            let _ = kill(self.pid, libc::SIGKILL);
            wait(self.pid)?;
        }
        let stage = u32::from_ne_bytes([report[0], report[1], report[2], report[3]]) as usize;
        let errno = i32::from_ne_bytes([report[4], report[5], report[6], report[7]]);
        Err(SysError::new(
            STAGES.get(stage).copied().unwrap_or("spawn"),
            io::Error::from_raw_os_error(errno),
        ))
    }
}

/// What the child gets instead of stdio that is a terminal (None: kept as it is). A terminal
/// is usually open for reading and writing on all three: through fd 0, 1 or 2 the child could
/// read what root types there (its own session keeps job control from stopping it). So stdin
/// becomes /dev/null, and stdout and stderr the same terminal opened again write-only (by
/// /proc/self/fd, as root, before the drop: the user could not open it). Close-on-exec: the
/// child gets them by dup2.
fn terminal_stdio() -> SysResult<[Option<OwnedFd>; 3]> {
    let open = |path: &[u8], flags: c_int| -> SysResult<OwnedFd> {
        // SAFETY: `path` is NUL-terminated; open returns a fresh descriptor or -1.
        let fd = unsafe { libc::open(path.as_ptr().cast(), flags | libc::O_NOCTTY | libc::O_CLOEXEC) };
        if fd == -1 {
            return Err(SysError::new("open", io::Error::last_os_error()));
        }
        // SAFETY: open returned a fresh descriptor we own.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    };
    let mut stdio: [Option<OwnedFd>; 3] = [None, None, None];
    for (fd, slot) in stdio.iter_mut().enumerate() {
        // SAFETY: isatty only inspects the descriptor.
        if unsafe { libc::isatty(fd as c_int) } != 1 {
            continue;
        }
        *slot = match fd {
            0 => Some(open(b"/dev/null\0", libc::O_RDONLY)?),
            1 => same_device(fd as c_int, open(b"/proc/self/fd/1\0", libc::O_WRONLY)?),
            _ => same_device(fd as c_int, open(b"/proc/self/fd/2\0", libc::O_WRONLY)?),
        };
    }
    Ok(stdio)
}

/// `reopened` if it is the same terminal as `fd`. Opening a pty's master side again
/// (/dev/ptmx) makes a new pty, where output would be lost: for a master (TIOCGPTN answers
/// there only) the original is kept, as for anything that is not the same device.
fn same_device(fd: c_int, reopened: OwnedFd) -> Option<OwnedFd> {
    // SAFETY: all-zero is a valid stat; fstat writes it.
    let (mut a, mut b): (libc::stat, libc::stat) = unsafe { (mem::zeroed(), mem::zeroed()) };
    // SAFETY: both descriptors are open; the buffers are valid for writes.
    let ok = unsafe { libc::fstat(fd, &mut a) == 0 && libc::fstat(reopened.as_raw_fd(), &mut b) == 0 };
    (ok && !is_pty_master(fd) && a.st_mode & libc::S_IFMT == libc::S_IFCHR && a.st_rdev == b.st_rdev)
        .then_some(reopened)
}

#[cfg(target_os = "linux")]
fn is_pty_master(fd: c_int) -> bool {
    let mut number: c_int = 0;
    // SAFETY: TIOCGPTN writes one int, to `number`.
    unsafe { libc::ioctl(fd, libc::TIOCGPTN, &mut number) == 0 }
}
#[cfg(not(target_os = "linux"))]
fn is_pty_master(_fd: c_int) -> bool {
    false
}

/// True when a spawn failed at the post-drop check: root could still be regained.
pub fn is_verify_failure(err: &SysError) -> bool {
    err.syscall == STAGES[VERIFY]
}

/// True when the child could not be sandboxed as required (`sandbox.require`).
pub fn is_sandbox_failure(err: &SysError) -> bool {
    err.syscall == STAGES[LANDLOCK] || err.syscall == STAGES[SECCOMP]
}

/// True when the child, as the user, could not fork: the user is at its process limit.
pub fn is_process_limit(err: &SysError) -> bool {
    err.syscall == STAGES[PROBE] && err.err.raw_os_error() == Some(libc::EAGAIN)
}

/// This process's RLIMIT_NPROC (soft), or None without one.
pub fn process_limit() -> Option<u64> {
    // SAFETY: all-zero is a valid rlimit; getrlimit writes it.
    let mut limit: libc::rlimit = unsafe { mem::zeroed() };
    // SAFETY: `limit` is valid for writes.
    let got = unsafe { libc::getrlimit(libc::RLIMIT_NPROC, &mut limit) };
    (got == 0 && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur as u64)
}

struct Child<'a> {
    program: &'a CStr,
    argv: &'a [*const c_char],
    envp: &'a [*const c_char],
    fds: &'a [RawFd],
    moved: &'a mut [c_int],
    ids: &'a Ids,
    /// The real gid at exec (Linux): see `spawn::exec_gid`.
    exec_gid: u32,
    groups: &'a [libc::gid_t],
    seen_groups: &'a mut [libc::gid_t],
    umask: Option<u32>,
    cwd: &'a CStr,
    open_max: c_int,
    parent: libc::pid_t,
    dirents: &'a mut [u8],
    /// What replaces stdio 0, 1, 2 (-1: kept): see `terminal_stdio`.
    stdio: [c_int; 3],
    /// The kernel sandbox, applied last before exec (sandbox.rs).
    sandbox: Option<InFork>,
}

impl<'a> Child<'a> {
    /// Returns only on failure, with the stage index and errno.
    ///
    /// # Safety
    /// Must run in a freshly forked child, single-threaded, before exec: it calls only
    /// async-signal-safe functions and does not allocate.
    unsafe fn run(mut self, report: &mut c_int) -> (usize, i32) {
        macro_rules! step {
            ($stage:expr, $ret:expr) => {
                if $ret == -1 {
                    return ($stage, errno());
                }
            };
        }
        // Signals: default dispositions while everything is still blocked, then an empty
        // mask, as a fresh process has.
        for sig in 1..NSIG {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let mut set: libc::sigset_t = mem::zeroed();
        libc::sigemptyset(&mut set);
        step!(0, libc::sigprocmask(libc::SIG_SETMASK, &set, ptr::null_mut()));
        // A session of its own: no controlling terminal shared with root (no TIOCSTI into
        // root's shell), and a terminal's ^C reaches only the monitor, which forwards it once.
        step!(SETSID, libc::setsid());
        // Root's terminal is never readable in the child: prepared by `terminal_stdio`.
        for (fd, &with) in self.stdio.iter().enumerate() {
            if with != -1 {
                step!(DUP2, libc::dup2(with, fd as c_int));
            }
        }

        // Move the report pipe and the passed fds above 3..3+n, then put the passed ones in place.
        let floor = 3 + self.fds.len() as c_int;
        let moved_report = libc::fcntl(*report, libc::F_DUPFD_CLOEXEC, floor);
        step!(FCNTL, moved_report);
        *report = moved_report;
        if let Some(sandbox) = self.sandbox.as_mut() {
            step!(FCNTL, sandbox.move_above(floor));
        }
        for (slot, &fd) in self.moved.iter_mut().zip(self.fds) {
            *slot = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, floor);
            step!(FCNTL, *slot);
        }
        for (i, &fd) in self.moved.iter().enumerate() {
            step!(DUP2, libc::dup2(fd, 3 + i as c_int));
        }
        // Stdio is inherited even if the parent marked it close-on-exec (Node does).
        for fd in 0..3 {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags != -1 {
                step!(FCNTL, libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC));
            }
        }
        // Every other descriptor closes at exec.
        if !mark_cloexec_from(floor, self.open_max, self.dirents) {
            return (CLOSE_RANGE, errno());
        }

        // Drop: supplementary groups, gid, the capability bounding and ambient sets (which
        // need root's CAP_SETPCAP), uid (real, effective, saved), then what setuid keeps:
        // the inheritable set. No new privileges: a set-user-ID program gains nothing.
        step!(SETGROUPS, libc::setgroups(self.groups.len() as _, self.groups.as_ptr()));
        step!(SETGID, set_gid(self.exec_gid, self.ids.gid));
        step!(PRCTL, drop_bounding_and_ambient());
        step!(SETUID, set_uid(self.ids.uid));
        step!(CAPSET, clear_capabilities());
        step!(PRCTL, no_new_privileges());
        if !self.dropped() {
            return (VERIFY, libc::EPERM);
        }
        // Root becomes a user at its process limit (RLIMIT_NPROC) unhindered: setuid and exec
        // succeed while root still holds its capabilities, and the program would then fail at
        // its first thread. One fork as the user, ended at once, says whether it may have
        // one more process.
        step!(PROBE, probe_process_limit());
        if let Some(mask) = self.umask {
            libc::umask(mask as libc::mode_t);
        }
        step!(CHDIR, libc::chdir(self.cwd.as_ptr()));
        #[cfg(target_os = "linux")]
        {
            // After the drop: changing credentials clears the parent-death signal. The parent
            // may have died before it was set, hence the getppid check. SIGTERM, not SIGKILL:
            // when the monitor dies (kill -9, a crash) the child drains what it has in flight
            // within its grace, as on any SIGTERM, and exits (docs/SECURITY.md, "When the monitor dies").
            step!(
                PRCTL,
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong, 0, 0, 0)
            );
            if libc::getppid() != self.parent {
                return (PRCTL, libc::ESRCH);
            }
        }
        // Last: after the drop and no_new_privs, with nothing left to open as root.
        if let Some(sandbox) = &self.sandbox {
            match sandbox.apply() {
                Ok(()) => {}
                Err(SandboxFailure::Landlock(errno)) => return (LANDLOCK, errno),
                Err(SandboxFailure::Seccomp(errno)) => return (SECCOMP, errno),
            }
        }
        libc::execve(self.program.as_ptr(), self.argv.as_ptr(), self.envp.as_ptr());
        (EXECVE, errno())
    }

    /// All ids are the target's, the groups are exactly the target's, every capability set
    /// is empty, and root is gone for good.
    ///
    /// # Safety
    /// As for [`Child::run`].
    unsafe fn dropped(&mut self) -> bool {
        let (uid, gid) = (self.ids.uid as libc::uid_t, self.ids.gid as libc::gid_t);
        let real_gid = if cfg!(target_os = "linux") {
            self.exec_gid as libc::gid_t
        } else {
            gid
        };
        if libc::getuid() != uid || libc::geteuid() != uid || libc::getgid() != real_gid || libc::getegid() != gid {
            return false;
        }
        if !saved_ids_are(uid, gid) || !capabilities_empty() {
            return false;
        }
        let n = libc::getgroups(self.seen_groups.len() as c_int, self.seen_groups.as_mut_ptr());
        if n < 0
            || n as usize != self.groups.len()
            || !self.groups.iter().all(|g| self.seen_groups[..n as usize].contains(g))
        {
            return false;
        }
        uid != 0
            && gid != 0
            && real_gid != 0
            && libc::setuid(0) == -1
            && libc::seteuid(0) == -1
            && libc::setgid(0) == -1
    }
}

/// Marks every descriptor from `first` on close-on-exec. Async-signal-safe: `dirents` is
/// the buffer for reading /proc/self/fd where close_range(2) is missing (before Linux 5.11).
///
/// # Safety
/// Only for the child between fork and exec.
unsafe fn mark_cloexec_from(first: c_int, open_max: c_int, dirents: &mut [u8]) -> bool {
    let mark = |fd: c_int| {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        flags == -1 || libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) != -1
    };
    #[cfg(target_os = "linux")]
    {
        if libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        ) == 0
        {
            return true;
        }
        if let Some(done) = for_each_open_fd(dirents, |fd| fd < first || mark(fd)) {
            return done;
        }
    }
    let _ = dirents;
    (first..open_max).all(mark)
}

/// Forks a process that exits at once, and reaps it: -1 (errno EAGAIN) when this process's
/// user may have no more processes. On Linux a raw clone, so no `pthread_atfork` handler runs.
///
/// # Safety
/// As for [`Child::run`].
unsafe fn probe_process_limit() -> c_int {
    #[cfg(target_os = "linux")]
    let pid = libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_long, 0, 0, 0, 0) as libc::pid_t;
    #[cfg(not(target_os = "linux"))]
    let pid = libc::fork();
    if pid == 0 {
        libc::_exit(0);
    }
    if pid < 0 {
        return -1;
    }
    let mut status: c_int = 0;
    while libc::waitpid(pid, &mut status, 0) < 0 && errno() == libc::EINTR {}
    0
}

/// The effective and saved gid `gid`, the real one `real`: a real gid other than the
/// effective one at exec keeps the program not dumpable from its first instruction
/// (docs/SECURITY.md, "Not dumpable").
///
/// # Safety
/// It changes the credentials of this thread (glibc: of every thread): call it in a child
/// between fork and exec, or where the whole process is to change.
#[cfg(target_os = "linux")]
pub unsafe fn set_gid(real: u32, gid: u32) -> c_int {
    libc::setresgid(real, gid, gid)
}
/// Real, effective and saved uid `uid`.
///
/// # Safety
/// As [`set_gid`].
#[cfg(target_os = "linux")]
pub unsafe fn set_uid(uid: u32) -> c_int {
    libc::setresuid(uid, uid, uid)
}
/// Linux reports the saved ids; they must be the target's too.
#[cfg(target_os = "linux")]
unsafe fn saved_ids_are(uid: libc::uid_t, gid: libc::gid_t) -> bool {
    let (mut r, mut e, mut s) = (0, 0, 0);
    if libc::getresuid(&mut r, &mut e, &mut s) != 0 || s != uid {
        return false;
    }
    libc::getresgid(&mut r, &mut e, &mut s) == 0 && s == gid
}

/// `struct __user_cap_header_struct` and `__user_cap_data_struct` (linux/capability.h),
/// version 3: two data structs cover capabilities 0..64.
#[cfg(target_os = "linux")]
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: c_int,
}
#[cfg(target_os = "linux")]
#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}
#[cfg(target_os = "linux")]
const _: () = assert!(mem::size_of::<CapHeader>() == 8 && mem::size_of::<CapData>() == 12);
#[cfg(target_os = "linux")]
const CAP_VERSION_3: u32 = 0x2008_0522;
/// Above every capability Linux has (40 in 6.x); prctl answers EINVAL past the last one.
#[cfg(target_os = "linux")]
const CAP_MAX: c_int = 64;

/// Empties the bounding set and the ambient set. EINVAL past the last capability (or for
/// ambient, before Linux 4.3) means there is nothing more to drop.
#[cfg(target_os = "linux")]
unsafe fn drop_bounding_and_ambient() -> c_int {
    for cap in 0..CAP_MAX {
        if libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) == -1 {
            if errno() == libc::EINVAL {
                break;
            }
            return -1;
        }
    }
    let clear = libc::prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
        0,
        0,
        0,
    );
    if clear == -1 && errno() != libc::EINVAL {
        return -1;
    }
    0
}

/// Sets effective, permitted and inheritable to empty (setuid keeps the inheritable set).
#[cfg(target_os = "linux")]
unsafe fn clear_capabilities() -> c_int {
    let header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) as c_int
}

/// True when capget reports all three sets empty and no capability is left in the bounding
/// or ambient set.
#[cfg(target_os = "linux")]
unsafe fn capabilities_empty() -> bool {
    let mut header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData {
        effective: 1,
        permitted: 1,
        inheritable: 1,
    }; 2];
    if libc::syscall(libc::SYS_capget, &mut header as *mut CapHeader, data.as_mut_ptr()) != 0 {
        return false;
    }
    if data
        .iter()
        .any(|d| d.effective != 0 || d.permitted != 0 || d.inheritable != 0)
    {
        return false;
    }
    (0..CAP_MAX).all(|cap| {
        let bounding = libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0);
        let ambient = libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_IS_SET as libc::c_ulong,
            cap as libc::c_ulong,
            0,
            0,
        );
        bounding <= 0 && ambient <= 0
    }) && libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1
}

#[cfg(target_os = "linux")]
unsafe fn no_new_privileges() -> c_int {
    libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
}

// macOS has no setres*id: as root, setgid/setuid set real, effective and saved ids, and it
// cannot report the saved ids, so the setuid(0) check is what proves the drop. It has no
// capabilities and no no_new_privs.
#[cfg(not(target_os = "linux"))]
pub unsafe fn set_gid(_real: u32, gid: u32) -> c_int {
    libc::setgid(gid)
}
#[cfg(not(target_os = "linux"))]
pub unsafe fn set_uid(uid: u32) -> c_int {
    libc::setuid(uid)
}
#[cfg(not(target_os = "linux"))]
unsafe fn saved_ids_are(_uid: libc::uid_t, _gid: libc::gid_t) -> bool {
    true
}
#[cfg(not(target_os = "linux"))]
unsafe fn drop_bounding_and_ambient() -> c_int {
    0
}
#[cfg(not(target_os = "linux"))]
unsafe fn clear_capabilities() -> c_int {
    0
}
#[cfg(not(target_os = "linux"))]
unsafe fn capabilities_empty() -> bool {
    true
}
#[cfg(not(target_os = "linux"))]
unsafe fn no_new_privileges() -> c_int {
    0
}
