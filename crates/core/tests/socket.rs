//! Socket validation against real descriptors: what the child checks before trusting fd 3..
#![cfg(unix)]

use privsep_core::socket::{self, Endpoint};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::io::AsRawFd;

fn endpoint(network: &str, address: &str) -> Endpoint {
    Endpoint::parse(network, address).unwrap()
}

fn code(fd: i32, network: &str, address: &str) -> &'static str {
    socket::validate(fd, &endpoint(network, address)).unwrap_err().code()
}

#[test]
fn a_listening_socket_matches_its_declaration() {
    let fd = socket::listen(&endpoint("tcp4", "127.0.0.1:0"), 16, None).unwrap();
    socket::validate(fd, &endpoint("tcp4", "127.0.0.1:0")).unwrap();
    socket::close(fd).unwrap();
}

#[test]
fn created_sockets_are_close_on_exec() {
    let fd = socket::listen(&endpoint("udp6", "[::1]:0"), 0, None).unwrap();
    // SAFETY: F_GETFD on a descriptor we own.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
    socket::close(fd).unwrap();
}

#[test]
fn validation_sets_close_on_exec() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let fd = listener.as_raw_fd();
    // SAFETY: clearing the flag on a descriptor we own.
    unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    socket::validate(fd, &endpoint("tcp4", "127.0.0.1:0")).unwrap();
    // SAFETY: as above.
    assert_eq!(
        unsafe { libc::fcntl(fd, libc::F_GETFD) } & libc::FD_CLOEXEC,
        libc::FD_CLOEXEC
    );
}

#[test]
fn a_port_must_match_unless_declared_zero() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let fd = listener.as_raw_fd();
    socket::validate(fd, &endpoint("tcp4", &format!("127.0.0.1:{}", port))).unwrap();
    let other = if port == 65535 { 1 } else { port + 1 };
    assert_eq!(
        code(fd, "tcp4", &format!("127.0.0.1:{}", other)),
        "ERR_PRIVSEP_SOCKET_ADDRESS"
    );
    assert_eq!(code(fd, "tcp4", "127.0.0.2:0"), "ERR_PRIVSEP_SOCKET_ADDRESS");
}

#[test]
fn wrong_type_family_or_state_is_refused() {
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    assert_eq!(code(udp.as_raw_fd(), "tcp4", "127.0.0.1:0"), "ERR_PRIVSEP_SOCKET_TYPE");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    assert_eq!(
        code(listener.as_raw_fd(), "tcp6", "[::1]:0"),
        "ERR_PRIVSEP_SOCKET_FAMILY"
    );
    assert_eq!(
        code(listener.as_raw_fd(), "unix", "/tmp/x.sock"),
        "ERR_PRIVSEP_SOCKET_FAMILY"
    );
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    assert_eq!(
        code(client.as_raw_fd(), "tcp4", "127.0.0.1:0"),
        "ERR_PRIVSEP_NOT_LISTENING"
    );
}

/// A descriptor number that no thread can have open: the soft RLIMIT_NOFILE. The kernel hands
/// out only numbers below it (EMFILE beyond), and no test changes the limit. A number freed by
/// close() would not do: cargo runs tests in threads, and the next socket another test creates
/// can take that number before it is validated.
fn never_open_fd() -> i32 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
    i32::try_from(limit.rlim_cur).unwrap_or(i32::MAX)
}

#[test]
fn files_and_closed_descriptors_are_refused() {
    let file = std::fs::File::open("/etc/hostname").unwrap();
    assert_eq!(code(file.as_raw_fd(), "tcp4", "127.0.0.1:0"), "ERR_PRIVSEP_NOT_SOCKET");
    socket::validate_file(file.as_raw_fd(), "/etc/hostname").unwrap();
    let closed = never_open_fd();
    match socket::validate(closed, &endpoint("tcp4", "127.0.0.1:0")).unwrap_err() {
        privsep_core::Error::Os { syscall, errno, .. } => assert_eq!((syscall, errno), ("fstat", libc::EBADF)),
        other => panic!("expected EBADF, got {:?}", other),
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    assert_eq!(
        socket::validate_file(listener.as_raw_fd(), "/k").unwrap_err().code(),
        "ERR_PRIVSEP_NOT_FILE"
    );
}

#[test]
fn unix_sockets_match_by_path() {
    let dir = std::env::temp_dir().join(format!("privsep-core-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("a, b é.sock");
    let path = path.to_str().unwrap();
    let fd = socket::listen(&endpoint("unix", path), 8, None).unwrap();
    socket::validate(fd, &endpoint("unix", path)).unwrap();
    assert_eq!(code(fd, "unix", "/tmp/elsewhere.sock"), "ERR_PRIVSEP_SOCKET_ADDRESS");
    socket::close(fd).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn addresses_parse_to_one_canonical_form() {
    assert_eq!(endpoint("tcp", ":25").to_string(), "[::]:25");
    assert_eq!(endpoint("tcp4", ":25").to_string(), "0.0.0.0:25");
    assert_eq!(endpoint("udp", "[::0]:53").to_string(), "[::]:53");
    for (network, address) in [
        ("tcp", "example.org:25"),
        ("tcp", "1.2.3.4"),
        ("udp6", "1.2.3.4:5"),
        ("unix", ""),
        ("sctp", ":1"),
    ] {
        assert_eq!(
            Endpoint::parse(network, address).unwrap_err().code(),
            "ERR_PRIVSEP_INVALID_ARGUMENT",
            "{} {}",
            network,
            address
        );
    }
}

/// A socket of `protocol` bound to 127.0.0.1 (and listening, if a stream); `None` where this
/// kernel has no such protocol.
fn inet_socket(kind: libc::c_int, protocol: libc::c_int) -> Option<i32> {
    // SAFETY: plain socket(2); the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, kind, protocol) };
    if fd < 0 {
        return None;
    }
    // SAFETY: all-zero is a valid sockaddr_in.
    let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sin.sin_family = libc::AF_INET as libc::sa_family_t;
    sin.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: `sin` is a sockaddr_in of `len` bytes; fd is ours.
    assert_eq!(
        unsafe { libc::bind(fd, &sin as *const _ as *const libc::sockaddr, len) },
        0
    );
    if kind == libc::SOCK_STREAM {
        // SAFETY: listen(2) on our socket.
        assert_eq!(unsafe { libc::listen(fd, 1) }, 0);
    }
    Some(fd)
}

/// An MPTCP socket is a stream and UDP-Lite a datagram socket of the inet family, but neither
/// is what tcp4 or udp4 declares (issue 13): `SO_PROTOCOL` tells them apart.
#[test]
#[cfg(target_os = "linux")]
fn an_mptcp_or_udp_lite_socket_is_not_tcp_or_udp() {
    const IPPROTO_MPTCP: libc::c_int = 262;
    const IPPROTO_UDPLITE: libc::c_int = 136;
    let mut checked = 0;
    for (kind, protocol, network) in [
        (libc::SOCK_STREAM, IPPROTO_MPTCP, "tcp4"),
        (libc::SOCK_DGRAM, IPPROTO_UDPLITE, "udp4"),
    ] {
        let fd = match inet_socket(kind, protocol) {
            Some(fd) => fd,
            None => {
                eprintln!("protocol {} is not in this kernel: not checked", protocol);
                continue;
            }
        };
        assert_eq!(
            code(fd, network, "127.0.0.1:0"),
            "ERR_PRIVSEP_SOCKET_TYPE",
            "protocol {}",
            protocol
        );
        let plain = inet_socket(kind, 0).unwrap();
        socket::validate(plain, &endpoint(network, "127.0.0.1:0")).unwrap();
        socket::close(fd).unwrap();
        socket::close(plain).unwrap();
        checked += 1;
    }
    assert!(checked > 0, "neither MPTCP nor UDP-Lite could be created");
}
