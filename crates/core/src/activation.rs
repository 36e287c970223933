//! systemd socket activation in: the `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES`
//! variables, checked as `sd_listen_fds_with_names` checks them, and each descriptor as
//! `sd_is_socket` does (docs/PROTOCOL.md, "Socket activation").

use crate::socket::{self, Address, Endpoint, FdKind, SocketType};
use crate::sys;
use crate::{Error, Result};

pub const PID: &str = "LISTEN_PID";
pub const FDS: &str = "LISTEN_FDS";
pub const FDNAMES: &str = "LISTEN_FDNAMES";
/// systemd's first passed descriptor (`SD_LISTEN_FDS_START`).
const START: i32 = 3;

/// One activated socket: its descriptor, its name (`unknown` when systemd gave none), and
/// what it is, for messages: `stream`/`datagram` and the address it is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activated {
    pub fd: i32,
    pub name: String,
    pub kind: &'static str,
    pub address: String,
}

/// The sockets systemd passed to process `pid`, or `None` when no variable is set. Each is a
/// socket, then marked close-on-exec. Refuses, each with its code: a `LISTEN_PID` for another
/// process, numbers that are not numbers, a name count that is not the fd count, a descriptor
/// that is not a socket.
pub fn decode(
    listen_pid: Option<&str>,
    listen_fds: Option<&str>,
    names: Option<&str>,
    pid: u32,
) -> Result<Option<Vec<Activated>>> {
    let (listen_pid, listen_fds) = match (listen_pid, listen_fds, names) {
        (None, None, None) => return Ok(None),
        (Some(p), Some(f), _) => (p, f),
        _ => return Err(malformed(format!("{} and {} must be set together", PID, FDS))),
    };
    let number = |name: &str, text: &str| -> Result<u32> {
        let digits = !text.is_empty() && text.len() <= 9 && text.bytes().all(|b| b.is_ascii_digit());
        if digits { text.parse().ok() } else { None }
            .ok_or_else(|| malformed(format!("{} has {:?} where a number belongs", name, text)))
    };
    let target = number(PID, listen_pid)?;
    if target != pid {
        return Err(Error::invalid(
            "ERR_PRIVSEP_ACTIVATION_PID",
            format!(
                "{}={} but this process is {}: the sockets were passed to another process",
                PID, target, pid
            ),
        ));
    }
    let count = number(FDS, listen_fds)? as usize;
    let names: Vec<String> = match names {
        Some(names) => names.split(':').map(str::to_string).collect(),
        None => vec!["unknown".to_string(); count],
    };
    if names.len() != count {
        return Err(malformed(format!(
            "{}={} but {} has {} names",
            FDS,
            count,
            FDNAMES,
            names.len()
        )));
    }
    let mut activated = Vec::new();
    for (i, name) in names.into_iter().enumerate() {
        let fd = START + i as i32;
        let what = format!("activated fd {} ({})", fd, name);
        match sys::fd_kind(fd).map_err(|e| e.about(what.clone()))? {
            FdKind::Socket => {}
            _ => {
                return Err(Error::invalid(
                    "ERR_PRIVSEP_NOT_SOCKET",
                    format!("{}: is not a socket", what),
                ))
            }
        }
        let kind = match sys::socket_type(fd).map_err(|e| e.about(what.clone()))? {
            SocketType::Stream => "stream",
            SocketType::Datagram => "datagram",
            _ => "other",
        };
        let address = match sys::local_address(fd).map_err(|e| e.about(what.clone()))? {
            Some(Address::Ip(ip)) => ip.to_string(),
            Some(Address::Path(path)) => path,
            None => String::new(),
        };
        sys::set_cloexec(fd).map_err(|e| e.about(what))?;
        activated.push(Activated {
            fd,
            name,
            kind,
            address,
        });
    }
    Ok(Some(activated))
}

/// Whether activated `fd` is the socket `endpoint` declares (type, listening, family, address).
pub fn matches(fd: i32, endpoint: &Endpoint) -> bool {
    socket::validate(fd, endpoint).is_ok()
}

fn malformed(message: String) -> Error {
    Error::invalid("ERR_PRIVSEP_ACTIVATION_MALFORMED", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_are_checked_before_any_descriptor() {
        assert_eq!(decode(None, None, None, 7).unwrap(), None);
        let code = |p, f, n| decode(p, f, n, 7).unwrap_err().code();
        assert_eq!(code(Some("8"), Some("1"), None), "ERR_PRIVSEP_ACTIVATION_PID");
        assert_eq!(code(Some("7"), None, None), "ERR_PRIVSEP_ACTIVATION_MALFORMED");
        assert_eq!(code(None, None, Some("web")), "ERR_PRIVSEP_ACTIVATION_MALFORMED");
        assert_eq!(code(Some("x"), Some("1"), None), "ERR_PRIVSEP_ACTIVATION_MALFORMED");
        assert_eq!(code(Some("7"), Some("-1"), None), "ERR_PRIVSEP_ACTIVATION_MALFORMED");
        assert_eq!(
            code(Some("7"), Some("2"), Some("web")),
            "ERR_PRIVSEP_ACTIVATION_MALFORMED"
        );
        assert_eq!(decode(Some("7"), Some("0"), None, 7).unwrap(), Some(vec![]));
    }
}
