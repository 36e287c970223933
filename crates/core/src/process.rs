//! The monitor's process work: the hand-off file, signals, reaping the child, ending the way
//! it ended, and the descriptors it keeps. Thin, named wrappers over `sys`.

use crate::handoff::{self, Handoff};
use crate::spawn::ExitStatus;
use crate::sys;
use crate::{Error, Result};
use std::ffi::CString;
use std::time::{Duration, Instant};

pub use crate::sys::{SIGCHLD, SIGINT, SIGKILL, SIGPIPE, SIGTERM, SIGUSR1};

/// A close-on-exec anonymous file holding the encoded `handoff`, read from its start.
pub fn handoff_file(handoff: &Handoff) -> Result<i32> {
    sys::anonymous_file(&handoff::encode(handoff)).map_err(|e| e.about("the hand-off description"))
}

/// Reads and decodes the description at `fd`, then closes it.
pub fn read_handoff(fd: i32) -> Result<Handoff> {
    let bytes = sys::read_to_end(fd, handoff::MAX_SIZE).map_err(|e| e.about(format!("hand-off fd {}", fd)));
    let _ = sys::close(fd);
    handoff::decode(&bytes?)
}

/// Replaces this process with `program` given `argv` and an empty environment, keeping
/// `keep` open and every signal blocked across the exec. Returns only the reason it failed.
pub fn exec_keeping(program: &str, argv: &[String], keep: &[i32]) -> Error {
    let c = |text: &str| {
        CString::new(text).map_err(|_| {
            Error::invalid(
                "ERR_PRIVSEP_INVALID_ARGUMENT",
                format!("{:?} contains a NUL byte", text),
            )
        })
    };
    let argv = match argv.iter().map(|a| c(a)).collect::<Result<Vec<_>>>() {
        Ok(argv) => argv,
        Err(e) => return e,
    };
    match c(program) {
        Ok(path) => sys::exec_keeping(&path, &argv, keep).about(format!("starting {}", program)),
        Err(e) => e,
    }
}

/// The signals the monitor acts on, caught into a pipe it can poll with the broker channel.
pub struct Signals(i32);

impl Signals {
    /// Catches `signals`, ignores `ignored`, leaves every other signal its default action.
    pub fn catch(signals: &[i32], ignored: &[i32]) -> Result<Signals> {
        sys::catch_signals(signals, ignored)
            .map(Signals)
            .map_err(|e| e.about("catching signals"))
    }

    /// The descriptor that becomes readable when a signal arrived.
    pub fn fd(&self) -> i32 {
        self.0
    }

    /// The signals that arrived since the last call, each once, and those of them sent with
    /// sigqueue(3) with a sender to answer (`answer`).
    pub fn take(&self) -> (Vec<i32>, Vec<Queued>) {
        let (signals, queued) = sys::caught_signals(self.0);
        let queued = queued
            .into_iter()
            .map(|(signal, pid, value)| Queued { signal, pid, value })
            .collect();
        (signals, queued)
    }
}

/// A signal sent with sigqueue(3) by `privsep reload` (docs/PROTOCOL.md, "Reload"): `value`
/// is the id of the sender's thread that waits for the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Queued {
    pub signal: i32,
    pub pid: u32,
    pub value: i32,
}

/// The answers to a queued upgrade signal besides a generation's number (it serves now).
pub const UPGRADE_FAILED: i32 = 0;
pub const UPGRADE_UNDER_WAY: i32 = -1;
pub const UPGRADE_STOPPING: i32 = -2;

impl Queued {
    /// Answers the sender: a sender that is gone (or never waited) is not an error.
    pub fn answer(&self, value: i32) {
        let _ = sys::answer_queued(self.pid, self.value, value);
    }
}

/// Queues `signal` to `pid` and waits at most `timeout_ms` for the answer (`Queued::answer`);
/// None when none came in time.
pub fn queue_and_wait(pid: u32, signal: i32, timeout_ms: u32) -> Result<Option<i32>> {
    sys::queue_and_wait(pid, signal, timeout_ms).map_err(|e| e.about(format!("signal {} to process {}", signal, pid)))
}

/// Waits until one of `fds` (-1: none) is readable or closed, at most `timeout_ms` (-1: no
/// limit); `true` for each that is. A signal or the timeout ends the wait with all `false`.
pub fn wait_readable(fds: &[i32], timeout_ms: i32) -> Result<Vec<bool>> {
    sys::poll_readable(fds, timeout_ms).map_err(|e| e.about("waiting"))
}

pub fn send(pid: u32, signal: i32) -> Result<()> {
    sys::kill(pid, signal).map_err(|e| e.about(format!("signal {} to child {}", signal, pid)))
}

/// Reaps one ended child without blocking: its pid and how it ended.
pub fn reap() -> Result<Option<(u32, ExitStatus)>> {
    sys::reap().map_err(|e| e.about("reaping children"))
}

/// Ends this process the way `status` says: its exit code, or death by its signal without a
/// core file.
pub fn end_like(status: ExitStatus) -> ! {
    match (status.signal, status.code) {
        (Some(signal), _) => sys::die_by_signal(signal),
        (None, code) => std::process::exit(code.unwrap_or(1)),
    }
}

/// This process dies (SIGKILL) with `parent`, or fails if `parent` is already gone.
pub fn die_with_parent(parent: u32) -> Result<()> {
    sys::die_with_parent(parent).map_err(|e| e.about(format!("parent {}", parent)))
}

/// Descendants the program leaves behind become this process's children, to be ended by
/// `end_descendants` (PR_SET_CHILD_SUBREAPER).
pub fn become_subreaper() -> Result<()> {
    sys::become_subreaper().map_err(|e| e.about("PR_SET_CHILD_SUBREAPER"))
}

/// How long `end_descendants` goes on killing and reaping at most.
pub const END_DESCENDANTS_MS: u64 = 3000;

/// Kills (SIGKILL) every child this process still has and reaps what ended, without blocking,
/// round after round until none is left: the grandchildren of a killed child are reparented
/// to this one (a subreaper), and each round kills what came. At most `END_DESCENDANTS_MS`:
/// the zombie of a child that another process traces is that tracer's to reap first, and a
/// tracer that never does would otherwise hold this process forever. Returns how many it
/// reaped, and how many children were still there when it gave up.
pub fn end_descendants() -> Result<(usize, usize)> {
    let deadline = Instant::now() + Duration::from_millis(END_DESCENDANTS_MS);
    let mut ended = 0;
    loop {
        let children = sys::children().map_err(|e| e.about("listing children"))?;
        if children.is_empty() {
            return Ok((ended, 0));
        }
        if Instant::now() >= deadline {
            return Ok((ended, children.len()));
        }
        for &pid in &children {
            // A child, not yet reaped: its pid cannot be another process's.
            let _ = sys::kill(pid, SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(5));
        while reap()?.is_some() {
            ended += 1;
        }
    }
}

/// Closes every descriptor from 3 on but `keep`.
pub fn close_all_but(keep: &[i32]) -> Result<()> {
    sys::close_all_but(keep).map_err(|e| e.about("closing inherited descriptors"))
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

/// No core file, no ptrace and no /proc access for other processes of this uid.
pub fn set_not_dumpable() -> Result<()> {
    sys::set_not_dumpable().map_err(|e| e.about("PR_SET_DUMPABLE"))
}

pub fn write_all(fd: i32, bytes: &[u8]) -> Result<()> {
    sys::write_all(fd, bytes).map_err(|e| e.about(format!("fd {}", fd)))
}
