//! Unix socket files: what is at a path, whether something accepts there, removing it.

use super::*;

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
