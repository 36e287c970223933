//! privsep on Windows: the restricted child of an elevated process (`restricted`: its token,
//! job and inherited CRT descriptors; what is plain data is tested everywhere) and every Win32
//! call privsep makes (`sys`, which `privsep-core` uses as its own on Windows). Elsewhere `sys`
//! only says that the restricted child is Windows' (`Unsupported`). The monitor is not built
//! from this crate: Windows has no monitor.

pub mod restricted;

#[cfg_attr(windows, path = "sys_windows.rs")]
#[cfg_attr(not(windows), path = "sys_other.rs")]
pub mod sys;
