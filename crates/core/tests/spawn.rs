//! Spawning as another user, for real: these need root (as the whole test suite does).
#![cfg(unix)]

use privsep_core::protocol::{Entry, Passed};
use privsep_core::spawn::{self, Command, ExitStatus};
use privsep_core::Error;
use std::os::unix::io::AsRawFd;

fn shell(script: &str) -> Command {
    Command {
        program: "/bin/sh".into(),
        argv: vec!["sh".into(), "-c".into(), script.into()],
        env: vec!["PATH=/usr/bin:/bin".into(), "PRIVSEP_PID=stale".into()],
        passed: vec![],
        user: "nobody".into(),
        group: None,
        umask: Some(0o027),
    }
}

/// Spawns `command` and waits for it to end.
fn run(command: &Command) -> ExitStatus {
    spawn::wait(spawn::spawn(command).unwrap()).unwrap()
}

/// The status of a child that exited with `code`.
fn exited(code: i32) -> ExitStatus {
    ExitStatus {
        code: Some(code),
        signal: None,
    }
}

#[test]
fn the_child_runs_as_the_user_with_its_exit_code() {
    assert_eq!(
        run(&shell(
            "[ $(id -u) = 65534 ] && [ $(id -g) = 65534 ] && [ \"$(id -G)\" = 65534 ] && [ $(umask) = 0027 ] && exit 3",
        )),
        exited(3)
    );
}

#[test]
fn passed_descriptors_arrive_at_3_with_the_protocol_variables() {
    let file = std::fs::File::open("/etc/hostname").unwrap();
    let mut command = shell("[ \"$PRIVSEP_FDS\" = 1 ] && [ \"$PRIVSEP_FILES\" = 3=file:/etc/hostname ] && [ \"$PRIVSEP_PID\" = $PPID ] && read line <&3 && [ \"$line\" = \"$(cat /etc/hostname)\" ] && ! [ -e /proc/self/fd/4 ]");
    command.passed = vec![Entry {
        fd: file.as_raw_fd(),
        passed: Passed::File("/etc/hostname".into()),
    }];
    assert_eq!(run(&command), exited(0));
}

#[test]
fn a_signal_death_is_reported_as_such() {
    let status = run(&shell("kill -KILL $$"));
    assert_eq!(
        status,
        ExitStatus {
            code: None,
            signal: Some(libc::SIGKILL)
        }
    );
}

#[test]
fn exec_failure_comes_back_as_an_error_with_its_errno() {
    let mut command = shell("");
    command.program = "/nonexistent/program".into();
    match spawn::spawn(&command).unwrap_err() {
        Error::Os {
            syscall,
            errno,
            context,
        } => {
            assert_eq!((syscall, errno), ("execve", libc::ENOENT));
            assert!(context.contains("/nonexistent/program"), "{}", context);
        }
        other => panic!("expected an execve error, got {:?}", other),
    }
}

#[test]
fn users_groups_and_strings_are_checked_before_forking() {
    let mut command = shell("exit 0");
    command.user = "no-such-user-here".into();
    assert_eq!(spawn::spawn(&command).unwrap_err().code(), "ERR_PRIVSEP_UNKNOWN_USER");
    command.user = "root".into();
    assert_eq!(
        spawn::spawn(&command).unwrap_err().code(),
        "ERR_PRIVSEP_INVALID_ARGUMENT"
    );
    command.user = "nobody".into();
    command.group = Some("no-such-group-here".into());
    assert_eq!(spawn::spawn(&command).unwrap_err().code(), "ERR_PRIVSEP_UNKNOWN_GROUP");
    command.group = None;
    command.argv.push("nul\0byte".into());
    assert_eq!(
        spawn::spawn(&command).unwrap_err().code(),
        "ERR_PRIVSEP_INVALID_ARGUMENT"
    );
}

#[test]
fn a_named_group_replaces_the_primary_group() {
    let mut command = shell("[ $(id -g) = 0 ] || exit 9");
    command.group = Some("root".into());
    assert_eq!(run(&command), exited(0));
}
