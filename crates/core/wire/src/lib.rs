//! privsep's wire formats (docs/PROTOCOL.md): pure parsing and encoding, no system calls and
//! no dependency, what the root side and the Node side exchange: the hand-off description and
//! the monitor's report (`handoff`), broker messages (`broker`), the environment protocol
//! (`protocol`), and addresses (`address`); with them, the plain facts the system reports
//! (`facts`). One encoder and one strict decoder each, side by side; these are the fuzzing
//! targets. The halves only the Node side runs (the child, or the root process before the
//! hand-off) are under `#[cfg(any(test, feature = "node"))]`: privsep-monitor is built without
//! them.

pub mod address;
pub mod broker;
pub mod error;
pub mod facts;
#[cfg(any(test, feature = "fuzz"))]
pub mod fuzz;
pub mod handoff;
pub mod protocol;
pub mod sandbox;

pub use error::{Error, Result};
