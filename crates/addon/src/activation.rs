//! systemd socket activation in: the `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES`
//! variables, checked as `sd_listen_fds_with_names` checks them, and each descriptor as
//! `sd_is_socket` does (docs/PROTOCOL.md, "Socket activation").

use crate::sys;
use privsep_core::fdstore::MAX_NAME;
use privsep_core::socket::{self, Endpoint, FdKind, SocketType};
use privsep_core::{Error, Result};

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
        privsep_core::protocol::decimal(text)
            .filter(|_| text.len() <= 9)
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
    let names = match names {
        Some(names) => parse_names(names)?,
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
            Some(address) => address.to_string(),
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

/// `LISTEN_FDNAMES` as systemd writes it: names separated by `:`, each 1 to 255 printable
/// ASCII characters other than `:` (systemd's `fdname_is_valid`); `""` is no names at all.
pub fn parse_names(names: &str) -> Result<Vec<String>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    names
        .split(':')
        .map(|name| {
            let valid = !name.is_empty() && name.len() <= MAX_NAME && name.bytes().all(|b| (b' '..=b'~').contains(&b));
            if valid {
                Ok(name.to_string())
            } else {
                Err(malformed(format!(
                    "{} has the name {:?}: a name is 1 to {} printable ASCII characters other than ':'",
                    FDNAMES, name, MAX_NAME
                )))
            }
        })
        .collect()
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
        assert_eq!(decode(Some("7"), Some("0"), Some(""), 7).unwrap(), Some(vec![]));
    }

    /// What the store is given back under is a name this parser takes (`privsep_core::fdstore`).
    #[test]
    fn stored_names_parse() {
        let name = privsep_core::fdstore::name;
        for n in [
            name("tcp", "0.0.0.0:443").unwrap(),
            name("unix", "/run/caf\u{e9}:1").unwrap(),
        ] {
            assert_eq!(parse_names(&n).unwrap(), std::slice::from_ref(&n));
        }
    }

    /// What docs/PROTOCOL.md does not allow, once accepted (issue 13).
    #[test]
    fn only_the_grammar_is_accepted() {
        let code = |p, f, n| decode(Some(p), Some(f), n, 7).unwrap_err().code();
        for (pid, fds, names) in [
            ("07", "1", None),
            ("7", "01", None),
            ("+7", "1", None),
            ("7", "1", Some("")),
            ("7", "2", Some("a:")),
            ("7", "2", Some(":a")),
            ("7", "1", Some("a\tb")),
            ("7", "1", Some("caf\u{e9}")),
            ("7", "1", Some("a\u{7f}")),
        ] {
            assert_eq!(
                code(pid, fds, names),
                "ERR_PRIVSEP_ACTIVATION_MALFORMED",
                "{} {} {:?}",
                pid,
                fds,
                names
            );
        }
        assert_eq!(parse_names("web:a b~!").unwrap(), ["web", "a b~!"]);
        assert!(parse_names(&"x".repeat(MAX_NAME)).is_ok());
        assert!(parse_names(&"x".repeat(MAX_NAME + 1)).is_err());
    }

    /// Random valid names survive joining and parsing; random text is refused, or is names
    /// that join back to it.
    #[test]
    fn fuzz_names() {
        privsep_wire::fuzz::run("fdnames", |rng| {
            let names: Vec<String> = (0..rng.below(5))
                .map(|_| {
                    let name: String = (0..1 + rng.below(12))
                        .map(|_| (b' ' + rng.below(95) as u8) as char)
                        .collect();
                    name.replace(':', "c")
                })
                .collect();
            assert_eq!(parse_names(&names.join(":")).unwrap(), names);
            let text = String::from_utf8_lossy(&rng.mutate(names.join(":").as_bytes())).into_owned();
            match parse_names(&text) {
                Ok(parsed) => {
                    assert_eq!(parsed.join(":"), text);
                    // The grammar, as docs/PROTOCOL.md states it.
                    let valid = |n: &String| {
                        !n.is_empty() && n.len() <= 255 && n.bytes().all(|b| (32..127).contains(&b) && b != b':')
                    };
                    assert!(parsed.iter().all(valid), "{:?}", text);
                }
                Err(err) => assert_eq!(err.code(), "ERR_PRIVSEP_ACTIVATION_MALFORMED"),
            }
            let count = rng.text(3);
            if let Ok(found) = decode(Some("7"), Some(&count), Some(""), 7) {
                assert_eq!((count.as_str(), found), ("0", Some(vec![])));
            }
        });
    }
}
