//! The restricted child's system calls where there is no Windows: each says so
//! (`Unsupported`), so that the addon exports the same functions everywhere.

use crate::restricted::TokenInfo;
use privsep_wire::error::{SysError, SysResult};
use std::io;

fn windows_only<T>(call: &'static str) -> SysResult<T> {
    Err(SysError::new(
        call,
        io::Error::new(io::ErrorKind::Unsupported, "Windows only"),
    ))
}

pub fn is_elevated() -> SysResult<bool> {
    windows_only("CheckTokenMembership")
}

pub fn token_info() -> SysResult<TokenInfo> {
    windows_only("GetTokenInformation")
}

pub fn open_file_handles() -> SysResult<Vec<(usize, String)>> {
    windows_only("GetHandleInformation")
}

pub fn leak_inheritable(_fd: i32) -> SysResult<usize> {
    windows_only("DuplicateHandle")
}

pub fn spawn_restricted(
    _program: &[u16],
    _command_line: &[u16],
    _environment: &[u16],
    _disable: &[Vec<u8>],
    _integrity: &[u8],
    _fds: &[i32],
) -> SysResult<(u32, usize, usize)> {
    windows_only("CreateProcessAsUserW")
}

pub fn wait_process(_process: usize, _job: usize) -> SysResult<u32> {
    windows_only("WaitForSingleObject")
}

pub fn exit_with_process(_process: usize) -> SysError {
    SysError::new(
        "WaitForSingleObject",
        io::Error::new(io::ErrorKind::Unsupported, "Windows only"),
    )
}
