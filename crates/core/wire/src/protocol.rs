//! The environment protocol between the root parent and its unprivileged child
//! (docs/PROTOCOL.md):
//!
//! ```text
//! PRIVSEP_PID=4242                      the parent's pid; the child checks it is its parent
//! PRIVSEP_FDS=3                         how many descriptors were passed
//! PRIVSEP_FILES=3=tcp:0.0.0.0%3A25,4=unix:/run/a%2C%20b.sock,5=file:/etc/app/key.pem
//! ```
//!
//! Each entry is `fd=kind:value`, the value percent-encoded so that any address or path
//! (commas, colons, spaces, non-ASCII) survives. Kinds are the socket networks and `file`.

use crate::address::Endpoint;
use crate::{Error, Result};

pub const PID: &str = "PRIVSEP_PID";
pub const FDS: &str = "PRIVSEP_FDS";
pub const FILES: &str = "PRIVSEP_FILES";

/// One passed descriptor: a socket the parent listens on, or a file it opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Passed {
    Socket(Endpoint),
    File(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub fd: i32,
    pub passed: Passed,
}

impl Passed {
    /// `kind` is a network name or `file`; `value` the address or path as the user wrote it
    /// (any form `listen` takes).
    pub fn parse(kind: &str, value: &str) -> Result<Passed> {
        if kind == "file" {
            if value.is_empty() || value.contains('\0') {
                return Err(Error::invalid(
                    "ERR_PRIVSEP_INVALID_ARGUMENT",
                    format!("invalid file path {:?}", value),
                ));
            }
            return Ok(Passed::File(value.to_string()));
        }
        Endpoint::parse(kind, value).map(Passed::Socket)
    }

    /// As [`Passed::parse`], for a value a protocol carries (the environment, the hand-off):
    /// an address only in its canonical form.
    pub fn parse_canonical(kind: &str, value: &str) -> Result<Passed> {
        match Passed::parse(kind, value)? {
            Passed::Socket(_) => Endpoint::parse_canonical(kind, value).map(Passed::Socket),
            file => Ok(file),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Passed::Socket(endpoint) => endpoint.network.name(),
            Passed::File(_) => "file",
        }
    }

    pub fn value(&self) -> String {
        match self {
            Passed::Socket(endpoint) => endpoint.to_string(),
            Passed::File(path) => path.clone(),
        }
    }
}

/// The three variables for `entries`, passed by the parent `pid`.
pub fn encode(pid: u32, entries: &[Entry]) -> [(&'static str, String); 3] {
    let files: Vec<String> = entries
        .iter()
        .map(|e| format!("{}={}:{}", e.fd, e.passed.kind(), percent_encode(&e.passed.value())))
        .collect();
    [
        (PID, pid.to_string()),
        (FDS, entries.len().to_string()),
        (FILES, files.join(",")),
    ]
}

/// Parses the variables as found in the environment. `Ok(None)` when none is set (not a
/// child of privsep). Checks the parent pid against `ppid`, the count, and duplicates; does
/// not touch the descriptors: see [`restore`].
#[cfg(any(test, feature = "node"))]
pub fn decode(pid: Option<&str>, fds: Option<&str>, files: Option<&str>, ppid: u32) -> Result<Option<Vec<Entry>>> {
    let (pid, fds, files) = match (pid, fds, files) {
        (None, None, None) => return Ok(None),
        (Some(pid), Some(fds), Some(files)) => (pid, fds, files),
        _ => {
            return Err(malformed(format!(
                "{}, {} and {} must be set together",
                PID, FDS, FILES
            )))
        }
    };
    let pid: u32 = number(PID, pid)?;
    if pid != ppid {
        return Err(Error::invalid(
            "ERR_PRIVSEP_PARENT_MISMATCH",
            format!(
                "{}={} but the parent process is {}: the variables were not set by this process's parent",
                PID, pid, ppid
            ),
        ));
    }
    let count: usize = number(FDS, fds)?;
    // No entry is empty: `""` lists nothing, and `,` only separates entries.
    let mut entries = Vec::new();
    if !files.is_empty() {
        for item in files.split(',') {
            entries.push(parse_entry(item)?);
        }
    }
    if entries.len() != count {
        return Err(malformed(format!(
            "{}={} but {} lists {} descriptors",
            FDS,
            count,
            FILES,
            entries.len()
        )));
    }
    let mut fds_seen = std::collections::HashSet::new();
    let mut sockets_seen = std::collections::HashSet::new();
    for entry in &entries {
        let duplicate = !fds_seen.insert(entry.fd)
            || matches!(&entry.passed, Passed::Socket(_) if !sockets_seen.insert((entry.passed.kind(), entry.passed.value())));
        if duplicate {
            return Err(Error::invalid(
                "ERR_PRIVSEP_ENV_DUPLICATE",
                format!(
                    "{} names fd {} or {} {} twice",
                    FILES,
                    entry.fd,
                    entry.passed.kind(),
                    entry.passed.value()
                ),
            ));
        }
    }
    Ok(Some(entries))
}

#[cfg(any(test, feature = "node"))]
fn parse_entry(item: &str) -> Result<Entry> {
    let bad = || malformed(format!("entry {:?} in {} is not fd=kind:value", item, FILES));
    let (fd, rest) = item.split_once('=').ok_or_else(bad)?;
    let (kind, value) = rest.split_once(':').ok_or_else(bad)?;
    let fd: i32 = number(FILES, fd)?;
    if fd < 3 {
        return Err(malformed(format!(
            "{} names fd {}: passed descriptors start at 3",
            FILES, fd
        )));
    }
    let value = percent_decode(value).ok_or_else(bad)?;
    let passed =
        Passed::parse_canonical(kind, &value).map_err(|e| malformed(format!("{} entry {:?}: {}", FILES, item, e)))?;
    Ok(Entry { fd, passed })
}

#[cfg(any(test, feature = "node"))]
fn number<T: std::str::FromStr>(name: &str, text: &str) -> Result<T> {
    decimal(text).ok_or_else(|| malformed(format!("{} has {:?} where a number belongs", name, text)))
}

/// A number as every protocol writes one: ASCII digits, no sign, no leading zero (`0` itself
/// excepted), and in range for `T`.
pub fn decimal<T: std::str::FromStr>(text: &str) -> Option<T> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if digits && (text == "0" || !text.starts_with('0')) {
        text.parse().ok()
    } else {
        None
    }
}

#[cfg(any(test, feature = "node"))]
fn malformed(message: String) -> Error {
    Error::invalid("ERR_PRIVSEP_ENV_MALFORMED", message)
}

/// Keeps `A-Z a-z 0-9 - . _ ~ / [ ]`; everything else becomes `%XX` of its UTF-8 bytes.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/[]".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{:02X}", byte));
        }
    }
    out
}

/// The inverse of [`percent_encode`], and only of it: `None` unless `text` is exactly what
/// `percent_encode` writes for some UTF-8 text (an escape is `%` and two upper-case hex
/// digits; a byte that is kept is never escaped, and one that is escaped never appears raw).
#[cfg(any(test, feature = "node"))]
pub fn percent_decode(text: &str) -> Option<String> {
    let hex = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let high = hex(*bytes.get(i + 1)?)?;
            let low = hex(*bytes.get(i + 2)?)?;
            out.push(high << 4 | low);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let decoded = String::from_utf8(out).ok()?;
    if percent_encode(&decoded) == text {
        Some(decoded)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(fd: i32, kind: &str, value: &str) -> Entry {
        Entry {
            fd,
            passed: Passed::parse(kind, value).unwrap(),
        }
    }

    #[test]
    fn round_trip_survives_separators_and_non_ascii() {
        let entries = vec![
            entry(3, "tcp", "[::]:25"),
            entry(4, "unix", "/run/a, b:c=d%.sock"),
            entry(5, "file", "/etc/clé pem,x"),
        ];
        let [pid, fds, files] = encode(77, &entries);
        let decoded = decode(Some(&pid.1), Some(&fds.1), Some(&files.1), 77).unwrap().unwrap();
        assert_eq!(decoded, entries);
    }

    #[test]
    fn absent_variables_mean_not_a_child() {
        assert_eq!(decode(None, None, None, 1).unwrap(), None);
    }

    fn code(pid: Option<&str>, fds: Option<&str>, files: Option<&str>) -> &'static str {
        decode(pid, fds, files, 9).unwrap_err().code()
    }

    /// `[::]:25`, percent-encoded as the protocol carries it (`[` and `]` stay).
    const ANY25: &str = "[%3A%3A]%3A25";

    #[test]
    fn malformed_variables_are_refused_with_codes() {
        let any = |files: &str| files.replace("ANY", ANY25);
        assert_eq!(code(Some("9"), None, Some("")), "ERR_PRIVSEP_ENV_MALFORMED");
        assert_eq!(code(Some("x"), Some("0"), Some("")), "ERR_PRIVSEP_ENV_MALFORMED");
        for (fds, files) in [
            ("1", "a=tcp:ANY"),
            ("2", "3=tcp:ANY"),
            ("1", "2=tcp:ANY"),
            ("1", "3=sctp:ANY"),
            ("1", "3=file:%zz"),
        ] {
            assert_eq!(
                code(Some("9"), Some(fds), Some(&any(files))),
                "ERR_PRIVSEP_ENV_MALFORMED",
                "{}",
                files
            );
        }
        assert_eq!(
            code(Some("9"), Some("2"), Some(&any("3=tcp:ANY,3=file:/k"))),
            "ERR_PRIVSEP_ENV_DUPLICATE"
        );
        assert_eq!(
            code(Some("9"), Some("2"), Some(&any("3=tcp:ANY,4=tcp:ANY"))),
            "ERR_PRIVSEP_ENV_DUPLICATE"
        );
        assert_eq!(code(Some("8"), Some("0"), Some("")), "ERR_PRIVSEP_PARENT_MISMATCH");
    }

    /// What docs/PROTOCOL.md does not allow, each once accepted (issue 13).
    #[test]
    fn only_the_grammar_is_accepted() {
        let refused = |pid: &str, fds: &str, files: &str| {
            let err = decode(Some(pid), Some(fds), Some(files), 9).expect_err(files);
            assert_eq!(
                err.code(),
                "ERR_PRIVSEP_ENV_MALFORMED",
                "{} {} {}: {}",
                pid,
                fds,
                files,
                err
            );
        };
        refused("9", "1", "3=file:/a%+1"); // a sign where a hex digit belongs
        refused("9", "1", "3=file:/a%2c"); // lower-case hex
        refused("9", "1", "3=file:/%41"); // an escape of a byte that is kept
        refused("9", "1", "3=file:%2Fk");
        refused("9", "1", "3=file:/a b"); // a byte that must be escaped, raw
        refused("9", "1", "3=file:/a%C3"); // an escape that is not UTF-8
        refused("09", "1", "3=file:/k"); // leading zeros
        refused("9", "01", "3=file:/k");
        refused("9", "1", "03=file:/k");
        refused("9", "1", "+3=file:/k");
        refused("9", "1", "3=file:/k,"); // empty entries
        refused("9", "1", ",3=file:/k");
        refused("9", "0", ",");
        refused("9", "1", "3=tcp:%3A25"); // an address that is not canonical
        refused("9", "1", "3=tcp:0.0.0.0%3A025");
        refused("9", "1", "3=tcp:0.0.0.0%3A%2B25");
        refused("9", "1", "3=tcp6:[%3A%3AA]%3A25");
        refused("9", "1", "3=tcp6:[0%3A%3A]%3A25");
        refused("9", "1", "3=tcp6:%5B%3A%3A1%5D%3A25"); // `[` escaped
        refused("9", "1", "3=tcp6:[%3A%3A1%255]%3A25"); // a scope id off link-local
        refused("9", "1", "3=tcp6:[fe80%3A%3A1%250]%3A25");
        refused("9", "1", "3=unix:"); // an empty path
        let link_local = "3=tcp6:[fe80%3A%3A1%252]%3A25";
        let entries = decode(Some("9"), Some("1"), Some(link_local), 9).unwrap().unwrap();
        assert_eq!(entries[0].passed.value(), "[fe80::1%2]:25");
        assert_eq!(decode(Some("9"), Some("0"), Some(""), 9).unwrap(), Some(vec![]));
    }

    #[test]
    fn percent_decoding_inverts_encoding_only() {
        assert_eq!(percent_decode("%2C%20%C3%A9").as_deref(), Some(", é"));
        for bad in ["%", "%2", "%2G", "%+1", "%-1", "%2c", "%41", "a,b", "é", "%FF"] {
            assert_eq!(percent_decode(bad), None, "{}", bad);
        }
    }

    #[test]
    fn the_same_file_may_be_passed_twice() {
        let files = "3=file:/k,4=file:/k";
        assert_eq!(decode(Some("9"), Some("2"), Some(files), 9).unwrap().unwrap().len(), 2);
    }

    /// Random entries survive encoding; random edits of an encoding are refused with the
    /// protocol's codes unless they are the encoding of what they decode to.
    #[test]
    fn fuzz_the_variables() {
        crate::fuzz::run("protocol", |rng| {
            let entries: Vec<Entry> = (0..rng.below(5))
                .map(|i| Entry {
                    fd: 3 + i as i32,
                    passed: if rng.chance(2) {
                        Passed::File(rng.path())
                    } else {
                        Passed::Socket(rng.endpoint())
                    },
                })
                .collect();
            let pid = (rng.next_u64() as u32).max(1);
            let [p, n, files] = encode(pid, &entries);
            match decode(Some(&p.1), Some(&n.1), Some(&files.1), pid) {
                Ok(decoded) => assert_eq!(decoded.unwrap(), entries, "{}", files.1),
                Err(err) => assert_eq!(err.code(), "ERR_PRIVSEP_ENV_DUPLICATE", "{}: {}", files.1, err),
            }
            let mutated = String::from_utf8_lossy(&rng.mutate(files.1.as_bytes())).into_owned();
            let count = if rng.chance(2) { n.1.clone() } else { rng.text(3) };
            match decode(Some(&p.1), Some(&count), Some(&mutated), pid) {
                Ok(decoded) => {
                    let decoded = decoded.unwrap();
                    assert_eq!(encode(pid, &decoded)[2].1, mutated);
                    assert_eq!(decoded.len().to_string(), count);
                }
                Err(err) => assert!(
                    matches!(err.code(), "ERR_PRIVSEP_ENV_MALFORMED" | "ERR_PRIVSEP_ENV_DUPLICATE"),
                    "{} {:?}: {}",
                    count,
                    mutated,
                    err
                ),
            }
            let text = rng.text(4);
            if let Ok(decoded) = decode(Some(&text), Some("0"), Some(""), 7) {
                assert_eq!((text.as_str(), decoded), ("7", Some(vec![])));
            }
        });
    }
}
