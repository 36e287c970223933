//! The broker channel's calls: a `SOCK_SEQPACKET` pair, one message with at most one
//! descriptor each way (descriptors beyond that closed unread), and systemd's datagram.

use super::*;

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
        attach_fd(&mut msg, &mut control, fd);
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
    let off = libc::linger {
        l_onoff: 0,
        l_linger: 0,
    };
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
    signal_with_parent(parent, libc::SIGKILL)
}

/// This process gets `signal` when `parent` dies (and at once if it already has).
pub fn signal_with_parent(parent: u32, signal: c_int) -> SysResult<()> {
    #[cfg(target_os = "linux")]
    // SAFETY: plain prctl.
    cvt("prctl", unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong, 0, 0, 0)
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
    cvt("prctl", unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    })?;
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

/// Marks this process not dumpable: no core file, and other processes of its uid can
/// neither ptrace it nor read its /proc files (environ, fds, memory).
pub fn set_not_dumpable() -> SysResult<()> {
    #[cfg(target_os = "linux")]
    // SAFETY: plain prctl.
    cvt("prctl", unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) })?;
    Ok(())
}

/// Sends one datagram, with descriptor `fd` attached (SCM_RIGHTS) when given, to the unix
/// socket at `address` (a path, or a leading NUL for the abstract namespace), without blocking:
/// systemd's notifications, `FDSTORE=1` among them.
pub fn send_datagram(address: &[u8], bytes: &[u8], fd: Option<RawFd>) -> SysResult<()> {
    let socket = new_socket(libc::AF_UNIX, libc::SOCK_DGRAM)?;
    // SAFETY: all-zero is a valid sockaddr_un.
    let mut sun: libc::sockaddr_un = unsafe { mem::zeroed() };
    sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
    if address.is_empty() || address.len() >= sun.sun_path.len() {
        return Err(SysError::new(
            "sendmsg",
            io::Error::from_raw_os_error(libc::ENAMETOOLONG),
        ));
    }
    for (dst, src) in sun.sun_path.iter_mut().zip(address) {
        *dst = *src as c_char;
    }
    let len = mem::size_of::<libc::sa_family_t>() + address.len() + usize::from(address[0] != 0);
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut _,
        iov_len: bytes.len(),
    };
    // SAFETY: all-zero is a valid msghdr.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_name = (&mut sun as *mut libc::sockaddr_un).cast();
    msg.msg_namelen = len as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    let mut control = [0u64; 4];
    if let Some(fd) = fd {
        attach_fd(&mut msg, &mut control, fd);
    }
    // SAFETY: `msg` points at live buffers of the lengths given.
    if unsafe { libc::sendmsg(socket.as_raw_fd(), &msg, libc::MSG_DONTWAIT) } == -1 {
        return Err(SysError::new("sendmsg", io::Error::last_os_error()));
    }
    Ok(())
}

/// Attaches descriptor `fd` to `msg` as one SCM_RIGHTS control message held in `control`,
/// which must outlive the send.
fn attach_fd(msg: &mut libc::msghdr, control: &mut [u64; 4], fd: c_int) {
    msg.msg_control = control.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE is a pure computation.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(mem::size_of::<c_int>() as u32) } as _;
    // SAFETY: the control buffer (32 bytes, aligned) holds one cmsghdr with room for one int.
    unsafe {
        let header = libc::CMSG_FIRSTHDR(msg);
        (*header).cmsg_level = libc::SOL_SOCKET;
        (*header).cmsg_type = libc::SCM_RIGHTS;
        (*header).cmsg_len = libc::CMSG_LEN(mem::size_of::<c_int>() as u32) as _;
        ptr::write_unaligned(libc::CMSG_DATA(header) as *mut c_int, fd);
    }
}
