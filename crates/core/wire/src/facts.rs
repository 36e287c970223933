//! What the system reports, as plain data every crate and both platforms share: a file's
//! owner, mode and identity (`Stat`), and how a process ended (`ExitStatus`).

/// What a path walk needs to know of an entry (`sys::stat_at`, `sys::stat_fd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub uid: u32,
    pub mode: u32,
    pub dev: u64,
    pub ino: u64,
}

/// How a child ended: an exit code, or the signal that killed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}
