//! The hand-off: what the root Node process tells `privsep-monitor` about the child to start
//! (docs/PROTOCOL.md, "The hand-off"), and what the monitor reports back. One encoder and one
//! strict decoder for each; the monitor trusts nothing it has not decoded here.
//!
//! A description is binary, little-endian: the magic `PSH2` (the version is its last byte),
//! then the fields of [`Handoff`] in order. A string is a `u32` byte length and UTF-8 without
//! NUL; a list is a `u32` count and its items. Nothing may follow the last field.

use crate::protocol::{Entry, Passed};
use crate::sandbox::Sandbox;
use crate::{Error, Result};

pub const MAGIC: &[u8; 4] = b"PSH2";

/// The credentials the child runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups, exactly as the child will have them.
    pub groups: Vec<u32>,
}

/// Largest description accepted: execve takes no more than a few MiB of argv and env either.
pub const MAX_SIZE: usize = 4 << 20;
/// Most items in one list (argv, env, groups, signals, passed).
pub const MAX_ITEMS: u32 = 1 << 16;
/// `umask` value meaning "keep the monitor's".
pub const KEEP_UMASK: u32 = u32::MAX;

/// The program the monitor starts, each generation, and as whom: what `spawn::start` takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Child {
    pub program: String,
    /// The whole argv, `argv[0]` included: at least one entry.
    pub argv: Vec<String>,
    /// `NAME=value` strings, as the child gets them (the start adds the protocol variables).
    pub env: Vec<String>,
    /// The user's name, for messages; `ids` are what the child runs as (never uid or gid 0).
    pub user: String,
    pub ids: Ids,
    /// A umask in 0..=0o777, or [`KEEP_UMASK`].
    pub umask: u32,
    /// The absolute path of the folder the child starts in (entered as the user).
    pub cwd: String,
    /// The kernel sandbox every generation starts in (`sandbox.rs`).
    pub sandbox: Sandbox,
}

/// The child the monitor starts, and how the monitor behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handoff {
    pub child: Child,
    /// Signals the monitor passes on to the child.
    pub signals: Vec<i32>,
    /// Where the monitor reports whether the child started (-1: nowhere; print and exit).
    pub report_fd: i32,
    /// Nonzero: the monitor dies with this parent (an embedding Node process).
    pub parent_pid: u32,
    /// The monitor's descriptors to pass, in order: the child gets them at 3, 4, ...
    pub passed: Vec<Entry>,
    /// What the child may ask the broker for beyond `passed`: files and listeners.
    pub allow: Vec<Passed>,
    /// Folders below which the child may ask for any file.
    pub allow_folders: Vec<String>,
    /// Where systemd listens for notifications (`NOTIFY_SOCKET`), or empty.
    pub notify_socket: String,
    /// The signal that starts an upgrade (not forwarded), 0 for none.
    pub upgrade_signal: i32,
    /// How long a new generation has to call ready() before it is killed, in ms.
    pub ready_timeout_ms: u32,
}

#[cfg(any(test, feature = "node"))]
pub fn encode(handoff: &Handoff) -> Vec<u8> {
    let child = &handoff.child;
    let mut out = Writer(MAGIC.to_vec());
    out.string(&child.program);
    out.strings(&child.argv);
    out.strings(&child.env);
    out.string(&child.user);
    out.u32(child.ids.uid);
    out.u32(child.ids.gid);
    out.u32(child.ids.groups.len() as u32);
    for &group in &child.ids.groups {
        out.u32(group);
    }
    out.u32(child.umask);
    out.u32(handoff.signals.len() as u32);
    for &signal in &handoff.signals {
        out.u32(signal as u32);
    }
    out.u32(handoff.report_fd as u32);
    out.u32(handoff.parent_pid);
    out.u32(handoff.passed.len() as u32);
    for entry in &handoff.passed {
        out.u32(entry.fd as u32);
        out.string(entry.passed.kind());
        out.string(&entry.passed.value());
    }
    out.u32((handoff.allow.len() + handoff.allow_folders.len()) as u32);
    for allowed in &handoff.allow {
        out.string(allowed.kind());
        out.string(&allowed.value());
    }
    for folder in &handoff.allow_folders {
        out.string("folder");
        out.string(folder);
    }
    out.string(&handoff.notify_socket);
    out.u32(handoff.upgrade_signal as u32);
    out.u32(handoff.ready_timeout_ms);
    out.string(&child.cwd);
    let sandbox = &child.sandbox;
    out.u32(sandbox.flags);
    out.strings(&sandbox.read);
    out.strings(&sandbox.execute);
    out.strings(&sandbox.write);
    out.u32(sandbox.connect.len() as u32);
    for &port in &sandbox.connect {
        out.u32(port as u32);
    }
    out.0
}

/// Decodes and checks a description: every rule of docs/PROTOCOL.md, or
/// `ERR_PRIVSEP_HANDOFF_MALFORMED` naming the first one broken.
pub fn decode(bytes: &[u8]) -> Result<Handoff> {
    if bytes.len() > MAX_SIZE {
        return Err(malformed(format!("{} bytes, more than {}", bytes.len(), MAX_SIZE)));
    }
    let mut r = Reader { bytes, at: 0 };
    if r.take(4)? != MAGIC {
        return Err(malformed(
            "no PSH2 magic: not a privsep hand-off, or another version".into(),
        ));
    }
    let program = r.string("program")?;
    let argv = r.strings("argv")?;
    let env = r.strings("env")?;
    let user = r.string("user")?;
    let uid = r.u32()?;
    let gid = r.u32()?;
    let groups = r.list(|r| r.u32())?;
    let umask = r.u32()?;
    let signals = r.list(|r| r.u32().map(|s| s as i32))?;
    let report_fd = r.u32()? as i32;
    let parent_pid = r.u32()?;
    let passed = r.list(|r| {
        let fd = r.u32()? as i32;
        let kind = r.string("passed kind")?;
        let value = r.string("passed value")?;
        let passed = Passed::parse_canonical(&kind, &value).map_err(|e| malformed(format!("passed entry: {}", e)))?;
        Ok(Entry { fd, passed })
    })?;
    let mut allow = Vec::new();
    let mut allow_folders = Vec::new();
    for (kind, value) in r.list(|r| Ok((r.string("allow kind")?, r.string("allow value")?)))? {
        if kind == "folder" {
            if !value.starts_with('/') {
                return Err(malformed(format!("allowed folder {:?} is not absolute", value)));
            }
            allow_folders.push(value);
        } else {
            let allowed =
                Passed::parse_canonical(&kind, &value).map_err(|e| malformed(format!("allow entry: {}", e)))?;
            if matches!(&allowed, Passed::File(path) if !path.starts_with('/')) {
                return Err(malformed(format!("allowed file {:?} is not absolute", value)));
            }
            allow.push(allowed);
        }
    }
    let notify_socket = r.string("notify socket")?;
    let upgrade_signal = r.u32()? as i32;
    let ready_timeout_ms = r.u32()?;
    let cwd = r.string("cwd")?;
    let sandbox = Sandbox {
        flags: r.u32()?,
        read: r.strings("sandbox read")?,
        execute: r.strings("sandbox execute")?,
        write: r.strings("sandbox write")?,
        connect: r.list(|r| match r.u32()? {
            port @ 0..=65535 => Ok(port as u16),
            port => Err(malformed(format!("sandbox connect port {}", port))),
        })?,
    };
    if let Some(why) = sandbox.invalid() {
        return Err(malformed(why));
    }
    if r.at != bytes.len() {
        return Err(malformed(format!("{} bytes after the last field", bytes.len() - r.at)));
    }
    if program.is_empty() || argv.is_empty() {
        return Err(malformed("no program or an empty argv".into()));
    }
    if !cwd.starts_with('/') {
        return Err(malformed(format!("cwd {:?} is not absolute", cwd)));
    }
    if uid == 0 || gid == 0 {
        return Err(malformed(format!(
            "uid {} gid {}: the child never runs as root",
            uid, gid
        )));
    }
    if umask != KEEP_UMASK && umask > 0o777 {
        return Err(malformed(format!("umask {:o} is not in 0..0777", umask)));
    }
    if !(0..=64).contains(&upgrade_signal) || (upgrade_signal != 0 && signals.contains(&upgrade_signal)) {
        return Err(malformed(format!(
            "upgrade signal {} is not a signal, or it is also forwarded",
            upgrade_signal
        )));
    }
    if let Some(s) = signals.iter().find(|&&s| !(1..=64).contains(&s)) {
        return Err(malformed(format!("signal {} cannot be forwarded", s)));
    }
    for (i, entry) in passed.iter().enumerate() {
        if entry.fd < 3 || entry.fd == report_fd || passed[..i].iter().any(|e| e.fd == entry.fd) {
            return Err(malformed(format!(
                "passed fd {} is below 3, the report fd, or twice",
                entry.fd
            )));
        }
    }
    if report_fd != -1 && report_fd < 3 {
        return Err(malformed(format!("report fd {}", report_fd)));
    }
    Ok(Handoff {
        child: Child {
            program,
            argv,
            env,
            user,
            ids: Ids { uid, gid, groups },
            umask,
            cwd,
            sandbox,
        },
        signals,
        report_fd,
        parent_pid,
        passed,
        allow,
        allow_folders,
        notify_socket,
        upgrade_signal,
        ready_timeout_ms,
    })
}

/// What the monitor reports once: the child's pid, or why it could not start it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    Started(u32),
    Failed {
        code: String,
        errno: i32,
        syscall: String,
        message: String,
    },
}

/// Largest report: a failure's message is cut to fit.
pub const MAX_REPORT: usize = 4096;

/// `ok\0<pid>` or `err\0<code>\0<errno>\0<syscall>\0<message>`.
pub fn encode_report(report: &Report) -> Vec<u8> {
    let text = match report {
        Report::Started(pid) => format!("ok\0{}", pid),
        Report::Failed {
            code,
            errno,
            syscall,
            message,
        } => {
            format!("err\0{}\0{}\0{}\0{}", code, errno, syscall, message.replace('\0', " "))
        }
    };
    let mut bytes = text.into_bytes();
    bytes.truncate(MAX_REPORT);
    bytes
}

/// The report as `Report`, or `None` for anything but the two shapes above.
#[cfg(any(test, feature = "node"))]
pub fn decode_report(bytes: &[u8]) -> Option<Report> {
    let text = std::str::from_utf8(bytes).ok()?;
    let fields: Vec<&str> = text.split('\0').collect();
    match fields.as_slice() {
        ["ok", pid] => pid.parse().ok().map(Report::Started),
        ["err", code, errno, syscall, message] => Some(Report::Failed {
            code: code.to_string(),
            errno: errno.parse().ok()?,
            syscall: syscall.to_string(),
            message: message.to_string(),
        }),
        _ => None,
    }
}

impl Report {
    /// The report of a failure to start the child.
    pub fn failed(err: &Error) -> Report {
        let (errno, syscall) = match err {
            Error::Os { errno, syscall, .. } => (*errno, *syscall),
            _ => (0, ""),
        };
        Report::Failed {
            code: err.code().to_string(),
            errno,
            syscall: syscall.to_string(),
            message: err.to_string(),
        }
    }
}

fn malformed(message: String) -> Error {
    Error::invalid(
        "ERR_PRIVSEP_HANDOFF_MALFORMED",
        format!("hand-off description: {}", message),
    )
}

#[cfg(any(test, feature = "node"))]
struct Writer(Vec<u8>);

#[cfg(any(test, feature = "node"))]
impl Writer {
    fn u32(&mut self, value: u32) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }
    fn string(&mut self, text: &str) {
        self.u32(text.len() as u32);
        self.0.extend_from_slice(text.as_bytes());
    }
    fn strings(&mut self, list: &[String]) {
        self.u32(list.len() as u32);
        for text in list {
            self.string(text);
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.bytes.len() - self.at < n {
            return Err(malformed(format!("truncated at byte {}", self.at)));
        }
        self.at += n;
        Ok(&self.bytes[self.at - n..self.at])
    }
    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn string(&mut self, what: &str) -> Result<String> {
        let len = self.u32()? as usize;
        let bytes = self.take(len)?;
        match std::str::from_utf8(bytes) {
            Ok(text) if !text.contains('\0') => Ok(text.to_string()),
            _ => Err(malformed(format!("{} is not UTF-8 without NUL", what))),
        }
    }
    fn list<T>(&mut self, mut item: impl FnMut(&mut Self) -> Result<T>) -> Result<Vec<T>> {
        let count = self.u32()?;
        if count > MAX_ITEMS {
            return Err(malformed(format!("a list of {} items", count)));
        }
        (0..count).map(|_| item(self)).collect()
    }
    fn strings(&mut self, what: &str) -> Result<Vec<String>> {
        self.list(|r| r.string(what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Handoff {
        Handoff {
            child: Child {
                program: "/usr/bin/node".into(),
                argv: vec!["node".into(), "/srv/app.mjs".into(), "clé, x".into()],
                env: vec!["HOME=/".into(), "A=b=c".into()],
                user: "nobody".into(),
                ids: Ids {
                    uid: 65534,
                    gid: 65534,
                    groups: vec![65534, 7],
                },
                umask: 0o027,
                cwd: "/srv/app".into(),
                sandbox: Sandbox {
                    flags: crate::sandbox::ON | crate::sandbox::CONNECT_LISTED,
                    read: vec!["/srv/app".into(), "/etc/ssl".into()],
                    execute: vec!["/usr/bin/node".into()],
                    write: vec!["/var/lib/app".into()],
                    connect: vec![443, 5432],
                },
            },
            signals: vec![2, 15, 1],
            report_fd: 3,
            parent_pid: 42,
            passed: vec![
                Entry {
                    fd: 5,
                    passed: Passed::parse("tcp", "[::]:25").unwrap(),
                },
                Entry {
                    fd: 6,
                    passed: Passed::parse("file", "/etc/k, y.pem").unwrap(),
                },
            ],
            allow: vec![
                Passed::parse("udp6", "[::1]:53").unwrap(),
                Passed::parse("file", "/etc/a.pem").unwrap(),
            ],
            allow_folders: vec!["/etc/letsencrypt/live/".into()],
            notify_socket: "/run/systemd/notify".into(),
            upgrade_signal: 12,
            ready_timeout_ms: 30_000,
        }
    }

    #[test]
    fn a_description_survives_encoding() {
        assert_eq!(decode(&encode(&sample())).unwrap(), sample());
    }

    fn refused(bytes: &[u8]) -> String {
        let err = decode(bytes).unwrap_err();
        assert_eq!(err.code(), "ERR_PRIVSEP_HANDOFF_MALFORMED");
        err.to_string()
    }

    #[test]
    fn every_truncation_and_any_trailing_byte_is_refused() {
        let bytes = encode(&sample());
        for len in 0..bytes.len() {
            refused(&bytes[..len]);
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(refused(&longer).contains("after the last field"));
    }

    #[test]
    fn hostile_fields_are_refused() {
        let with = |change: fn(&mut Handoff)| {
            let mut h = sample();
            change(&mut h);
            refused(&encode(&h))
        };
        assert!(with(|h| h.child.ids.uid = 0).contains("root"));
        assert!(with(|h| h.child.ids.gid = 0).contains("root"));
        assert!(with(|h| h.child.umask = 0o1000).contains("umask"));
        assert!(with(|h| h.signals.push(65)).contains("signal 65"));
        assert!(with(|h| h.signals.push(0)).contains("signal 0"));
        assert!(with(|h| h.child.argv.clear()).contains("argv"));
        assert!(with(|h| h.passed[1].fd = 5).contains("twice"));
        assert!(with(|h| h.passed[0].fd = 3).contains("report fd"));
        assert!(with(|h| h.passed[0].fd = 2).contains("below 3"));
        assert!(with(|h| h.report_fd = 1).contains("report fd"));
        assert!(with(|h| h.child.program = "a\0b".into()).contains("NUL"));
        assert!(with(|h| h.allow_folders.push("relative/".into())).contains("not absolute"));
        assert!(with(|h| h.allow.push(Passed::File("k.pem".into()))).contains("not absolute"));
        assert!(with(|h| h.child.cwd = "srv".into()).contains("cwd"));
        assert!(with(|h| h.child.cwd = String::new()).contains("cwd"));
        assert!(with(|h| h.child.sandbox.flags |= 64).contains("unknown bits"));
        assert!(with(|h| h.child.sandbox.write.push("tmp".into())).contains("not absolute"));
        assert!(with(|h| h.child.sandbox.flags = 0).contains("sandbox off"));
        assert!(with(|h| h.child.sandbox.connect.push(0)).contains("port 0"));
    }

    #[test]
    fn bad_magic_huge_counts_and_bad_utf8_are_refused() {
        let mut bytes = encode(&sample());
        // Version 1 (before the sandbox field) is refused too.
        bytes[3] = b'1';
        assert!(refused(&bytes).contains("magic"));
        let mut huge = MAGIC.to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        refused(&huge);
        let mut count = MAGIC.to_vec();
        count.extend_from_slice(&[1, 0, 0, 0, b'x']);
        count.extend_from_slice(&(MAX_ITEMS + 1).to_le_bytes());
        assert!(refused(&count).contains("items"));
        let mut utf8 = MAGIC.to_vec();
        utf8.extend_from_slice(&[1, 0, 0, 0, 0xff]);
        assert!(refused(&utf8).contains("UTF-8"));
        assert!(refused(&vec![0; MAX_SIZE + 1]).contains("bytes"));
    }

    #[test]
    fn reports_round_trip_and_anything_else_is_none() {
        let failed = Report::Failed {
            code: "EPERM".into(),
            errno: 1,
            syscall: "setuid".into(),
            message: "no".into(),
        };
        for report in [Report::Started(77), failed] {
            assert_eq!(decode_report(&encode_report(&report)), Some(report));
        }
        for bad in [&b""[..], b"ok", b"ok\0x", b"err\0a\0b", b"ok\0\x31\0", b"\xff"] {
            assert_eq!(decode_report(bad), None);
        }
    }

    /// Random passed and allowed entries survive encoding; random edits are refused with
    /// ERR_PRIVSEP_HANDOFF_MALFORMED, or decode to a description that survives encoding.
    #[test]
    fn fuzz_descriptions() {
        crate::fuzz::run("handoff", |rng| {
            let mut h = sample();
            h.passed = (0..rng.below(4))
                .map(|i| Entry {
                    fd: 5 + i as i32,
                    passed: if rng.chance(2) {
                        Passed::File(rng.path())
                    } else {
                        Passed::Socket(rng.endpoint())
                    },
                })
                .collect();
            h.allow = (0..rng.below(4))
                .map(|_| {
                    if rng.chance(2) {
                        Passed::File(format!("/{}", rng.path()))
                    } else {
                        Passed::Socket(rng.endpoint())
                    }
                })
                .collect();
            h.allow_folders = (0..rng.below(3)).map(|_| format!("/{}", rng.path())).collect();
            h.child.cwd = format!("/{}", rng.path());
            h.child.sandbox.read = (0..rng.below(3)).map(|_| format!("/{}", rng.path())).collect();
            h.child.sandbox.write = (0..rng.below(2)).map(|_| format!("/{}", rng.path())).collect();
            h.child.sandbox.flags = *rng.pick(&[1, 3, 5, 9, 15]);
            h.child.sandbox.connect = if h.child.sandbox.connect_listed() {
                (0..rng.below(3)).map(|_| 1 + rng.below(65535) as u16).collect()
            } else {
                vec![]
            };
            if h.child
                .sandbox
                .read
                .iter()
                .chain(&h.child.sandbox.write)
                .any(|p| p.split('/').any(|x| x == ".."))
            {
                h.child.sandbox.read.clear();
                h.child.sandbox.write.clear();
            }
            let bytes = encode(&h);
            assert_eq!(decode(&bytes).unwrap(), h);
            match decode(&rng.mutate(&bytes)) {
                Ok(decoded) => assert_eq!(decode(&encode(&decoded)).unwrap(), decoded),
                Err(err) => assert_eq!(err.code(), "ERR_PRIVSEP_HANDOFF_MALFORMED"),
            }
        });
    }
}
