//! The metrics region on Windows: there is no monitor, so no region; every function says so.

use privsep_wire::error::{SysError, SysResult};
use std::io;

pub const SEALS: i32 = 0;

fn unsupported<T>(syscall: &'static str) -> SysResult<T> {
    Err(SysError::new(syscall, io::Error::from(io::ErrorKind::Unsupported)))
}

pub fn create_sealed(_size: usize) -> SysResult<i32> {
    unsupported("memfd_create")
}

pub fn seals(_fd: i32) -> SysResult<i32> {
    unsupported("fcntl")
}

pub fn size(_fd: i32) -> SysResult<u64> {
    unsupported("fstat")
}

pub fn write_at(_fd: i32, _offset: u64, _bytes: &[u8]) -> SysResult<()> {
    unsupported("pwrite")
}

pub fn map_shared(_fd: i32, _size: usize) -> SysResult<*mut u8> {
    unsupported("mmap")
}

#[cfg(test)]
pub fn truncate(_fd: i32, _size: u64) -> SysResult<()> {
    unsupported("ftruncate")
}

#[cfg(test)]
pub fn add_seals(_fd: i32, _seals: i32) -> SysResult<()> {
    unsupported("fcntl")
}
