//! The Node process's own process work, before and after the hand-off: the description's
//! anonymous file and the exec into the monitor, `privsep reload`'s queued signal and its
//! answer, and the child settling itself and taking what was passed (`restorePassedFiles()`).
//! The monitor's is `privsep_core::process`.

use crate::sys;
use privsep_core::handoff::{self, Handoff};
use privsep_core::protocol::{Entry, Passed};
use privsep_core::socket;
use privsep_core::spawn::c_string;

pub use privsep_core::process::*;
use privsep_core::{Error, Result};

/// A close-on-exec anonymous file holding the encoded `handoff`, read from its start.
pub fn handoff_file(handoff: &Handoff) -> Result<i32> {
    sys::anonymous_file(&handoff::encode(handoff)).map_err(|e| e.about("the hand-off description"))
}

/// Replaces this process with `program` given `argv` and an empty environment, keeping
/// `keep` open and every signal blocked across the exec. Returns only the reason it failed.
pub fn exec_keeping(program: &str, argv: &[String], keep: &[i32]) -> Error {
    let argv = match argv.iter().map(|a| c_string("argument", a)).collect::<Result<Vec<_>>>() {
        Ok(argv) => argv,
        Err(e) => return e,
    };
    match c_string("program", program) {
        Ok(path) => sys::exec_keeping(&path, &argv, keep).about(format!("starting {}", program)),
        Err(e) => e,
    }
}

/// Queues `signal` to `pid` and waits at most `timeout_ms` for the answer (`Queued::answer`);
/// None when none came in time.
pub fn queue_and_wait(pid: u32, signal: i32, timeout_ms: u32) -> Result<Option<i32>> {
    sys::queue_and_wait(pid, signal, timeout_ms).map_err(|e| e.about(format!("signal {} to process {}", signal, pid)))
}

/// The child of privsep on its first call (`restorePassedFiles()`): not dumpable (it already is
/// since exec, see `spawn::exec_gid`), its real gid the effective one again and then, as the
/// exec with unequal ids cleared it, the parent-death signal set again while its parent is
/// `parent`. A process whose ids were equal already (one that restores in-process) keeps its
/// death signal as it is. The signal is SIGTERM, as `spawn` sets it: when the monitor dies,
/// the child drains what it has in flight, as on any SIGTERM, and exits.
pub fn settle_child(parent: u32) -> Result<()> {
    set_not_dumpable()?;
    let settled = sys::settle_real_gid().map_err(|e| e.about("the real gid"))?;
    if settled && cfg!(target_os = "linux") {
        sys::signal_with_parent(parent, SIGTERM).map_err(|e| e.about(format!("parent {}", parent)))?;
    }
    Ok(())
}

/// Validates every decoded descriptor of the environment protocol (see `socket::validate`) and sets
/// close-on-exec: what `restorePassedFiles()` takes.
pub fn restore(entries: &[Entry]) -> Result<()> {
    for entry in entries {
        match &entry.passed {
            Passed::Socket(endpoint) => socket::validate(entry.fd, endpoint)?,
            Passed::File(path) => socket::validate_file(entry.fd, path)?,
        }
    }
    Ok(())
}
