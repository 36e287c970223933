//! Every raw libc call privsep makes on Unix. Linux is tested; macOS must compile, and what it
//! lacks (parent-death signal, saved-id queries) is left out behind `cfg` with a note.

use crate::error::{SysError, SysResult};
use crate::socket::{Address, FdKind, SocketType};
use crate::spawn::{ExitStatus, Ids};
use std::ffi::{CStr, CString};
use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::raw::{c_char, c_int};
use std::os::unix::io::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::ptr;

/// The one place a `-1` becomes an error.
fn cvt(syscall: &'static str, ret: c_int) -> SysResult<c_int> {
    if ret == -1 {
        Err(SysError::new(syscall, io::Error::last_os_error()))
    } else {
        Ok(ret)
    }
}

fn owned(syscall: &'static str, ret: c_int) -> SysResult<OwnedFd> {
    // SAFETY: a non-negative return of a descriptor-creating call is a fresh fd we own.
    cvt(syscall, ret).map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn set_cloexec(fd: RawFd) -> SysResult<()> {
    // SAFETY: fcntl on any integer is sound; a bad fd is reported as EBADF.
    let flags = cvt("fcntl", unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    // SAFETY: as above.
    cvt("fcntl", unsafe {
        libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC)
    })
    .map(drop)
}

pub fn close(fd: RawFd) -> SysResult<()> {
    // SAFETY: the caller owns `fd` and gives it up here.
    cvt("close", unsafe { libc::close(fd) }).map(drop)
}

/// Socket storage big enough for any address we use, with its length.
fn to_sockaddr(address: &Address) -> SysResult<(libc::sockaddr_storage, libc::socklen_t)> {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let len = match address {
        Address::Ip(SocketAddr::V4(v4)) => {
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            let sin = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = v4.port().to_be();
            sin.sin_addr.s_addr = u32::from_ne_bytes(v4.ip().octets());
            #[cfg(target_os = "macos")]
            {
                sin.sin_len = mem::size_of::<libc::sockaddr_in>() as u8;
            }
            mem::size_of::<libc::sockaddr_in>()
        }
        Address::Ip(SocketAddr::V6(v6)) => {
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = v6.port().to_be();
            sin6.sin6_addr.s6_addr = v6.ip().octets();
            sin6.sin6_flowinfo = v6.flowinfo();
            sin6.sin6_scope_id = v6.scope_id();
            #[cfg(target_os = "macos")]
            {
                sin6.sin6_len = mem::size_of::<libc::sockaddr_in6>() as u8;
            }
            mem::size_of::<libc::sockaddr_in6>()
        }
        Address::Path(path) => {
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_un.
            let sun = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_un) };
            sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
            let bytes = path.as_bytes();
            if bytes.len() >= sun.sun_path.len() {
                return Err(SysError::new("bind", io::Error::from_raw_os_error(libc::ENAMETOOLONG)));
            }
            for (dst, src) in sun.sun_path.iter_mut().zip(bytes) {
                *dst = *src as c_char;
            }
            #[cfg(target_os = "macos")]
            {
                sun.sun_len = mem::size_of::<libc::sockaddr_un>() as u8;
            }
            mem::size_of::<libc::sa_family_t>() + bytes.len() + 1
        }
    };
    Ok((storage, len as libc::socklen_t))
}

fn from_sockaddr(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<Address> {
    match storage.ss_family as c_int {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in for AF_INET.
            let sin = unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(Address::Ip(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            ))))
        }
        libc::AF_INET6 => {
            // SAFETY: the kernel wrote a sockaddr_in6 for AF_INET6.
            let sin6 = unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            let port = u16::from_be(sin6.sin6_port);
            Some(Address::Ip(SocketAddr::V6(SocketAddrV6::new(
                ip,
                port,
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            ))))
        }
        libc::AF_UNIX => {
            // SAFETY: the kernel wrote a sockaddr_un for AF_UNIX.
            let sun = unsafe { &*(storage as *const _ as *const libc::sockaddr_un) };
            let max = (len as usize)
                .saturating_sub(mem::size_of::<libc::sa_family_t>())
                .min(sun.sun_path.len());
            let bytes: Vec<u8> = sun.sun_path[..max]
                .iter()
                .map(|&c| c as u8)
                .take_while(|&b| b != 0)
                .collect();
            Some(Address::Path(String::from_utf8_lossy(&bytes).into_owned()))
        }
        _ => None,
    }
}

fn set_int_option(fd: RawFd, level: c_int, name: c_int, value: c_int) -> SysResult<()> {
    let size = mem::size_of::<c_int>() as libc::socklen_t;
    // SAFETY: `value` outlives the call and `size` is its size.
    cvt("setsockopt", unsafe {
        libc::setsockopt(fd, level, name, &value as *const c_int as *const _, size)
    })
    .map(drop)
}

fn get_int_option(fd: RawFd, level: c_int, name: c_int) -> SysResult<c_int> {
    let mut value: c_int = 0;
    let mut size = mem::size_of::<c_int>() as libc::socklen_t;
    // SAFETY: `value` and `size` are valid for writes of the sizes given.
    cvt("getsockopt", unsafe {
        libc::getsockopt(fd, level, name, &mut value as *mut c_int as *mut _, &mut size)
    })?;
    Ok(value)
}

fn new_socket(domain: c_int, kind: c_int) -> SysResult<OwnedFd> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain socket(2); the result is checked.
        owned("socket", unsafe { libc::socket(domain, kind | libc::SOCK_CLOEXEC, 0) })
    }
    #[cfg(not(target_os = "linux"))]
    {
        // SAFETY: plain socket(2); the result is checked. No SOCK_CLOEXEC here: set it next.
        let fd = owned("socket", unsafe { libc::socket(domain, kind, 0) })?;
        set_cloexec(fd.as_raw_fd())?;
        Ok(fd)
    }
}

pub fn listen_socket(address: &Address, stream: bool, v6only: Option<bool>, backlog: i32) -> SysResult<RawFd> {
    let domain = match address {
        Address::Ip(SocketAddr::V4(_)) => libc::AF_INET,
        Address::Ip(SocketAddr::V6(_)) => libc::AF_INET6,
        Address::Path(_) => libc::AF_UNIX,
    };
    let kind = if stream { libc::SOCK_STREAM } else { libc::SOCK_DGRAM };
    let socket = new_socket(domain, kind)?;
    let fd = socket.as_raw_fd();
    if domain != libc::AF_UNIX {
        set_int_option(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    }
    if let Some(only) = v6only {
        set_int_option(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, only as c_int)?;
    }
    let (storage, len) = to_sockaddr(address)?;
    // SAFETY: `storage` holds a sockaddr of length `len`.
    cvt("bind", unsafe {
        libc::bind(fd, &storage as *const _ as *const libc::sockaddr, len)
    })?;
    if stream {
        // SAFETY: listen(2) on a socket we own.
        cvt("listen", unsafe { libc::listen(fd, backlog) })?;
    }
    Ok(socket.into_raw_fd())
}

pub fn fd_kind(fd: RawFd) -> SysResult<FdKind> {
    // SAFETY: all-zero is a valid stat; fstat writes it.
    let mut st: libc::stat = unsafe { mem::zeroed() };
    // SAFETY: `st` is valid for writes.
    cvt("fstat", unsafe { libc::fstat(fd, &mut st) })?;
    Ok(match st.st_mode & libc::S_IFMT {
        libc::S_IFSOCK => FdKind::Socket,
        libc::S_IFREG => FdKind::Regular,
        _ => FdKind::Other,
    })
}

pub fn socket_type(fd: RawFd) -> SysResult<SocketType> {
    Ok(match get_int_option(fd, libc::SOL_SOCKET, libc::SO_TYPE)? {
        libc::SOCK_STREAM => SocketType::Stream,
        libc::SOCK_DGRAM => SocketType::Datagram,
        _ => SocketType::Other,
    })
}

pub fn is_listening(fd: RawFd) -> SysResult<bool> {
    get_int_option(fd, libc::SOL_SOCKET, libc::SO_ACCEPTCONN).map(|v| v != 0)
}

pub fn local_address(fd: RawFd) -> SysResult<Option<Address>> {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `storage` is valid for `len` bytes of writes.
    cvt("getsockname", unsafe {
        libc::getsockname(fd, &mut storage as *mut _ as *mut libc::sockaddr, &mut len)
    })?;
    Ok(from_sockaddr(&storage, len))
}

// ---- users ----------------------------------------------------------------------------

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

// ---- spawning -------------------------------------------------------------------------

/// Where the child failed before exec; its index crosses the report pipe.
const STAGES: [&str; 10] = [
    "sigprocmask",
    "fcntl",
    "dup2",
    "close_range",
    "setgroups",
    "setgid",
    "setuid",
    "verify",
    "prctl",
    "execve",
];
const VERIFY: usize = 7;

#[cfg(target_os = "linux")]
const NSIG: c_int = 65;
#[cfg(not(target_os = "linux"))]
const NSIG: c_int = 32;

/// Forks; the child moves `fds` to 3.., drops to `ids`, checks the drop, and execs. A
/// failure before exec comes back through a close-on-exec pipe as (stage, errno), the way the
/// Rust standard library reports it; the failed child is reaped.
pub fn spawn_as(
    program: &CStr,
    argv: &[CString],
    env: &[CString],
    fds: &[RawFd],
    ids: &Ids,
    umask: Option<u32>,
) -> SysResult<u32> {
    // Everything the child touches is prepared here: after fork it may not allocate.
    let argv: Vec<*const c_char> = argv.iter().map(|a| a.as_ptr()).chain(Some(ptr::null())).collect();
    let envp: Vec<*const c_char> = env.iter().map(|e| e.as_ptr()).chain(Some(ptr::null())).collect();
    let groups: Vec<libc::gid_t> = ids.groups.iter().map(|&g| g as libc::gid_t).collect();
    let mut seen_groups: Vec<libc::gid_t> = vec![0; groups.len() + 1];
    let mut moved: Vec<c_int> = vec![-1; fds.len()];
    // SAFETY: sysconf has no preconditions.
    let open_max = unsafe { libc::sysconf(libc::_SC_OPEN_MAX) }.max(1024) as c_int;
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };

    let (reader, writer) = pipe()?;
    // SAFETY: fork has no preconditions; the child only runs `child`, which is
    // async-signal-safe, then exec or _exit.
    let pid = cvt("fork", unsafe { libc::fork() })?;
    if pid == 0 {
        let child = Child {
            program,
            argv: &argv,
            envp: &envp,
            fds,
            moved: &mut moved,
            ids,
            groups: &groups,
            seen_groups: &mut seen_groups,
            umask,
            open_max,
            parent,
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
    drop(writer);
    let mut report = [0u8; 8];
    let mut got = 0;
    while got < report.len() {
        // SAFETY: reading into the rest of `report`.
        let n = unsafe {
            libc::read(
                reader.as_raw_fd(),
                report[got..].as_mut_ptr().cast(),
                report.len() - got,
            )
        };
        match n {
            0 => break,
            n if n > 0 => got += n as usize,
            _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            _ => return Err(SysError::new("read", io::Error::last_os_error())),
        }
    }
    if got == 0 {
        return Ok(pid as u32);
    }
    wait(pid as u32)?;
    let stage = u32::from_ne_bytes([report[0], report[1], report[2], report[3]]) as usize;
    let errno = i32::from_ne_bytes([report[4], report[5], report[6], report[7]]);
    Err(SysError::new(
        STAGES.get(stage).copied().unwrap_or("spawn"),
        io::Error::from_raw_os_error(errno),
    ))
}

/// True when a spawn failed at the post-drop check: root could still be regained.
pub fn is_verify_failure(err: &SysError) -> bool {
    err.syscall == STAGES[VERIFY]
}

fn pipe() -> SysResult<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as c_int; 2];
    #[cfg(target_os = "linux")]
    // SAFETY: `fds` has room for two descriptors.
    cvt("pipe2", unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    #[cfg(not(target_os = "linux"))]
    // SAFETY: `fds` has room for two descriptors.
    cvt("pipe", unsafe { libc::pipe(fds.as_mut_ptr()) })?;
    // SAFETY: pipe returned two fresh descriptors we own.
    let (reader, writer) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    set_cloexec(reader.as_raw_fd())?;
    set_cloexec(writer.as_raw_fd())?;
    Ok((reader, writer))
}

struct Child<'a> {
    program: &'a CStr,
    argv: &'a [*const c_char],
    envp: &'a [*const c_char],
    fds: &'a [RawFd],
    moved: &'a mut [c_int],
    ids: &'a Ids,
    groups: &'a [libc::gid_t],
    seen_groups: &'a mut [libc::gid_t],
    umask: Option<u32>,
    open_max: c_int,
    parent: libc::pid_t,
}

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
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
        // Signals: an empty mask and default dispositions, as a fresh process has.
        let mut set: libc::sigset_t = mem::zeroed();
        libc::sigemptyset(&mut set);
        step!(0, libc::sigprocmask(libc::SIG_SETMASK, &set, ptr::null_mut()));
        for sig in 1..NSIG {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        // Own process group: a terminal's ^C reaches the parent only, which forwards it once.
        libc::setpgid(0, 0);

        // Move the report pipe and the passed fds above 3..3+n, then put the passed ones in place.
        let floor = 3 + self.fds.len() as c_int;
        let moved_report = libc::fcntl(*report, libc::F_DUPFD_CLOEXEC, floor);
        step!(1, moved_report);
        *report = moved_report;
        for (slot, &fd) in self.moved.iter_mut().zip(self.fds) {
            *slot = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, floor);
            step!(1, *slot);
        }
        for (i, &fd) in self.moved.iter().enumerate() {
            step!(2, libc::dup2(fd, 3 + i as c_int));
        }
        // Stdio is inherited even if the parent marked it close-on-exec (Node does).
        for fd in 0..3 {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags != -1 {
                step!(1, libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC));
            }
        }
        // Every other descriptor closes at exec.
        if !mark_cloexec_from(floor, self.open_max) {
            return (3, errno());
        }

        // Drop: supplementary groups, then gid, then uid (real, effective, saved).
        step!(4, libc::setgroups(self.groups.len() as _, self.groups.as_ptr()));
        step!(5, set_gid(self.ids.gid));
        step!(6, set_uid(self.ids.uid));
        if !self.dropped() {
            return (VERIFY, libc::EPERM);
        }
        if let Some(mask) = self.umask {
            libc::umask(mask as libc::mode_t);
        }
        #[cfg(target_os = "linux")]
        {
            // After the drop: changing credentials clears the parent-death signal. The parent
            // may have died before it was set, hence the getppid check.
            step!(
                8,
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0)
            );
            if libc::getppid() != self.parent {
                return (8, libc::ESRCH);
            }
        }
        libc::execve(self.program.as_ptr(), self.argv.as_ptr(), self.envp.as_ptr());
        (9, errno())
    }

    /// All ids are the target's, the groups are exactly the target's, and root is gone for good.
    ///
    /// # Safety
    /// As for [`Child::run`].
    unsafe fn dropped(&mut self) -> bool {
        let (uid, gid) = (self.ids.uid as libc::uid_t, self.ids.gid as libc::gid_t);
        if libc::getuid() != uid || libc::geteuid() != uid || libc::getgid() != gid || libc::getegid() != gid {
            return false;
        }
        if !saved_ids_are(uid, gid) {
            return false;
        }
        let n = libc::getgroups(self.seen_groups.len() as c_int, self.seen_groups.as_mut_ptr());
        if n < 0
            || n as usize != self.groups.len()
            || !self.groups.iter().all(|g| self.seen_groups[..n as usize].contains(g))
        {
            return false;
        }
        uid == 0 || (libc::setuid(0) == -1 && libc::seteuid(0) == -1 && (gid == 0 || libc::setgid(0) == -1))
    }
}

/// Marks every descriptor from `first` on close-on-exec. Async-signal-safe.
///
/// # Safety
/// Only for the child between fork and exec.
unsafe fn mark_cloexec_from(first: c_int, open_max: c_int) -> bool {
    #[cfg(target_os = "linux")]
    {
        // close_range(2) with CLOSE_RANGE_CLOEXEC (Linux 5.11); older kernels take the loop.
        if libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        ) == 0
        {
            return true;
        }
    }
    for fd in first..open_max {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags != -1 && libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) == -1 {
            return false;
        }
    }
    true
}

#[cfg(target_os = "linux")]
unsafe fn set_gid(gid: u32) -> c_int {
    libc::setresgid(gid, gid, gid)
}
#[cfg(target_os = "linux")]
unsafe fn set_uid(uid: u32) -> c_int {
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

// macOS has no setres*id: as root, setgid/setuid set real, effective and saved ids, and it
// cannot report the saved ids, so the setuid(0) check below is what proves the drop.
#[cfg(not(target_os = "linux"))]
unsafe fn set_gid(gid: u32) -> c_int {
    libc::setgid(gid)
}
#[cfg(not(target_os = "linux"))]
unsafe fn set_uid(uid: u32) -> c_int {
    libc::setuid(uid)
}
#[cfg(not(target_os = "linux"))]
unsafe fn saved_ids_are(_uid: libc::uid_t, _gid: libc::gid_t) -> bool {
    true
}

/// Blocks until child `pid` ends and reaps it.
pub fn wait(pid: u32) -> SysResult<ExitStatus> {
    let mut status: c_int = 0;
    loop {
        // SAFETY: `status` is valid for writes.
        match cvt("waitpid", unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) }) {
            Err(e) if e.err.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
            Ok(_) => break,
        }
    }
    if libc::WIFSIGNALED(status) {
        Ok(ExitStatus {
            code: None,
            signal: Some(libc::WTERMSIG(status)),
        })
    } else {
        Ok(ExitStatus {
            code: Some(libc::WEXITSTATUS(status)),
            signal: None,
        })
    }
}

/// Ends this process by `signal` with its default action, as the child ended; if that
/// action does not end a process (SIGCHLD, say), exits 128 + signal as shells report it.
pub fn die_by_signal(signal: i32) -> ! {
    // SAFETY: resetting a disposition, unblocking and raising are sound in any state;
    // _exit does not return.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        let mut set: libc::sigset_t = mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signal);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, ptr::null_mut());
        libc::raise(signal);
        libc::_exit(128 + signal)
    }
}
