//! systemd's file descriptor store (docs/PROTOCOL.md, "The file descriptor store"): the main
//! process sends each listener there right after binding it (`FDSTORE=1`, `FDNAME=`), so that
//! the listening socket, and its backlog, outlive a crash of the process that holds it; systemd
//! passes them back to the next start in `LISTEN_FDS`/`LISTEN_FDNAMES`
//! (crates/addon/src/activation.rs), and the Node side removes a name the program no longer
//! declares (`FDSTOREREMOVE=1`, `fdStore` in crates/addon/src/lib.rs). Only the main process
//! may store: the Node root process before the hand-off, the monitor (same pid) after it.

use crate::notify;
use crate::socket::Endpoint;
use crate::{Error, Result};

/// Longest name systemd gives a descriptor (`FDNAME_MAX`), stored or passed.
pub const MAX_NAME: usize = 255;

/// The variable that says how many descriptors the store takes (systemd 254 sets it from
/// `FileDescriptorStoreMax=`; the unit `privsep print-service` prints sets it for older ones).
/// Unset or 0: nothing is stored.
pub const LIMIT: &str = "FDSTORE";

/// The name listener `network address` is stored under: `NETWORK ADDRESS` (the canonical
/// address), with `%`, `:` and every byte outside printable ASCII written `%XX`, so that
/// distinct listeners never share a name and every name is one systemd accepts. `None` when
/// that is longer than systemd's 255 (a long unix socket path): such a listener is not stored.
pub fn name(network: &str, address: &str) -> Option<String> {
    let mut name = String::with_capacity(network.len() + 1 + address.len());
    name.push_str(network);
    name.push(' ');
    for b in address.bytes() {
        if b == b'%' || b == b':' || !(b' '..=b'~').contains(&b) {
            name.push_str(&format!("%{:02X}", b));
        } else {
            name.push(b as char);
        }
    }
    Some(name).filter(|n| n.len() <= MAX_NAME)
}

/// [`name`] for a declared endpoint.
pub fn endpoint_name(endpoint: &Endpoint) -> Option<String> {
    name(endpoint.network.name(), &endpoint.to_string())
}

/// The store's size from `FDSTORE=N` among `env` (`NAME=value` entries); 0 when absent or not a number.
pub fn limit<'a>(env: impl IntoIterator<Item = &'a String>) -> usize {
    env.into_iter()
        .find_map(|entry| entry.strip_prefix("FDSTORE="))
        .and_then(|n| crate::protocol::decimal(n).filter(|_| n.len() <= 6))
        .unwrap_or(0) as usize
}

/// Sends listener `fd` to the store of `socket` (`NOTIFY_SOCKET`) under `name`. systemd
/// answers nothing: a full store drops it and says so only in the unit's journal, hence the
/// count the callers keep against [`limit`].
pub fn store(socket: &str, name: &str, fd: i32) -> Result<()> {
    notify::send_fd(socket, &format!("FDSTORE=1\nFDNAME={}", name), Some(fd))
}

/// What is said when the store is full: the listener `what` is not stored, so a crash of the
/// monitor refuses its clients until the next start binds it again.
pub fn full(what: &str, limit: usize) -> Error {
    Error::invalid(
        "ERR_PRIVSEP_FDSTORE_FULL",
        format!(
            "{} is not kept in systemd's file descriptor store: it holds {} already (FDSTORE={}, FileDescriptorStoreMax=); raise both to the number of listeners",
            what, limit, limit
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_valid_fdnames() {
        assert_eq!(name("tcp", "0.0.0.0:443").unwrap(), "tcp 0.0.0.0%3A443");
        assert_eq!(name("tcp6", "[::]:443").unwrap(), "tcp6 [%3A%3A]%3A443");
        assert_eq!(name("unix", "/run/a%3A").unwrap(), "unix /run/a%253A");
        assert_ne!(name("unix", "/run/a:").unwrap(), name("unix", "/run/a%3A").unwrap());
        assert_eq!(name("unix", "/run/caf\u{e9}").unwrap(), "unix /run/caf%C3%A9");
        assert!(name("unix", &format!("/{}", "x".repeat(249))).is_some());
        assert!(name("unix", &format!("/{}", "x".repeat(250))).is_none());
    }

    #[test]
    fn the_limit_is_read_from_the_environment() {
        let env = |e: &[&str]| e.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(limit(&env(&["A=1", "FDSTORE=8"])), 8);
        assert_eq!(limit(&env(&["FDSTORE=x"])), 0);
        assert_eq!(limit(&env(&["FDSTORE=08"])), 0);
        assert_eq!(limit(&env(&[])), 0);
        assert_eq!(full("tcp 0.0.0.0:443", 1).code(), "ERR_PRIVSEP_FDSTORE_FULL");
    }
}
