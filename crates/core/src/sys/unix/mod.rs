//! Every raw libc call privsep makes on Unix, one file per topic: this one holds the one
//! conversion point (`cvt`), descriptors and sockets, and what the topics share. Linux is
//! tested; macOS must compile, and what it lacks (parent-death signal, saved-id queries) is left
//! out behind `cfg` with a note.

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

mod channel;
mod handoff;
mod paths;
mod process;
mod region;
#[cfg(target_os = "linux")]
mod sandbox;
mod socket_files;
mod spawn;
// Elsewhere no Landlock and no seccomp: a sandbox cannot be prepared (spawn.rs says so).
#[cfg(not(target_os = "linux"))]
mod sandbox {
    use super::*;
    pub struct Sandboxing {
        pub abi: u32,
    }
    pub fn prepare_sandbox(_sandbox: &privsep_wire::sandbox::Sandbox) -> SysResult<Sandboxing> {
        Err(SysError::new(
            "landlock_create_ruleset",
            io::Error::from_raw_os_error(libc::ENOSYS),
        ))
    }
    pub struct InFork;
    pub enum SandboxFailure {
        Landlock(i32),
        Seccomp(i32),
    }
    impl Sandboxing {
        pub fn state_entry(&mut self) -> *const c_char {
            ptr::null()
        }
        pub fn in_fork(&mut self) -> InFork {
            InFork
        }
    }
    impl InFork {
        pub unsafe fn move_above(&mut self, _floor: c_int) -> c_int {
            0
        }
        pub unsafe fn apply(&self) -> Result<(), SandboxFailure> {
            Ok(())
        }
    }
}
pub use channel::*;
pub use handoff::*;
pub use paths::*;
pub use process::*;
pub use region::*;
pub use sandbox::*;
pub use socket_files::*;
pub use spawn::*;

/// The one place a `-1` becomes an error.
pub fn cvt(syscall: &'static str, ret: c_int) -> SysResult<c_int> {
    if ret == -1 {
        Err(SysError::new(syscall, io::Error::last_os_error()))
    } else {
        Ok(ret)
    }
}

pub fn owned(syscall: &'static str, ret: c_int) -> SysResult<OwnedFd> {
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

// ---- shared by the topics above ------------------------------------------------------

/// A set of signals, and the thread's mask swapped for it.
pub struct SignalMask(libc::sigset_t);

impl SignalMask {
    pub fn all() -> SignalMask {
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
    pub fn swap(&self) -> SysResult<SignalMask> {
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

#[cfg(target_os = "linux")]
unsafe fn set_errno(value: c_int) {
    *libc::__errno_location() = value;
}

#[cfg(not(target_os = "linux"))]
unsafe fn set_errno(value: c_int) {
    *libc::__error() = value;
}

fn chmod(path: &CStr, mode: u32) -> SysResult<()> {
    // SAFETY: `path` is a C string.
    cvt("chmod", unsafe { libc::chmod(path.as_ptr(), mode as libc::mode_t) }).map(drop)
}

#[cfg(target_os = "linux")]
const NSIG: c_int = 65;

#[cfg(not(target_os = "linux"))]
const NSIG: c_int = 32;

/// Reads until `buf` is full or end of file; returns how much was read.
pub fn read_full(fd: RawFd, buf: &mut [u8]) -> SysResult<usize> {
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

pub fn pipe() -> SysResult<(OwnedFd, OwnedFd)> {
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

pub fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
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
