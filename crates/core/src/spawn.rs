//! Spawning this program again as an unprivileged user, with the passed descriptors at 3..
//! and the environment protocol set, then waiting for it and ending the way it ended.

use crate::protocol::{self, Entry};
use crate::sys;
use crate::{Error, Result};
use std::ffi::CString;

/// The credentials the child runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups, exactly as the child will have them.
    pub groups: Vec<u32>,
}

/// How a child ended: an exit code, or the signal that killed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

pub struct Command {
    pub program: String,
    /// The whole argv, `argv[0]` included.
    pub argv: Vec<String>,
    /// `NAME=value` strings; any `PRIVSEP_*` protocol variable in them is replaced.
    pub env: Vec<String>,
    /// Descriptors of this process to pass, in order: the child gets them at 3, 4, ...
    pub passed: Vec<Entry>,
    pub user: String,
    /// A group to run as instead of the user's primary group.
    pub group: Option<String>,
    pub umask: Option<u32>,
}

fn c_string(what: &str, text: &str) -> Result<CString> {
    CString::new(text).map_err(|_| {
        Error::invalid(
            "ERR_PRIVSEP_INVALID_ARGUMENT",
            format!("{} {:?} contains a NUL byte", what, text),
        )
    })
}

/// Resolves `user` (and `group`) to ids, with the user's supplementary groups. Refuses root:
/// a child that runs as root has dropped nothing.
pub fn resolve(user: &str, group: Option<&str>) -> Result<Ids> {
    let name = c_string("user", user)?;
    let (uid, primary) = sys::user_by_name(&name)
        .map_err(|e| e.about(format!("user {:?}", user)))?
        .ok_or_else(|| Error::invalid("ERR_PRIVSEP_UNKNOWN_USER", format!("no such user {:?}", user)))?;
    if uid == 0 {
        return Err(Error::invalid(
            "ERR_PRIVSEP_INVALID_ARGUMENT",
            format!("user {:?} is root (uid 0): name an unprivileged user", user),
        ));
    }
    let gid = match group {
        None => primary,
        Some(group) => sys::group_by_name(&c_string("group", group)?)
            .map_err(|e| e.about(format!("group {:?}", group)))?
            .ok_or_else(|| Error::invalid("ERR_PRIVSEP_UNKNOWN_GROUP", format!("no such group {:?}", group)))?,
    };
    let groups = sys::group_list(&name, gid).map_err(|e| e.about(format!("groups of user {:?}", user)))?;
    Ok(Ids { uid, gid, groups })
}

/// Forks and execs `command` as its user; returns the child's pid once exec has succeeded.
/// Fails, with nothing left running, if the user is unknown, any step before exec fails, or
/// root could still be regained after the drop (`ERR_PRIVSEP_PRIVILEGE_DROP`).
pub fn spawn(command: &Command) -> Result<u32> {
    let ids = resolve(&command.user, command.group.as_deref())?;
    let program = c_string("program", &command.program)?;
    let argv = command
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
    let protocol_vars = protocol::encode(std::process::id(), &in_child);
    let mut env = Vec::new();
    for var in &command.env {
        let name = var.split('=').next().unwrap_or("");
        if !protocol_vars.iter().any(|(n, _)| *n == name) {
            env.push(c_string("environment variable", var)?);
        }
    }
    for (name, value) in &protocol_vars {
        env.push(c_string("environment variable", &format!("{}={}", name, value))?);
    }
    let fds: Vec<i32> = command.passed.iter().map(|e| e.fd).collect();
    sys::spawn_as(&program, &argv, &env, &fds, &ids, command.umask).map_err(|e| {
        if sys::is_verify_failure(&e) {
            Error::invalid(
                "ERR_PRIVSEP_PRIVILEGE_DROP",
                format!("the child as user {:?} could still regain root after dropping privileges; it was stopped before exec", command.user),
            )
        } else {
            let syscall = e.syscall;
            e.about(format!("starting {} as user {:?} (in {})", command.program, command.user, syscall))
        }
    })
}

/// Blocks until child `pid` ends.
pub fn wait(pid: u32) -> Result<ExitStatus> {
    sys::wait(pid).map_err(|e| e.about(format!("child {}", pid)))
}

/// Ends this process by `signal`, as a child that died of it; does not return.
pub fn die_by_signal(signal: i32) -> ! {
    sys::die_by_signal(signal)
}
