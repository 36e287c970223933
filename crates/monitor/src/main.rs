//! privsep-monitor: everything that runs as root after the hand-off (docs/SECURITY.md).
//!
//! The root Node process execs this program in place (same pid), or an embedding Node
//! process starts it (`exit: false`), with one argument: the descriptor of the hand-off
//! description (docs/PROTOCOL.md). Then, single-threaded and in this order, it
//! 1. reads and checks the description, and checks each descriptor it names;
//! 2. closes every other descriptor, makes itself not dumpable, catches the signals it acts
//!    on (those it forwards, and SIGCHLD) and opens the broker channel;
//! 3. starts the child as the user (`spawn::spawn`: session, drop, checks) and reports;
//! 4. closes its copies of the passed files (it keeps the listeners, to hand out again);
//! 5. waits: a forwarded signal goes to the child, SIGCHLD reaps it, and each request on the
//!    broker channel is checked against the policy (`answer`, the one place requests are
//!    decided) and answered with at most one descriptor; a message the protocol does not
//!    allow closes the channel;
//! 6. removes the unix socket files it was handed, and ends the way the child ended
//!    (never with a core file).
//!
//! Nothing but signals and broker requests reaches it after step 3.

use privsep_core::broker::{self, Policy, Reply, Request};
use privsep_core::handoff::{encode_report, Handoff, Report};
use privsep_core::notify;
use privsep_core::paths;
use privsep_core::process::{self, Signals, SIGCHLD, SIGINT, SIGPIPE, SIGTERM, SIGUSR1};
use privsep_core::protocol::Passed;
use privsep_core::socket::{self, Address, Endpoint};
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
    let mut held = Vec::new();
    let mut socket_files = Vec::new();
    for entry in &handoff.passed {
        match &entry.passed {
            Passed::File(path) => socket::validate_file(entry.fd, path)?,
            Passed::Socket(endpoint) => {
                socket::validate(entry.fd, endpoint)?;
                held.push((endpoint.clone(), entry.fd));
                if let Address::Path(path) = &endpoint.address {
                    if let Some(file) = socket::socket_file(path)? {
                        socket_files.push((path.clone(), file));
                    }
                }
            }
        }
    }
    let passed: Vec<Passed> = handoff
        .passed
        .iter()
        .map(|e| e.passed.clone())
        .chain(handoff.allow.clone())
        .collect();
    let policy = Policy::from_entries(&passed, &handoff.allow_folders);
    // SIGUSR1 opens Node's inspector in a child; unless it is forwarded, it means nothing here.
    let mut ignored = vec![SIGPIPE];
    if !handoff.signals.contains(&SIGUSR1) {
        ignored.push(SIGUSR1);
    }
    let mut caught = handoff.signals.clone();
    caught.push(SIGCHLD);
    let signals = Signals::catch(&caught, &ignored)?;
    let (channel, child_end) = broker::channel()?;

    let pid = spawn::spawn(&command(&handoff, child_end))?;
    let _ = socket::close(child_end);
    for entry in handoff.passed.iter().filter(|e| matches!(e.passed, Passed::File(_))) {
        let _ = socket::close(entry.fd);
    }
    if *report >= 0 {
        let _ = process::write_all(*report, &encode_report(&Report::Started(pid)));
        let _ = socket::close(*report);
        *report = -1;
    }

    let mut channel = Some(channel);
    let status = 'serving: loop {
        let ready = process::wait_readable(&[signals.fd(), channel.unwrap_or(-1)])?;
        for signal in if ready[0] { signals.take() } else { Vec::new() } {
            if signal != SIGCHLD {
                if signal == SIGTERM || signal == SIGINT {
                    let _ = notify::send(&handoff.notify_socket, "STOPPING=1");
                }
                // Already gone: the SIGCHLD that follows says how.
                let _ = process::send(pid, signal);
            } else if let Some(status) = process::try_wait(pid)? {
                break 'serving status;
            }
        }
        if let (true, Some(fd)) = (ready[1], channel) {
            if !serve(fd, &policy, &mut held, &handoff.notify_socket) {
                let _ = socket::close(fd);
                channel = None;
            }
        }
    };
    for (path, file) in socket_files {
        let _ = socket::remove_socket_file(&path, file);
    }
    Ok(status)
}

/// Answers one request on the broker channel. False when the channel is to be closed: the
/// child closed it, or sent what the protocol does not allow (logged, never answered).
fn serve(channel: i32, policy: &Policy, held: &mut Vec<(Endpoint, i32)>, notify_socket: &str) -> bool {
    let request = match broker::receive_request(channel) {
        Ok(Some(request)) => request,
        Ok(None) => return false,
        Err(err) => {
            eprintln!("privsep-monitor: closing the broker channel: {}", err);
            return false;
        }
    };
    let (reply, fd, close_after) = answer(&request, policy, held, notify_socket);
    let sent = broker::send_reply(channel, &reply, fd);
    if let (Some(fd), true) = (fd, close_after) {
        let _ = socket::close(fd);
    }
    if let Err(err) = sent {
        eprintln!("privsep-monitor: closing the broker channel: {}", err);
        return false;
    }
    true
}

/// The reply to `request` under `policy`, the descriptor to send with it, and whether to close
/// that descriptor once sent (a file) or keep it (a listener, asked for again as the same one).
/// A notification goes to systemd (`notify_socket`, none: nothing) and comes back without one.
fn answer(
    request: &Request,
    policy: &Policy,
    held: &mut Vec<(Endpoint, i32)>,
    notify_socket: &str,
) -> (Reply, Option<i32>, bool) {
    let id = request.id();
    let what = match request {
        Request::File { path, .. } => format!("file {}", path),
        Request::Listener { endpoint, .. } => format!("listener {} {}", endpoint.network.name(), endpoint),
        Request::Notify { state, .. } => format!("notification {:?}", state),
    };
    if !policy.allows(request) {
        eprintln!("privsep-monitor: denied the child's request for {}", what);
        return (Reply::denied(id, &what), None, false);
    }
    let opened = match request {
        Request::Notify { state, .. } => {
            return match notify::send(notify_socket, state) {
                Ok(()) => (Reply::ok(id), None, false),
                Err(err) => (Reply::failed(id, &err), None, false),
            };
        }
        Request::File { path, .. } => paths::open_file(path).map(|fd| (fd, true)),
        Request::Listener {
            endpoint,
            backlog,
            mode,
            ..
        } => match held.iter().find(|(e, _)| e == endpoint) {
            Some(&(_, fd)) => Ok((fd, false)),
            None => {
                let mode = if *mode == broker::NO_MODE { None } else { Some(*mode) };
                socket::listen(endpoint, (*backlog).min(65535) as i32, mode).map(|fd| {
                    held.push((endpoint.clone(), fd));
                    (fd, false)
                })
            }
        },
    };
    match opened {
        Ok((fd, close_after)) => (Reply::ok(id), Some(fd), close_after),
        Err(err) => {
            eprintln!("privsep-monitor: the child's request for {} failed: {}", what, err);
            (Reply::failed(id, &err), None, false)
        }
    }
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

fn command(handoff: &Handoff, channel: i32) -> Command {
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
        channel: Some(channel),
    }
}
