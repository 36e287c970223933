//! The child's kernel sandbox as the hand-off carries it (docs/PROTOCOL.md, "The sandbox"),
//! and the state the child is told at start (`PRIVSEP_SANDBOX`). Plain data, no system call:
//! the profile is made in the root Node process (src/sandbox.ts), travels in the description
//! so that every generation the monitor starts gets the same one, and is applied in the fork
//! before exec (crates/core/src/sys/unix/sandbox.rs).

/// `flags`: the sandbox is on.
pub const ON: u32 = 1;
/// `flags`: a start fails unless everything below is enforced (`sandbox.require`).
pub const REQUIRED: u32 = 2;
/// `flags`: io_uring_setup is allowed (`sandbox.ioUring`).
pub const IO_URING: u32 = 4;
/// `flags`: TCP connect is limited to `connect` (`sandbox.connect`, even empty: none).
pub const CONNECT_LISTED: u32 = 8;
const KNOWN: u32 = ON | REQUIRED | IO_URING | CONNECT_LISTED;

/// What the child may reach. Paths are absolute; a folder covers everything below it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sandbox {
    pub flags: u32,
    /// Read (files) and list (folders).
    pub read: Vec<String>,
    /// Read and execute: the node executable, its loader and libraries, `sandbox.execute`.
    pub execute: Vec<String>,
    /// Read, write, create, remove below: `sandbox.write`.
    pub write: Vec<String>,
    /// TCP ports the child may connect to, when `CONNECT_LISTED`.
    pub connect: Vec<u16>,
}

impl Sandbox {
    #[cfg(any(test, feature = "node"))]
    pub fn off() -> Sandbox {
        Sandbox::default()
    }
    pub fn on(&self) -> bool {
        self.flags & ON != 0
    }
    pub fn required(&self) -> bool {
        self.flags & REQUIRED != 0
    }
    pub fn io_uring(&self) -> bool {
        self.flags & IO_URING != 0
    }
    pub fn connect_listed(&self) -> bool {
        self.flags & CONNECT_LISTED != 0
    }

    /// Why this profile cannot be carried, or None: unknown flags, a flag or a list without
    /// the sandbox on, a path that is not absolute (or has a `..` part), a port 0.
    pub fn invalid(&self) -> Option<String> {
        if self.flags & !KNOWN != 0 {
            return Some(format!("sandbox flags {:#x} has unknown bits", self.flags));
        }
        let lists = self.read.len() + self.execute.len() + self.write.len() + self.connect.len();
        if !self.on() && (self.flags != 0 || lists != 0) {
            return Some("sandbox off, but with flags or paths".into());
        }
        for path in self.read.iter().chain(&self.execute).chain(&self.write) {
            if !path.starts_with('/') || path.split('/').any(|part| part == "..") {
                return Some(format!("sandbox path {:?} is not absolute, or has a .. part", path));
            }
        }
        if self.connect.contains(&0) || (!self.connect_listed() && !self.connect.is_empty()) {
            return Some("sandbox connect port 0, or ports without CONNECT_LISTED".into());
        }
        None
    }
}

/// What a Landlock ABI lacks of what privsep asks for, by name (`missing:` in the state).
pub fn missing(abi: u32) -> Vec<&'static str> {
    let mut missing = Vec::new();
    if abi < 1 {
        return vec!["landlock"];
    }
    if abi < 2 {
        missing.push("refer");
    }
    if abi < 3 {
        missing.push("truncate");
    }
    if abi < 4 {
        missing.push("net");
    }
    if abi < 5 {
        missing.push("ioctl_dev");
    }
    if abi < 6 {
        missing.push("scopes");
    }
    missing
}

/// The state line the child gets as `PRIVSEP_SANDBOX` (docs/PROTOCOL.md), with `landlock` and
/// `seccomp` as `-` (not enforced): the fork writes `y` at the two offsets returned, in place,
/// once each is in force. `abi` 0: no Landlock.
pub fn state_line(abi: u32, required: bool) -> (String, usize, usize) {
    let head = "PRIVSEP_SANDBOX=v1 landlock:";
    let line = format!(
        "{}- seccomp:- abi:{} required:{} missing:{}",
        head,
        abi,
        if required { 1 } else { 0 },
        missing(abi).join(",")
    );
    (line, head.len(), head.len() + "- seccomp:".len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_line_has_its_two_flags_where_it_says() {
        let (line, landlock, seccomp) = state_line(7, false);
        assert_eq!(
            line,
            "PRIVSEP_SANDBOX=v1 landlock:- seccomp:- abi:7 required:0 missing:"
        );
        assert_eq!((&line[landlock..landlock + 1], &line[seccomp..seccomp + 1]), ("-", "-"));
        assert_eq!(
            state_line(3, true).0,
            "PRIVSEP_SANDBOX=v1 landlock:- seccomp:- abi:3 required:1 missing:net,ioctl_dev,scopes"
        );
        assert_eq!(
            state_line(0, false).0,
            "PRIVSEP_SANDBOX=v1 landlock:- seccomp:- abi:0 required:0 missing:landlock"
        );
    }

    #[test]
    fn invalid_profiles_are_named() {
        let on = |change: fn(&mut Sandbox)| {
            let mut s = Sandbox {
                flags: ON,
                ..Sandbox::default()
            };
            change(&mut s);
            s.invalid()
        };
        assert_eq!(on(|_| {}), None);
        assert!(on(|s| s.flags |= 16).unwrap().contains("unknown"));
        assert!(on(|s| s.read.push("etc".into())).unwrap().contains("absolute"));
        assert!(on(|s| s.write.push("/srv/../etc".into())).unwrap().contains(".."));
        assert!(on(|s| s.connect.push(443)).unwrap().contains("CONNECT_LISTED"));
        assert!(on(|s| {
            s.flags |= CONNECT_LISTED;
            s.connect.push(0)
        })
        .unwrap()
        .contains("port 0"));
        assert!(Sandbox {
            flags: REQUIRED,
            ..Sandbox::default()
        }
        .invalid()
        .unwrap()
        .contains("off"));
        assert_eq!(Sandbox::off().invalid(), None);
    }
}
