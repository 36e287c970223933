//! The child's side of the broker channel (docs/PROTOCOL.md, "The broker"): finding the
//! channel, sending requests, and taking each reply with its descriptor, checked to be what was
//! asked for. The monitor's side and the policy are `privsep_core::broker`'s.

use crate::sys::{self, Fd};
pub use privsep_core::broker::*;
use privsep_core::socket::{Address, FdKind, SocketType};
use privsep_core::{Error, Result};
use std::sync::Mutex;

/// The child's side: sends `request` without waiting (the reply comes through `await_reply`).
pub fn send_request(socket: i32, request: &Request) -> Result<()> {
    sys::send_message(socket, &encode_request(request), None).map_err(|err| {
        if matches!(
            err.err.kind(),
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
        ) {
            closed()
        } else {
            err.about("the broker channel")
        }
    })
}

/// A reply received for a request nobody has taken yet.
struct Waiting {
    channel: i32,
    reply: Reply,
    fd: Option<Fd>,
}

/// Replies come in the order requests went out; whoever receives one that is not theirs
/// leaves it here for its owner. One receiver at a time, while holding the lock.
static INBOX: Mutex<Vec<Waiting>> = Mutex::new(Vec::new());

/// The child's side: waits for the reply to `request` (sent with `send_request`) and returns
/// the descriptor, checked to be what was asked for (as `restorePassedFiles` checks what was
/// passed); a refusal as its error. Several requests may be in flight, each awaited on a
/// thread of its own.
pub fn await_reply(channel: i32, request: &Request) -> Result<i32> {
    let mut inbox = INBOX.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let (reply, fd) = loop {
        if let Some(at) = inbox
            .iter()
            .position(|w| w.channel == channel && w.reply.id == request.id())
        {
            let waiting = inbox.remove(at);
            break (waiting.reply, waiting.fd);
        }
        let (reply, fd) = receive_reply(channel)?;
        inbox.push(Waiting { channel, reply, fd });
    };
    drop(inbox);
    let fd = match (reply.status, fd) {
        (Status::Ok, None) if wants_no_fd(request) => return Ok(-1),
        (Status::Ok, Some(fd)) if !wants_no_fd(request) => sys::into_raw(fd),
        _ if reply.code == "ERR_PRIVSEP_OS" => {
            return Err(Error::Os {
                syscall: "privsep-monitor",
                errno: reply.errno,
                context: reply.message,
            })
        }
        _ => {
            return Err(Error::Invalid {
                code: known_code(&reply.code),
                message: reply.message,
            })
        }
    };
    let checked = match request {
        Request::File { path, .. } => privsep_core::socket::validate_file(fd, path),
        Request::Listener { endpoint, .. } => privsep_core::socket::validate(fd, endpoint),
        Request::Notify { .. } | Request::Upgrade { .. } => Ok(()),
    };
    if let Err(err) = checked {
        let _ = sys::close(fd);
        return Err(err);
    }
    Ok(fd)
}

/// The next reply on the channel. A reply that is malformed or has the wrong number of
/// descriptors for its status is an error: the channel is broken.
fn receive_reply(channel: i32) -> Result<(Reply, Option<Fd>)> {
    let mut message = sys::receive_message(channel, MAX_MESSAGE).map_err(|e| e.about("the broker channel"))?;
    if message.bytes.is_empty() {
        return Err(closed());
    }
    if message.truncated {
        return Err(malformed("a reply that was cut short"));
    }
    let mut reply = decode_reply(&message.bytes)?;
    if message.fds_dropped && message.fds.is_empty() && reply.status == Status::Ok {
        // The kernel dropped the descriptor: this process is at its limit. The channel is
        // fine; this one request failed.
        reply = Reply {
            id: reply.id,
            status: Status::Failed,
            errno: sys::EMFILE,
            code: "ERR_PRIVSEP_OS".to_string(),
            message: "recvmsg: the monitor sent the descriptor, but this process is at its descriptor limit (RLIMIT_NOFILE) and the kernel dropped it".to_string(),
        };
    }
    // A granted file or listener comes with its descriptor, a notification with none: the
    // request decides (`await_reply`); a refusal never carries one.
    if message.fds.len() > 1 || (reply.status != Status::Ok && !message.fds.is_empty()) {
        return Err(malformed(&format!(
            "reply {} with {} descriptor(s)",
            reply.id,
            message.fds.len()
        )));
    }
    Ok((reply, message.fds.pop()))
}

/// Notifications and upgrades are answered without a descriptor.
fn wants_no_fd(request: &Request) -> bool {
    matches!(request, Request::Notify { .. } | Request::Upgrade { .. })
}

fn closed() -> Error {
    Error::invalid("ERR_PRIVSEP_BROKER_CLOSED", "the monitor closed the broker channel")
}

/// The child's side: whether `fd` (3 + the number of passed descriptors) is the broker
/// channel: a unix `SOCK_SEQPACKET` socket. It is then marked close-on-exec.
pub fn is_channel(fd: i32) -> bool {
    let seqpacket =
        matches!(sys::fd_kind(fd), Ok(FdKind::Socket)) && matches!(sys::socket_type(fd), Ok(SocketType::SeqPacket));
    seqpacket && matches!(sys::local_address(fd), Ok(Some(Address::Path(_)))) && sys::set_cloexec(fd).is_ok()
}
