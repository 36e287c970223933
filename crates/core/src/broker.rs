//! The broker channel between the child and the monitor (docs/PROTOCOL.md, "The broker"):
//! one request and one reply per `SOCK_SEQPACKET` message, at most [`MAX_MESSAGE`] bytes, and
//! the policy the monitor checks a request against. One encoder and one strict decoder for
//! each message; anything the spec does not allow is refused.
//!
//! Request: `u8 version (1)`, `u8 kind (1 file, 2 listener)`, `u32 id`, then for a file a
//! string path; for a listener a string network, a string address, `u32 backlog` and
//! `u32 mode` (`u32::MAX`: none). Reply: `u8 version (1)`, `u8 status`, `u32 id`, `i32 errno`,
//! a string message; one descriptor is attached exactly when the status is `OK`. Strings are a
//! `u16` byte length and UTF-8 without NUL. Little-endian throughout.

use crate::protocol::Passed;
use crate::socket::{Address, Endpoint, FdKind, SocketType};
use crate::sys::{self, Fd};
use crate::{Error, Result};
use std::sync::Mutex;

pub const VERSION: u8 = 1;
/// Largest message either side sends or accepts.
pub const MAX_MESSAGE: usize = 4096;
/// `mode` meaning "leave the socket file's permissions to the umask".
pub const NO_MODE: u32 = u32::MAX;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    File {
        id: u32,
        path: String,
    },
    Listener {
        id: u32,
        endpoint: Endpoint,
        backlog: u32,
        mode: u32,
    },
    /// A systemd notification for the monitor to send (`READY=1`, `STATUS=…`): no fd back.
    Notify {
        id: u32,
        state: String,
    },
    /// Start a new generation of the program (a zero-downtime upgrade): no fd back.
    Upgrade {
        id: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The descriptor is attached.
    Ok = 0,
    /// The policy does not allow it.
    Denied = 1,
    /// The OS refused (errno), or the path is unsafe (message).
    Failed = 2,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub id: u32,
    pub status: Status,
    pub errno: i32,
    /// The code the child throws (`ERR_PRIVSEP_…`, or `ERR_PRIVSEP_OS` with `errno`) and why.
    pub code: String,
    pub message: String,
}

impl Request {
    pub fn id(&self) -> u32 {
        match self {
            Request::File { id, .. }
            | Request::Listener { id, .. }
            | Request::Notify { id, .. }
            | Request::Upgrade { id } => *id,
        }
    }
}

pub fn encode_request(request: &Request) -> Vec<u8> {
    let mut out = vec![VERSION];
    match request {
        Request::File { id, path } => {
            out.push(1);
            out.extend_from_slice(&id.to_le_bytes());
            string(&mut out, path);
        }
        Request::Listener {
            id,
            endpoint,
            backlog,
            mode,
        } => {
            out.push(2);
            out.extend_from_slice(&id.to_le_bytes());
            string(&mut out, endpoint.network.name());
            string(&mut out, &endpoint.to_string());
            out.extend_from_slice(&backlog.to_le_bytes());
            out.extend_from_slice(&mode.to_le_bytes());
        }
        Request::Notify { id, state } => {
            out.push(3);
            out.extend_from_slice(&id.to_le_bytes());
            string(&mut out, state);
        }
        Request::Upgrade { id } => {
            out.push(4);
            out.extend_from_slice(&id.to_le_bytes());
        }
    }
    out
}

pub fn decode_request(bytes: &[u8]) -> Result<Request> {
    let mut r = Reader::new(bytes)?;
    let kind = r.u8()?;
    let id = r.u32()?;
    let request = match kind {
        1 => Request::File { id, path: r.string()? },
        2 => {
            let network = r.string()?;
            let address = r.string()?;
            let endpoint = Endpoint::parse(&network, &address).map_err(|e| malformed(&e.to_string()))?;
            Request::Listener {
                id,
                endpoint,
                backlog: r.u32()?,
                mode: r.u32()?,
            }
        }
        3 => Request::Notify { id, state: r.string()? },
        4 => Request::Upgrade { id },
        other => return Err(malformed(&format!("unknown request kind {}", other))),
    };
    r.end()?;
    Ok(request)
}

pub fn encode_reply(reply: &Reply) -> Vec<u8> {
    let mut out = vec![VERSION, reply.status as u8];
    out.extend_from_slice(&reply.id.to_le_bytes());
    out.extend_from_slice(&reply.errno.to_le_bytes());
    string(&mut out, &reply.code);
    // Cut on a character boundary so that the message fits.
    let room = MAX_MESSAGE - out.len() - 2;
    let mut end = reply.message.len().min(room);
    while !reply.message.is_char_boundary(end) {
        end -= 1;
    }
    string(&mut out, &reply.message[..end]);
    out
}

pub fn decode_reply(bytes: &[u8]) -> Result<Reply> {
    let mut r = Reader::new(bytes)?;
    let status = match r.u8()? {
        0 => Status::Ok,
        1 => Status::Denied,
        2 => Status::Failed,
        other => return Err(malformed(&format!("unknown reply status {}", other))),
    };
    let id = r.u32()?;
    let errno = r.u32()? as i32;
    let code = r.string()?;
    let message = r.string()?;
    r.end()?;
    Ok(Reply {
        id,
        status,
        errno,
        code,
        message,
    })
}

impl Reply {
    pub fn ok(id: u32) -> Reply {
        Reply {
            id,
            status: Status::Ok,
            errno: 0,
            code: String::new(),
            message: String::new(),
        }
    }

    pub fn denied(id: u32, what: &str) -> Reply {
        Reply {
            id,
            status: Status::Denied,
            errno: 0,
            code: "ERR_PRIVSEP_DENIED".into(),
            message: format!(
                "{}: not allowed by the policy given to forkExecUnprivileged (allow)",
                what
            ),
        }
    }

    pub fn failed(id: u32, err: &Error) -> Reply {
        let errno = match err {
            Error::Os { errno, .. } => *errno,
            _ => 0,
        };
        Reply {
            id,
            status: Status::Failed,
            errno,
            code: err.code().into(),
            message: err.to_string(),
        }
    }
}

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

/// The monitor's code for a refusal, as one of ours: a code this version does not know is
/// reported as a broken protocol.
fn known_code(code: &str) -> &'static str {
    const CODES: [&str; 6] = [
        "ERR_PRIVSEP_DENIED",
        "ERR_PRIVSEP_UNSAFE_PATH",
        "ERR_PRIVSEP_NOT_FILE",
        "ERR_PRIVSEP_SOCKET_PATH",
        "ERR_PRIVSEP_INVALID_ARGUMENT",
        "ERR_PRIVSEP_BROKER_MALFORMED",
    ];
    CODES
        .iter()
        .find(|&&c| c == code)
        .copied()
        .unwrap_or("ERR_PRIVSEP_BROKER_MALFORMED")
}

fn string(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&(text.len() as u16).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

fn malformed(why: &str) -> Error {
    Error::invalid("ERR_PRIVSEP_BROKER_MALFORMED", format!("broker message: {}", why))
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Result<Reader<'a>> {
        if bytes.len() > MAX_MESSAGE {
            return Err(malformed(&format!("{} bytes, more than {}", bytes.len(), MAX_MESSAGE)));
        }
        let mut r = Reader { bytes, at: 0 };
        match r.u8()? {
            VERSION => Ok(r),
            other => Err(malformed(&format!("version {}, not {}", other, VERSION))),
        }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.bytes.len() - self.at < n {
            return Err(malformed(&format!("truncated at byte {}", self.at)));
        }
        self.at += n;
        Ok(&self.bytes[self.at - n..self.at])
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn string(&mut self) -> Result<String> {
        let b = self.take(2)?;
        let len = u16::from_le_bytes([b[0], b[1]]) as usize;
        match std::str::from_utf8(self.take(len)?) {
            Ok(text) if !text.contains('\0') => Ok(text.to_string()),
            _ => Err(malformed("a string that is not UTF-8 without NUL")),
        }
    }
    fn end(&self) -> Result<()> {
        if self.at != self.bytes.len() {
            return Err(malformed(&format!(
                "{} bytes after the last field",
                self.bytes.len() - self.at
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener() -> Request {
        Request::Listener {
            id: 7,
            endpoint: Endpoint::parse("tcp", "[::]:443").unwrap(),
            backlog: 511,
            mode: NO_MODE,
        }
    }

    #[test]
    fn messages_survive_encoding() {
        for request in [
            Request::Notify {
                id: 2,
                state: "STATUS=ok".into(),
            },
            Request::File {
                id: 1,
                path: "/etc/clé, x.pem".into(),
            },
            listener(),
        ] {
            assert_eq!(decode_request(&encode_request(&request)).unwrap(), request);
        }
        let err = Error::invalid("ERR_PRIVSEP_UNSAFE_PATH", "no");
        for reply in [Reply::ok(3), Reply::denied(4, "file /x"), Reply::failed(5, &err)] {
            assert_eq!(decode_reply(&encode_reply(&reply)).unwrap(), reply);
        }
        let long = Reply {
            message: "é".repeat(3000),
            ..Reply::ok(1)
        };
        assert!(encode_reply(&long).len() <= MAX_MESSAGE);
        decode_reply(&encode_reply(&long)).unwrap();
    }

    #[test]
    fn hostile_messages_are_refused() {
        let bytes = encode_request(&listener());
        for len in 0..bytes.len() {
            assert_eq!(
                decode_request(&bytes[..len]).unwrap_err().code(),
                "ERR_PRIVSEP_BROKER_MALFORMED"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_request(&longer).is_err());
        let mut version = bytes.clone();
        version[0] = 2;
        assert!(decode_request(&version).unwrap_err().to_string().contains("version"));
        let mut kind = bytes;
        kind[1] = 9;
        assert!(decode_request(&kind).unwrap_err().to_string().contains("kind"));
        assert!(decode_request(&[1, 1, 0, 0, 0, 0, 3, 0, b'a', 0, b'b'])
            .unwrap_err()
            .to_string()
            .contains("NUL"));
        assert!(decode_request(&[1, 1, 0, 0, 0, 0, 1, 0, 0xff]).is_err());
        assert!(decode_request(&vec![1; MAX_MESSAGE + 1])
            .unwrap_err()
            .to_string()
            .contains("more than"));
        assert!(decode_request(&encode_request(&Request::File {
            id: 1,
            path: "x".repeat(300)
        }))
        .is_ok());
    }

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
        assert!(policy.allows(&listener()));
        let other = Request::Listener {
            id: 1,
            endpoint: Endpoint::parse("tcp", ":444").unwrap(),
            backlog: 1,
            mode: NO_MODE,
        };
        assert!(!policy.allows(&other));
    }

    fn random_request(rng: &mut crate::fuzz::Rng) -> Request {
        let id = rng.next() as u32;
        match rng.below(4) {
            0 => Request::File { id, path: rng.path() },
            1 => Request::Listener {
                id,
                endpoint: rng.endpoint(),
                backlog: rng.next() as u32,
                mode: rng.next() as u32,
            },
            2 => Request::Notify {
                id,
                state: rng.text(20).replace('\0', ""),
            },
            _ => Request::Upgrade { id },
        }
    }

    /// Random messages survive encoding; random edits and random bytes are refused with
    /// ERR_PRIVSEP_BROKER_MALFORMED, or decode to a message that encodes back.
    #[test]
    fn fuzz_messages() {
        crate::fuzz::run("broker", |rng| {
            let request = random_request(rng);
            assert_eq!(decode_request(&encode_request(&request)).unwrap(), request);
            let reply = Reply {
                id: rng.next() as u32,
                status: *rng.pick(&[Status::Ok, Status::Denied, Status::Failed]),
                errno: rng.next() as i32,
                code: rng.text(8).replace('\0', ""),
                message: rng.text(30).replace('\0', ""),
            };
            assert_eq!(decode_reply(&encode_reply(&reply)).unwrap(), reply);
            for bytes in [rng.mutate(&encode_request(&request)), rng.bytes(40)] {
                match decode_request(&bytes) {
                    Ok(decoded) => assert_eq!(decode_request(&encode_request(&decoded)).unwrap(), decoded),
                    Err(err) => assert_eq!(err.code(), "ERR_PRIVSEP_BROKER_MALFORMED"),
                }
            }
            for bytes in [rng.mutate(&encode_reply(&reply)), rng.bytes(40)] {
                match decode_reply(&bytes) {
                    Ok(decoded) => assert_eq!(encode_reply(&decoded), bytes),
                    Err(err) => assert_eq!(err.code(), "ERR_PRIVSEP_BROKER_MALFORMED"),
                }
            }
        });
    }

    /// The policy against a reference: a path is allowed exactly when it is absolute and
    /// plain, and one of the files or below one of the folders, component by component.
    #[test]
    fn fuzz_the_policy() {
        crate::fuzz::run("policy", |rng| {
            let path = |rng: &mut crate::fuzz::Rng| {
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
