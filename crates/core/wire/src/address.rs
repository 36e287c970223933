//! Addresses: the networks a listener may be declared on, the address grammar (`ip:port`,
//! `[ip6%scope]:port`, `:port`, a unix path), its one canonical form, and what a descriptor
//! is found to be. Pure parsing and writing, no system calls.

use crate::{Error, Result};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

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
    /// A unix socket path that is not UTF-8, as `getsockname` reported it. No declaration
    /// names one (declared paths are UTF-8), so it matches none: it is never compared lossily.
    RawPath(Vec<u8>),
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

/// A socket's protocol (`SO_PROTOCOL`), where the platform can tell: an MPTCP or SCTP socket
/// is a stream too, and UDP-Lite a datagram one, but none of them is what `tcp` or `udp` means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
    /// The family's only protocol (a unix socket's 0).
    Default,
    Other(i32),
}

/// Longest unix socket path that fits `sun_path` with its NUL on every Unix we build for.
const MAX_PATH: usize = 103;

impl Endpoint {
    /// Parses what `listen` takes (docs/PROTOCOL.md, "Addresses"): `ip4:port`,
    /// `[ip6]:port`, `[ip6%scope]:port` (a link-local address and its interface index),
    /// `:port` (all addresses) or, for unix, a path. Host names are refused: a privileged bind
    /// must not depend on DNS. A port is decimal without sign or leading zero.
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
        let ip = parse_ip(network, address).map_err(bad)?;
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

    /// Parses an address as the protocols carry it (the environment, the hand-off): only its
    /// canonical form, the one [`Endpoint`]'s `Display` writes, is accepted.
    pub fn parse_canonical(network: &str, address: &str) -> Result<Endpoint> {
        let endpoint = Endpoint::parse(network, address)?;
        if endpoint.to_string() != address {
            return Err(Error::invalid(
                "ERR_PRIVSEP_INVALID_ARGUMENT",
                format!(
                    "{} address {:?} is not in its canonical form {:?}",
                    network,
                    address,
                    endpoint.to_string()
                ),
            ));
        }
        Ok(endpoint)
    }

    /// `IPV6_V6ONLY` as the network implies: on for tcp6/udp6, off (dual stack) for tcp/udp.
    pub fn v6only(&self) -> Option<bool> {
        match (&self.address, self.network) {
            (Address::Ip(SocketAddr::V6(_)), Network::Tcp6 | Network::Udp6) => Some(true),
            (Address::Ip(SocketAddr::V6(_)), _) => Some(false),
            _ => None,
        }
    }
}

/// `ip:port`, `[ip6]:port` or `[ip6%scope]:port` with the IPv6 address as RFC 5952 writes it
/// (lower case, the longest run of two or more zero groups as `::`, the first of equal runs;
/// an IPv4-mapped address as `::ffff:a.b.c.d`), or the path. Written here rather than by
/// `std`, whose form changed between Rust versions.
impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.address.fmt(f)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Ip(SocketAddr::V4(v4)) => write!(f, "{}:{}", v4.ip(), v4.port()),
            Address::Ip(SocketAddr::V6(v6)) => {
                f.write_str("[")?;
                write_ipv6(f, v6.ip())?;
                if v6.scope_id() != 0 {
                    write!(f, "%{}", v6.scope_id())?;
                }
                write!(f, "]:{}", v6.port())
            }
            Address::Path(path) => f.write_str(path),
            Address::RawPath(bytes) => write!(f, "{:?}", String::from_utf8_lossy(bytes)),
        }
    }
}

fn write_ipv6(f: &mut fmt::Formatter<'_>, ip: &Ipv6Addr) -> fmt::Result {
    let groups = ip.segments();
    if groups[..5] == [0; 5] && groups[5] == 0xffff {
        let [a, b] = groups[6].to_be_bytes();
        let [c, d] = groups[7].to_be_bytes();
        return write!(f, "::ffff:{}.{}.{}.{}", a, b, c, d);
    }
    // The longest run of zero groups, if it has two or more: (start, length).
    let (mut best, mut run) = ((0, 0), (0, 0));
    for (i, &group) in groups.iter().enumerate() {
        if group == 0 {
            run = if run.1 == 0 { (i, 1) } else { (run.0, run.1 + 1) };
            if run.1 > best.1 {
                best = run;
            }
        } else {
            run = (0, 0);
        }
    }
    let hex = |f: &mut fmt::Formatter<'_>, part: &[u16]| -> fmt::Result {
        for (i, group) in part.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{:x}", group)?;
        }
        Ok(())
    };
    if best.1 < 2 {
        return hex(f, &groups);
    }
    hex(f, &groups[..best.0])?;
    f.write_str("::")?;
    hex(f, &groups[best.0 + best.1..])
}

/// `ip4:port`, `[ip6]:port`, `[ip6%scope]:port` or `:port`, strictly.
fn parse_ip(network: Network, address: &str) -> std::result::Result<SocketAddr, &'static str> {
    let syntax = "expected ip:port, [ipv6]:port or :port (host names are not resolved)";
    let (host, port) = address.rsplit_once(':').ok_or(syntax)?;
    let port: u16 = crate::protocol::decimal(port)
        .ok_or("the port must be a number from 0 to 65535, without sign or leading zero")?;
    if host.is_empty() {
        let any = match network {
            Network::Tcp4 | Network::Udp4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            _ => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        return Ok(SocketAddr::new(any, port));
    }
    let inner = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(inner) => inner,
        None => {
            return host
                .parse::<Ipv4Addr>()
                .map(|ip| SocketAddr::new(IpAddr::V4(ip), port))
                .map_err(|_| syntax)
        }
    };
    let (ip, scope) = match inner.split_once('%') {
        Some((ip, scope)) => (ip, Some(scope)),
        None => (inner, None),
    };
    let ip: Ipv6Addr = ip.parse().map_err(|_| syntax)?;
    let scope_id = match scope {
        None => 0,
        Some(scope) => {
            let link_local = ip.segments()[0] & 0xffc0 == 0xfe80;
            match crate::protocol::decimal::<u32>(scope) {
                Some(id) if id != 0 && link_local => id,
                _ => return Err(
                    "a scope id (%N) is a nonzero interface index, and only a link-local address (fe80::/10) has one",
                ),
            }
        }
    };
    Ok(SocketAddr::V6(SocketAddrV6::new(ip, port, 0, scope_id)))
}

/// Whether a socket bound to `bound` is one declared as `declared`: same address, scope id
/// included, and port (a declared port 0 matches any); or the same unix path, byte for byte.
pub fn same_address(bound: &Address, declared: &Address) -> bool {
    match (bound, declared) {
        (Address::Ip(SocketAddr::V4(a)), Address::Ip(SocketAddr::V4(b))) => {
            a.ip() == b.ip() && (b.port() == 0 || a.port() == b.port())
        }
        (Address::Ip(SocketAddr::V6(a)), Address::Ip(SocketAddr::V6(b))) => {
            a.ip() == b.ip() && a.scope_id() == b.scope_id() && (b.port() == 0 || a.port() == b.port())
        }
        (Address::Path(a), Address::Path(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(network: &str, address: &str) -> String {
        Endpoint::parse(network, address).unwrap().to_string()
    }

    #[test]
    fn addresses_are_written_in_one_canonical_form() {
        for (given, written) in [
            (":25", "[::]:25"),
            ("0.0.0.0:0", "0.0.0.0:0"),
            ("[0:0::1]:25", "[::1]:25"),
            ("[::FFFF:1.2.3.4]:1", "[::ffff:1.2.3.4]:1"),
            ("[::1.2.3.4]:1", "[::102:304]:1"),
            ("[::ffff]:1", "[::ffff]:1"),
            ("[1:0:0:2:0:0:0:3]:1", "[1:0:0:2::3]:1"),
            ("[1:0:0:2:0:0:3:4]:1", "[1::2:0:0:3:4]:1"),
            ("[1:2:3:4:5:6:7:0]:1", "[1:2:3:4:5:6:7:0]:1"),
            ("[0:1:2:3:4:5:6:7]:1", "[0:1:2:3:4:5:6:7]:1"),
            ("[FE80::A%7]:65535", "[fe80::a%7]:65535"),
        ] {
            assert_eq!(canonical("tcp", given), written, "{}", given);
            assert_eq!(canonical("tcp", written), written);
            Endpoint::parse_canonical("tcp", written).unwrap();
        }
        assert_eq!(canonical("udp4", ":53"), "0.0.0.0:53");
        assert!(Endpoint::parse_canonical("tcp", ":25").is_err());
    }

    /// What docs/PROTOCOL.md does not allow, some of it once accepted (issue 13).
    #[test]
    fn only_the_address_grammar_is_accepted() {
        for (network, address) in [
            ("tcp", ":+25"),
            ("tcp", "1.2.3.4:+25"),
            ("tcp", ":025"),
            ("tcp", "1.2.3.4:025"),
            ("tcp", "1.2.3.4:65536"),
            ("tcp", "1.2.3.4:"),
            ("tcp", "01.2.3.4:25"),
            ("tcp", "::1:25"),
            ("tcp", "[::1]25"),
            ("tcp", "localhost:25"),
            ("tcp6", "[::1%2]:25"),
            ("tcp6", "[fe80::1%0]:25"),
            ("tcp6", "[fe80::1%02]:25"),
            ("tcp6", "[fe80::1%eth0]:25"),
            ("tcp6", "[fe80::1%]:25"),
            ("tcp6", "[fe80::1%4294967296]:25"),
            ("tcp4", "[::1]:25"),
            ("udp6", "1.2.3.4:25"),
            ("unix", ""),
        ] {
            let err = Endpoint::parse(network, address).expect_err(address);
            assert_eq!(err.code(), "ERR_PRIVSEP_INVALID_ARGUMENT");
        }
        assert_eq!(canonical("tcp6", "[fe80::1%4294967295]:25"), "[fe80::1%4294967295]:25");
    }

    #[test]
    fn a_bound_address_matches_exactly_scope_and_path_bytes_included() {
        let ip = |text: &str| Endpoint::parse("tcp", text).unwrap().address;
        assert!(same_address(&ip("[fe80::1%2]:80"), &ip("[fe80::1%2]:0")));
        assert!(!same_address(&ip("[fe80::1%2]:80"), &ip("[fe80::1%3]:80")));
        assert!(!same_address(&ip("[fe80::1%2]:80"), &ip("[fe80::1]:80")));
        assert!(!same_address(&ip("[fe80::1]:80"), &ip("[fe80::1%2]:80")));
        assert!(!same_address(&ip("1.2.3.4:80"), &ip("1.2.3.4:81")));
        let lossy = Address::Path("/run/a\u{fffd}".into());
        assert!(!same_address(&Address::RawPath(b"/run/a\xff".to_vec()), &lossy));
        assert!(same_address(&lossy.clone(), &lossy));
    }

    /// Random addresses survive writing and parsing (and std reads the same address from the
    /// text); random edits are refused with the code, or parse to something whose canonical
    /// form parses back to it.
    #[test]
    fn fuzz_addresses() {
        crate::fuzz::run("addresses", |rng| {
            let endpoint = rng.endpoint();
            let network = endpoint.network.name();
            let text = endpoint.to_string();
            assert_eq!(Endpoint::parse_canonical(network, &text).unwrap(), endpoint, "{}", text);
            if let Address::Ip(ip) = endpoint.address {
                assert_eq!(text.parse::<SocketAddr>().unwrap(), ip, "{}", text);
            }
            let mutated = String::from_utf8_lossy(&rng.mutate(text.as_bytes())).into_owned();
            match Endpoint::parse(network, &mutated) {
                Ok(parsed) => {
                    let canonical = parsed.to_string();
                    assert_eq!(Endpoint::parse_canonical(network, &canonical).unwrap(), parsed);
                    if network != "unix" {
                        let port = mutated.rsplit(':').next().unwrap();
                        assert!(
                            port == "0" || !port.starts_with('0') && !port.starts_with('+'),
                            "{}",
                            mutated
                        );
                    }
                }
                Err(err) => assert_eq!(err.code(), "ERR_PRIVSEP_INVALID_ARGUMENT"),
            }
        });
    }
}
