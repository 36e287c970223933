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

use crate::address::Endpoint;
use crate::{Error, Result};

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

#[cfg(any(test, feature = "node"))]
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

#[cfg(any(test, feature = "node"))]
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

/// The monitor's code for a refusal, as one of ours: a code this version does not know is
/// reported as a broken protocol.
#[cfg(any(test, feature = "node"))]
pub fn known_code(code: &str) -> &'static str {
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

/// The error for a message the protocol does not allow.
pub fn malformed(why: &str) -> Error {
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

    fn random_request(rng: &mut crate::fuzz::Rng) -> Request {
        let id = rng.next_u64() as u32;
        match rng.below(4) {
            0 => Request::File { id, path: rng.path() },
            1 => Request::Listener {
                id,
                endpoint: rng.endpoint(),
                backlog: rng.next_u64() as u32,
                mode: rng.next_u64() as u32,
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
                id: rng.next_u64() as u32,
                status: *rng.pick(&[Status::Ok, Status::Denied, Status::Failed]),
                errno: rng.next_u64() as i32,
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
}
