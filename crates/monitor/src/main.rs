//! privsep-monitor: everything that runs as root after the hand-off (docs/SECURITY.md).
//!
//! The root Node process execs this program in place (same pid), or an embedding Node
//! process starts it (`exit: false`), with one argument: the descriptor of the hand-off
//! description (docs/PROTOCOL.md). Then, single-threaded and in this order, it
//! 1. reads and checks the description, and checks each descriptor it names;
//! 2. closes every other descriptor, makes itself not dumpable, catches the signals it acts
//!    on (those it forwards, and SIGCHLD) and opens the broker channel;
//! 3. starts the child as the user (`spawn::start`: session, drop, checks), waits for its exec
//!    at most `readyTimeoutMs` while serving signals (the user can stop the start), and reports;
//! 4. closes its copies of the passed files (it keeps the listeners, to hand out again);
//! 5. waits: a forwarded signal goes to the current child, SIGCHLD reaps children, and each
//!    request on a broker channel is checked against the policy (`answer`, the one place
//!    requests are decided) and answered with at most one descriptor (a listener bound for a
//!    child goes to systemd's file descriptor store at once, when the unit has one: `store`);
//!    a message the protocol does not allow closes the channel. The upgrade signal (or a child's request) starts the
//!    next generation with the same listeners and its files opened again; when it calls
//!    ready(), the old one gets SIGTERM; if it ends or misses its deadline first, it goes; a
//!    retired generation still running `readyTimeoutMs` after its SIGTERM gets SIGKILL;
//!    once SIGTERM or SIGINT was passed on, no generation takes over;
//! 6. ends what the program left behind (a subreaper, it inherits orphaned descendants; 3 s at
//!    most, a traced leftover cannot be reaped),
//!    removes the unix socket files it was handed, and ends the way the child ended (never
//!    with a core file).
//!
//! Nothing but signals and broker requests reaches it after step 3. Its log goes to the stderr
//! it shares with the child, through `privsep_core::log`: bounded, escaped, never failing.

use privsep_core::broker::{self, Policy, Reply, Request};
use privsep_core::fdstore;
use privsep_core::handoff::{encode_report, Handoff, Report};
use privsep_core::notify;
use privsep_core::paths;
use privsep_core::process::{self, Queued, Signals, SIGCHLD, SIGINT, SIGPIPE, SIGTERM, SIGUSR1};
use privsep_core::process::{UPGRADE_FAILED, UPGRADE_STOPPING, UPGRADE_UNDER_WAY};
use privsep_core::protocol::{Entry, Passed};
use privsep_core::region;
use privsep_core::socket::{self, Address, Endpoint};
use privsep_core::spawn::{self, Command, ExitStatus};
use privsep_core::{Error, Result};
use std::time::{Duration, Instant};

/// One line of the monitor's log on stderr, which the child shares: `privsep_core::log`
/// writes it with a bounded wait or drops it, and never fails.
macro_rules! log {
    ($($arg:tt)*) => {
        privsep_core::log::line(&format!("privsep-monitor: {}", format_args!($($arg)*)))
    };
}

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
                log!("{}: {}", err.code(), err);
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
    if let Err(err) = process::become_subreaper() {
        // Every Linux since 3.4 has it; qemu-user's emulation does not.
        log!("{}: what the program leaves behind is not ended", err);
    }
    let mut held = Vec::new();
    // Removed when this function returns, however it returns.
    let mut socket_files = SocketFiles(Vec::new());
    for entry in &handoff.passed {
        match &entry.passed {
            Passed::File(path) => socket::validate_file(entry.fd, path)?,
            Passed::Socket(endpoint) => {
                socket::validate(entry.fd, endpoint)?;
                held.push((endpoint.clone(), entry.fd));
                if let Address::Path(path) = &endpoint.address {
                    if let Some(file) = socket::socket_file(path)? {
                        socket_files.0.push((path.clone(), file));
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
    if !handoff.signals.contains(&SIGUSR1) && handoff.upgrade_signal != SIGUSR1 {
        ignored.push(SIGUSR1);
    }
    let mut caught = handoff.signals.clone();
    caught.push(SIGCHLD);
    if handoff.upgrade_signal != 0 {
        caught.push(handoff.upgrade_signal);
    }
    let signals = Signals::catch(&caught, &ignored)?;
    // The metrics region every generation counts in; never mapped nor read here.
    let metrics = region::create()
        .map_err(|err| log!("{}: each generation counts its own metrics", err))
        .ok();

    let first = start(&handoff, &handoff.passed, 1, metrics);
    close_files(&handoff.passed);
    let (mut current, mut pending) = first_start(first?, &signals, &handoff)?;
    if *report >= 0 {
        let _ = process::write_all(*report, &encode_report(&Report::Started(current.pid)));
        let _ = socket::close(*report);
        *report = -1;
    }

    // An upgrade under way: the next generation, until it calls ready() or its deadline.
    let mut next: Option<(Generation, Instant)> = None;
    // Old generations still draining, and how the current one ended: the monitor ends only
    // when every child has (ending earlier would SIGKILL a drain through the death signal).
    // One that has not ended `grace` after its SIGTERM gets SIGKILL.
    let mut draining: Vec<Draining> = Vec::new();
    let grace = Duration::from_millis(handoff.ready_timeout_ms as u64);
    let mut ended: Option<ExitStatus> = None;
    // SIGTERM or SIGINT was passed on: the program is stopping, and no generation takes over.
    let mut stopping = false;
    let mut generations = 1;
    let mut upgrades = Upgrades {
        waiting: Vec::new(),
        succeeded: 0,
        failed: 0,
        region: metrics,
        notify_socket: handoff.notify_socket.clone(),
    };
    let say = |state: &str| {
        let _ = notify::send(&handoff.notify_socket, state);
    };
    // systemd's file descriptor store, when this is the main process and the unit has one: what
    // the Node side bound is there already; a listener bound here goes there at once.
    let store_limit = if handoff.parent_pid == 0 {
        fdstore::limit(&handoff.child.env)
    } else {
        0
    };
    let mut stored = held.len();
    let status = 'serving: loop {
        if let (Some(status), true) = (ended, draining.is_empty()) {
            break 'serving status;
        }
        let deadlines = next
            .iter()
            .map(|(_, d)| *d)
            .chain(draining.iter().filter_map(|d| d.kill_at));
        // Signals taken during the first start are acted on at once.
        let deadlines = deadlines.chain(Some(Instant::now()).filter(|_| !pending.0.is_empty()));
        let timeout = deadlines.min().map_or(-1, |deadline| {
            deadline
                .saturating_duration_since(Instant::now())
                .as_millis()
                .min(i32::MAX as u128) as i32
        });
        let next_channel = next.as_ref().and_then(|(g, _)| g.channel);
        let next_start = next
            .as_ref()
            .and_then(|(g, _)| g.starting.as_ref())
            .map(|s| s.report_fd());
        let ready = process::wait_readable(
            &[
                signals.fd(),
                current.channel.unwrap_or(-1),
                next_channel.unwrap_or(-1),
                next_start.unwrap_or(-1),
            ],
            timeout,
        )?;
        let mut upgrade = false;
        let (caught, queued) = if ready[0] {
            signals.take()
        } else {
            (Vec::new(), Vec::new())
        };
        let (caught, queued) = {
            let mut taken = std::mem::take(&mut pending);
            merge(&mut taken, caught, queued);
            taken
        };
        let mut asked: Vec<Queued> = queued
            .into_iter()
            .filter(|q| q.signal == handoff.upgrade_signal)
            .collect();
        for signal in caught {
            if signal == SIGCHLD {
                while let Some((pid, status)) = process::reap()? {
                    if pid == current.pid {
                        ended = Some(status);
                        if let Some((g, _)) = next.take() {
                            g.retire(&mut draining, grace);
                            upgrades.ended(UPGRADE_STOPPING);
                        }
                    }
                    draining.retain(|d| d.pid != pid);
                    if next.as_ref().map(|(g, _)| g.pid) == Some(pid) {
                        let (mut failed, _) = next.take().expect("next is set");
                        let what = match failed.starting.take().map(|s| s.finish(true)) {
                            Some(Err(err)) => format!("could not start generation {}: {}", failed.number, err),
                            _ => format!("generation {} ended before it was ready ({:?})", failed.number, status),
                        };
                        failed.close();
                        upgrades.failed(what, current.number);
                    }
                }
            } else if signal == handoff.upgrade_signal {
                upgrade = ended.is_none();
            } else {
                if signal == SIGTERM || signal == SIGINT {
                    say("STOPPING=1");
                    stopping = true;
                    // Once ready, it would take over and serve on: the stop would be lost.
                    if let Some((g, _)) = next.take() {
                        g.retire(&mut draining, grace);
                        upgrades.ended(UPGRADE_STOPPING);
                    }
                }
                // Already gone: the SIGCHLD that follows says how (once reaped, never again:
                // its pid may be another process's by then).
                if ended.is_none() {
                    let _ = process::send(current.pid, signal);
                }
            }
        }
        if let (true, Some(fd)) = (ready[1], current.channel) {
            match serve(fd, &policy, &mut held, &mut socket_files, &handoff.notify_socket) {
                Served::Ready => say("READY=1"),
                Served::Upgrade => upgrade = true,
                Served::Closed => {
                    let _ = socket::close(fd);
                    current.channel = None;
                }
                Served::Answered => {}
            }
        }
        if let (true, Some(fd)) = (ready[2], next_channel) {
            match serve(fd, &policy, &mut held, &mut socket_files, &handoff.notify_socket) {
                Served::Ready => {
                    // The new generation serves: the old one drains (its lifecycle) and goes.
                    let (new, _) = next.take().expect("next is set");
                    upgrades.ended(new.number as i32);
                    std::mem::replace(&mut current, new).retire(&mut draining, grace);
                }
                Served::Closed => {
                    let _ = socket::close(fd);
                    if let Some((g, _)) = next.as_mut() {
                        g.channel = None;
                    }
                }
                Served::Upgrade | Served::Answered => {}
            }
        }
        if stored < held.len() {
            store(&held[stored..], stored, store_limit, &handoff.notify_socket);
            stored = held.len();
        }
        if let (true, Some((g, _))) = (ready[3], next.as_mut()) {
            if let Some(Err(err)) = g.starting.take().map(|s| s.finish(false)) {
                let (failed, _) = next.take().expect("next is set");
                let what = format!("could not start generation {}: {}", failed.number, err);
                failed.close();
                upgrades.failed(what, current.number);
            }
        }
        if next.as_ref().map_or(false, |(g, deadline)| {
            g.starting.is_some() && Instant::now() >= *deadline
        }) {
            let (stuck, _) = next.take().expect("next is set");
            let what = format!(
                "generation {} had not started (exec) within {} ms (stopped before exec by a process of the user?): killed (SIGKILL)",
                stuck.number, handoff.ready_timeout_ms
            );
            stuck.retire(&mut draining, grace);
            upgrades.failed(what, current.number);
        }
        if next.as_ref().map_or(false, |(_, deadline)| Instant::now() >= *deadline) {
            let (late, _) = next.take().expect("next is set");
            let what = format!("generation {} was not ready in time", late.number);
            // It may already accept connections: SIGTERM lets its lifecycle drain them.
            late.retire(&mut draining, grace);
            upgrades.failed(what, current.number);
        }
        for late in draining
            .iter_mut()
            .filter(|d| d.kill_at.map_or(false, |at| Instant::now() >= at))
        {
            // Not reaped yet (a SIGCHLD would have taken it out): the pid is still its.
            let _ = process::send(late.pid, process::SIGKILL);
            late.kill_at = None;
            log!(
                "generation {} had not ended {} ms after SIGTERM: killed (SIGKILL)",
                late.number,
                grace.as_millis()
            );
        }
        if (upgrade || !asked.is_empty()) && (stopping || ended.is_some()) {
            log!("the program is stopping: no upgrade");
            tell(&mut asked, UPGRADE_STOPPING);
        } else if upgrade && next.is_some() {
            log!("an upgrade is under way already");
            tell(&mut asked, UPGRADE_UNDER_WAY);
        } else if upgrade {
            say("RELOADING=1");
            generations += 1;
            match reopened(&handoff, &held).and_then(|passed| start_closing(&handoff, passed, generations, metrics)) {
                Ok(generation) => {
                    let deadline = Instant::now() + Duration::from_millis(handoff.ready_timeout_ms as u64);
                    next = Some((generation, deadline));
                    upgrades.waiting.append(&mut asked);
                }
                Err(err) => {
                    upgrades.waiting.append(&mut asked);
                    upgrades.failed(
                        format!("could not start generation {}: {}", generations, err),
                        current.number,
                    );
                }
            }
        }
    };
    // What the program left behind (a detached grandchild holding a listener, say) ends with
    // it, as systemd's control group would end it.
    match process::end_descendants() {
        Ok((ended, left)) => {
            if ended > 0 {
                log!("ended {} process(es) the program left behind", ended);
            }
            if left > 0 {
                log!(
                    "{} process(es) the program left behind were sent SIGKILL but could not be reaped within {} ms (a tracer holds them?): not waiting longer",
                    left,
                    process::END_DESCENDANTS_MS
                );
            }
        }
        Err(err) => log!("{}", err),
    }
    Ok(status)
}

/// How the upgrades the monitor started ended, and who waits for the one under way (`privsep
/// reload` queued the upgrade signal): each is told its outcome, the new generation's number or
/// why not, and systemd hears `READY=1` (the `RELOADING=1` of its start is over) unless the
/// program is stopping. The counts go into the metrics region (`privsep_upgrades_total`), which
/// the monitor only writes: what a child writes there can only mislead the children's scrapes.
struct Upgrades {
    waiting: Vec<Queued>,
    succeeded: u64,
    failed: u64,
    region: Option<i32>,
    notify_socket: String,
}

impl Upgrades {
    /// The upgrade under way failed: `what` happened to its generation; `serving` serves on.
    fn failed(&mut self, what: String, serving: u32) {
        log!("{}; generation {} serves on", what, serving);
        self.ended(UPGRADE_FAILED);
    }

    /// The upgrade under way ended with `answer`: a generation's number, or why it failed.
    fn ended(&mut self, answer: i32) {
        if answer > 0 {
            self.succeeded += 1;
        } else {
            self.failed += 1;
        }
        if let Some(fd) = self.region {
            if let Err(err) = region::record_upgrades(fd, self.succeeded, self.failed) {
                log!("{}", err);
            }
        }
        tell(&mut self.waiting, answer);
        if answer != UPGRADE_STOPPING {
            let _ = notify::send(&self.notify_socket, "READY=1");
        }
    }
}

/// Answers every sender in `senders` with `answer`.
fn tell(senders: &mut Vec<Queued>, answer: i32) {
    for sender in senders.drain(..) {
        sender.answer(answer);
    }
}

/// The unix socket files the monitor was handed (path, device and inode), removed on drop if
/// each is still the one bound: when the program ends, or when its start fails.
struct SocketFiles(Vec<(String, (u64, u64))>);

impl Drop for SocketFiles {
    fn drop(&mut self) {
        for (path, file) in &self.0 {
            let _ = socket::remove_socket_file(path, *file);
        }
    }
}

/// One generation of the program: the child and the monitor's end of its broker channel;
/// `starting` until its exec is known to have happened.
struct Generation {
    pid: u32,
    channel: Option<i32>,
    number: u32,
    starting: Option<spawn::Starting>,
}

/// A retired generation, waited for until it ends; SIGKILL at `kill_at` (None: sent).
struct Draining {
    pid: u32,
    number: u32,
    kill_at: Option<Instant>,
}

impl Generation {
    /// SIGTERM (its lifecycle drains it), then only waited for among the `draining`, for
    /// `grace` at most.
    /// One that has not started yet (its exec) gets SIGKILL at once: it may be stopped.
    fn retire(self, draining: &mut Vec<Draining>, grace: Duration) {
        let starting = self.starting.is_some();
        let _ = process::send(self.pid, if starting { process::SIGKILL } else { SIGTERM });
        draining.push(Draining {
            pid: self.pid,
            number: self.number,
            kill_at: if starting { None } else { Some(Instant::now() + grace) },
        });
        self.close();
    }

    fn close(self) {
        if let Some(fd) = self.channel {
            let _ = socket::close(fd);
        }
    }
}

/// Signals taken but not yet acted on, and the queued ones among them (`Signals::take`).
type Taken = (Vec<i32>, Vec<Queued>);

/// Waits for the first generation's exec, at most `ready_timeout_ms`: from its setuid on the
/// start runs as the user, and any process of the user can stop it before exec. A stuck start
/// is killed and is an error (ETIMEDOUT); so is a SIGTERM or SIGINT meanwhile (EINTR: the
/// program is stopped before it ran; a queued upgrade signal is answered "stopping"). Any
/// other signal taken meanwhile (SIGCHLD included: the child may have ended right after its
/// exec) is returned, for the loop to act on first.
fn first_start(mut first: Generation, signals: &Signals, handoff: &Handoff) -> Result<(Generation, Taken)> {
    let deadline = Instant::now() + Duration::from_millis(handoff.ready_timeout_ms as u64);
    let mut pending: Taken = (Vec::new(), Vec::new());
    let outcome = loop {
        let starting = first.starting.as_ref().expect("a generation starting");
        let left = deadline.saturating_duration_since(Instant::now());
        let ready = process::wait_readable(&[starting.report_fd(), signals.fd()], left.as_millis() as i32)?;
        if ready[0] {
            break first
                .starting
                .take()
                .expect("a generation starting")
                .finish(false)
                .map(|_| ());
        }
        if ready[1] {
            let (caught, queued) = signals.take();
            merge(&mut pending, caught, queued);
            if let Some(&stop) = pending.0.iter().find(|&&s| s == SIGTERM || s == SIGINT) {
                break Err(spawn::stopped(&handoff.child.program, &handoff.child.user, stop));
            }
        }
        if Instant::now() >= deadline {
            break Err(spawn::stuck(
                &handoff.child.program,
                &handoff.child.user,
                handoff.ready_timeout_ms,
            ));
        }
    };
    if let Err(err) = outcome {
        if first.starting.is_some() {
            let _ = process::send(first.pid, process::SIGKILL);
            let _ = spawn::wait(first.pid);
        }
        first.close();
        for sender in pending.1 {
            sender.answer(UPGRADE_STOPPING);
        }
        return Err(err);
    }
    Ok((first, pending))
}

/// Adds `caught` (each signal once) and `queued` to `taken`.
fn merge(taken: &mut Taken, caught: Vec<i32>, queued: Vec<Queued>) {
    for signal in caught {
        if !taken.0.contains(&signal) {
            taken.0.push(signal);
        }
    }
    taken.1.extend(queued);
}

/// Starts generation `number` of the program with `passed`, a broker channel of its own and
/// the metrics region.
fn start(handoff: &Handoff, passed: &[Entry], number: u32, metrics: Option<i32>) -> Result<Generation> {
    let (channel, child_end) = broker::channel()?;
    let started = spawn::start(&Command {
        child: &handoff.child,
        generation: number,
        passed,
        channel: Some(child_end),
        region: metrics,
    });
    let _ = socket::close(child_end);
    match started {
        Ok(starting) => Ok(Generation {
            pid: starting.pid(),
            channel: Some(channel),
            number,
            starting: Some(starting),
        }),
        Err(err) => {
            let _ = socket::close(channel);
            Err(err)
        }
    }
}

/// `start`, then closes the files opened for it: the child has them.
fn start_closing(handoff: &Handoff, passed: Vec<Entry>, number: u32, metrics: Option<i32>) -> Result<Generation> {
    let started = start(handoff, &passed, number, metrics);
    close_files(&passed);
    started
}

fn close_files(passed: &[Entry]) {
    for entry in passed.iter().filter(|e| matches!(e.passed, Passed::File(_))) {
        let _ = socket::close(entry.fd);
    }
}

/// What a new generation is passed: the listeners the monitor holds, and every file opened
/// again by its path (as it is on disk now: a renewed key, say), in the original order.
fn reopened(handoff: &Handoff, held: &[(Endpoint, i32)]) -> Result<Vec<Entry>> {
    let mut passed: Vec<Entry> = Vec::new();
    for entry in &handoff.passed {
        let fd = match &entry.passed {
            Passed::File(path) => paths::open_file(path),
            Passed::Socket(endpoint) => Ok(held.iter().find(|(e, _)| e == endpoint).map_or(-1, |&(_, fd)| fd)),
        };
        match fd {
            Ok(fd) => passed.push(Entry {
                fd,
                passed: entry.passed.clone(),
            }),
            Err(err) => {
                close_files(&passed);
                return Err(err);
            }
        }
    }
    Ok(passed)
}

/// What one message on a broker channel came to.
enum Served {
    Answered,
    /// The child called ready(): for the loop to act on.
    Ready,
    /// The child asked for an upgrade.
    Upgrade,
    /// The channel is to be closed: the child closed it, or broke the protocol.
    Closed,
}

/// Answers one request on a broker channel. A child that closed it, or sent what the protocol
/// does not allow (logged, never answered), gets `Closed`.
fn serve(
    channel: i32,
    policy: &Policy,
    held: &mut Vec<(Endpoint, i32)>,
    socket_files: &mut SocketFiles,
    notify_socket: &str,
) -> Served {
    let request = match broker::receive_request(channel) {
        Ok(Some(request)) => request,
        Ok(None) => return Served::Closed,
        Err(err) => {
            log!("closing the broker channel: {}", err);
            return Served::Closed;
        }
    };
    let served = match &request {
        Request::Notify { state, .. } if state == "READY=1" => Served::Ready,
        Request::Upgrade { .. } => Served::Upgrade,
        _ => Served::Answered,
    };
    let (reply, fd, close_after) = match served {
        Served::Answered => answer(&request, policy, held, socket_files, notify_socket),
        _ => (Reply::ok(request.id()), None, false),
    };
    let sent = broker::send_reply(channel, &reply, fd);
    if let (Some(fd), true) = (fd, close_after) {
        let _ = socket::close(fd);
    }
    if let Err(err) = sent {
        log!("closing the broker channel: {}", err);
        return Served::Closed;
    }
    served
}

/// The reply to `request` under `policy`, the descriptor to send with it, and whether to close
/// that descriptor once sent (a file) or keep it (a listener, asked for again as the same one).
/// A notification goes to systemd (`notify_socket`, none: nothing) and comes back without one.
/// A unix socket bound for the child gets the monitor's umask, never a mode the child asks
/// for (root creates the file), and its file is removed when the program ends.
fn answer(
    request: &Request,
    policy: &Policy,
    held: &mut Vec<(Endpoint, i32)>,
    socket_files: &mut SocketFiles,
    notify_socket: &str,
) -> (Reply, Option<i32>, bool) {
    let id = request.id();
    let what = match request {
        Request::File { path, .. } => format!("file {}", path),
        Request::Listener { endpoint, .. } => format!("listener {} {}", endpoint.network.name(), endpoint),
        Request::Notify { state, .. } => format!("notification {:?}", state),
        Request::Upgrade { .. } => "an upgrade".to_string(),
    };
    if !policy.allows(request) {
        log!("denied the child's request for {}", what);
        return (Reply::denied(id, &what), None, false);
    }
    let opened = match request {
        // `serve` answers these before they get here.
        Request::Upgrade { .. } => return (Reply::ok(id), None, false),
        Request::Notify { state, .. } => {
            return match notify::send(notify_socket, state) {
                Ok(()) => (Reply::ok(id), None, false),
                Err(err) => (Reply::failed(id, &err), None, false),
            };
        }
        Request::File { path, .. } => paths::open_file(path).map(|fd| (fd, true)),
        Request::Listener { endpoint, backlog, .. } => match held.iter().find(|(e, _)| e == endpoint) {
            Some(&(_, fd)) => Ok((fd, false)),
            None => socket::listen(endpoint, (*backlog).min(65535) as i32, None).map(|fd| {
                held.push((endpoint.clone(), fd));
                if let Address::Path(path) = &endpoint.address {
                    if let Ok(Some(file)) = socket::socket_file(path) {
                        socket_files.0.push((path.clone(), file));
                    }
                }
                (fd, false)
            }),
        },
    };
    match opened {
        Ok((fd, close_after)) => (Reply::ok(id), Some(fd), close_after),
        Err(err) => {
            log!("the child's request for {} failed: {}", what, err);
            (Reply::failed(id, &err), None, false)
        }
    }
}

/// Sends the listeners `new`, bound for a child, to systemd's file descriptor store (when
/// `limit` says the unit has one), `before` being how many the store holds already; each one
/// past the limit is logged, never dropped in silence.
fn store(new: &[(Endpoint, i32)], before: usize, limit: usize, notify_socket: &str) {
    for (i, (endpoint, fd)) in new.iter().enumerate() {
        let what = format!("{} {}", endpoint.network.name(), endpoint);
        let sent = match fdstore::endpoint_name(endpoint) {
            _ if limit == 0 || notify_socket.is_empty() => Ok(()),
            _ if before + i >= limit => Err(fdstore::full(&what, limit)),
            Some(name) => fdstore::store(notify_socket, &name, *fd),
            None => Err(Error::invalid(
                "ERR_PRIVSEP_FDSTORE_FULL",
                format!("{}: its name is longer than systemd's 255", what),
            )),
        };
        if let Err(err) = sent {
            log!("{}: {}", err.code(), err);
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
