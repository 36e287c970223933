//! Listening sockets: creating the socket in the root parent, and checking that an inherited
//! descriptor is exactly what was declared (the checks of systemd's `sd_is_socket_sockaddr`).
//! The addresses themselves are `privsep_wire::address`'s.

use crate::paths;
use crate::sys::{self, ENOTSOCK};
use crate::{Error, Result};
use std::ffi::CString;

pub use privsep_wire::address::*;

/// Creates, binds and (for streams) listens; returns the descriptor, close-on-exec, which the
/// caller now owns. As root, every folder on a unix socket's path must be root's alone
/// (`paths::check_folders`). A unix socket file left by an earlier run (nobody accepts on it)
/// is replaced; anything else at the path is refused and kept. `mode` sets the socket file's
/// permissions (unix only).
pub fn listen(endpoint: &Endpoint, backlog: i32, mode: Option<u32>) -> Result<i32> {
    let what = || format!("{} {}", endpoint.network.name(), endpoint);
    if let Address::Path(path) = &endpoint.address {
        if sys::is_root() {
            let absolute = std::env::current_dir()
                .map_err(|e| Error::os("getcwd", e, "unix socket path"))?
                .join(path);
            paths::check_folders(&absolute.to_string_lossy())?;
        }
        remove_stale(path)?;
    }
    sys::listen_socket(
        &endpoint.address,
        endpoint.network.is_stream(),
        endpoint.v6only(),
        backlog,
        mode,
    )
    .map_err(|e| e.about(what()))
}

fn c_path(path: &str) -> Result<CString> {
    CString::new(path).map_err(|_| {
        Error::invalid(
            "ERR_PRIVSEP_INVALID_ARGUMENT",
            format!("unix socket path {:?} contains a NUL byte", path),
        )
    })
}

/// Removes the socket file at `path` if it is stale: a socket on which connect is refused.
fn remove_stale(path: &str) -> Result<()> {
    let c = c_path(path)?;
    match socket_file(path)? {
        Some(_) if !sys::accepts_connections(&Address::Path(path.to_string())).map_err(|e| e.about(path))? => {
            sys::unlink(&c).map_err(|e| e.about(format!("stale unix socket {}", path)))
        }
        _ => Ok(()),
    }
}

/// `(device, inode)` of the unix socket file at `path`; `None` when nothing is there; a
/// file of another type is refused with `ERR_PRIVSEP_SOCKET_PATH`.
pub fn socket_file(path: &str) -> Result<Option<(u64, u64)>> {
    sys::socket_file(&c_path(path)?).map_err(|e| {
        if e.err.raw_os_error() == Some(ENOTSOCK) {
            Error::invalid(
                "ERR_PRIVSEP_SOCKET_PATH",
                format!(
                    "unix {}: something that is not a socket is at this path; privsep replaces only stale sockets, so nothing was deleted: remove it or choose another path",
                    path
                ),
            )
        } else {
            e.about(format!("unix {}", path))
        }
    })
}

/// Removes the socket file at `path` if it is still the one identified by `file`.
pub fn remove_socket_file(path: &str, file: (u64, u64)) -> Result<()> {
    if socket_file(path)? == Some(file) {
        sys::unlink(&c_path(path)?).map_err(|e| e.about(format!("unix {}", path)))?;
    }
    Ok(())
}

/// Checks that inherited `fd` is the socket `endpoint` declares: a socket, of its type,
/// listening if a stream, of its family, bound to its address (a declared port 0 matches any).
/// Sets close-on-exec on success.
pub fn validate(fd: i32, endpoint: &Endpoint) -> Result<()> {
    let what = format!("fd {} (declared {} {})", fd, endpoint.network.name(), endpoint);
    let refuse = |code: &'static str, why: String| Error::invalid(code, format!("{}: {}", what, why));
    match sys::fd_kind(fd).map_err(|e| e.about(what.clone()))? {
        FdKind::Socket => {}
        _ => return Err(refuse("ERR_PRIVSEP_NOT_SOCKET", "is not a socket".into())),
    }
    let wanted = if endpoint.network.is_stream() {
        SocketType::Stream
    } else {
        SocketType::Datagram
    };
    let actual = sys::socket_type(fd).map_err(|e| e.about(what.clone()))?;
    if actual != wanted {
        return Err(refuse(
            "ERR_PRIVSEP_SOCKET_TYPE",
            format!("is a {:?} socket, not {:?}", actual, wanted),
        ));
    }
    if wanted == SocketType::Stream && !sys::is_listening(fd).map_err(|e| e.about(what.clone()))? {
        return Err(refuse("ERR_PRIVSEP_NOT_LISTENING", "is not listening".into()));
    }
    let bound = sys::local_address(fd).map_err(|e| e.about(what.clone()))?;
    let same_family = match (&bound, &endpoint.address) {
        (Some(Address::Ip(a)), Address::Ip(b)) => a.is_ipv4() == b.is_ipv4(),
        (Some(Address::Path(_) | Address::RawPath(_)), Address::Path(_)) => true,
        _ => false,
    };
    if !same_family {
        return Err(refuse(
            "ERR_PRIVSEP_SOCKET_FAMILY",
            format!("has another address family ({:?})", bound),
        ));
    }
    // After the family: a unix socket declared as tcp is of another family, first.
    let protocol = match (endpoint.network, wanted) {
        (Network::Unix, _) => Protocol::Default,
        (_, SocketType::Stream) => Protocol::Tcp,
        _ => Protocol::Udp,
    };
    match sys::socket_protocol(fd).map_err(|e| e.about(what.clone()))? {
        Some(actual) if actual != protocol => {
            return Err(refuse(
                "ERR_PRIVSEP_SOCKET_TYPE",
                format!("is a socket of protocol {:?}, not {:?}", actual, protocol),
            ))
        }
        _ => {}
    }
    let bound = bound.expect("a family was found");
    if !same_address(&bound, &endpoint.address) {
        return Err(refuse("ERR_PRIVSEP_SOCKET_ADDRESS", format!("is bound to {}", bound)));
    }
    sys::set_cloexec(fd).map_err(|e| e.about(what))
}

/// Checks that inherited `fd` is a regular file open for reading and sets close-on-exec on it.
pub fn validate_file(fd: i32, path: &str) -> Result<()> {
    let what = format!("fd {} (declared file {:?})", fd, path);
    // An O_PATH descriptor fstat()s as the file it names, but cannot be read; nor can a
    // write-only one.
    let regular = sys::fd_kind(fd).map_err(|e| e.about(what.clone()))? == FdKind::Regular;
    if !regular || !sys::is_readable(fd).map_err(|e| e.about(what.clone()))? {
        return Err(Error::invalid(
            "ERR_PRIVSEP_NOT_FILE",
            format!("{}: is not a regular file open for reading", what),
        ));
    }
    sys::set_cloexec(fd).map_err(|e| e.about(what))
}

/// Closes a descriptor this process owns.
pub fn close(fd: i32) -> Result<()> {
    sys::close(fd).map_err(|e| e.about(format!("fd {}", fd)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    fn temp(name: &str) -> String {
        let dir = std::env::temp_dir().join(format!("privsep-socket-{}-{}", std::process::id(), name));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        dir.to_string_lossy().into_owned()
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_unix_socket_at_a_path_that_is_not_utf8_matches_no_declaration() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::io::AsRawFd;
        let dir = temp("raw");
        let mut path = format!("{}/a", dir).into_bytes();
        path.push(0xff);
        let listener = std::os::unix::net::UnixListener::bind(OsStr::from_bytes(&path)).unwrap();
        let declared = Endpoint::parse("unix", &format!("{}/a\u{fffd}", dir)).unwrap();
        let err = validate(listener.as_raw_fd(), &declared).unwrap_err();
        assert_eq!(err.code(), "ERR_PRIVSEP_SOCKET_ADDRESS", "{}", err);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn an_o_path_or_write_only_descriptor_is_not_a_file() {
        use std::fs::OpenOptions;
        use std::os::unix::fs::OpenOptionsExt;
        use std::os::unix::io::AsRawFd;
        let dir = temp("opath");
        let file = format!("{}/key.pem", dir);
        std::fs::write(&file, "k").unwrap();
        let readable = std::fs::File::open(&file).unwrap();
        validate_file(readable.as_raw_fd(), &file).unwrap();
        let o_path = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH)
            .open(&file)
            .unwrap();
        let write_only = OpenOptions::new().write(true).open(&file).unwrap();
        for fd in [o_path.as_raw_fd(), write_only.as_raw_fd()] {
            assert_eq!(validate_file(fd, &file).unwrap_err().code(), "ERR_PRIVSEP_NOT_FILE");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
