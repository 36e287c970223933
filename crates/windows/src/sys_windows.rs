//! The same functions as `unix.rs` for Windows. Windows has no fork/exec as another user and
//! Node cannot adopt a socket by number there: those say Unsupported. What Windows does have
//! is below `ffi`: a restricted copy of this process's token for a child in a kill-on-close
//! job, with the CRT descriptors it inherits listed one by one (`spawn_restricted`), and the
//! Node host's CRT descriptors reached through libuv's `uv_get_osfhandle`.

use privsep_wire::address::{Address, FdKind, Protocol, SocketType};
use privsep_wire::error::{SysError, SysResult};
use privsep_wire::facts::{ExitStatus, Stat};
use privsep_wire::handoff::Ids;
use std::ffi::{CStr, CString};
use std::io;

// The metrics region's calls: there is no monitor on Windows, so no region.
#[path = "region_windows.rs"]
mod region;
pub use region::*;

fn unsupported<T>(syscall: &'static str) -> SysResult<T> {
    Err(SysError::new(
        syscall,
        io::Error::new(io::ErrorKind::Unsupported, "not on Windows"),
    ))
}

/// The inheritable flag off: the Windows form of close-on-exec.
pub fn set_cloexec(fd: i32) -> SysResult<()> {
    let handle = crt_handle(fd)?;
    // SAFETY: `handle` is a handle of this process (the CRT's, for `fd`).
    cvt("SetHandleInformation", unsafe {
        ffi::SetHandleInformation(handle, ffi::HANDLE_FLAG_INHERIT, 0)
    })
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

/// A regular file is a disk file that is not a directory; sockets are never passed here.
pub fn fd_kind(fd: i32) -> SysResult<FdKind> {
    let handle = crt_handle(fd)?;
    // SAFETY: `handle` is a handle of this process; `info` is valid for writes.
    unsafe {
        if ffi::GetFileType(handle) != ffi::FILE_TYPE_DISK {
            return Ok(FdKind::Other);
        }
        let mut info: ffi::BY_HANDLE_FILE_INFORMATION = std::mem::zeroed();
        cvt(
            "GetFileInformationByHandle",
            ffi::GetFileInformationByHandle(handle, &mut info),
        )?;
        Ok(if info.dwFileAttributes & ffi::FILE_ATTRIBUTE_DIRECTORY != 0 {
            FdKind::Other
        } else {
            FdKind::Regular
        })
    }
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

/// Whether the descriptor's handle was opened for reading: a read of 0 bytes is refused
/// (ERROR_ACCESS_DENIED) on a handle without read access, and moves nothing otherwise.
pub fn is_readable(fd: i32) -> SysResult<bool> {
    let handle = crt_handle(fd)?;
    let mut read = 0u32;
    // SAFETY: `handle` is a synchronous file handle of this process; nothing is written to the
    // (empty) buffer.
    let ok = unsafe { ffi::ReadFile(handle, std::ptr::null_mut(), 0, &mut read, std::ptr::null_mut()) };
    if ok != 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(ffi::ERROR_ACCESS_DENIED) {
        Ok(false)
    } else {
        Err(SysError::new("ReadFile", err))
    }
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

#[allow(clippy::too_many_arguments)] // as on Unix
pub fn spawn_as(
    _program: &CStr,
    _argv: &[CString],
    _env: &[CString],
    _fds: &[i32],
    _ids: &Ids,
    _exec_gid: u32,
    _umask: Option<u32>,
    _cwd: &CStr,
    _sandbox: Option<&mut Sandboxing>,
) -> SysResult<Starting> {
    unsupported("fork")
}

/// Windows has no Landlock: its restricted token is what the child gets (docs/SECURITY.md).
pub struct Sandboxing {
    pub abi: u32,
}

pub fn prepare_sandbox(_sandbox: &privsep_wire::sandbox::Sandbox) -> SysResult<Sandboxing> {
    unsupported("landlock_create_ruleset")
}

pub fn is_sandbox_failure(_err: &SysError) -> bool {
    false
}

pub struct Starting {
    pub pid: u32,
}

impl Starting {
    pub fn report_fd(&self) -> i32 {
        -1
    }

    pub fn finish(self, _reaped: bool) -> SysResult<u32> {
        unsupported("fork")
    }
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
pub const EINTR: i32 = 4;
pub const ETIMEDOUT: i32 = 138;

pub fn catch_signals(_caught: &[i32], _ignored: &[i32]) -> SysResult<i32> {
    unsupported("sigaction")
}

pub fn caught_signals(_pipe: i32) -> (Vec<i32>, Vec<(i32, u32, i32)>) {
    (Vec::new(), Vec::new())
}

pub fn answer_queued(_pid: u32, _tid: i32, _value: i32) -> SysResult<()> {
    unsupported("rt_tgsigqueueinfo")
}

pub fn queue_and_wait(_pid: u32, _signal: i32, _timeout_ms: u32) -> SysResult<Option<i32>> {
    unsupported("sigtimedwait")
}

pub fn poll_readable(_fds: &[i32], _timeout_ms: i32) -> SysResult<Vec<bool>> {
    unsupported("poll")
}

pub fn send_datagram(_address: &[u8], _bytes: &[u8], _fd: Option<i32>) -> SysResult<()> {
    unsupported("sendmsg")
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

pub fn close_unread(fd: Fd) {
    drop(fd)
}

pub fn kill(_pid: u32, _signal: i32) -> SysResult<()> {
    unsupported("kill")
}

pub fn die_by_signal(signal: i32) -> ! {
    std::process::exit(128 + signal)
}

pub fn become_subreaper() -> SysResult<()> {
    unsupported("prctl")
}

pub fn children() -> SysResult<Vec<u32>> {
    unsupported("/proc")
}

pub fn die_with_parent(_parent: u32) -> SysResult<()> {
    unsupported("prctl")
}

pub fn signal_with_parent(_parent: u32, _signal: i32) -> SysResult<()> {
    unsupported("prctl")
}

pub fn close_all_but(_keep: &[i32]) -> SysResult<()> {
    unsupported("close")
}

/// Nothing to do: Windows has no dumpable flag. Who may open the child is its process
/// object's DACL, set from its token's default DACL at `spawn_restricted`.
pub fn settle_real_gid() -> SysResult<bool> {
    Ok(false)
}

pub fn set_not_dumpable() -> SysResult<()> {
    Ok(())
}

pub fn anonymous_file(_bytes: &[u8]) -> SysResult<i32> {
    unsupported("memfd_create")
}

pub fn read_to_end(_fd: i32, _max: usize) -> SysResult<Vec<u8>> {
    unsupported("read")
}

pub fn write_bounded(_fd: i32, _bytes: &[u8], _timeout_ms: u32) -> SysResult<usize> {
    unsupported("write")
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

// ---- The restricted child (crates/windows/src/restricted.rs) ----

use crate::restricted::{self, TokenInfo};
use std::ptr;

/// A BOOL result: nonzero is success, zero sets the last error.
fn cvt(syscall: &'static str, ret: i32) -> SysResult<()> {
    if ret == 0 {
        Err(SysError::new(syscall, io::Error::last_os_error()))
    } else {
        Ok(())
    }
}

/// A handle result: null (or INVALID_HANDLE_VALUE) is failure.
fn cvt_handle(syscall: &'static str, handle: ffi::HANDLE) -> SysResult<Handle> {
    if handle.is_null() || handle == ffi::INVALID_HANDLE_VALUE {
        Err(SysError::new(syscall, io::Error::last_os_error()))
    } else {
        Ok(Handle(handle))
    }
}

/// A handle this process owns, closed on drop.
struct Handle(ffi::HANDLE);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: we own the handle and close it once.
        unsafe { ffi::CloseHandle(self.0) };
    }
}

impl Handle {
    /// Keeps the handle open and gives up ownership.
    fn into_raw(self) -> ffi::HANDLE {
        let raw = self.0;
        std::mem::forget(self);
        raw
    }
}

/// The handle behind the Node host's CRT descriptor `fd`. The CRT is node.exe's own (not
/// the msvcrt this DLL links), so only the host can map it: libuv's `uv_get_osfhandle`,
/// which node.exe exports, looked up at run time as the Node-API functions are.
fn crt_handle(fd: i32) -> SysResult<ffi::HANDLE> {
    static ADDRESS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let mut address = ADDRESS.load(std::sync::atomic::Ordering::Relaxed);
    if address == 0 {
        // SAFETY: a null name is the running executable; the name is NUL-terminated.
        address = unsafe {
            ffi::GetProcAddress(
                ffi::GetModuleHandleW(ptr::null()),
                b"uv_get_osfhandle\0".as_ptr().cast(),
            )
        } as usize;
        if address == 0 {
            return Err(SysError::new(
                "uv_get_osfhandle",
                io::Error::new(io::ErrorKind::Unsupported, "the host executable does not export libuv"),
            ));
        }
        ADDRESS.store(address, std::sync::atomic::Ordering::Relaxed);
    }
    // SAFETY: libuv's `uv_os_fd_t uv_get_osfhandle(int fd)`.
    let get: unsafe extern "C" fn(i32) -> ffi::HANDLE = unsafe { std::mem::transmute(address) };
    // SAFETY: any fd is accepted; an unknown one gives INVALID_HANDLE_VALUE.
    let handle = unsafe { get(fd) };
    if handle == ffi::INVALID_HANDLE_VALUE || handle.is_null() {
        return Err(SysError::new(
            "uv_get_osfhandle",
            io::Error::from_raw_os_error(ffi::ERROR_INVALID_HANDLE),
        ));
    }
    Ok(handle)
}

/// The token of this process, opened with `access`.
fn own_token(access: u32) -> SysResult<Handle> {
    let mut token = ptr::null_mut();
    // SAFETY: the pseudo-handle of this process; `token` is valid for writes.
    cvt("OpenProcessToken", unsafe {
        ffi::OpenProcessToken(ffi::GetCurrentProcess(), access, &mut token)
    })?;
    Ok(Handle(token))
}

/// `GetTokenInformation(class)` into a buffer of the size it asks for (8-byte aligned).
fn token_information(token: &Handle, class: u32) -> SysResult<Vec<u64>> {
    let mut size = 0u32;
    // SAFETY: a null buffer of size 0 asks for the size.
    unsafe { ffi::GetTokenInformation(token.0, class, ptr::null_mut(), 0, &mut size) };
    let mut buffer = vec![0u64; (size as usize + 7) / 8];
    // SAFETY: `buffer` has `size` bytes.
    cvt("GetTokenInformation", unsafe {
        ffi::GetTokenInformation(token.0, class, buffer.as_mut_ptr().cast(), size, &mut size)
    })?;
    Ok(buffer)
}

/// The SID at `sid` (a pointer into a token information buffer) as bytes.
///
/// # Safety
/// `sid` points to a valid SID.
unsafe fn sid_at(sid: *const u8) -> Vec<u8> {
    std::slice::from_raw_parts(sid, 8 + 4 * *sid.add(1) as usize).to_vec()
}

/// The groups of a `TOKEN_GROUPS` buffer as `(SID bytes, attributes)`.
fn groups_of(buffer: &[u64]) -> Vec<(Vec<u8>, u32)> {
    // SAFETY: the buffer holds a TOKEN_GROUPS: a count, then that many SID_AND_ATTRIBUTES
    // whose SIDs point into the same buffer.
    unsafe {
        let count = *(buffer.as_ptr() as *const u32) as usize;
        let first = (buffer.as_ptr() as *const u8).add(8) as *const ffi::SID_AND_ATTRIBUTES;
        (0..count)
            .map(|i| {
                let group = &*first.add(i);
                (sid_at(group.Sid as *const u8), group.Attributes)
            })
            .collect()
    }
}

pub fn is_elevated() -> SysResult<bool> {
    let mut admins = restricted::sid_bytes(restricted::ADMINISTRATORS).expect("a valid SID");
    let mut member = 0;
    // SAFETY: a null token is this thread's (or process's) own; `admins` is a valid SID.
    cvt("CheckTokenMembership", unsafe {
        ffi::CheckTokenMembership(ptr::null_mut(), admins.as_mut_ptr().cast(), &mut member)
    })?;
    Ok(member != 0)
}

pub fn token_info() -> SysResult<TokenInfo> {
    let token = own_token(ffi::TOKEN_QUERY)?;
    let text = |sid: &[u8]| restricted::sid_string(sid).unwrap_or_else(|| "?".to_string());
    let groups = groups_of(&token_information(&token, ffi::TOKEN_GROUPS)?)
        .into_iter()
        .map(|(sid, attributes)| (text(&sid), attributes))
        .collect();
    // TOKEN_USER and TOKEN_MANDATORY_LABEL both begin with one SID_AND_ATTRIBUTES.
    let first_sid = |buffer: &[u64]| {
        // SAFETY: the buffer begins with a SID_AND_ATTRIBUTES whose SID is in the buffer.
        unsafe { sid_at((*(buffer.as_ptr() as *const ffi::SID_AND_ATTRIBUTES)).Sid as *const u8) }
    };
    let user = text(&first_sid(&token_information(&token, ffi::TOKEN_USER)?));
    let label = first_sid(&token_information(&token, ffi::TOKEN_INTEGRITY_LEVEL)?);
    let integrity = label
        .chunks(4)
        .last()
        .map_or(0, |r| u32::from_le_bytes([r[0], r[1], r[2], r[3]]));
    let buffer = token_information(&token, ffi::TOKEN_PRIVILEGES)?;
    let mut privileges = Vec::new();
    // SAFETY: a TOKEN_PRIVILEGES: a count, then LUID_AND_ATTRIBUTES (12 bytes, 4-aligned).
    unsafe {
        let count = *(buffer.as_ptr() as *const u32) as usize;
        let first = (buffer.as_ptr() as *const u8).add(4) as *const ffi::LUID_AND_ATTRIBUTES;
        for i in 0..count {
            let entry = &*first.add(i);
            let mut name = [0u16; 64];
            let mut len = name.len() as u32;
            let named = ffi::LookupPrivilegeNameW(ptr::null(), &entry.Luid, name.as_mut_ptr(), &mut len) != 0;
            let name = if named {
                String::from_utf16_lossy(&name[..len as usize])
            } else {
                format!("luid {}", entry.Luid.LowPart)
            };
            privileges.push((name, entry.Attributes));
        }
    }
    Ok(TokenInfo {
        elevated: is_elevated()?,
        integrity,
        user,
        groups,
        privileges,
    })
}

pub fn open_file_handles() -> SysResult<Vec<(usize, String)>> {
    let mut files = Vec::new();
    // Handle values are multiples of 4; a Node process holds a few hundred. Probing is what
    // works alike on Windows and wine, without the system's handle table.
    for value in (4..0x4000usize).step_by(4) {
        let handle = value as ffi::HANDLE;
        let mut flags = 0;
        // SAFETY: probing a value that may not be a handle: the call fails for those.
        if unsafe { ffi::GetHandleInformation(handle, &mut flags) } == 0 {
            continue;
        }
        // SAFETY: `handle` is one of ours (just checked). GetFileType on a handle that is not
        // a file says FILE_TYPE_UNKNOWN.
        if unsafe { ffi::GetFileType(handle) } != ffi::FILE_TYPE_DISK {
            continue;
        }
        let mut path = [0u16; 1024];
        // SAFETY: `path` has room for its length in u16s.
        let len = unsafe { ffi::GetFinalPathNameByHandleW(handle, path.as_mut_ptr(), path.len() as u32, 0) } as usize;
        if len > 0 && len < path.len() {
            files.push((value, String::from_utf16_lossy(&path[..len])));
        }
    }
    Ok(files)
}

fn std_handle(which: u32) -> ffi::HANDLE {
    // SAFETY: no arguments beyond the constant.
    unsafe { ffi::GetStdHandle(which) }
}

/// True when `handle` is a console (GetConsoleMode answers for consoles only).
fn is_console(handle: ffi::HANDLE) -> bool {
    let mut mode = 0u32;
    // SAFETY: `mode` is valid for writes; any handle value may be asked about.
    !handle.is_null() && handle != ffi::INVALID_HANDLE_VALUE && unsafe { ffi::GetConsoleMode(handle, &mut mode) } != 0
}

/// The NUL device, for reading, closed when dropped.
fn open_null() -> SysResult<Handle> {
    let name = restricted::wide("NUL");
    // SAFETY: `name` is NUL-terminated; no security attributes or template.
    cvt_handle("CreateFileW", unsafe {
        ffi::CreateFileW(
            name.as_ptr(),
            ffi::GENERIC_READ,
            ffi::FILE_SHARE_READ | ffi::FILE_SHARE_WRITE,
            ptr::null_mut(),
            ffi::OPEN_EXISTING,
            0,
            ptr::null_mut(),
        )
    })
}

/// An inheritable duplicate of `handle`, closed when dropped.
fn inheritable(handle: ffi::HANDLE) -> SysResult<Handle> {
    let mut copy = ptr::null_mut();
    // SAFETY: `handle` is ours; the copy goes to this process.
    cvt("DuplicateHandle", unsafe {
        ffi::DuplicateHandle(
            ffi::GetCurrentProcess(),
            handle,
            ffi::GetCurrentProcess(),
            &mut copy,
            0,
            1,
            ffi::DUPLICATE_SAME_ACCESS,
        )
    })?;
    Ok(Handle(copy))
}

/// An inheritable duplicate of the handle behind CRT descriptor `fd`, left open: what a
/// native addon or an embedder may hold, which a restricted child must not get (a test's
/// decoy: Node itself marks every handle it inherited not inheritable at start).
pub fn leak_inheritable(fd: i32) -> SysResult<usize> {
    Ok(inheritable(crt_handle(fd)?)?.into_raw() as usize)
}

/// The CRT flags for a handle of this type (as libuv sets them).
fn crt_flags(handle: ffi::HANDLE) -> u8 {
    // SAFETY: `handle` is ours.
    match unsafe { ffi::GetFileType(handle) } {
        ffi::FILE_TYPE_CHAR => restricted::FOPEN | restricted::FDEV,
        ffi::FILE_TYPE_PIPE => restricted::FOPEN | restricted::FPIPE,
        _ => restricted::FOPEN,
    }
}

/// A restricted copy of this process's token: `disable` deny-only where present, every
/// privilege but SeChangeNotify removed, `integrity` as its level, and a default DACL for what
/// the child creates (its process object included): the user, SYSTEM and Administrators
/// (which the child itself has deny-only). An elevated token's default owner is
/// Administrators; Windows makes it the user once that group is deny-only.
fn restricted_token(disable: &[Vec<u8>], integrity: &[u8]) -> SysResult<Handle> {
    let token =
        own_token(ffi::TOKEN_DUPLICATE | ffi::TOKEN_QUERY | ffi::TOKEN_ASSIGN_PRIMARY | ffi::TOKEN_ADJUST_DEFAULT)?;
    let present: Vec<Vec<u8>> = groups_of(&token_information(&token, ffi::TOKEN_GROUPS)?)
        .into_iter()
        .map(|(sid, _)| sid)
        .filter(|sid| disable.contains(sid))
        .collect();
    let mut to_disable: Vec<ffi::SID_AND_ATTRIBUTES> = present
        .iter()
        .map(|sid| ffi::SID_AND_ATTRIBUTES {
            Sid: sid.as_ptr() as ffi::PSID,
            Attributes: 0,
        })
        .collect();
    let mut restricted = ptr::null_mut();
    // SAFETY: the SIDs live in `present` until the call returns.
    cvt("CreateRestrictedToken", unsafe {
        ffi::CreateRestrictedToken(
            token.0,
            ffi::DISABLE_MAX_PRIVILEGE,
            to_disable.len() as u32,
            to_disable.as_mut_ptr(),
            0,
            ptr::null_mut(),
            0,
            ptr::null_mut(),
            &mut restricted,
        )
    })?;
    let restricted = Handle(restricted);
    let mut label = integrity.to_vec();
    let mandatory = ffi::TOKEN_MANDATORY_LABEL {
        Label: ffi::SID_AND_ATTRIBUTES {
            Sid: label.as_mut_ptr() as ffi::PSID,
            Attributes: ffi::SE_GROUP_INTEGRITY,
        },
    };
    // SAFETY: the label and its SID live until the call returns.
    cvt("SetTokenInformation(TokenIntegrityLevel)", unsafe {
        ffi::SetTokenInformation(
            restricted.0,
            ffi::TOKEN_INTEGRITY_LEVEL,
            &mandatory as *const _ as *mut _,
            (std::mem::size_of::<ffi::TOKEN_MANDATORY_LABEL>() + label.len()) as u32,
        )
    })?;
    let user_buffer = token_information(&token, ffi::TOKEN_USER)?;
    // SAFETY: TOKEN_USER begins with a SID_AND_ATTRIBUTES whose SID is in the buffer.
    let mut user = unsafe { sid_at((*(user_buffer.as_ptr() as *const ffi::SID_AND_ATTRIBUTES)).Sid as *const u8) };
    let mut system = restricted::sid_bytes("S-1-5-18").expect("a valid SID");
    let mut admins = restricted::sid_bytes(restricted::ADMINISTRATORS).expect("a valid SID");
    let sids: [&mut Vec<u8>; 3] = [&mut user, &mut system, &mut admins];
    // An ACL header, then per ACE a 4-byte header, the access mask and the SID.
    let size = 8 + sids.iter().map(|sid| 8 + sid.len()).sum::<usize>();
    let mut acl = vec![0u64; (size + 7) / 8];
    // SAFETY: `acl` has `size` bytes; each ACE fits, by the sum above.
    unsafe {
        cvt(
            "InitializeAcl",
            ffi::InitializeAcl(acl.as_mut_ptr().cast(), size as u32, ffi::ACL_REVISION),
        )?;
        for sid in sids {
            cvt(
                "AddAccessAllowedAce",
                ffi::AddAccessAllowedAce(
                    acl.as_mut_ptr().cast(),
                    ffi::ACL_REVISION,
                    ffi::GENERIC_ALL,
                    sid.as_mut_ptr().cast(),
                ),
            )?;
        }
    }
    let dacl = ffi::TOKEN_DEFAULT_DACL {
        DefaultDacl: acl.as_mut_ptr().cast(),
    };
    // SAFETY: `dacl` points to the ACL above, which lives until the call returns.
    cvt("SetTokenInformation(TokenDefaultDacl)", unsafe {
        ffi::SetTokenInformation(
            restricted.0,
            ffi::TOKEN_DEFAULT_DACL,
            &dacl as *const _ as *mut _,
            std::mem::size_of::<ffi::TOKEN_DEFAULT_DACL>() as u32,
        )
    })?;
    Ok(restricted)
}

/// A job that ends every process in it when its last handle closes: this process's, when
/// it ends, however it ends.
fn kill_on_close_job() -> SysResult<Handle> {
    // SAFETY: no attributes, no name.
    let job = cvt_handle("CreateJobObjectW", unsafe {
        ffi::CreateJobObjectW(ptr::null_mut(), ptr::null())
    })?;
    // SAFETY: an all-zero JOBOBJECT_EXTENDED_LIMIT_INFORMATION is valid.
    let mut limits: ffi::JOBOBJECT_EXTENDED_LIMIT_INFORMATION = unsafe { std::mem::zeroed() };
    limits.BasicLimitInformation.LimitFlags = ffi::JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
    // SAFETY: `limits` is the structure this class takes, of this size.
    cvt("SetInformationJobObject", unsafe {
        ffi::SetInformationJobObject(
            job.0,
            ffi::JOB_OBJECT_EXTENDED_LIMIT_INFORMATION_CLASS,
            &mut limits as *mut _ as *mut _,
            std::mem::size_of::<ffi::JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
        )
    })?;
    Ok(job)
}

/// Starts the child (see `restricted::spawn`) and returns its pid and this process's handles
/// of it and of its job. `program`, `command_line` and `environment` are NUL-terminated
/// UTF-16 (the environment block double-terminated).
pub fn spawn_restricted(
    program: &[u16],
    command_line: &[u16],
    environment: &[u16],
    disable: &[Vec<u8>],
    integrity: &[u8],
    fds: &[i32],
) -> SysResult<(u32, usize, usize)> {
    let token = restricted_token(disable, integrity)?;
    let job = kill_on_close_job()?;
    // The child's descriptors: stdio (as this process has it), then the passed files, each
    // an inheritable duplicate that lives until the child has its own.
    let mut owned: Vec<Handle> = Vec::new();
    let mut table: Vec<(u8, usize)> = Vec::new();
    // A console as stdin would let the child read what is typed into the elevated console:
    // it gets NUL instead (kept open until the child has its copy).
    let null = if is_console(std_handle(ffi::STD_INPUT_HANDLE)) {
        Some(open_null()?)
    } else {
        None
    };
    for which in [ffi::STD_INPUT_HANDLE, ffi::STD_OUTPUT_HANDLE, ffi::STD_ERROR_HANDLE] {
        let handle = match (&null, which) {
            (Some(null), ffi::STD_INPUT_HANDLE) => null.0,
            _ => std_handle(which),
        };
        if handle.is_null() || handle == ffi::INVALID_HANDLE_VALUE {
            table.push((0, ffi::INVALID_HANDLE_VALUE as usize));
            continue;
        }
        match inheritable(handle) {
            Ok(copy) => {
                table.push((crt_flags(copy.0), copy.0 as usize));
                owned.push(copy);
            }
            // A console pseudo-handle of an old Windows cannot be duplicated: the child
            // gets no such stdio rather than no start.
            Err(_) => table.push((0, ffi::INVALID_HANDLE_VALUE as usize)),
        }
    }
    for &fd in fds {
        let copy = inheritable(crt_handle(fd)?)?;
        table.push((restricted::FOPEN, copy.0 as usize));
        owned.push(copy);
    }
    let crt = restricted::crt_table(&table);
    if crt.len() > u16::MAX as usize {
        return Err(SysError::new(
            "CreateProcessAsUserW",
            io::Error::from_raw_os_error(ffi::ERROR_INVALID_PARAMETER),
        ));
    }
    // The explicit list of what the child inherits: these handles and nothing else.
    let mut list: Vec<ffi::HANDLE> = owned.iter().map(|h| h.0).collect();
    let mut size = 0usize;
    // SAFETY: a null list of one attribute asks for its size.
    unsafe { ffi::InitializeProcThreadAttributeList(ptr::null_mut(), 1, 0, &mut size) };
    let mut attributes = vec![0u64; (size + 7) / 8];
    // SAFETY: `attributes` has `size` bytes; it is deleted below before `list` is dropped.
    cvt("InitializeProcThreadAttributeList", unsafe {
        ffi::InitializeProcThreadAttributeList(attributes.as_mut_ptr().cast(), 1, 0, &mut size)
    })?;
    // SAFETY: `list` outlives the attribute list, which only points to it.
    let updated = cvt("UpdateProcThreadAttribute", unsafe {
        ffi::UpdateProcThreadAttribute(
            attributes.as_mut_ptr().cast(),
            0,
            ffi::PROC_THREAD_ATTRIBUTE_HANDLE_LIST,
            list.as_mut_ptr().cast(),
            list.len() * std::mem::size_of::<ffi::HANDLE>(),
            ptr::null_mut(),
            ptr::null_mut(),
        )
    });
    // SAFETY: an all-zero STARTUPINFOEXW is valid; the fields set point to live buffers.
    let mut startup: ffi::STARTUPINFOEXW = unsafe { std::mem::zeroed() };
    startup.StartupInfo.cb = std::mem::size_of::<ffi::STARTUPINFOEXW>() as u32;
    startup.StartupInfo.dwFlags = ffi::STARTF_USESTDHANDLES;
    startup.StartupInfo.hStdInput = table[0].1 as ffi::HANDLE;
    startup.StartupInfo.hStdOutput = table[1].1 as ffi::HANDLE;
    startup.StartupInfo.hStdError = table[2].1 as ffi::HANDLE;
    startup.StartupInfo.cbReserved2 = crt.len() as u16;
    startup.StartupInfo.lpReserved2 = crt.as_ptr() as *mut u8;
    startup.lpAttributeList = attributes.as_mut_ptr().cast();
    // SAFETY: an all-zero PROCESS_INFORMATION is valid, for writes.
    let mut info: ffi::PROCESS_INFORMATION = unsafe { std::mem::zeroed() };
    let mut line = command_line.to_vec(); // CreateProcess may write to the command line
    let created = updated.and_then(|()| {
        // SAFETY: every pointer is to a NUL-terminated buffer or structure alive here.
        cvt("CreateProcessAsUserW", unsafe {
            ffi::CreateProcessAsUserW(
                token.0,
                program.as_ptr(),
                line.as_mut_ptr(),
                ptr::null_mut(),
                ptr::null_mut(),
                1,
                ffi::CREATE_SUSPENDED | ffi::CREATE_UNICODE_ENVIRONMENT | ffi::EXTENDED_STARTUPINFO_PRESENT,
                environment.as_ptr() as *mut _,
                ptr::null(),
                &mut startup.StartupInfo,
                &mut info,
            )
        })
    });
    // SAFETY: initialized above; deleted once.
    unsafe { ffi::DeleteProcThreadAttributeList(attributes.as_mut_ptr().cast()) };
    drop(owned);
    created?;
    let process = Handle(info.hProcess);
    let thread = Handle(info.hThread);
    // Suspended until it is in the job: it runs no instruction outside it.
    // SAFETY: both handles are ours, from CreateProcessAsUserW.
    let assigned = cvt("AssignProcessToJobObject", unsafe {
        ffi::AssignProcessToJobObject(job.0, process.0)
    });
    let resumed = assigned.and_then(|()| {
        // SAFETY: the thread handle is ours.
        if unsafe { ffi::ResumeThread(thread.0) } == u32::MAX {
            Err(SysError::new("ResumeThread", io::Error::last_os_error()))
        } else {
            Ok(())
        }
    });
    if let Err(err) = resumed {
        // SAFETY: our process handle; the child never ran.
        unsafe { ffi::TerminateProcess(process.0, 1) };
        return Err(err);
    }
    Ok((info.dwProcessId, process.into_raw() as usize, job.into_raw() as usize))
}

/// Waits for `process` to end, closes it and `job`, and returns its exit code.
pub fn wait_process(process: usize, job: usize) -> SysResult<u32> {
    let process = Handle(process as ffi::HANDLE);
    let _job = Handle(job as ffi::HANDLE);
    // SAFETY: our handle.
    if unsafe { ffi::WaitForSingleObject(process.0, ffi::INFINITE) } == ffi::WAIT_FAILED {
        return Err(SysError::new("WaitForSingleObject", io::Error::last_os_error()));
    }
    let mut code = 0u32;
    // SAFETY: our handle; `code` is valid for writes.
    cvt("GetExitCodeProcess", unsafe {
        ffi::GetExitCodeProcess(process.0, &mut code)
    })?;
    Ok(code)
}

/// Ctrl+C and Ctrl+Break reach every process on the console, the child included: the
/// waiting parent lets the child decide and keeps waiting.
unsafe extern "system" fn ignore_ctrl(kind: u32) -> i32 {
    (kind == ffi::CTRL_C_EVENT || kind == ffi::CTRL_BREAK_EVENT) as i32
}

/// Waits for `process` (ignoring Ctrl+C and Ctrl+Break), then ends this process with its
/// exit code. The job handle stays open until then: when this process dies, so does the child.
pub fn exit_with_process(process: usize) -> SysError {
    // SAFETY: a handler with the right signature, for this process only (not inherited).
    if let Err(err) = cvt("SetConsoleCtrlHandler", unsafe {
        ffi::SetConsoleCtrlHandler(Some(ignore_ctrl), 1)
    }) {
        return err;
    }
    let process = process as ffi::HANDLE;
    // SAFETY: our handle.
    if unsafe { ffi::WaitForSingleObject(process, ffi::INFINITE) } == ffi::WAIT_FAILED {
        return SysError::new("WaitForSingleObject", io::Error::last_os_error());
    }
    let mut code = 0u32;
    // SAFETY: our handle; `code` is valid for writes.
    if let Err(err) = cvt("GetExitCodeProcess", unsafe {
        ffi::GetExitCodeProcess(process, &mut code)
    }) {
        return err;
    }
    // SAFETY: ends this process; nothing runs after it.
    unsafe { ffi::ExitProcess(code) }
}

/// The Win32 API privsep uses, declared by hand as Node-API is (crates/node-api): the
/// signatures and layouts of the Windows SDK headers, for x86_64.
#[allow(non_snake_case, non_camel_case_types, clippy::upper_case_acronyms)]
mod ffi {
    use std::os::raw::{c_char, c_void};

    pub type HANDLE = *mut c_void;
    pub type PSID = *mut c_void;
    pub type BOOL = i32;
    pub const INVALID_HANDLE_VALUE: HANDLE = -1isize as HANDLE;
    pub const INFINITE: u32 = 0xFFFF_FFFF;
    pub const WAIT_FAILED: u32 = 0xFFFF_FFFF;
    pub const ERROR_ACCESS_DENIED: i32 = 5;
    pub const ERROR_INVALID_HANDLE: i32 = 6;
    pub const ERROR_INVALID_PARAMETER: i32 = 87;

    pub const HANDLE_FLAG_INHERIT: u32 = 1;
    pub const DUPLICATE_SAME_ACCESS: u32 = 2;
    pub const FILE_TYPE_DISK: u32 = 1;
    pub const FILE_TYPE_CHAR: u32 = 2;
    pub const GENERIC_READ: u32 = 0x8000_0000;
    pub const FILE_SHARE_READ: u32 = 0x1;
    pub const FILE_SHARE_WRITE: u32 = 0x2;
    pub const OPEN_EXISTING: u32 = 3;
    pub const FILE_TYPE_PIPE: u32 = 3;
    pub const FILE_ATTRIBUTE_DIRECTORY: u32 = 0x10;
    pub const STD_INPUT_HANDLE: u32 = -10i32 as u32;
    pub const STD_OUTPUT_HANDLE: u32 = -11i32 as u32;
    pub const STD_ERROR_HANDLE: u32 = -12i32 as u32;

    pub const TOKEN_ASSIGN_PRIMARY: u32 = 0x1;
    pub const TOKEN_DUPLICATE: u32 = 0x2;
    pub const TOKEN_QUERY: u32 = 0x8;
    pub const TOKEN_ADJUST_DEFAULT: u32 = 0x80;
    // TOKEN_INFORMATION_CLASS values.
    pub const TOKEN_USER: u32 = 1;
    pub const TOKEN_GROUPS: u32 = 2;
    pub const TOKEN_PRIVILEGES: u32 = 3;
    pub const TOKEN_DEFAULT_DACL: u32 = 6;
    pub const TOKEN_INTEGRITY_LEVEL: u32 = 25;
    pub const DISABLE_MAX_PRIVILEGE: u32 = 0x1;
    pub const SE_GROUP_INTEGRITY: u32 = 0x20;
    pub const ACL_REVISION: u32 = 2;
    pub const GENERIC_ALL: u32 = 0x1000_0000;

    pub const JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE: u32 = 0x2000;
    pub const JOB_OBJECT_EXTENDED_LIMIT_INFORMATION_CLASS: u32 = 9;
    pub const PROC_THREAD_ATTRIBUTE_HANDLE_LIST: usize = 0x0002_0002;
    pub const CREATE_SUSPENDED: u32 = 0x4;
    pub const CREATE_UNICODE_ENVIRONMENT: u32 = 0x400;
    pub const EXTENDED_STARTUPINFO_PRESENT: u32 = 0x8_0000;
    pub const STARTF_USESTDHANDLES: u32 = 0x100;
    pub const CTRL_C_EVENT: u32 = 0;
    pub const CTRL_BREAK_EVENT: u32 = 1;

    #[repr(C)]
    pub struct SID_AND_ATTRIBUTES {
        pub Sid: PSID,
        pub Attributes: u32,
    }

    #[repr(C)]
    pub struct LUID {
        pub LowPart: u32,
        pub HighPart: i32,
    }

    #[repr(C)]
    pub struct LUID_AND_ATTRIBUTES {
        pub Luid: LUID,
        pub Attributes: u32,
    }

    #[repr(C)]
    pub struct TOKEN_MANDATORY_LABEL {
        pub Label: SID_AND_ATTRIBUTES,
    }

    #[repr(C)]
    pub struct TOKEN_DEFAULT_DACL {
        pub DefaultDacl: *mut c_void,
    }

    #[repr(C)]
    pub struct BY_HANDLE_FILE_INFORMATION {
        pub dwFileAttributes: u32,
        pub ftCreationTime: [u32; 2],
        pub ftLastAccessTime: [u32; 2],
        pub ftLastWriteTime: [u32; 2],
        pub dwVolumeSerialNumber: u32,
        pub nFileSizeHigh: u32,
        pub nFileSizeLow: u32,
        pub nNumberOfLinks: u32,
        pub nFileIndexHigh: u32,
        pub nFileIndexLow: u32,
    }

    #[repr(C)]
    pub struct JOBOBJECT_BASIC_LIMIT_INFORMATION {
        pub PerProcessUserTimeLimit: i64,
        pub PerJobUserTimeLimit: i64,
        pub LimitFlags: u32,
        pub MinimumWorkingSetSize: usize,
        pub MaximumWorkingSetSize: usize,
        pub ActiveProcessLimit: u32,
        pub Affinity: usize,
        pub PriorityClass: u32,
        pub SchedulingClass: u32,
    }

    #[repr(C)]
    pub struct JOBOBJECT_EXTENDED_LIMIT_INFORMATION {
        pub BasicLimitInformation: JOBOBJECT_BASIC_LIMIT_INFORMATION,
        pub IoInfo: [u64; 6],
        pub ProcessMemoryLimit: usize,
        pub JobMemoryLimit: usize,
        pub PeakProcessMemoryUsed: usize,
        pub PeakJobMemoryUsed: usize,
    }

    #[repr(C)]
    pub struct STARTUPINFOW {
        pub cb: u32,
        pub lpReserved: *mut u16,
        pub lpDesktop: *mut u16,
        pub lpTitle: *mut u16,
        pub dwX: u32,
        pub dwY: u32,
        pub dwXSize: u32,
        pub dwYSize: u32,
        pub dwXCountChars: u32,
        pub dwYCountChars: u32,
        pub dwFillAttribute: u32,
        pub dwFlags: u32,
        pub wShowWindow: u16,
        pub cbReserved2: u16,
        pub lpReserved2: *mut u8,
        pub hStdInput: HANDLE,
        pub hStdOutput: HANDLE,
        pub hStdError: HANDLE,
    }

    #[repr(C)]
    pub struct STARTUPINFOEXW {
        pub StartupInfo: STARTUPINFOW,
        pub lpAttributeList: *mut c_void,
    }

    #[repr(C)]
    pub struct PROCESS_INFORMATION {
        pub hProcess: HANDLE,
        pub hThread: HANDLE,
        pub dwProcessId: u32,
        pub dwThreadId: u32,
    }

    // The layouts of the SDK for x86_64 (the only Windows target privsep builds).
    const _: () = assert!(std::mem::size_of::<SID_AND_ATTRIBUTES>() == 16);
    const _: () = assert!(std::mem::size_of::<LUID_AND_ATTRIBUTES>() == 12);
    const _: () = assert!(std::mem::size_of::<TOKEN_MANDATORY_LABEL>() == 16);
    const _: () = assert!(std::mem::size_of::<BY_HANDLE_FILE_INFORMATION>() == 52);
    const _: () = assert!(std::mem::size_of::<JOBOBJECT_BASIC_LIMIT_INFORMATION>() == 64);
    const _: () = assert!(std::mem::size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() == 144);
    const _: () = assert!(std::mem::size_of::<STARTUPINFOW>() == 104);
    const _: () = assert!(std::mem::size_of::<STARTUPINFOEXW>() == 112);
    const _: () = assert!(std::mem::size_of::<PROCESS_INFORMATION>() == 24);

    #[link(name = "kernel32")]
    extern "system" {
        pub fn CloseHandle(handle: HANDLE) -> BOOL;
        pub fn GetCurrentProcess() -> HANDLE;
        pub fn GetModuleHandleW(name: *const u16) -> HANDLE;
        pub fn GetProcAddress(module: HANDLE, name: *const c_char) -> *mut c_void;
        pub fn GetStdHandle(which: u32) -> HANDLE;
        pub fn GetFileType(handle: HANDLE) -> u32;
        pub fn GetConsoleMode(handle: HANDLE, mode: *mut u32) -> BOOL;
        pub fn CreateFileW(
            name: *const u16,
            access: u32,
            share: u32,
            security: *mut c_void,
            disposition: u32,
            flags: u32,
            template: HANDLE,
        ) -> HANDLE;
        pub fn ReadFile(handle: HANDLE, buffer: *mut c_void, len: u32, read: *mut u32, overlapped: *mut c_void)
            -> BOOL;
        pub fn GetFileInformationByHandle(handle: HANDLE, info: *mut BY_HANDLE_FILE_INFORMATION) -> BOOL;
        pub fn GetFinalPathNameByHandleW(handle: HANDLE, path: *mut u16, len: u32, flags: u32) -> u32;
        pub fn GetHandleInformation(handle: HANDLE, flags: *mut u32) -> BOOL;
        pub fn SetHandleInformation(handle: HANDLE, mask: u32, flags: u32) -> BOOL;
        pub fn DuplicateHandle(
            from: HANDLE,
            handle: HANDLE,
            to: HANDLE,
            copy: *mut HANDLE,
            access: u32,
            inherit: BOOL,
            options: u32,
        ) -> BOOL;
        pub fn CreateJobObjectW(attributes: *mut c_void, name: *const u16) -> HANDLE;
        pub fn SetInformationJobObject(job: HANDLE, class: u32, info: *mut c_void, len: u32) -> BOOL;
        pub fn AssignProcessToJobObject(job: HANDLE, process: HANDLE) -> BOOL;
        pub fn InitializeProcThreadAttributeList(list: *mut c_void, count: u32, flags: u32, size: *mut usize) -> BOOL;
        pub fn UpdateProcThreadAttribute(
            list: *mut c_void,
            flags: u32,
            attribute: usize,
            value: *mut c_void,
            size: usize,
            previous: *mut c_void,
            returned: *mut usize,
        ) -> BOOL;
        pub fn DeleteProcThreadAttributeList(list: *mut c_void);
        pub fn ResumeThread(thread: HANDLE) -> u32;
        pub fn TerminateProcess(process: HANDLE, code: u32) -> BOOL;
        pub fn WaitForSingleObject(handle: HANDLE, ms: u32) -> u32;
        pub fn GetExitCodeProcess(process: HANDLE, code: *mut u32) -> BOOL;
        pub fn SetConsoleCtrlHandler(handler: Option<unsafe extern "system" fn(u32) -> BOOL>, add: BOOL) -> BOOL;
        pub fn ExitProcess(code: u32) -> !;
    }

    #[link(name = "advapi32")]
    extern "system" {
        pub fn OpenProcessToken(process: HANDLE, access: u32, token: *mut HANDLE) -> BOOL;
        pub fn GetTokenInformation(token: HANDLE, class: u32, info: *mut c_void, len: u32, returned: *mut u32) -> BOOL;
        pub fn SetTokenInformation(token: HANDLE, class: u32, info: *mut c_void, len: u32) -> BOOL;
        pub fn CheckTokenMembership(token: HANDLE, sid: PSID, member: *mut BOOL) -> BOOL;
        pub fn CreateRestrictedToken(
            token: HANDLE,
            flags: u32,
            disable_count: u32,
            disable: *mut SID_AND_ATTRIBUTES,
            delete_count: u32,
            delete: *mut LUID_AND_ATTRIBUTES,
            restrict_count: u32,
            restrict: *mut SID_AND_ATTRIBUTES,
            new_token: *mut HANDLE,
        ) -> BOOL;
        pub fn LookupPrivilegeNameW(system: *const u16, luid: *const LUID, name: *mut u16, len: *mut u32) -> BOOL;
        pub fn InitializeAcl(acl: *mut c_void, len: u32, revision: u32) -> BOOL;
        pub fn AddAccessAllowedAce(acl: *mut c_void, revision: u32, mask: u32, sid: PSID) -> BOOL;
        pub fn CreateProcessAsUserW(
            token: HANDLE,
            application: *const u16,
            command_line: *mut u16,
            process_attributes: *mut c_void,
            thread_attributes: *mut c_void,
            inherit: BOOL,
            flags: u32,
            environment: *mut c_void,
            directory: *const u16,
            startup: *mut STARTUPINFOW,
            info: *mut PROCESS_INFORMATION,
        ) -> BOOL;
    }
}
