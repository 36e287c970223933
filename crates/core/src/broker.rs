//! The broker channel between the child and the monitor (docs/PROTOCOL.md, "The broker"): its
//! messages are `privsep_wire::broker`'s; here are the channel (`SOCK_SEQPACKET`, one message
//! per request or reply, a descriptor attached to a reply), the monitor's side of it and the
//! policy it checks a request against. The child's side is the addon's (`crates/addon/src/broker.rs`).

use crate::protocol::Passed;
use crate::socket::Endpoint;
use crate::sys;
use crate::Result;

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
            let allowed = policy.allows(&Request::File {
                id: 0,
                path: asked.clone(),
            });
            assert_eq!(
                allowed,
                plain && (asked == file || below),
                "{:?} {:?} {:?}",
                asked,
                file,
                folder
            );
        });
    }
}
