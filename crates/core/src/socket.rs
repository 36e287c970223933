//! Listening sockets: parsing what the user declared, creating the socket in the root parent,
//! and checking in the child that an inherited descriptor is exactly what was declared (the
//! checks of systemd's `sd_is_socket_sockaddr`).

use crate::paths;
use crate::sys::{self, ENOTSOCK};
use crate::{Error, Result};
use std::ffi::CString;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    Tcp,
    Tcp4,
    Tcp6,
    Udp,
    Udp4,
    Udp6,
    Unix,
}

impl Network {
    pub fn parse(name: &str) -> Result<Network> {
        Ok(match name {
            "tcp" => Network::Tcp,
            "tcp4" => Network::Tcp4,
            "tcp6" => Network::Tcp6,
            "udp" => Network::Udp,
            "udp4" => Network::Udp4,
            "udp6" => Network::Udp6,
            "unix" => Network::Unix,
            _ => {
                return Err(Error::invalid(
                    "ERR_PRIVSEP_INVALID_ARGUMENT",
                    format!(
                        "unknown network {:?}: use tcp, tcp4, tcp6, udp, udp4, udp6 or unix",
                        name
                    ),
                ))
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Network::Tcp => "tcp",
            Network::Tcp4 => "tcp4",
            Network::Tcp6 => "tcp6",
            Network::Udp => "udp",
            Network::Udp4 => "udp4",
            Network::Udp6 => "udp6",
            Network::Unix => "unix",
        }
    }

    /// Stream sockets listen and accept; datagram sockets only bind.
    pub fn is_stream(self) -> bool {
        !matches!(self, Network::Udp | Network::Udp4 | Network::Udp6)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Ip(SocketAddr),
    Path(String),
}

/// A socket as declared by the user: network plus address, canonical once parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub network: Network,
    pub address: Address,
}

/// What `sys` reports about an inherited descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdKind {
    Socket,
    Regular,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketType {
    Stream,
    Datagram,
    SeqPacket,
    Other,
}

/// Longest unix socket path that fits `sun_path` with its NUL on every Unix we build for.
const MAX_PATH: usize = 103;

impl Endpoint {
    /// Parses `"ip:port"`, `"[ip6]:port"`, `":port"` (all addresses) or, for unix, a path.
    /// Host names are refused: a privileged bind must not depend on DNS.
    pub fn parse(network: &str, address: &str) -> Result<Endpoint> {
        let network = Network::parse(network)?;
        let bad = |why: &str| {
            Error::invalid(
                "ERR_PRIVSEP_INVALID_ARGUMENT",
                format!("invalid {} address {:?}: {}", network.name(), address, why),
            )
        };
        if network == Network::Unix {
            if address.is_empty() || address.len() > MAX_PATH || address.contains('\0') {
                return Err(bad("a unix socket path must be 1 to 103 bytes with no NUL"));
            }
            return Ok(Endpoint {
                network,
                address: Address::Path(address.to_string()),
            });
        }
        let ip = if let Some(port) = address.strip_prefix(':') {
            let any = match network {
                Network::Tcp4 | Network::Udp4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                _ => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            };
            let port = port
                .parse::<u16>()
                .map_err(|_| bad("the port must be a number from 0 to 65535"))?;
            SocketAddr::new(any, port)
        } else {
            address
                .parse::<SocketAddr>()
                .map_err(|_| bad("expected ip:port, [ipv6]:port or :port (host names are not resolved)"))?
        };
        let family_ok = match network {
            Network::Tcp4 | Network::Udp4 => ip.is_ipv4(),
            Network::Tcp6 | Network::Udp6 => ip.is_ipv6(),
            _ => true,
        };
        if !family_ok {
            return Err(bad("the address family does not match the network"));
        }
        Ok(Endpoint {
            network,
            address: Address::Ip(ip),
        })
    }

    /// `IPV6_V6ONLY` as the network implies: on for tcp6/udp6, off (dual stack) for tcp/udp.
    fn v6only(&self) -> Option<bool> {
        match (&self.address, self.network) {
            (Address::Ip(SocketAddr::V6(_)), Network::Tcp6 | Network::Udp6) => Some(true),
            (Address::Ip(SocketAddr::V6(_)), _) => Some(false),
            _ => None,
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.address {
            Address::Ip(ip) => write!(f, "{}", ip),
            Address::Path(path) => f.write_str(path),
        }
    }
}

/// Creates, binds and (for streams) listens; returns the descriptor, close-on-exec, which the
/// caller now owns. As root, every folder on a unix socket's path must be root's alone
/// (`paths::check_folders`). A unix socket file left by an earlier run (nobody accepts on it)
/// is replaced; anything else at the path is refused and kept. `mode` sets the socket file's
/// permissions (unix only).
pub fn listen(endpoint: &Endpoint, backlog: i32, mode: Option<u32>) -> Result<i32> {
    let what = || format!("{} {}", endpoint.network.name(), endpoint);
    if let Address::Path(path) = &endpoint.address {
        if sys::is_root() {
            let absolute = std::env::current_dir()
                .map_err(|e| Error::os("getcwd", e, "unix socket path"))?
                .join(path);
            paths::check_folders(&absolute.to_string_lossy())?;
        }
        remove_stale(path)?;
    }
    sys::listen_socket(
        &endpoint.address,
        endpoint.network.is_stream(),
        endpoint.v6only(),
        backlog,
        mode,
    )
    .map_err(|e| e.about(what()))
}

fn c_path(path: &str) -> Result<CString> {
    CString::new(path).map_err(|_| {
        Error::invalid(
            "ERR_PRIVSEP_INVALID_ARGUMENT",
            format!("unix socket path {:?} contains a NUL byte", path),
        )
    })
}

/// Removes the socket file at `path` if it is stale: a socket on which connect is refused.
fn remove_stale(path: &str) -> Result<()> {
    let c = c_path(path)?;
    match socket_file(path)? {
        Some(_) if !sys::accepts_connections(&Address::Path(path.to_string())).map_err(|e| e.about(path))? => {
            sys::unlink(&c).map_err(|e| e.about(format!("stale unix socket {}", path)))
        }
        _ => Ok(()),
    }
}

/// `(device, inode)` of the unix socket file at `path`; `None` when nothing is there; a
/// file of another type is refused with `ERR_PRIVSEP_SOCKET_PATH`.
pub fn socket_file(path: &str) -> Result<Option<(u64, u64)>> {
    sys::socket_file(&c_path(path)?).map_err(|e| {
        if e.err.raw_os_error() == Some(ENOTSOCK) {
            Error::invalid(
                "ERR_PRIVSEP_SOCKET_PATH",
                format!(
                    "unix {}: something that is not a socket is at this path; privsep replaces only stale sockets, so nothing was deleted: remove it or choose another path",
                    path
                ),
            )
        } else {
            e.about(format!("unix {}", path))
        }
    })
}

/// Removes the socket file at `path` if it is still the one identified by `file`.
pub fn remove_socket_file(path: &str, file: (u64, u64)) -> Result<()> {
    if socket_file(path)? == Some(file) {
        sys::unlink(&c_path(path)?).map_err(|e| e.about(format!("unix {}", path)))?;
    }
    Ok(())
}

/// Checks that inherited `fd` is the socket `endpoint` declares: a socket, of its type,
/// listening if a stream, of its family, bound to its address (a declared port 0 matches any).
/// Sets close-on-exec on success.
pub fn validate(fd: i32, endpoint: &Endpoint) -> Result<()> {
    let what = format!("fd {} (declared {} {})", fd, endpoint.network.name(), endpoint);
    let refuse = |code: &'static str, why: String| Error::invalid(code, format!("{}: {}", what, why));
    match sys::fd_kind(fd).map_err(|e| e.about(what.clone()))? {
        FdKind::Socket => {}
        _ => return Err(refuse("ERR_PRIVSEP_NOT_SOCKET", "is not a socket".into())),
    }
    let wanted = if endpoint.network.is_stream() {
        SocketType::Stream
    } else {
        SocketType::Datagram
    };
    let actual = sys::socket_type(fd).map_err(|e| e.about(what.clone()))?;
    if actual != wanted {
        return Err(refuse(
            "ERR_PRIVSEP_SOCKET_TYPE",
            format!("is a {:?} socket, not {:?}", actual, wanted),
        ));
    }
    if wanted == SocketType::Stream && !sys::is_listening(fd).map_err(|e| e.about(what.clone()))? {
        return Err(refuse("ERR_PRIVSEP_NOT_LISTENING", "is not listening".into()));
    }
    let bound = sys::local_address(fd).map_err(|e| e.about(what.clone()))?;
    let same_family = match (&bound, &endpoint.address) {
        (Some(Address::Ip(a)), Address::Ip(b)) => a.is_ipv4() == b.is_ipv4(),
        (Some(Address::Path(_)), Address::Path(_)) => true,
        _ => false,
    };
    if !same_family {
        return Err(refuse(
            "ERR_PRIVSEP_SOCKET_FAMILY",
            format!("has another address family ({:?})", bound),
        ));
    }
    let same_address = match (&bound, &endpoint.address) {
        (Some(Address::Ip(a)), Address::Ip(b)) => a.ip() == b.ip() && (b.port() == 0 || a.port() == b.port()),
        (Some(Address::Path(a)), Address::Path(b)) => a == b,
        _ => false,
    };
    if !same_address {
        let shown = match bound {
            Some(Address::Ip(a)) => a.to_string(),
            Some(Address::Path(p)) => p,
            None => String::new(),
        };
        return Err(refuse("ERR_PRIVSEP_SOCKET_ADDRESS", format!("is bound to {}", shown)));
    }
    sys::set_cloexec(fd).map_err(|e| e.about(what))
}

/// Checks that inherited `fd` is an open regular file and sets close-on-exec on it.
pub fn validate_file(fd: i32, path: &str) -> Result<()> {
    let what = format!("fd {} (declared file {:?})", fd, path);
    match sys::fd_kind(fd).map_err(|e| e.about(what.clone()))? {
        FdKind::Regular => sys::set_cloexec(fd).map_err(|e| e.about(what)),
        _ => Err(Error::invalid(
            "ERR_PRIVSEP_NOT_FILE",
            format!("{}: is not a regular file", what),
        )),
    }
}

/// Closes a descriptor this process owns.
pub fn close(fd: i32) -> Result<()> {
    sys::close(fd).map_err(|e| e.about(format!("fd {}", fd)))
}
