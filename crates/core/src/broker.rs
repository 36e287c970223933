//! The broker channel between the child and the monitor (docs/PROTOCOL.md, "The broker"): its
//! messages are `privsep_wire::broker`'s; here is the channel itself (`SOCK_SEQPACKET`, one
//! message per request or reply, a descriptor attached to a reply) and the policy the monitor
//! checks a request against.

use crate::protocol::Passed;
use crate::socket::{Address, Endpoint, FdKind, SocketType};
use crate::sys::{self, Fd};
use crate::{Error, Result};
use std::sync::Mutex;

pub use privsep_wire::broker::*;

/// What the child may ask for: files by exact path, everything below a folder, listeners by
/// network and canonical address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub files: Vec<String>,
    pub folders: Vec<String>,
    pub listeners: Vec<Endpoint>,
}

impl Policy {
    /// The policy from hand-off entries: `file` and `folder` paths, network addresses.
    pub fn from_entries(entries: &[Passed], folders: &[String]) -> Policy {
        let mut policy = Policy {
            folders: folders.to_vec(),
            ..Policy::default()
        };
        for entry in entries {
            match entry {
                Passed::File(path) => policy.files.push(path.clone()),
                Passed::Socket(endpoint) => policy.listeners.push(endpoint.clone()),
            }
        }
        policy
    }

    /// Whether `request` is allowed. A path must be absolute and plain (no `.`, `..` or empty
    /// component), so that comparing text compares places.
    pub fn allows(&self, request: &Request) -> bool {
        match request {
            Request::File { path, .. } => {
                let plain =
                    path.starts_with('/') && path[1..].split('/').all(|c| !c.is_empty() && c != "." && c != "..");
                plain
                    && (self.files.iter().any(|f| f == path)
                        || self
                            .folders
                            .iter()
                            .any(|d| path.starts_with(&format!("{}/", d.trim_end_matches('/')))))
            }
            Request::Listener { endpoint, .. } => self.listeners.iter().any(|l| l == endpoint),
            Request::Notify { state, .. } => crate::notify::child_may_send(state),
            Request::Upgrade { .. } => true,
        }
    }
}

/// The two ends of a new channel: (the monitor's, the child's), both close-on-exec.
pub fn channel() -> Result<(i32, i32)> {
    let (monitor, child) = sys::seqpacket_pair().map_err(|e| e.about("the broker channel"))?;
    Ok((sys::into_raw(monitor), sys::into_raw(child)))
}

/// The monitor's side: the next request, `None` when the child closed the channel. A message
/// that is malformed, too long, or carries descriptors is an error (its descriptors are
/// closed unread): the caller closes the channel.
pub fn receive_request(socket: i32) -> Result<Option<Request>> {
    let message = sys::receive_message(socket, MAX_MESSAGE).map_err(|e| e.about("the broker channel"))?;
    if !message.fds.is_empty() || message.fds_dropped {
        let count = message.fds.len().max(1);
        // Closed at once, and without waiting for a socket the child set to linger.
        message.fds.into_iter().for_each(sys::close_unread);
        return Err(malformed(&format!("{} descriptor(s) attached to a request", count)));
    }
    if message.truncated {
        return Err(malformed(&format!("more than {} bytes", MAX_MESSAGE)));
    }
    if message.bytes.is_empty() {
        return Ok(None);
    }
    decode_request(&message.bytes).map(Some)
}

/// The monitor's side: a reply, with the descriptor when the status is `Ok`. Never blocks: a
/// child that does not read its replies gets its channel closed.
pub fn send_reply(socket: i32, reply: &Reply, fd: Option<i32>) -> Result<()> {
    sys::send_message(socket, &encode_reply(reply), fd).map_err(|e| e.about("the broker channel"))
}

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
        Request::File { path, .. } => crate::socket::validate_file(fd, path),
        Request::Listener { endpoint, .. } => crate::socket::validate(fd, endpoint),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_compares_plain_absolute_paths() {
        let policy = Policy {
            files: vec!["/etc/app/key.pem".into()],
            folders: vec!["/etc/letsencrypt/live/".into()],
            listeners: vec![Endpoint::parse("tcp", ":443").unwrap()],
        };
        let file = |path: &str| Request::File {
            id: 1,
            path: path.into(),
        };
        assert!(policy.allows(&file("/etc/app/key.pem")));
        assert!(policy.allows(&file("/etc/letsencrypt/live/a.org/privkey.pem")));
        for denied in [
            "/etc/shadow",
            "/etc/app/key.pem/",
            "/etc/letsencrypt/live",
            "/etc/letsencrypt/live/../../shadow",
            "/etc/letsencrypt/live/./a",
            "/etc/letsencrypt/live//a",
            "etc/app/key.pem",
            "/etc/letsencrypt/lives/a",
        ] {
            assert!(!policy.allows(&file(denied)), "{}", denied);
        }
        let listener = Request::Listener {
            id: 7,
            endpoint: Endpoint::parse("tcp", "[::]:443").unwrap(),
            backlog: 511,
            mode: NO_MODE,
        };
        assert!(policy.allows(&listener));
        let other = Request::Listener {
            id: 1,
            endpoint: Endpoint::parse("tcp", ":444").unwrap(),
            backlog: 1,
            mode: NO_MODE,
        };
        assert!(!policy.allows(&other));
    }

    /// The policy against a reference: a path is allowed exactly when it is absolute and
    /// plain, and one of the files or below one of the folders, component by component.
    #[test]
    fn fuzz_the_policy() {
        privsep_wire::fuzz::run("policy", |rng| {
            let path = |rng: &mut privsep_wire::fuzz::Rng| {
                let parts = ["etc", "app", "..", ".", "", "k.pem", "live", "é"];
                let n = rng.below(4);
                let joined: Vec<&str> = (0..n).map(|_| *rng.pick(&parts)).collect();
                let prefix = if rng.chance(8) { "" } else { "/" };
                format!("{}{}", prefix, joined.join("/"))
            };
            let file = path(rng);
            let folder = path(rng) + if rng.chance(2) { "/" } else { "" };
            let asked = if rng.chance(4) { file.clone() } else { path(rng) };
            let policy = Policy {
                files: vec![file.clone()],
                folders: vec![folder.clone()],
                listeners: vec![],
            };
            let plain = asked.starts_with('/') && asked[1..].split('/').all(|c| !c.is_empty() && c != "." && c != "..");
            let base: Vec<&str> = folder.trim_end_matches('/').split('/').collect();
            let parts: Vec<&str> = asked.split('/').collect();
            let below = parts.len() > base.len() && parts[..base.len()] == base[..];
            let allowed = policy.allows(&Request::File { id: 0, path: asked.clone() });
            assert_eq!(allowed, plain && (asked == file || below), "{:?} {:?} {:?}", asked, file, folder);
        });
    }
}
