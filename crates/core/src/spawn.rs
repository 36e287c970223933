//! Starting the program again as an unprivileged user, with the passed descriptors at 3..
//! and the environment protocol set: what the monitor does after the hand-off. The user is
//! resolved, and the program checked, in the Node process before it (the addon's `user.rs`).

use crate::error::SysError;
use crate::protocol::{self, Entry};
use crate::sys;
use crate::{Error, Result};
use std::ffi::CString;

pub use privsep_wire::handoff::{Child, Ids, KEEP_UMASK};

pub use privsep_wire::facts::ExitStatus;
pub use privsep_wire::sandbox::Sandbox;

/// One start of the program: the hand-off's child, as generation `generation`, passed
/// `passed`, its broker channel and the metrics region.
pub struct Command<'a> {
    pub child: &'a Child,
    /// 1, then one more each upgrade: the child's `PRIVSEP_GENERATION`.
    pub generation: u32,
    /// Descriptors of this process to pass, in order: the child gets them at 3, 4, ...
    pub passed: &'a [Entry],
    /// The child's end of the broker channel: it gets it at 3 + the number passed.
    pub channel: Option<i32>,
    /// The metrics region (`region.rs`): the child gets it right after the channel.
    pub region: Option<i32>,
}

/// `text` as a C string; a NUL byte in it is `ERR_PRIVSEP_INVALID_ARGUMENT` naming `what`.
pub fn c_string(what: &str, text: &str) -> Result<CString> {
    CString::new(text).map_err(|_| {
        Error::invalid(
            "ERR_PRIVSEP_INVALID_ARGUMENT",
            format!("{} {:?} contains a NUL byte", what, text),
        )
    })
}

/// A child `start` forked, until its exec: from its setuid on it runs as the user, and any
/// process of the user can stop it before exec (SIGSTOP), so it is waited for with a deadline.
pub struct Starting {
    inner: sys::Starting,
    user: String,
    uid: u32,
    program: String,
}

impl Starting {
    pub fn pid(&self) -> u32 {
        self.inner.pid
    }

    /// Readable (or closed) once the start is over: then `finish` does not block.
    pub fn report_fd(&self) -> i32 {
        self.inner.report_fd()
    }

    /// How the start ended: the pid once exec succeeded, or why it failed (the child killed
    /// and reaped, unless `reaped`: the caller reaped it already).
    pub fn finish(self, reaped: bool) -> Result<u32> {
        let (user, uid, program) = (self.user, self.uid, self.program);
        self.inner.finish(reaped).map_err(|e| describe(e, &user, uid, &program))
    }
}

/// The error for a start that had not reached exec after `ms` and was killed (ETIMEDOUT).
pub fn stuck(program: &str, user: &str, ms: u32) -> Error {
    Error::Os {
        syscall: "execve",
        errno: sys::ETIMEDOUT,
        context: format!(
            "starting {} as user {:?}: the child had not reached exec after {} ms (readyTimeoutMs; stopped by a process of the user?) and was killed",
            program, user, ms
        ),
    }
}

/// The error for a start ended by `signal` (SIGTERM, SIGINT) before exec (EINTR).
pub fn stopped(program: &str, user: &str, signal: i32) -> Error {
    Error::Os {
        syscall: "execve",
        errno: sys::EINTR,
        context: format!(
            "starting {} as user {:?}: signal {} arrived before the child reached exec; it was killed",
            program, user, signal
        ),
    }
}

/// Forks the child that execs `command` as its user, and returns at once: the start is over
/// when [`Starting::report_fd`] is readable. Fails, with nothing left running, if any step
/// before exec fails, root could still be regained after the drop (`ERR_PRIVSEP_PRIVILEGE_DROP`),
/// or the user may have no more processes (`ERR_PRIVSEP_PROCESS_LIMIT`).
pub fn start(command: &Command) -> Result<Starting> {
    let child = command.child;
    let program = c_string("program", &child.program)?;
    let argv = child
        .argv
        .iter()
        .map(|a| c_string("argument", a))
        .collect::<Result<Vec<_>>>()?;
    let in_child: Vec<Entry> = (0..command.passed.len())
        .map(|i| Entry {
            fd: 3 + i as i32,
            passed: command.passed[i].passed.clone(),
        })
        .collect();
    let protocol_vars: Vec<(&str, String)> = protocol::encode(std::process::id(), &in_child)
        .into_iter()
        .chain(Some((GENERATION, command.generation.to_string())))
        .collect();
    let mut env = Vec::new();
    for var in &child.env {
        let name = var.split('=').next().unwrap_or("");
        // The sandbox's state is the fork's to say (sandbox.rs), never the environment's.
        if !protocol_vars.iter().any(|(n, _)| *n == name) && name != "PRIVSEP_SANDBOX" {
            env.push(c_string("environment variable", var)?);
        }
    }
    for (name, value) in &protocol_vars {
        env.push(c_string("environment variable", &format!("{}={}", name, value))?);
    }
    let fds: Vec<i32> = command
        .passed
        .iter()
        .map(|e| e.fd)
        .chain(command.channel)
        .chain(command.region)
        .collect();
    let cwd = c_string("cwd", &child.cwd)?;
    let umask = Some(child.umask).filter(|&m| m != KEEP_UMASK);
    let real_gid = exec_gid(&child.ids);
    let mut sandboxing = match Some(&child.sandbox).filter(|s| s.on()) {
        Some(sandbox) => Some(prepare_sandbox(sandbox)?),
        None => None,
    };
    match sys::spawn_as(
        &program,
        &argv,
        &env,
        &fds,
        &child.ids,
        real_gid,
        umask,
        &cwd,
        sandboxing.as_mut(),
    ) {
        Ok(inner) => Ok(Starting {
            inner,
            user: child.user.clone(),
            uid: child.ids.uid,
            program: child.program.clone(),
        }),
        Err(e) => Err(describe(e, &child.user, child.ids.uid, &child.program)),
    }
}

/// The variable that tells each generation its number (docs/PROTOCOL.md, "Generations").
const GENERATION: &str = "PRIVSEP_GENERATION";

/// The sandbox built for one start; with `require`, refused unless the kernel has all of it.
fn prepare_sandbox(sandbox: &Sandbox) -> Result<sys::Sandboxing> {
    let prepared = sys::prepare_sandbox(sandbox).map_err(|e| {
        let syscall = e.syscall;
        e.about(format!("preparing the sandbox (in {})", syscall))
    })?;
    let missing = privsep_wire::sandbox::missing(prepared.abi);
    if sandbox.required() && !missing.is_empty() {
        return Err(Error::invalid(
            "ERR_PRIVSEP_SANDBOX",
            format!(
                "the sandbox is required (sandbox.require) but this kernel (or an emulator such as qemu-user) lacks part of it: Landlock ABI {} is missing {}; run on a kernel with Landlock ABI 6 or later (Linux 6.12), or drop sandbox.require to start with what it has",
                prepared.abi,
                missing.join(", ")
            ),
        ));
    }
    Ok(prepared)
}

/// The error for a start that failed at `e`, as user `user` (`uid`) starting `program`.
fn describe(e: SysError, user: &str, uid: u32, program: &str) -> Error {
    if sys::is_sandbox_failure(&e) {
        Error::invalid(
            "ERR_PRIVSEP_SANDBOX",
            format!("the sandbox is required (sandbox.require) but the child as user {:?} could not enter it ({}: {}); it was stopped before exec", user, e.syscall, e.err),
        )
    } else if sys::is_verify_failure(&e) {
        Error::invalid(
            "ERR_PRIVSEP_PRIVILEGE_DROP",
            format!("the child as user {:?} could still regain root or a capability after dropping privileges; it was stopped before exec", user),
        )
    } else if sys::is_process_limit(&e) {
        let limit = sys::process_limit().map_or_else(|| "unlimited".to_string(), |n| n.to_string());
        Error::invalid(
            "ERR_PRIVSEP_PROCESS_LIMIT",
            format!("user {:?} (uid {}) is at its process limit (RLIMIT_NPROC {}): the child, as that user, could not fork ({}: EAGAIN), so the program would fail at its first thread; it was stopped before exec. Raise the limit (LimitNPROC= in the unit, ulimit -u) or end some of the user's processes", user, uid, limit, e.syscall),
        )
    } else {
        let syscall = e.syscall;
        e.about(format!("starting {} as user {:?} (in {})", program, user, syscall))
    }
}

/// The real gid the child execs with (Linux), always other than its gid: the kernel then sets
/// the new program not dumpable at exec (`suid_dumpable`, 0 by default), where equal ids would
/// make it dumpable until `restorePassedFiles()`, and other processes of the same user could
/// take its descriptors meanwhile (issue 19). The child may become this group (setfsgid,
/// setresgid), so it is one that grants nothing new: one of the user's own supplementary
/// groups when it has one, else 65535, the 16-bit (gid_t)-1 that no distribution assigns (or
/// 65534 for a user whose group is 65535). `restorePassedFiles()` sets the real gid back.
pub fn exec_gid(ids: &Ids) -> u32 {
    match ids.groups.iter().find(|&&g| g != ids.gid && g != 0) {
        Some(&group) => group,
        None if ids.gid != UNASSIGNED_GID => UNASSIGNED_GID,
        None => UNASSIGNED_GID - 1,
    }
}

/// The 16-bit (gid_t)-1: never assigned to a group (systemd's "UIDS-GIDS" says so of 65535).
const UNASSIGNED_GID: u32 = 65535;

/// Blocks until child `pid` ends. Only a pid: `waitpid` takes 0, or what becomes a negative
/// `pid_t` (`u32::MAX` is -1), as any child (of a process group), and would reap a child that
/// is not the caller's.
pub fn wait(pid: u32) -> Result<ExitStatus> {
    if pid == 0 || pid > i32::MAX as u32 {
        return Err(Error::invalid(
            "ERR_PRIVSEP_INVALID_ARGUMENT",
            format!(
                "wait: pid {} (as pid_t {}) is not a process id: waitpid would wait for any child",
                pid, pid as i32
            ),
        ));
    }
    sys::wait(pid).map_err(|e| e.about(format!("child {}", pid)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_gid_differs_from_the_gid_and_grants_nothing_new() {
        let ids = |gid, groups: &[u32]| Ids {
            uid: 1000,
            gid,
            groups: groups.to_vec(),
        };
        assert_eq!(exec_gid(&ids(65534, &[65534])), 65535);
        assert_eq!(exec_gid(&ids(1000, &[1000, 27, 100])), 27);
        assert_eq!(exec_gid(&ids(1000, &[])), 65535);
        assert_eq!(exec_gid(&ids(65535, &[65535])), 65534);
        for (gid, groups) in [(5, vec![5, 0]), (65535, vec![]), (7, vec![7])] {
            let got = exec_gid(&ids(gid, &groups));
            assert!(got != gid && got != 0, "{} {:?}: {}", gid, groups, got);
        }
    }

    /// `waitpid(0)` and `waitpid(-1)` wait for any child (issue 13): refused before the call.
    #[test]
    fn wait_takes_only_a_pid() {
        for pid in [0, u32::MAX, i32::MAX as u32 + 1] {
            assert_eq!(wait(pid).unwrap_err().code(), "ERR_PRIVSEP_INVALID_ARGUMENT", "{}", pid);
        }
    }
}
