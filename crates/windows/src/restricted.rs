//! Windows: starting the program again as a restricted copy of this (elevated) process's own
//! token, with the files `openPrivileged` opened passed as CRT descriptors 3, 4, ... and the
//! environment protocol set (docs/SECURITY.md, "Windows"). The raw calls are in
//! `sys_windows.rs`; what is plain data (SIDs, the command line, the environment block, the
//! CRT's descriptor table) is built here, where Linux tests it too. On Unix every function
//! that starts or inspects something says Unsupported.

use crate::sys;
use privsep_wire::protocol::{self, Entry, Passed};
use privsep_wire::{Error, Result};

/// Groups that stay in the child's token for deny-only checks (an ACE that denies them
/// still denies) but never grant it anything: Administrators and the other built-in groups
/// with power over the machine, and "local account and member of Administrators".
pub const DENY_ONLY: &[&str] = &[
    "S-1-5-32-544", // Administrators
    "S-1-5-32-547", // Power Users
    "S-1-5-32-548", // Account Operators
    "S-1-5-32-549", // Server Operators
    "S-1-5-32-550", // Print Operators
    "S-1-5-32-551", // Backup Operators
    "S-1-5-32-556", // Network Configuration Operators
    "S-1-5-32-578", // Hyper-V Administrators
    "S-1-5-114",    // Local account and member of Administrators group
];

/// The Administrators group: enabled in an elevated token, deny-only in the child's.
pub const ADMINISTRATORS: &str = "S-1-5-32-544";

/// LocalSystem's SID: the account of a service that runs as SYSTEM.
pub const LOCAL_SYSTEM: &str = "S-1-5-18";

/// Refuses an account whose restricted copy would still be too strong: SYSTEM's user SID is not
/// a group that can be made deny-only, and every object that grants SYSTEM access (the machine's
/// registry hives, most system files, other services' processes) would grant it to the child.
pub fn check_account(user_sid: &str) -> Result<()> {
    if user_sid == LOCAL_SYSTEM {
        return Err(Error::invalid(
            "ERR_PRIVSEP_SYSTEM_ACCOUNT",
            "this process runs as LocalSystem (S-1-5-18): a restricted copy of its token keeps SYSTEM as its user, \
             which most of the machine grants full access; run the service as a virtual account (NT SERVICE\\NAME) \
             or a dedicated account in Administrators instead",
        ));
    }
    Ok(())
}

/// The child's integrity level: Medium, that of a process the user starts without elevation.
pub const MEDIUM_INTEGRITY: &str = "S-1-16-8192";

/// `SE_GROUP_USE_FOR_DENY_ONLY` in a group's attributes.
pub const SE_GROUP_USE_FOR_DENY_ONLY: u32 = 0x10;
/// `SE_GROUP_ENABLED` in a group's attributes.
pub const SE_GROUP_ENABLED: u32 = 0x4;

/// What a process's token says about it (`processToken()` in the addon).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// Administrators is enabled in the token (what "elevated" means here).
    pub elevated: bool,
    /// The integrity level's RID (0x2000 Medium, 0x3000 High, ...).
    pub integrity: u32,
    /// The user's SID.
    pub user: String,
    /// Every group as `(SID, attributes)`.
    pub groups: Vec<(String, u32)>,
    /// Every privilege as `(name, attributes)`.
    pub privileges: Vec<(String, u32)>,
}

/// The child started by [`spawn`]: its pid, and this process's handles of it and of the
/// kill-on-close job it runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Child {
    pub pid: u32,
    pub process: usize,
    pub job: usize,
}

/// Whether this process's token has Administrators enabled.
pub fn is_elevated() -> Result<bool> {
    sys::is_elevated().map_err(|e| e.about("CheckTokenMembership(Administrators)"))
}

/// This process's token: user, groups, integrity level, privileges.
pub fn token() -> Result<TokenInfo> {
    sys::token_info().map_err(|e| e.about("the process token"))
}

/// Every handle of this process that names a file, as `(handle, path)`.
pub fn open_files() -> Result<Vec<(usize, String)>> {
    sys::open_file_handles().map_err(|e| e.about("this process's handles"))
}

/// An inheritable duplicate of descriptor `fd`'s handle, never closed: for tests, a handle
/// the child must not inherit.
pub fn leak_inheritable(fd: i32) -> Result<usize> {
    sys::leak_inheritable(fd).map_err(|e| e.about(format!("fd {}", fd)))
}

/// Starts `program` with `argv` and `env` as a restricted child: Administrators and the other
/// [`DENY_ONLY`] groups deny-only, every privilege but SeChangeNotify removed, Medium integrity,
/// in a kill-on-close job. The files of `passed` (this process's CRT descriptors, all `file`
/// entries) become the child's descriptors 3, 4, ...; they and the child's stdio are the only
/// handles it inherits. Refuses when this process is not elevated.
pub fn spawn(program: &str, argv: &[String], env: &[String], passed: &[Entry]) -> Result<Child> {
    if !is_elevated()? {
        return Err(Error::invalid(
            "ERR_PRIVSEP_NOT_ROOT",
            "this process is not elevated (its token does not have Administrators enabled): \
             run it as administrator, or set filesImmediate to run in this process",
        ));
    }
    check_account(&token()?.user)?;
    let mut fds = Vec::new();
    let mut renumbered = Vec::new();
    for (i, entry) in passed.iter().enumerate() {
        if let Passed::Socket(endpoint) = &entry.passed {
            return Err(Error::invalid(
                "ERR_PRIVSEP_UNSUPPORTED",
                format!(
                    "{}: Windows passes files only; the child binds its own listeners",
                    endpoint
                ),
            ));
        }
        fds.push(entry.fd);
        renumbered.push(Entry {
            fd: 3 + i as i32,
            passed: entry.passed.clone(),
        });
    }
    let mut block: Vec<String> = env.iter().filter(|e| !is_protocol_variable(e)).cloned().collect();
    for (name, value) in protocol::encode(std::process::id(), &renumbered) {
        block.push(format!("{}={}", name, value));
    }
    for text in argv.iter().chain(&block).chain(std::iter::once(&program.to_string())) {
        if text.contains('\0') {
            return Err(Error::invalid(
                "ERR_PRIVSEP_INVALID_ARGUMENT",
                format!("{:?} contains a NUL byte", text),
            ));
        }
    }
    let disable: Vec<Vec<u8>> = DENY_ONLY.iter().map(|s| sid_bytes(s).expect("a valid SID")).collect();
    let integrity = sid_bytes(MEDIUM_INTEGRITY).expect("a valid SID");
    let (pid, process, job) = sys::spawn_restricted(
        &wide(program),
        &command_line(argv),
        &environment_block(&block),
        &disable,
        &integrity,
        &fds,
    )
    .map_err(|e| e.about(program.to_string()))?;
    Ok(Child { pid, process, job })
}

/// Waits for the child to end and returns its exit code; closes its handles.
pub fn wait(child: Child) -> Result<u32> {
    sys::wait_process(child.process, child.job).map_err(|e| e.about(format!("pid {}", child.pid)))
}

/// This process waits for the child, ignoring Ctrl+C and Ctrl+Break (the console delivers
/// them to the child too), and then exits with the child's exit code. Returns only if the
/// wait failed.
pub fn exit_with(child: Child) -> Error {
    sys::exit_with_process(child.process).about(format!("pid {}", child.pid))
}

fn is_protocol_variable(entry: &str) -> bool {
    let name = entry.split('=').next().unwrap_or("").to_ascii_uppercase();
    name == protocol::PID || name == protocol::FDS || name == protocol::FILES
}

/// `text` as UTF-16 with a terminating NUL.
pub fn wide(text: &str) -> Vec<u16> {
    text.encode_utf16().chain(std::iter::once(0)).collect()
}

/// A SID in its binary form from its string form (`S-1-5-32-544`); None if malformed.
pub fn sid_bytes(text: &str) -> Option<Vec<u8>> {
    let mut parts = text.strip_prefix("S-1-")?.split('-');
    let authority: u64 = parts.next()?.parse().ok()?;
    if authority >= 1 << 48 {
        return None;
    }
    let subs = parts.map(|p| p.parse::<u32>().ok()).collect::<Option<Vec<u32>>>()?;
    if subs.is_empty() || subs.len() > 15 {
        return None;
    }
    let mut out = vec![1, subs.len() as u8];
    out.extend_from_slice(&authority.to_be_bytes()[2..]);
    for sub in subs {
        out.extend_from_slice(&sub.to_le_bytes());
    }
    Some(out)
}

/// The string form of a binary SID; None if malformed.
pub fn sid_string(bytes: &[u8]) -> Option<String> {
    if bytes.len() < 8 || bytes[0] != 1 || bytes.len() != 8 + 4 * bytes[1] as usize {
        return None;
    }
    let mut authority = [0u8; 8];
    authority[2..].copy_from_slice(&bytes[2..8]);
    let mut out = format!("S-1-{}", u64::from_be_bytes(authority));
    for sub in bytes[8..].chunks(4) {
        out.push_str(&format!("-{}", u32::from_le_bytes([sub[0], sub[1], sub[2], sub[3]])));
    }
    Some(out)
}

/// The command line the child's CRT splits back into `argv` (the rules of
/// `CommandLineToArgvW`, as libuv quotes), UTF-16 with a terminating NUL.
pub fn command_line(argv: &[String]) -> Vec<u16> {
    let mut line = String::new();
    for (i, arg) in argv.iter().enumerate() {
        if i > 0 {
            line.push(' ');
        }
        if !arg.is_empty() && !arg.contains([' ', '\t', '"', '\n']) {
            line.push_str(arg);
            continue;
        }
        line.push('"');
        let mut backslashes = 0;
        for c in arg.chars() {
            match c {
                '\\' => backslashes += 1,
                '"' => {
                    line.push_str(&"\\".repeat(2 * backslashes + 1));
                    line.push('"');
                    backslashes = 0;
                }
                _ => {
                    line.push_str(&"\\".repeat(backslashes));
                    line.push(c);
                    backslashes = 0;
                }
            }
        }
        line.push_str(&"\\".repeat(2 * backslashes));
        line.push('"');
    }
    wide(&line)
}

/// `NAME=value` strings as a Unicode environment block: sorted by name without regard to
/// case (as Windows keeps it), each NUL-terminated, and one more NUL at the end.
pub fn environment_block(env: &[String]) -> Vec<u16> {
    let mut sorted: Vec<&String> = env.iter().collect();
    sorted.sort_by_key(|e| e.split('=').next().unwrap_or("").to_uppercase());
    let mut block: Vec<u16> = Vec::new();
    for entry in sorted {
        block.extend(entry.encode_utf16());
        block.push(0);
    }
    if block.is_empty() {
        block.push(0);
    }
    block.push(0);
    block
}

/// The CRT's flags for a descriptor open on a file (`FOPEN`), a pipe and a character device.
pub const FOPEN: u8 = 0x01;
pub const FPIPE: u8 = 0x08;
pub const FDEV: u8 = 0x40;

/// `STARTUPINFO.lpReserved2` as the CRT reads it to set up a child's descriptors (libuv's
/// layout): `int n; unsigned char flags[n]; HANDLE handles[n]`, packed.
pub fn crt_table(entries: &[(u8, usize)]) -> Vec<u8> {
    let mut out = (entries.len() as i32).to_le_bytes().to_vec();
    out.extend(entries.iter().map(|(flags, _)| *flags));
    for (_, handle) in entries {
        out.extend_from_slice(&(*handle as u64).to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A LocalSystem service is refused (issue 19, W2); its own account and others are not.
    #[test]
    fn local_system_is_refused() {
        let err = check_account("S-1-5-18").unwrap_err();
        assert_eq!(err.code(), "ERR_PRIVSEP_SYSTEM_ACCOUNT");
        assert!(err.to_string().contains("NT SERVICE"), "{}", err);
        for sid in ["S-1-5-21-1-2-3-1000", "S-1-5-80-1-2-3-4-5", "S-1-5-19", "S-1-5-20"] {
            assert!(check_account(sid).is_ok(), "{}", sid);
        }
    }

    fn utf8(wide: &[u16]) -> String {
        String::from_utf16(wide).unwrap()
    }

    #[test]
    fn sids_round_trip_through_their_binary_form() {
        for text in DENY_ONLY
            .iter()
            .chain(&[MEDIUM_INTEGRITY, "S-1-5-21-1004336348-1177238915-682003330-512"])
        {
            assert_eq!(sid_string(&sid_bytes(text).unwrap()).as_deref(), Some(*text));
        }
        assert_eq!(
            sid_bytes(ADMINISTRATORS).unwrap(),
            [1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 0x20, 2, 0, 0]
        );
        for bad in ["", "S-1", "S-1-5", "S-2-5-32", "S-1-5-x", "S-1-281474976710656-1"] {
            assert_eq!(sid_bytes(bad), None, "{}", bad);
        }
        assert_eq!(
            sid_string(&[1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0]),
            None,
            "one sub-authority short"
        );
    }

    #[test]
    fn the_command_line_splits_back_into_argv() {
        let argv = |args: &[&str]| args.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(utf8(&command_line(&argv(&["node", "app.mjs"]))), "node app.mjs\0");
        assert_eq!(
            utf8(&command_line(&argv(&[
                "C:\\Program Files\\node.exe",
                "",
                "a\"b",
                "c d\\",
                "e\\\\\"f"
            ]))),
            "\"C:\\Program Files\\node.exe\" \"\" \"a\\\"b\" \"c d\\\\\" \"e\\\\\\\\\\\"f\"\0"
        );
        assert_eq!(
            utf8(&command_line(&argv(&["back\\slash\\"]))),
            "back\\slash\\\0",
            "unquoted: backslashes as they are"
        );
    }

    #[test]
    fn the_environment_block_is_sorted_and_double_terminated() {
        let env = vec!["b=2".to_string(), "A=1".to_string(), "Path=C:\\".to_string()];
        assert_eq!(utf8(&environment_block(&env)), "A=1\0b=2\0Path=C:\\\0\0");
        assert_eq!(environment_block(&[]), [0, 0]);
    }

    #[test]
    fn the_crt_table_is_count_flags_handles_packed() {
        let table = crt_table(&[(FOPEN | FDEV, 0x10), (0, usize::MAX), (FOPEN, 0x1234)]);
        assert_eq!(table.len(), 4 + 3 + 3 * 8);
        assert_eq!(&table[..7], &[3, 0, 0, 0, 0x41, 0, 1]);
        assert_eq!(&table[7..15], &0x10u64.to_le_bytes());
        assert_eq!(&table[15..23], &u64::MAX.to_le_bytes());
        assert_eq!(&table[23..], &0x1234u64.to_le_bytes());
    }

    #[test]
    fn protocol_variables_are_recognized_in_any_case() {
        assert!(is_protocol_variable("PRIVSEP_PID=1"));
        assert!(is_protocol_variable("privsep_files="));
        assert!(!is_protocol_variable("PRIVSEP_GENERATION=1"));
        assert!(!is_protocol_variable("PATH=x"));
    }
}
