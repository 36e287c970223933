//! The same functions as `unix.rs` for Windows, which has no descriptors to pass, no
//! fork/exec as another user and no adoption of a socket by number: each says Unsupported,
//! and the TypeScript layer takes the in-process fallback (filesImmediate).

use crate::error::{SysError, SysResult};
use crate::paths::Stat;
use crate::socket::{Address, FdKind, Protocol, SocketType};
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

pub fn listen_socket(
    _address: &Address,
    _stream: bool,
    _v6only: Option<bool>,
    _backlog: i32,
    _mode: Option<u32>,
) -> SysResult<i32> {
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

pub fn socket_protocol(_fd: i32) -> SysResult<Option<Protocol>> {
    unsupported("getsockopt")
}

pub fn is_readable(_fd: i32) -> SysResult<bool> {
    unsupported("fcntl")
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

pub fn is_process_limit(_err: &SysError) -> bool {
    false
}

pub fn process_limit() -> Option<u64> {
    None
}

pub fn access_as(_ids: &Ids, _paths: &[(&CStr, bool)]) -> SysResult<Option<(usize, i32)>> {
    unsupported("fork")
}

pub fn wait(_pid: u32) -> SysResult<ExitStatus> {
    unsupported("waitpid")
}

pub fn reap() -> SysResult<Option<(u32, ExitStatus)>> {
    unsupported("waitpid")
}

// Windows has none of these signals; the numbers only keep the portable code compiling.
pub const SIGCHLD: i32 = 17;
pub const SIGPIPE: i32 = 13;
pub const SIGUSR1: i32 = 10;
pub const SIGTERM: i32 = 15;
pub const SIGINT: i32 = 2;
pub const SIGKILL: i32 = 9;
pub const EMFILE: i32 = 24;

pub fn catch_signals(_caught: &[i32], _ignored: &[i32]) -> SysResult<i32> {
    unsupported("sigaction")
}

pub fn caught_signals(_pipe: i32) -> Vec<i32> {
    Vec::new()
}

pub fn poll_readable(_fds: &[i32], _timeout_ms: i32) -> SysResult<Vec<bool>> {
    unsupported("poll")
}

pub fn send_datagram(_address: &[u8], _bytes: &[u8]) -> SysResult<()> {
    unsupported("sendto")
}

pub fn seqpacket_pair() -> SysResult<(Fd, Fd)> {
    unsupported("socketpair")
}

pub fn send_message(_socket: i32, _bytes: &[u8], _fd: Option<i32>) -> SysResult<()> {
    unsupported("sendmsg")
}

pub struct Message {
    pub bytes: Vec<u8>,
    pub fds: Vec<Fd>,
    pub truncated: bool,
    pub fds_dropped: bool,
}

pub fn receive_message(_socket: i32, _max: usize) -> SysResult<Message> {
    unsupported("recvmsg")
}

pub fn kill(_pid: u32, _signal: i32) -> SysResult<()> {
    unsupported("kill")
}

pub fn die_by_signal(signal: i32) -> ! {
    std::process::exit(128 + signal)
}

pub fn die_with_parent(_parent: u32) -> SysResult<()> {
    unsupported("prctl")
}

pub fn close_all_but(_keep: &[i32]) -> SysResult<()> {
    unsupported("close")
}

pub fn set_not_dumpable() -> SysResult<()> {
    unsupported("prctl")
}

pub fn anonymous_file(_bytes: &[u8]) -> SysResult<i32> {
    unsupported("memfd_create")
}

pub fn read_to_end(_fd: i32, _max: usize) -> SysResult<Vec<u8>> {
    unsupported("read")
}

pub fn write_all(_fd: i32, _bytes: &[u8]) -> SysResult<()> {
    unsupported("write")
}

pub fn exec_keeping(_program: &CStr, _argv: &[CString], _keep: &[i32]) -> SysError {
    SysError::new("execve", io::Error::new(io::ErrorKind::Unsupported, "not on Windows"))
}

/// A descriptor of a folder or file met on a walk: none on Windows.
pub struct Fd;

pub const S_IFMT: u32 = 0o170000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFREG: u32 = 0o100000;
pub const S_ISVTX: u32 = 0o1000;

pub fn open_dir(_parent: Option<&Fd>, _name: &CStr) -> SysResult<Fd> {
    unsupported("openat")
}

pub fn open_file_at(_dir: &Fd, _name: &CStr) -> SysResult<Fd> {
    unsupported("openat")
}

pub fn stat_at(_dir: &Fd, _name: &CStr) -> SysResult<Stat> {
    unsupported("fstatat")
}

pub fn stat_fd(_fd: &Fd) -> SysResult<Stat> {
    unsupported("fstat")
}

pub fn read_link_at(_dir: &Fd, _name: &CStr) -> SysResult<Vec<u8>> {
    unsupported("readlinkat")
}

pub fn pseudo_fs(_fd: &Fd) -> SysResult<Option<&'static str>> {
    unsupported("fstatfs")
}

pub fn is_root() -> bool {
    false
}

pub fn into_raw(_fd: Fd) -> i32 {
    -1
}

/// What `socket_file` reports for a path that holds something other than a socket.
pub const ENOTSOCK: i32 = 10038;

pub fn socket_file(_path: &CStr) -> SysResult<Option<(u64, u64)>> {
    unsupported("lstat")
}

pub fn accepts_connections(_address: &Address) -> SysResult<bool> {
    unsupported("connect")
}

pub fn unlink(_path: &CStr) -> SysResult<()> {
    unsupported("unlink")
}
