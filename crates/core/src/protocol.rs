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

use crate::socket::{self, Endpoint};
use crate::{Error, Result};
use std::collections::HashSet;

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
    /// `kind` is a network name or `file`; `value` the address or path as the user wrote it.
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
    let mut entries = Vec::new();
    for item in files.split(',').filter(|item| !item.is_empty()) {
        entries.push(parse_entry(item)?);
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
    let mut fds_seen = HashSet::new();
    let mut sockets_seen = HashSet::new();
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

/// Validates every decoded descriptor (see [`socket::validate`]) and sets close-on-exec.
pub fn restore(entries: &[Entry]) -> Result<()> {
    for entry in entries {
        match &entry.passed {
            Passed::Socket(endpoint) => socket::validate(entry.fd, endpoint)?,
            Passed::File(path) => socket::validate_file(entry.fd, path)?,
        }
    }
    Ok(())
}

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
    let passed = Passed::parse(kind, &value).map_err(|e| malformed(format!("{} entry {:?}: {}", FILES, item, e)))?;
    Ok(Entry { fd, passed })
}

fn number<T: std::str::FromStr>(name: &str, text: &str) -> Result<T> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    let parsed = if digits { text.parse().ok() } else { None };
    parsed.ok_or_else(|| malformed(format!("{} has {:?} where a number belongs", name, text)))
}

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

/// The inverse of [`percent_encode`]; `None` for a bad escape or bytes that are not UTF-8.
pub fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
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

    #[test]
    fn malformed_variables_are_refused_with_codes() {
        assert_eq!(code(Some("9"), None, Some("")), "ERR_PRIVSEP_ENV_MALFORMED");
        assert_eq!(code(Some("x"), Some("0"), Some("")), "ERR_PRIVSEP_ENV_MALFORMED");
        assert_eq!(
            code(Some("9"), Some("1"), Some("a=tcp:%3A25")),
            "ERR_PRIVSEP_ENV_MALFORMED"
        );
        assert_eq!(
            code(Some("9"), Some("2"), Some("3=tcp:%3A25")),
            "ERR_PRIVSEP_ENV_MALFORMED"
        );
        assert_eq!(
            code(Some("9"), Some("1"), Some("2=tcp:%3A25")),
            "ERR_PRIVSEP_ENV_MALFORMED"
        );
        assert_eq!(
            code(Some("9"), Some("1"), Some("3=sctp:%3A25")),
            "ERR_PRIVSEP_ENV_MALFORMED"
        );
        assert_eq!(
            code(Some("9"), Some("1"), Some("3=file:%zz")),
            "ERR_PRIVSEP_ENV_MALFORMED"
        );
        assert_eq!(
            code(Some("9"), Some("2"), Some("3=tcp:%3A25,3=file:/k")),
            "ERR_PRIVSEP_ENV_DUPLICATE"
        );
        assert_eq!(
            code(Some("9"), Some("2"), Some("3=tcp:%3A25,4=tcp:%5B%3A%3A%5D%3A25")),
            "ERR_PRIVSEP_ENV_DUPLICATE"
        );
        assert_eq!(code(Some("8"), Some("0"), Some("")), "ERR_PRIVSEP_PARENT_MISMATCH");
    }

    #[test]
    fn the_same_file_may_be_passed_twice() {
        let files = "3=file:/k,4=file:/k";
        assert_eq!(decode(Some("9"), Some("2"), Some(files), 9).unwrap().unwrap().len(), 2);
    }
}
