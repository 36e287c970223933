//! Every raw libc call privsep makes on Unix. Linux is tested; macOS must compile, and what it
//! lacks (parent-death signal, saved-id queries) is left out behind `cfg` with a note.

use crate::error::{SysError, SysResult};
use crate::socket::{Address, FdKind, Protocol, SocketType};
use crate::spawn::{ExitStatus, Ids};
use privsep_wire::facts::Stat;
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
        Address::RawPath(_) => return Err(SysError::new("bind", io::Error::from_raw_os_error(libc::EINVAL))),
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
            Some(match String::from_utf8(bytes) {
                Ok(path) => Address::Path(path),
                Err(not_utf8) => Address::RawPath(not_utf8.into_bytes()),
            })
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

/// Creates, binds and listens; a unix socket file gets `mode` before it can be connected to.
pub fn listen_socket(
    address: &Address,
    stream: bool,
    v6only: Option<bool>,
    backlog: i32,
    mode: Option<u32>,
) -> SysResult<RawFd> {
    let domain = match address {
        Address::Ip(SocketAddr::V4(_)) => libc::AF_INET,
        Address::Ip(SocketAddr::V6(_)) => libc::AF_INET6,
        Address::Path(_) | Address::RawPath(_) => libc::AF_UNIX,
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
    if let (Address::Path(path), Some(mode)) = (address, mode) {
        let path = CString::new(path.as_str())
            .map_err(|_| SysError::new("chmod", io::Error::from_raw_os_error(libc::EINVAL)))?;
        chmod(&path, mode)?;
    }
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
        libc::SOCK_SEQPACKET => SocketType::SeqPacket,
        _ => SocketType::Other,
    })
}

pub fn is_listening(fd: RawFd) -> SysResult<bool> {
    get_int_option(fd, libc::SOL_SOCKET, libc::SO_ACCEPTCONN).map(|v| v != 0)
}

/// `SO_PROTOCOL` (Linux); `None` where the platform does not report it.
pub fn socket_protocol(fd: RawFd) -> SysResult<Option<Protocol>> {
    #[cfg(target_os = "linux")]
    {
        Ok(Some(match get_int_option(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL)? {
            libc::IPPROTO_TCP => Protocol::Tcp,
            libc::IPPROTO_UDP => Protocol::Udp,
            // A unix socket reports what socket(2) was given: 0, or PF_UNIX itself.
            0 | libc::PF_UNIX => Protocol::Default,
            other => Protocol::Other(other),
        }))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = fd;
        Ok(None)
    }
}

/// Whether `fd` can be read: open for reading, not `O_PATH` (which `fstat` does not tell).
pub fn is_readable(fd: RawFd) -> SysResult<bool> {
    // SAFETY: fcntl on any integer is sound; a bad fd is reported as EBADF.
    let flags = cvt("fcntl", unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    #[cfg(target_os = "linux")]
    {
        if flags & libc::O_PATH != 0 {
            return Ok(false);
        }
    }
    Ok(matches!(flags & libc::O_ACCMODE, libc::O_RDONLY | libc::O_RDWR))
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
const STAGES: [&str; 14] = [
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

#[cfg(target_os = "linux")]
const NSIG: c_int = 65;
#[cfg(not(target_os = "linux"))]
const NSIG: c_int = 32;

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
    cwd: Option<&CStr>,
) -> SysResult<Starting> {
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
    (ok && !is_pty_master(fd) && a.st_mode & libc::S_IFMT == libc::S_IFCHR && a.st_rdev == b.st_rdev).then_some(reopened)
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

/// Reads until `buf` is full or end of file; returns how much was read.
fn read_full(fd: RawFd, buf: &mut [u8]) -> SysResult<usize> {
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: reading into the rest of `buf`.
        let n = unsafe { libc::read(fd, buf[got..].as_mut_ptr().cast(), buf.len() - got) };
        match n {
            0 => break,
            n if n > 0 => got += n as usize,
            _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            _ => return Err(SysError::new("read", io::Error::last_os_error())),
        }
    }
    Ok(got)
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
    /// The real gid at exec (Linux): see `spawn::exec_gid`.
    exec_gid: u32,
    groups: &'a [libc::gid_t],
    seen_groups: &'a mut [libc::gid_t],
    umask: Option<u32>,
    cwd: Option<&'a CStr>,
    open_max: c_int,
    parent: libc::pid_t,
    dirents: &'a mut [u8],
    /// What replaces stdio 0, 1, 2 (-1: kept): see `terminal_stdio`.
    stdio: [c_int; 3],
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
        if let Some(dir) = self.cwd {
            step!(CHDIR, libc::chdir(dir.as_ptr()));
        }
        #[cfg(target_os = "linux")]
        {
            // After the drop: changing credentials clears the parent-death signal. The parent
            // may have died before it was set, hence the getppid check.
            step!(
                PRCTL,
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0)
            );
            if libc::getppid() != self.parent {
                return (PRCTL, libc::ESRCH);
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

/// Calls `each` with every open descriptor number (and the one used for reading), stopping
/// at the first false; `None` when /proc/self/fd cannot be read. Async-signal-safe: raw
/// getdents64 into `buf`, no allocation.
///
/// # Safety
/// `each` must be async-signal-safe where the caller needs that.
#[cfg(target_os = "linux")]
unsafe fn for_each_open_fd(buf: &mut [u8], mut each: impl FnMut(c_int) -> bool) -> Option<bool> {
    let dir = libc::open(
        b"/proc/self/fd\0".as_ptr().cast(),
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
    );
    if dir == -1 {
        return None;
    }
    let ok;
    'read: loop {
        let n = libc::syscall(libc::SYS_getdents64, dir, buf.as_mut_ptr(), buf.len());
        if n <= 0 {
            ok = n == 0;
            break;
        }
        let mut at = 0usize;
        while at < n as usize {
            // linux_dirent64: d_ino u64, d_off i64, d_reclen u16, d_type u8, d_name[].
            let reclen = u16::from_ne_bytes([buf[at + 16], buf[at + 17]]) as usize;
            let mut fd: c_int = 0;
            let mut digits = false;
            for &b in buf[at + 19..at + reclen].iter().take_while(|&&b| b != 0) {
                digits = b.is_ascii_digit();
                if !digits {
                    break;
                }
                fd = fd.saturating_mul(10).saturating_add((b - b'0') as c_int);
            }
            if digits && fd != dir && !each(fd) {
                ok = false;
                break 'read;
            }
            at += reclen;
        }
    }
    libc::close(dir);
    Some(ok)
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
#[cfg(target_os = "linux")]
unsafe fn set_gid(real: u32, gid: u32) -> c_int {
    libc::setresgid(real, gid, gid)
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
unsafe fn set_gid(_real: u32, gid: u32) -> c_int {
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

// ---- the monitor's process work --------------------------------------------------------

pub const SIGCHLD: c_int = libc::SIGCHLD;
pub const SIGPIPE: c_int = libc::SIGPIPE;
pub const SIGUSR1: c_int = libc::SIGUSR1;
pub const SIGTERM: c_int = libc::SIGTERM;
pub const SIGINT: c_int = libc::SIGINT;
pub const EMFILE: i32 = libc::EMFILE;
pub const EINTR: i32 = libc::EINTR;
pub const ETIMEDOUT: i32 = libc::ETIMEDOUT;
pub const SIGKILL: c_int = libc::SIGKILL;

/// A set of signals, and the thread's mask swapped for it.
struct SignalMask(libc::sigset_t);

impl SignalMask {
    fn all() -> SignalMask {
        // SAFETY: sigfillset initialises the set.
        unsafe {
            let mut set: libc::sigset_t = mem::zeroed();
            libc::sigfillset(&mut set);
            SignalMask(set)
        }
    }

    fn none() -> SignalMask {
        // SAFETY: sigemptyset initialises the set.
        unsafe {
            let mut set: libc::sigset_t = mem::zeroed();
            libc::sigemptyset(&mut set);
            SignalMask(set)
        }
    }

    /// Makes this the thread's mask; returns the one it replaces.
    fn swap(&self) -> SysResult<SignalMask> {
        // SAFETY: all-zero is a valid sigset_t for the old mask to be written into.
        let mut old: libc::sigset_t = unsafe { mem::zeroed() };
        // SAFETY: both sets are valid; pthread_sigmask returns the error number.
        let ret = unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, &mut old) };
        if ret != 0 {
            return Err(SysError::new("pthread_sigmask", io::Error::from_raw_os_error(ret)));
        }
        Ok(SignalMask(old))
    }
}

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
const SI_QUEUE: c_int = -1;

/// The sender and value of a signal sent with sigqueue(3); zeros for any other.
///
/// # Safety
/// `info` is null or points to a siginfo the kernel filled.
#[cfg(target_os = "linux")]
unsafe fn queued_by(info: *const libc::siginfo_t) -> (u32, i32) {
    if info.is_null() || (*info).si_code != SI_QUEUE {
        return (0, 0);
    }
    let value = (*info).si_value();
    // sival_int is the union's first four bytes.
    let int = *(&value as *const libc::sigval).cast::<i32>();
    ((*info).si_pid() as u32, int)
}
#[cfg(not(target_os = "linux"))]
unsafe fn queued_by(_info: *const libc::siginfo_t) -> (u32, i32) {
    (0, 0)
}

#[cfg(target_os = "linux")]
unsafe fn set_errno(value: c_int) {
    *libc::__errno_location() = value;
}
#[cfg(not(target_os = "linux"))]
unsafe fn set_errno(value: c_int) {
    *libc::__error() = value;
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
fn queue_info(signal: c_int, value: i32) -> libc::siginfo_t {
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
            libc::syscall(libc::SYS_rt_tgsigqueueinfo, pid as libc::pid_t, tid, answer_signal(), &mut info)
        };
        cvt("rt_tgsigqueueinfo", ret as c_int).map(|_| ())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (pid, tid, value);
        Err(SysError::new("rt_tgsigqueueinfo", io::Error::new(io::ErrorKind::Unsupported, "Linux only")))
    }
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
        Err(SysError::new("sigtimedwait", io::Error::new(io::ErrorKind::Unsupported, "Linux only")))
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

/// Sends one datagram to the unix socket at `address` (a leading NUL: the abstract namespace).
pub fn send_datagram(address: &[u8], bytes: &[u8]) -> SysResult<()> {
    let socket = new_socket(libc::AF_UNIX, libc::SOCK_DGRAM)?;
    // SAFETY: all-zero is a valid sockaddr_un.
    let mut sun: libc::sockaddr_un = unsafe { mem::zeroed() };
    sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
    if address.is_empty() || address.len() >= sun.sun_path.len() {
        return Err(SysError::new(
            "sendto",
            io::Error::from_raw_os_error(libc::ENAMETOOLONG),
        ));
    }
    for (dst, src) in sun.sun_path.iter_mut().zip(address) {
        *dst = *src as c_char;
    }
    let len = mem::size_of::<libc::sa_family_t>() + address.len() + usize::from(address[0] != 0);
    // SAFETY: `sun` is a sockaddr_un of length `len`; `bytes` is valid for its length.
    let sent = unsafe {
        libc::sendto(
            socket.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_DONTWAIT,
            &sun as *const _ as *const libc::sockaddr,
            len as libc::socklen_t,
        )
    };
    if sent == -1 {
        return Err(SysError::new("sendto", io::Error::last_os_error()));
    }
    Ok(())
}

// ---- the broker channel ----------------------------------------------------------------

/// A connected pair of close-on-exec `SOCK_SEQPACKET` unix sockets.
pub fn seqpacket_pair() -> SysResult<(Fd, Fd)> {
    let mut fds = [0 as c_int; 2];
    #[cfg(target_os = "linux")]
    let kind = libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC;
    #[cfg(not(target_os = "linux"))]
    let kind = libc::SOCK_SEQPACKET;
    // SAFETY: `fds` has room for two descriptors.
    cvt("socketpair", unsafe {
        libc::socketpair(libc::AF_UNIX, kind, 0, fds.as_mut_ptr())
    })?;
    // SAFETY: socketpair returned two fresh descriptors we own.
    let pair = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    set_cloexec(pair.0.as_raw_fd())?;
    set_cloexec(pair.1.as_raw_fd())?;
    Ok(pair)
}

/// Sends one message with at most one descriptor, without blocking: a peer that does not
/// read its replies gets EAGAIN here, not a stuck sender.
pub fn send_message(socket: RawFd, bytes: &[u8], fd: Option<RawFd>) -> SysResult<()> {
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut _,
        iov_len: bytes.len(),
    };
    // SAFETY: all-zero is a valid msghdr.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    let mut control = [0u64; 4];
    if let Some(fd) = fd {
        msg.msg_control = control.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE is a pure computation.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(mem::size_of::<c_int>() as u32) } as _;
        // SAFETY: the control buffer holds one cmsghdr with room for one int.
        unsafe {
            let header = libc::CMSG_FIRSTHDR(&msg);
            (*header).cmsg_level = libc::SOL_SOCKET;
            (*header).cmsg_type = libc::SCM_RIGHTS;
            (*header).cmsg_len = libc::CMSG_LEN(mem::size_of::<c_int>() as u32) as _;
            ptr::write_unaligned(libc::CMSG_DATA(header) as *mut c_int, fd);
        }
    }
    #[cfg(target_os = "linux")]
    let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
    #[cfg(not(target_os = "linux"))]
    let flags = libc::MSG_DONTWAIT;
    // SAFETY: `msg` points at live buffers of the lengths given.
    let sent = unsafe { libc::sendmsg(socket, &msg, flags) };
    if sent == -1 {
        return Err(SysError::new("sendmsg", io::Error::last_os_error()));
    }
    Ok(())
}

/// One received message: its bytes (empty at end of file), the descriptors that came with it
/// (close-on-exec, owned here), and whether it or its descriptors were cut short.
pub struct Message {
    pub bytes: Vec<u8>,
    pub fds: Vec<Fd>,
    pub truncated: bool,
    /// Descriptors were sent that this process could not take (MSG_CTRUNC): at its
    /// descriptor limit, the kernel drops them.
    pub fds_dropped: bool,
}

/// Receives one message of at most `max` bytes; more is reported as `truncated`.
pub fn receive_message(socket: RawFd, max: usize) -> SysResult<Message> {
    let mut bytes = vec![0u8; max + 1];
    let mut iov = libc::iovec {
        iov_base: bytes.as_mut_ptr().cast(),
        iov_len: bytes.len(),
    };
    let mut control = [0u64; 32];
    // SAFETY: all-zero is a valid msghdr.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = mem::size_of_val(&control) as _;
    #[cfg(target_os = "linux")]
    let flags = libc::MSG_CMSG_CLOEXEC;
    #[cfg(not(target_os = "linux"))]
    let flags = 0;
    let n = loop {
        // SAFETY: `msg` points at live buffers of the lengths given.
        let n = unsafe { libc::recvmsg(socket, &mut msg, flags) };
        if n >= 0 {
            break n as usize;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(SysError::new("recvmsg", err));
        }
    };
    let mut fds = Vec::new();
    // SAFETY: walking the control messages the kernel wrote into `control`.
    unsafe {
        let mut header = libc::CMSG_FIRSTHDR(&msg);
        while !header.is_null() {
            if (*header).cmsg_level == libc::SOL_SOCKET && (*header).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(header);
                let count = ((*header).cmsg_len as usize - (data as usize - header as usize)) / mem::size_of::<c_int>();
                for i in 0..count {
                    let fd = ptr::read_unaligned((data as *const c_int).add(i));
                    fds.push(OwnedFd::from_raw_fd(fd));
                }
            }
            header = libc::CMSG_NXTHDR(&msg, header);
        }
    }
    #[cfg(not(target_os = "linux"))]
    for fd in &fds {
        set_cloexec(fd.as_raw_fd())?; // Linux did it already: MSG_CMSG_CLOEXEC
    }
    let truncated = n > max || msg.msg_flags & libc::MSG_TRUNC != 0;
    let fds_dropped = msg.msg_flags & libc::MSG_CTRUNC != 0;
    bytes.truncate(n.min(max));
    Ok(Message {
        bytes,
        fds,
        truncated,
        fds_dropped,
    })
}

/// Closes `fd` without waiting: a socket first gets SO_LINGER off, since a lingering TCP socket
/// with unsent data would hold `close` for its linger time (anything else just closes). For
/// what a process that is not trusted attached to a message.
pub fn close_unread(fd: OwnedFd) {
    let off = libc::linger { l_onoff: 0, l_linger: 0 };
    // SAFETY: `off` is a valid linger of the size given; on anything but a socket this fails
    // with ENOTSOCK and changes nothing.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&off as *const libc::linger).cast(),
            mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(fd);
}

pub fn kill(pid: u32, signal: c_int) -> SysResult<()> {
    // SAFETY: kill has no memory preconditions.
    cvt("kill", unsafe { libc::kill(pid as libc::pid_t, signal) }).map(drop)
}

/// Reaps one ended child without blocking: its pid and how it ended; `None` when no child
/// has ended (or there is none).
pub fn reap() -> SysResult<Option<(u32, ExitStatus)>> {
    loop {
        let mut status: c_int = 0;
        // SAFETY: `status` is valid for writes.
        match cvt("waitpid", unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) }) {
            Err(e) if e.err.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.err.raw_os_error() == Some(libc::ECHILD) => return Ok(None),
            Err(e) => return Err(e),
            Ok(0) => return Ok(None),
            Ok(pid) => return Ok(Some((pid as u32, exit_status(status)))),
        }
    }
}

/// Blocks until child `pid` ends and reaps it.
pub fn wait(pid: u32) -> SysResult<ExitStatus> {
    let mut status: c_int = 0;
    loop {
        // SAFETY: `status` is valid for writes.
        match cvt("waitpid", unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) }) {
            Err(e) if e.err.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
            Ok(_) => return Ok(exit_status(status)),
        }
    }
}

fn exit_status(status: c_int) -> ExitStatus {
    if libc::WIFSIGNALED(status) {
        ExitStatus {
            code: None,
            signal: Some(libc::WTERMSIG(status)),
        }
    } else {
        ExitStatus {
            code: Some(libc::WEXITSTATUS(status)),
            signal: None,
        }
    }
}

/// Ends this process by `signal` with its default action, as the child ended, but never
/// with a core file: this process is root and the core would hold the child's secrets. If
/// the action does not end a process (SIGCHLD, say), exits 128 + signal as shells report it.
pub fn die_by_signal(signal: i32) -> ! {
    // SAFETY: limiting core size, clearing dumpable, resetting a disposition, unblocking
    // and raising are sound in any state; _exit does not return.
    unsafe {
        let none = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::setrlimit(libc::RLIMIT_CORE, &none);
        #[cfg(target_os = "linux")]
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        libc::signal(signal, libc::SIG_DFL);
        let mut set: libc::sigset_t = mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signal);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, ptr::null_mut());
        libc::raise(signal);
        libc::_exit(128 + signal)
    }
}

/// This process gets SIGKILL when `parent` dies (and at once if it already has).
pub fn die_with_parent(parent: u32) -> SysResult<()> {
    #[cfg(target_os = "linux")]
    // SAFETY: plain prctl.
    cvt("prctl", unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0)
    })?;
    // SAFETY: getppid has no preconditions.
    if unsafe { libc::getppid() } as u32 != parent {
        return Err(SysError::new("getppid", io::Error::from_raw_os_error(libc::ESRCH)));
    }
    Ok(())
}

/// Descendants orphaned below this process become its children (PR_SET_CHILD_SUBREAPER), as
/// they would become init's: the monitor can end them when the program ends.
pub fn become_subreaper() -> SysResult<()> {
    #[cfg(target_os = "linux")]
    // SAFETY: plain prctl.
    cvt("prctl", unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) })?;
    Ok(())
}

/// The pids whose parent is this process, from each `/proc/<pid>/stat`. A process that ends
/// while the list is read is left out, or is listed as a zombie (still this process's child).
pub fn children() -> SysResult<Vec<u32>> {
    let me = std::process::id();
    let dir = std::fs::read_dir("/proc").map_err(|e| SysError::new("opendir", e))?;
    let mut pids = Vec::new();
    for entry in dir {
        let entry = entry.map_err(|e| SysError::new("readdir", e))?;
        let pid = match entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) {
            Some(pid) => pid,
            None => continue,
        };
        let stat = match std::fs::read_to_string(format!("/proc/{}/stat", pid)) {
            Ok(stat) => stat,
            Err(_) => continue,
        };
        // "pid (comm) state ppid ...": comm may hold spaces and ')', so count from the last ')'.
        let ppid = stat
            .rfind(')')
            .and_then(|end| stat[end + 1..].split_whitespace().nth(1))
            .and_then(|ppid| ppid.parse::<u32>().ok());
        if ppid == Some(me) {
            pids.push(pid);
        }
    }
    Ok(pids)
}

/// Closes every descriptor from 3 on that is not in `keep`.
pub fn close_all_but(keep: &[RawFd]) -> SysResult<()> {
    let mut open = Vec::new();
    #[cfg(target_os = "linux")]
    {
        let mut buf = [0u8; 1024];
        // SAFETY: collecting numbers; the descriptor used for reading is skipped.
        let listed = unsafe {
            for_each_open_fd(&mut buf, |fd| {
                open.push(fd);
                true
            })
        };
        if listed.is_none() {
            open = (3..1024).collect();
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        // SAFETY: sysconf has no preconditions.
        let max = unsafe { libc::sysconf(libc::_SC_OPEN_MAX) }.clamp(1024, 65536) as RawFd;
        open = (3..max).collect();
    }
    for fd in open {
        if fd >= 3 && !keep.contains(&fd) {
            // SAFETY: closing a descriptor nobody in this process holds as an OwnedFd.
            unsafe { libc::close(fd) };
        }
    }
    Ok(())
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

/// Marks this process not dumpable: no core file, and other processes of its uid can
/// neither ptrace it nor read its /proc files (environ, fds, memory).
pub fn set_not_dumpable() -> SysResult<()> {
    #[cfg(target_os = "linux")]
    // SAFETY: plain prctl.
    cvt("prctl", unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) })?;
    Ok(())
}

// ---- the hand-off ---------------------------------------------------------------------

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

// ---- walking paths ---------------------------------------------------------------------

/// A descriptor of a folder or file met on a walk (see crate::paths).
pub type Fd = OwnedFd;

#[allow(clippy::unnecessary_cast)] // mode_t is u16 on macOS
pub const S_IFMT: u32 = libc::S_IFMT as u32;
#[allow(clippy::unnecessary_cast)] // mode_t is u16 on macOS
pub const S_IFDIR: u32 = libc::S_IFDIR as u32;
#[allow(clippy::unnecessary_cast)] // mode_t is u16 on macOS
pub const S_IFLNK: u32 = libc::S_IFLNK as u32;
#[allow(clippy::unnecessary_cast)] // mode_t is u16 on macOS
pub const S_IFREG: u32 = libc::S_IFREG as u32;
#[allow(clippy::unnecessary_cast)] // mode_t is u16 on macOS
pub const S_ISVTX: u32 = libc::S_ISVTX as u32;

#[allow(clippy::unnecessary_cast)] // field types differ between Linux and macOS
fn to_stat(st: &libc::stat) -> Stat {
    Stat {
        uid: st.st_uid as u32,
        mode: st.st_mode as u32,
        dev: st.st_dev as u64,
        ino: st.st_ino as u64,
    }
}

/// Opens a folder for walking: `/` without `parent`, else `name` in `parent`, never
/// following a symlink.
pub fn open_dir(parent: Option<&Fd>, name: &CStr) -> SysResult<Fd> {
    #[cfg(target_os = "linux")]
    let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    #[cfg(not(target_os = "linux"))]
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: `name` is a C string; the parent descriptor is open.
    owned("openat", unsafe {
        match parent {
            None => libc::open(b"/\0".as_ptr().cast(), flags),
            Some(dir) => libc::openat(dir.as_raw_fd(), name.as_ptr(), flags),
        }
    })
}

/// Opens the regular file `name` in `dir` for reading: no symlink followed, no controlling
/// terminal acquired, no blocking on a FIFO.
pub fn open_file_at(dir: &Fd, name: &CStr) -> SysResult<Fd> {
    let flags = libc::O_RDONLY | libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: `name` is a C string; `dir` is open.
    owned("openat", unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags) })
}

/// The entry `name` in `dir` itself (a symlink is not followed).
pub fn stat_at(dir: &Fd, name: &CStr) -> SysResult<Stat> {
    // SAFETY: all-zero is a valid stat; fstatat writes it.
    let mut st: libc::stat = unsafe { mem::zeroed() };
    // SAFETY: `name` is a C string, `st` is valid for writes.
    cvt("fstatat", unsafe {
        libc::fstatat(dir.as_raw_fd(), name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW)
    })?;
    Ok(to_stat(&st))
}

pub fn stat_fd(fd: &Fd) -> SysResult<Stat> {
    // SAFETY: all-zero is a valid stat; fstat writes it.
    let mut st: libc::stat = unsafe { mem::zeroed() };
    // SAFETY: `st` is valid for writes.
    cvt("fstat", unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(to_stat(&st))
}

/// The target of the symlink `name` in `dir`.
pub fn read_link_at(dir: &Fd, name: &CStr) -> SysResult<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: `buf` is valid for `buf.len()` bytes of writes.
    let n = unsafe { libc::readlinkat(dir.as_raw_fd(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(SysError::new("readlinkat", io::Error::last_os_error()));
    }
    if n as usize == buf.len() {
        return Err(SysError::new(
            "readlinkat",
            io::Error::from_raw_os_error(libc::ENAMETOOLONG),
        ));
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// The name of the pseudo file system `fd` is on (procfs, sysfs, …), or `None` for a file
/// system that stores files.
pub fn pseudo_fs(fd: &Fd) -> SysResult<Option<&'static str>> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: all-zero is a valid statfs; fstatfs writes it.
        let mut st: libc::statfs = unsafe { mem::zeroed() };
        // SAFETY: `st` is valid for writes.
        cvt("fstatfs", unsafe { libc::fstatfs(fd.as_raw_fd(), &mut st) })?;
        let known: [(i64, &str); 10] = [
            (0x9fa0, "procfs"),
            (0x6265_6572, "sysfs"),
            (0x6462_6720, "debugfs"),
            (0x7472_6163, "tracefs"),
            (0x7363_6673, "securityfs"),
            (0x1cd1, "devpts"),
            (0x27e0eb, "cgroup"),
            (0x6367_7270, "cgroup2"),
            (0xcafe_4a11, "bpf"),
            (0x6e73_6673, "nsfs"),
        ];
        let kind = st.f_type as i64;
        Ok(known.iter().find(|(magic, _)| *magic == kind).map(|(_, name)| *name))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = fd;
        Ok(None)
    }
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Gives up ownership: the caller now owns the number.
pub fn into_raw(fd: Fd) -> RawFd {
    fd.into_raw_fd()
}

// ---- unix socket files ----------------------------------------------------------------

/// What `socket_file` reports for a path that holds something other than a socket.
pub const ENOTSOCK: i32 = libc::ENOTSOCK;

/// `(device, inode)` of the socket file at `path`, `None` if there is none (or no socket).
pub fn socket_file(path: &CStr) -> SysResult<Option<(u64, u64)>> {
    // SAFETY: all-zero is a valid stat; lstat writes it.
    let mut st: libc::stat = unsafe { mem::zeroed() };
    // SAFETY: `path` is a C string and `st` is valid for writes.
    if unsafe { libc::lstat(path.as_ptr(), &mut st) } == -1 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ENOENT) {
            return Ok(None);
        }
        return Err(SysError::new("lstat", err));
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(SysError::new("lstat", io::Error::from_raw_os_error(libc::ENOTSOCK)));
    }
    Ok(Some((st.st_dev as u64, st.st_ino as u64)))
}

/// True when a stream socket at `address` accepts a connection (someone serves it).
pub fn accepts_connections(address: &Address) -> SysResult<bool> {
    let socket = new_socket(libc::AF_UNIX, libc::SOCK_STREAM)?;
    let (storage, len) = to_sockaddr(address)?;
    // SAFETY: `storage` holds a sockaddr of length `len`.
    let ret = unsafe { libc::connect(socket.as_raw_fd(), &storage as *const _ as *const libc::sockaddr, len) };
    if ret == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::ECONNREFUSED) | Some(libc::ENOENT) => Ok(false),
        // A full backlog or a datagram socket: it is alive, or at least not ours to remove.
        _ => Ok(true),
    }
}

pub fn unlink(path: &CStr) -> SysResult<()> {
    // SAFETY: `path` is a C string.
    cvt("unlink", unsafe { libc::unlink(path.as_ptr()) }).map(drop)
}

fn chmod(path: &CStr, mode: u32) -> SysResult<()> {
    // SAFETY: `path` is a C string.
    cvt("chmod", unsafe { libc::chmod(path.as_ptr(), mode as libc::mode_t) }).map(drop)
}
