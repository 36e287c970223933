//! systemd notifications out, without libsystemd: one datagram of `KEY=value` lines to the
//! unix socket `NOTIFY_SOCKET` names (a path, or `@name` for the abstract namespace), as
//! `sd_notify` sends it.

use crate::sys;
use crate::{Error, Result};

/// What the child may ask the monitor to send: readiness, status, stopping, reloading and the
/// watchdog keep-alive, one line. Not `MAINPID=`, file descriptor store or anything else that
/// would speak for the monitor.
pub fn child_may_send(state: &str) -> bool {
    matches!(state, "READY=1" | "STOPPING=1" | "RELOADING=1" | "WATCHDOG=1")
        || (state.starts_with("STATUS=") && !state.contains('\n') && state.len() <= 1024)
}

/// Sends `state` to `socket` (`NOTIFY_SOCKET`'s value). An empty `socket` sends nothing.
pub fn send(socket: &str, state: &str) -> Result<()> {
    send_fd(socket, state, None)
}

/// [`send`], with descriptor `fd` attached (`FDSTORE=1`, crates/core/src/fdstore.rs).
pub fn send_fd(socket: &str, state: &str, fd: Option<i32>) -> Result<()> {
    if socket.is_empty() {
        return Ok(());
    }
    if !(socket.starts_with('/') || socket.starts_with('@')) || socket.len() > 107 || socket.contains('\0') {
        return Err(Error::invalid(
            "ERR_PRIVSEP_INVALID_ARGUMENT",
            format!("NOTIFY_SOCKET={:?} is not an absolute path or @abstract name", socket),
        ));
    }
    let mut address = socket.as_bytes().to_vec();
    if address[0] == b'@' {
        address[0] = 0;
    }
    sys::send_datagram(&address, state.as_bytes(), fd).map_err(|e| e.about(format!("NOTIFY_SOCKET {}", socket)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_child_may_send_only_its_own_states() {
        for allowed in [
            "READY=1",
            "STOPPING=1",
            "RELOADING=1",
            "WATCHDOG=1",
            "STATUS=serving 3 listeners",
        ] {
            assert!(child_may_send(allowed), "{}", allowed);
        }
        for refused in [
            "MAINPID=1",
            "READY=1\nMAINPID=1",
            "STATUS=a\nMAINPID=1",
            "FDSTORE=1",
            "READY=0",
            "",
        ] {
            assert!(!child_may_send(refused), "{:?}", refused);
        }
        assert!(send("", "READY=1").is_ok());
        assert_eq!(
            send("relative", "READY=1").unwrap_err().code(),
            "ERR_PRIVSEP_INVALID_ARGUMENT"
        );
    }
}
