//! Randomized loops for the parsers' tests (`cargo test`), deterministic for a seed: a
//! SplitMix64 generator (no dependency but std), `PRIVSEP_FUZZ_CASES` cases (10,000 unless
//! set; `npm run fuzz` sets 1,000,000) and the seed from `PRIVSEP_FUZZ_SEED` (else the clock),
//! printed with the failing case so that it can be run again.

use crate::address::{Address, Endpoint, Network};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

pub struct Rng(u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    pub fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = self.below(max + 1);
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
    /// Text that leans on what the grammars treat specially: separators, `%`, digits, hex in
    /// both cases, brackets, NUL, control characters and non-ASCII.
    pub fn text(&mut self, max: usize) -> String {
        const PIECES: &[&str] = &[
            "a", "Z", "0", "1", "9", "f", "F", "/", "%", ",", "=", ":", "[", "]", ".", "-", "_", "~", " ", "+", "\0",
            "\n", "\u{7f}", "é", "\u{fffd}", "日", "🦀", "%2C", "%2c", "::", "fe80", "%25",
        ];
        let len = self.below(max + 1);
        (0..len).map(|_| *self.pick(PIECES)).collect()
    }
    /// `text` without NUL, and not empty.
    pub fn path(&mut self) -> String {
        let mut path: String = self.text(12).replace('\0', "");
        if self.chance(2) {
            path.insert(0, '/');
        }
        if path.is_empty() {
            path.push('/');
        }
        path
    }
    pub fn endpoint(&mut self) -> Endpoint {
        let network = *self.pick(&[
            Network::Tcp,
            Network::Tcp4,
            Network::Tcp6,
            Network::Udp,
            Network::Udp4,
            Network::Udp6,
            Network::Unix,
        ]);
        let port = if self.chance(4) { 0 } else { self.next_u64() as u16 };
        let v4 = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(self.next_u64() as u32), port));
        let address = match network {
            Network::Unix => {
                let mut path = self.path();
                path.truncate(103);
                while path.is_empty() || !path.is_char_boundary(path.len()) {
                    path = "/s".into();
                }
                Address::Path(path)
            }
            Network::Tcp4 | Network::Udp4 => Address::Ip(v4),
            _ if self.chance(3) && !matches!(network, Network::Tcp6 | Network::Udp6) => Address::Ip(v4),
            _ => {
                // Zero groups often, so that runs of them (and their compression) are common.
                let mut groups = [0u16; 8];
                for g in groups.iter_mut() {
                    *g = if self.chance(2) { 0 } else { self.next_u64() as u16 };
                }
                if self.chance(8) {
                    groups[..5].copy_from_slice(&[0; 5]);
                    groups[5] = 0xffff;
                }
                let ip = Ipv6Addr::from(groups);
                let scope = if self.chance(4) {
                    groups[0] = 0xfe80 | (self.next_u64() as u16 & 0x3f);
                    (self.next_u64() as u32).max(1)
                } else {
                    0
                };
                let ip = if scope != 0 { Ipv6Addr::from(groups) } else { ip };
                Address::Ip(SocketAddr::V6(SocketAddrV6::new(ip, port, 0, scope)))
            }
        };
        Endpoint { network, address }
    }
    /// `input` with one to four random edits: a byte replaced, inserted or removed, or a piece
    /// of `text` spliced in.
    pub fn mutate(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out = input.to_vec();
        for _ in 0..1 + self.below(4) {
            let at = self.below(out.len() + 1);
            match self.below(4) {
                0 if at < out.len() => out[at] = self.next_u64() as u8,
                1 => out.insert(at, self.next_u64() as u8),
                2 if at < out.len() => {
                    out.remove(at);
                }
                _ => {
                    let piece = self.text(3);
                    out.splice(at..at, piece.bytes());
                }
            }
        }
        out
    }
}

/// Runs `case` for every case number with a generator seeded from the run's seed and that
/// number; a failing case names both.
pub fn run(name: &str, mut case: impl FnMut(&mut Rng)) {
    let cases: u64 = std::env::var("PRIVSEP_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let seed: u64 = std::env::var("PRIVSEP_FUZZ_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            now.map(|d| d.as_nanos() as u64).unwrap_or(1)
        });
    struct Report<'a>(&'a str, u64, u64);
    impl Drop for Report<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                eprintln!(
                    "fuzz {}: case {} failed; repeat with PRIVSEP_FUZZ_SEED={}",
                    self.0, self.2, self.1
                );
            }
        }
    }
    let mut report = Report(name, seed, 0);
    for i in 0..cases {
        report.2 = i;
        let mut rng = Rng(seed ^ i.wrapping_mul(0xd1b5_4a32_d192_ed03));
        case(&mut rng);
    }
    eprintln!("fuzz {}: {} cases, seed {}", name, cases, seed);
}
