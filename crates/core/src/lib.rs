//! privsep's system work, with no Node in sight: listening sockets, validation of inherited
//! descriptors, the hand-off to the monitor, spawning the program again as an unprivileged
//! user, the monitor's process work, and the environment protocol between the root side and
//! that child (docs/PROTOCOL.md, whose formats are `privsep_wire`'s). Windows' side is
//! `privsep_windows`'s.

pub mod broker;
pub mod fdstore;
pub mod log;
pub mod notify;
pub mod paths;
pub mod process;
pub mod region;
pub mod socket;
pub mod spawn;

// Every raw system call: this crate's own on Unix; on Windows, privsep-windows' (Windows
// has no monitor, so none of that is root's side after a hand-off).
#[cfg(unix)]
#[path = "sys/unix/mod.rs"]
pub mod sys;
#[cfg(windows)]
pub use privsep_windows::sys;

// The wire formats, where this crate and its users have always found them.
pub use privsep_wire::{error, handoff, protocol};
pub use privsep_wire::{Error, Result};
