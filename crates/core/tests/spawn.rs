//! Spawning as another user, for real: these need root (as the whole test suite does).
#![cfg(unix)]

use privsep_core::protocol::{Entry, Passed};
use privsep_core::spawn::{self, Child, Command, ExitStatus, Ids, Sandbox};
use privsep_core::{Error, Result};
use std::os::unix::io::AsRawFd;

/// The ids of `user` (with `group` as its gid), as `id` and `getent` report them: the addon
/// resolves users before the hand-off; here only the start is under test.
fn ids(user: &str, group: Option<&str>) -> Ids {
    let run = |program: &str, args: &[&str]| {
        let out = std::process::Command::new(program).args(args).output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let gid = match group {
        None => run("id", &["-g", user]).parse().unwrap(),
        Some(group) => run("getent", &["group", group])
            .split(':')
            .nth(2)
            .unwrap()
            .parse()
            .unwrap(),
    };
    Ids {
        uid: run("id", &["-u", user]).parse().unwrap(),
        gid,
        groups: run("id", &["-G", user])
            .split(' ')
            .map(|g| g.parse().unwrap())
            .collect(),
    }
}

fn shell(script: &str) -> Child {
    Child {
        program: "/bin/sh".into(),
        // -p: a shell whose real and effective gid differ (as the child's do until
        // restorePassedFiles: spawn::exec_gid) would otherwise set its effective gid to the real one.
        argv: vec!["sh".into(), "-p".into(), "-c".into(), script.into()],
        env: vec![
            "PATH=/usr/bin:/bin".into(),
            "PRIVSEP_PID=stale".into(),
            "PRIVSEP_GENERATION=7".into(),
        ],
        user: "nobody".into(),
        ids: ids("nobody", None),
        umask: 0o027,
        cwd: "/".into(),
        sandbox: Sandbox::off(),
    }
}

/// Starts `child` passed `passed` and waits for its exec: its pid, or why it failed.
fn spawn(child: &Child, passed: &[Entry]) -> Result<u32> {
    let starting = spawn::start(&Command {
        child,
        generation: 1,
        passed,
        channel: None,
        region: None,
    })?;
    while !privsep_core::sys::poll_readable(&[starting.report_fd()], -1).unwrap()[0] {}
    starting.finish(false)
}

/// Spawns `child` and waits for it to end.
fn run(child: &Child) -> ExitStatus {
    spawn::wait(spawn(child, &[]).unwrap()).unwrap()
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
            "[ $(id -u) = 65534 ] && [ $(id -g) = 65534 ] && [ \"$(id -G)\" = '65535 65534' ] && [ \"$(grep ^Gid: /proc/self/status | tr -s '\t' ' ')\" = 'Gid: 65535 65534 65534 65534' ] && [ $(umask) = 0027 ] && exit 3",
        )),
        exited(3)
    );
}

#[test]
fn passed_descriptors_arrive_at_3_with_the_protocol_variables() {
    let file = std::fs::File::open("/etc/hostname").unwrap();
    let command = shell("[ \"$PRIVSEP_GENERATION\" = 1 ] && [ \"$PRIVSEP_FDS\" = 1 ] && [ \"$PRIVSEP_FILES\" = 3=file:/etc/hostname ] && [ \"$PRIVSEP_PID\" = $PPID ] && read line <&3 && [ \"$line\" = \"$(cat /etc/hostname)\" ] && ! [ -e /proc/self/fd/4 ]");
    let passed = [Entry {
        fd: file.as_raw_fd(),
        passed: Passed::File("/etc/hostname".into()),
    }];
    assert_eq!(spawn::wait(spawn(&command, &passed).unwrap()).unwrap(), exited(0));
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
    match spawn(&command, &[]).unwrap_err() {
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
fn a_nul_byte_in_an_argument_is_refused() {
    let mut command = shell("exit 0");
    command.argv.push("nul\0byte".into());
    assert_eq!(spawn(&command, &[]).unwrap_err().code(), "ERR_PRIVSEP_INVALID_ARGUMENT");
}

#[test]
fn a_named_group_replaces_the_primary_group() {
    let mut command = shell("[ $(id -g) = 1 ] || exit 9");
    command.ids = ids("nobody", Some("daemon"));
    assert_eq!(run(&command), exited(0));
}

#[test]
fn the_child_has_its_own_session_no_capabilities_and_no_new_privileges() {
    // After the command name in /proc/PID/stat: state, ppid, pgrp, session, tty (0: none).
    let script = r#"set -- $(cut -d')' -f2 /proc/$$/stat); [ "$4" = $$ ] && [ "$5" = 0 ] || exit 3
        for set in CapInh CapPrm CapEff CapBnd CapAmb; do
          grep -q "^$set:[[:space:]]*0000000000000000$" /proc/$$/status || exit 4
        done
        grep -q '^NoNewPrivs:[[:space:]]*1$' /proc/$$/status || exit 5"#;
    assert_eq!(run(&shell(script)), exited(0));
}

/// Makes `syscall` fail with `errno` in this thread and the processes it forks (a seccomp
/// filter; root may install one without no_new_privs). Other test threads are unaffected.
#[cfg(target_os = "linux")]
fn fail_in_this_thread(syscall: libc::c_long, errno: u32) {
    let statement = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    let mut filter = [
        statement(0x20, 0, 0, 0),                               // load seccomp_data.nr
        statement(0x15, 0, 1, syscall as u32),                  // if nr == syscall
        statement(0x06, 0, 0, libc::SECCOMP_RET_ERRNO | errno), // fail with errno
        statement(0x06, 0, 0, libc::SECCOMP_RET_ALLOW),         // else run it
    ];
    let program = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_mut_ptr(),
    };
    // SAFETY: `program` points at `filter`, both alive for the call; the kernel copies them.
    let ret = unsafe { libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &program as *const _) };
    assert_eq!(ret, 0, "seccomp: {}", std::io::Error::last_os_error());
}

#[test]
#[cfg(target_os = "linux")]
fn without_close_range_stray_descriptors_still_close_at_exec() {
    // Run in a thread of its own: the filter stays with it.
    std::thread::spawn(|| {
        fail_in_this_thread(libc::SYS_close_range, libc::ENOSYS as u32);
        // SAFETY: a plain syscall; ENOSYS proves the filter works.
        let probe = unsafe { libc::syscall(libc::SYS_close_range, 1000, 1000, 0) };
        assert_eq!(
            (probe, std::io::Error::last_os_error().raw_os_error()),
            (-1, Some(libc::ENOSYS))
        );
        // Descriptors this process leaves open across exec, low and high.
        let file = std::fs::File::open("/etc/hostname").unwrap();
        // SAFETY: duplicates of a file we own, without close-on-exec; closed below.
        let leaked = unsafe {
            [
                libc::fcntl(file.as_raw_fd(), libc::F_DUPFD, 3),
                libc::fcntl(file.as_raw_fd(), libc::F_DUPFD, 900),
            ]
        };
        let status = run(&shell("! ls -l /proc/$$/fd/ | grep -q /etc/hostname"));
        for fd in leaked {
            // SAFETY: closing the duplicates made above.
            unsafe { libc::close(fd) };
        }
        assert_eq!(status, exited(0));
    })
    .join()
    .unwrap();
}
