//! privsep's system work, with no Node in sight: listening sockets, validation of inherited
//! descriptors, the hand-off to the monitor, spawning the program again as an unprivileged
//! user, the monitor's process work, and the environment protocol between the root side and
//! that child (docs/PROTOCOL.md); on Windows, the restricted child (`restricted.rs`).

pub mod activation;
pub mod broker;
pub mod error;
#[cfg(test)]
mod fuzz;
pub mod handoff;
pub mod log;
pub mod notify;
pub mod paths;
pub mod process;
pub mod protocol;
pub mod region;
pub mod restricted;
pub mod socket;
pub mod spawn;

#[cfg_attr(unix, path = "sys/unix.rs")]
#[cfg_attr(windows, path = "sys/windows.rs")]
mod sys;

pub use error::{Error, Result};
