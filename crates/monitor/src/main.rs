//! privsep-monitor: everything that runs as root after the hand-off (docs/SECURITY.md).
//!
//! The root Node process execs this program in place (same pid), or an embedding Node
//! process starts it (`exit: false`), with one argument: the descriptor of the hand-off
//! description (docs/PROTOCOL.md). Then, single-threaded and in this order, it
//! 1. reads and checks the description, and checks each descriptor it names;
//! 2. closes every other descriptor, makes itself not dumpable, resets signal dispositions
//!    and blocks the signals it waits for: those it forwards and SIGCHLD;
//! 3. starts the child as the user (`spawn::spawn`: session, drop, checks) and reports;
//! 4. closes its copies of the passed descriptors: the child has them;
//! 5. waits for signals: a forwarded one goes to the child, SIGCHLD reaps it;
//! 6. removes the unix socket files it was handed, and ends the way the child ended
//!    (never with a core file).
//!
//! Nothing but signals reaches it after step 3.

use privsep_core::handoff::{encode_report, Handoff, Report};
use privsep_core::process::{self, Signals, SIGCHLD, SIGPIPE, SIGUSR1};
use privsep_core::protocol::Passed;
use privsep_core::socket::{self, Address};
use privsep_core::spawn::{self, Command, ExitStatus};
use privsep_core::{Error, Result};

/// Exit code when the child could not be started (the shell's "found but not executable").
const NOT_STARTED: i32 = 126;

fn main() {
    let mut report = -1;
    match monitor(&mut report) {
        Ok(status) => process::end_like(status),
        Err(err) => {
            if report >= 0 {
                let _ = process::write_all(report, &encode_report(&Report::failed(&err)));
            } else {
                eprintln!("privsep-monitor: {}: {}", err.code(), err);
            }
            std::process::exit(NOT_STARTED)
        }
    }
}

fn monitor(report: &mut i32) -> Result<ExitStatus> {
    let handoff = process::read_handoff(handoff_fd()?)?;
    *report = handoff.report_fd;
    if handoff.parent_pid != 0 {
        process::die_with_parent(handoff.parent_pid)?;
    }
    let mut keep: Vec<i32> = handoff.passed.iter().map(|e| e.fd).collect();
    keep.push(handoff.report_fd);
    process::close_all_but(&keep)?;
    process::set_not_dumpable()?;
    let mut socket_files = Vec::new();
    for entry in &handoff.passed {
        match &entry.passed {
            Passed::File(path) => socket::validate_file(entry.fd, path)?,
            Passed::Socket(endpoint) => {
                socket::validate(entry.fd, endpoint)?;
                if let Address::Path(path) = &endpoint.address {
                    if let Some(file) = socket::socket_file(path)? {
                        socket_files.push((path.clone(), file));
                    }
                }
            }
        }
    }
    // SIGUSR1 opens Node's inspector in a child; unless it is forwarded, it means nothing here.
    let mut ignored = vec![SIGPIPE];
    if !handoff.signals.contains(&SIGUSR1) {
        ignored.push(SIGUSR1);
    }
    let mut waited = handoff.signals.clone();
    waited.push(SIGCHLD);
    let signals = Signals::block(&waited, &ignored)?;

    let pid = spawn::spawn(&command(&handoff))?;
    for entry in &handoff.passed {
        let _ = socket::close(entry.fd);
    }
    if *report >= 0 {
        let _ = process::write_all(*report, &encode_report(&Report::Started(pid)));
        let _ = socket::close(*report);
        *report = -1;
    }

    let status = loop {
        let signal = signals.next()?;
        if signal == SIGCHLD {
            if let Some(status) = process::try_wait(pid)? {
                break status;
            }
        } else {
            // Already gone: the SIGCHLD that follows says how.
            let _ = process::send(pid, signal);
        }
    };
    for (path, file) in socket_files {
        let _ = socket::remove_socket_file(&path, file);
    }
    Ok(status)
}

/// The one argument: the hand-off description's descriptor, a number from 3 on.
fn handoff_fd() -> Result<i32> {
    let args: Vec<String> = std::env::args().collect();
    match args.as_slice() {
        [_, fd] if !fd.is_empty() && fd.bytes().all(|b| b.is_ascii_digit()) => match fd.parse::<i32>() {
            Ok(fd) if fd >= 3 => Ok(fd),
            _ => Err(usage()),
        },
        _ => Err(usage()),
    }
}

fn usage() -> Error {
    Error::invalid(
        "ERR_PRIVSEP_HANDOFF_MALFORMED",
        "usage: privsep-monitor FD, where FD holds a hand-off description; privsep starts this program, people do not",
    )
}

fn command(handoff: &Handoff) -> Command {
    Command {
        program: handoff.program.clone(),
        argv: handoff.argv.clone(),
        env: handoff.env.clone(),
        passed: handoff.passed.clone(),
        user: handoff.user.clone(),
        ids: handoff.ids.clone(),
        umask: if handoff.umask == privsep_core::handoff::KEEP_UMASK {
            None
        } else {
            Some(handoff.umask)
        },
    }
}
