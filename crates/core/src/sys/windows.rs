//! The same functions as `unix.rs` for Windows, which has no descriptors to pass, no
//! fork/exec as another user and no adoption of a socket by number: each says Unsupported,
//! and the TypeScript layer takes the in-process fallback (filesImmediate).

use crate::error::{SysError, SysResult};
use crate::socket::{Address, FdKind, SocketType};
use crate::spawn::{ExitStatus, Ids};
use std::ffi::{CStr, CString};
use std::io;

fn unsupported<T>(syscall: &'static str) -> SysResult<T> {
    Err(SysError::new(
        syscall,
        io::Error::new(io::ErrorKind::Unsupported, "not on Windows"),
    ))
}

pub fn set_cloexec(_fd: i32) -> SysResult<()> {
    unsupported("fcntl")
}

pub fn close(_fd: i32) -> SysResult<()> {
    unsupported("close")
}

pub fn listen_socket(_address: &Address, _stream: bool, _v6only: Option<bool>, _backlog: i32) -> SysResult<i32> {
    unsupported("socket")
}

pub fn fd_kind(_fd: i32) -> SysResult<FdKind> {
    unsupported("fstat")
}

pub fn socket_type(_fd: i32) -> SysResult<SocketType> {
    unsupported("getsockopt")
}

pub fn is_listening(_fd: i32) -> SysResult<bool> {
    unsupported("getsockopt")
}

pub fn local_address(_fd: i32) -> SysResult<Option<Address>> {
    unsupported("getsockname")
}

pub fn user_by_name(_name: &CStr) -> SysResult<Option<(u32, u32)>> {
    unsupported("getpwnam_r")
}

pub fn group_by_name(_name: &CStr) -> SysResult<Option<u32>> {
    unsupported("getgrnam_r")
}

pub fn group_list(_name: &CStr, _gid: u32) -> SysResult<Vec<u32>> {
    unsupported("getgrouplist")
}

pub fn spawn_as(
    _program: &CStr,
    _argv: &[CString],
    _env: &[CString],
    _fds: &[i32],
    _ids: &Ids,
    _umask: Option<u32>,
) -> SysResult<u32> {
    unsupported("fork")
}

pub fn is_verify_failure(_err: &SysError) -> bool {
    false
}

pub fn wait(_pid: u32) -> SysResult<ExitStatus> {
    unsupported("waitpid")
}

pub fn die_by_signal(signal: i32) -> ! {
    std::process::exit(128 + signal)
}
