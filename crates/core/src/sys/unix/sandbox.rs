//! The child's kernel sandbox (issue 21): a Landlock ruleset and a seccomp deny-list, both
//! built before the fork (here allocation is fine), applied in the fork after the drop and
//! no_new_privs, just before exec, so that every thread of the program is inside it. The
//! profile is `privsep_wire::sandbox::Sandbox`; what was enforced goes to the child as
//! `PRIVSEP_SANDBOX`, whose two flags the fork writes in place.

use super::*;
use privsep_wire::sandbox::{state_line, Sandbox};

// linux/landlock.h (uapi), checked against Debian's header.
const SYS_LANDLOCK_CREATE_RULESET: libc::c_long = 444;
const SYS_LANDLOCK_ADD_RULE: libc::c_long = 445;
const SYS_LANDLOCK_RESTRICT_SELF: libc::c_long = 446;
const CREATE_RULESET_VERSION: u32 = 1;
const RULE_PATH_BENEATH: c_int = 1;
const RULE_NET_PORT: c_int = 2;

const FS_EXECUTE: u64 = 1 << 0;
const FS_WRITE_FILE: u64 = 1 << 1;
const FS_READ_FILE: u64 = 1 << 2;
const FS_READ_DIR: u64 = 1 << 3;
const FS_REMOVE_DIR: u64 = 1 << 4;
const FS_REMOVE_FILE: u64 = 1 << 5;
const FS_MAKE_DIR: u64 = 1 << 7;
const FS_MAKE_REG: u64 = 1 << 8;
const FS_MAKE_SOCK: u64 = 1 << 9;
const FS_MAKE_FIFO: u64 = 1 << 10;
const FS_MAKE_SYM: u64 = 1 << 12;
const FS_REFER: u64 = 1 << 13;
const FS_TRUNCATE: u64 = 1 << 14;
const FS_IOCTL_DEV: u64 = 1 << 15;
/// The rights a rule on a file (not a folder) may carry.
const FS_FILE: u64 = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV;
const NET_BIND_TCP: u64 = 1;
const NET_CONNECT_TCP: u64 = 2;
const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1;
const SCOPE_SIGNAL: u64 = 2;

const READ: u64 = FS_READ_FILE | FS_READ_DIR;
const EXECUTE: u64 = READ | FS_EXECUTE;
/// A writable folder: files and folders below it made, written, truncated, removed, renamed.
/// Not devices (MAKE_CHAR, MAKE_BLOCK) and no device ioctls.
const WRITE: u64 = READ
    | FS_WRITE_FILE
    | FS_TRUNCATE
    | FS_MAKE_REG
    | FS_MAKE_DIR
    | FS_MAKE_SYM
    | FS_MAKE_SOCK
    | FS_MAKE_FIFO
    | FS_REMOVE_FILE
    | FS_REMOVE_DIR
    | FS_REFER;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}
#[repr(C)]
struct NetPortAttr {
    allowed_access: u64,
    port: u64,
}
const _: () = assert!(
    mem::size_of::<RulesetAttr>() == 24
        && mem::size_of::<PathBeneathAttr>() == 12
        && mem::size_of::<NetPortAttr>() == 16
);

/// The filesystem rights Landlock ABI `abi` handles (1: the first thirteen; 2 REFER; 3
/// TRUNCATE; 5 IOCTL_DEV).
fn fs_rights(abi: u32) -> u64 {
    let mut rights = (1 << 13) - 1;
    if abi >= 2 {
        rights |= FS_REFER;
    }
    if abi >= 3 {
        rights |= FS_TRUNCATE;
    }
    if abi >= 5 {
        rights |= FS_IOCTL_DEV;
    }
    rights
}

/// The Landlock ABI this kernel has: 0 without Landlock (ENOSYS: an old kernel or qemu-user;
/// EOPNOTSUPP: built in but off at boot; anything else alike).
pub fn landlock_abi() -> u32 {
    // SAFETY: with a null attribute and size 0, the version query reads and writes nothing.
    let abi = unsafe {
        libc::syscall(
            SYS_LANDLOCK_CREATE_RULESET,
            ptr::null::<RulesetAttr>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    if abi < 0 {
        0
    } else {
        abi as u32
    }
}

/// seccomp, from linux/filter.h and linux/seccomp.h.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SockFilter {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}
#[repr(C)]
struct SockFprog {
    len: u16,
    filter: *const SockFilter,
}
const _: () = assert!(mem::size_of::<SockFilter>() == 8);
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x15;
const BPF_JGE_K: u16 = 0x35;
const BPF_RET_K: u16 = 0x06;
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_EPERM: u32 = 0x0005_0000 | libc::EPERM as u32;
const SECCOMP_MODE_FILTER: libc::c_ulong = 2;

/// The architecture this filter is for, as seccomp reports it, and the deny-list in its
/// numbers (they differ between x86_64 and aarch64): reading or steering another process
/// (ptrace, process_vm_*, pidfd_getfd), kernel attack surface a server does not need (bpf,
/// perf_event_open, userfaultfd, the keyring), mounts and namespaces, kexec, modules; and
/// io_uring_setup, last, unless allowed (libuv then uses epoll).
#[cfg(target_arch = "x86_64")]
mod arch {
    pub const AUDIT_ARCH: u32 = 0xC000_003E;
    /// x32 system calls carry this bit, with the x86_64 audit arch.
    pub const X32_BIT: Option<u32> = Some(0x4000_0000);
    pub const DENIED: &[(&str, u32)] = &[
        ("ptrace", 101),
        ("process_vm_readv", 310),
        ("process_vm_writev", 311),
        ("pidfd_getfd", 438),
        ("bpf", 321),
        ("perf_event_open", 298),
        ("userfaultfd", 323),
        ("keyctl", 250),
        ("add_key", 248),
        ("request_key", 249),
        ("mount", 165),
        ("umount2", 166),
        ("pivot_root", 155),
        ("unshare", 272),
        ("setns", 308),
        ("open_tree", 428),
        ("move_mount", 429),
        ("fsopen", 430),
        ("fsconfig", 431),
        ("fsmount", 432),
        ("fspick", 433),
        ("mount_setattr", 442),
        ("kexec_load", 246),
        ("kexec_file_load", 320),
        ("init_module", 175),
        ("finit_module", 313),
        ("delete_module", 176),
    ];
    pub const IO_URING_SETUP: u32 = 425;
}
#[cfg(target_arch = "aarch64")]
mod arch {
    pub const AUDIT_ARCH: u32 = 0xC000_00B7;
    pub const X32_BIT: Option<u32> = None;
    pub const DENIED: &[(&str, u32)] = &[
        ("ptrace", 117),
        ("process_vm_readv", 270),
        ("process_vm_writev", 271),
        ("pidfd_getfd", 438),
        ("bpf", 280),
        ("perf_event_open", 241),
        ("userfaultfd", 282),
        ("keyctl", 219),
        ("add_key", 217),
        ("request_key", 218),
        ("mount", 40),
        ("umount2", 39),
        ("pivot_root", 41),
        ("unshare", 97),
        ("setns", 268),
        ("open_tree", 428),
        ("move_mount", 429),
        ("fsopen", 430),
        ("fsconfig", 431),
        ("fsmount", 432),
        ("fspick", 433),
        ("mount_setattr", 442),
        ("kexec_load", 104),
        ("kexec_file_load", 294),
        ("init_module", 105),
        ("finit_module", 273),
        ("delete_module", 106),
    ];
    pub const IO_URING_SETUP: u32 = 425;
}

/// The deny-list as a BPF program. A system call of another architecture (i386's `int 0x80`
/// on x86_64, or x32's numbers) is answered EPERM whatever it is: its numbers are not the ones
/// checked here, and Node never makes one. Never a kill: Node must live through a refusal.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub fn seccomp_filter(io_uring: bool) -> Vec<SockFilter> {
    let op = |code, jt, jf, k| SockFilter { code, jt, jf, k };
    let mut denied: Vec<u32> = arch::DENIED.iter().map(|&(_, nr)| nr).collect();
    if !io_uring {
        denied.push(arch::IO_URING_SETUP);
    }
    // Layout: [arch check] [load nr] [x32 check] [one jeq per denied] [allow] [eperm].
    let mut program = vec![op(BPF_LD_W_ABS, 0, 0, 4)];
    let after_arch = 1 + arch::X32_BIT.map_or(0, |_| 1) + denied.len() + 1;
    program.push(op(BPF_JEQ_K, 0, after_arch as u8, arch::AUDIT_ARCH));
    program.push(op(BPF_LD_W_ABS, 0, 0, 0));
    if let Some(bit) = arch::X32_BIT {
        program.push(op(BPF_JGE_K, (denied.len() + 1) as u8, 0, bit));
    }
    for (i, &nr) in denied.iter().enumerate() {
        program.push(op(BPF_JEQ_K, (denied.len() - i) as u8, 0, nr));
    }
    program.push(op(BPF_RET_K, 0, 0, RET_ALLOW));
    program.push(op(BPF_RET_K, 0, 0, RET_EPERM));
    program
}
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub fn seccomp_filter(_io_uring: bool) -> Vec<SockFilter> {
    Vec::new()
}

/// A sandbox ready for `spawn_as`: the ruleset (None: no Landlock here), the filter (empty:
/// no seccomp for this architecture), and the `PRIVSEP_SANDBOX` entry the fork completes.
pub struct Sandboxing {
    pub abi: u32,
    pub required: bool,
    ruleset: Option<OwnedFd>,
    filter: Vec<SockFilter>,
    /// `PRIVSEP_SANDBOX=...` NUL-terminated, and where its `landlock` and `seccomp` flags are.
    state: Vec<u8>,
    flags_at: (usize, usize),
}

/// Builds `sandbox` before the fork: the ruleset with a rule for each path that exists (a
/// missing one is left out: /etc/gai.conf, say), and the filter.
pub fn prepare_sandbox(sandbox: &Sandbox) -> SysResult<Sandboxing> {
    let abi = landlock_abi();
    let ruleset = if abi >= 1 { Some(ruleset(sandbox, abi)?) } else { None };
    let (line, landlock_at, seccomp_at) = state_line(if ruleset.is_some() { abi } else { 0 }, sandbox.required());
    let mut state = line.into_bytes();
    state.push(0);
    Ok(Sandboxing {
        abi: if ruleset.is_some() { abi } else { 0 },
        required: sandbox.required(),
        ruleset,
        filter: seccomp_filter(sandbox.io_uring()),
        state,
        flags_at: (landlock_at, seccomp_at),
    })
}

fn ruleset(sandbox: &Sandbox, abi: u32) -> SysResult<OwnedFd> {
    let handled = fs_rights(abi);
    let attr = RulesetAttr {
        handled_access_fs: handled,
        // No TCP bind: listeners come passed, or from the broker. Connect only when listed.
        handled_access_net: if abi >= 4 {
            NET_BIND_TCP | if sandbox.connect_listed() { NET_CONNECT_TCP } else { 0 }
        } else {
            0
        },
        scoped: if abi >= 6 {
            SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
        } else {
            0
        },
    };
    // SAFETY: `attr` is a valid ruleset attribute of the size given; the call returns a fresh
    // close-on-exec descriptor or -1.
    let fd = unsafe {
        libc::syscall(
            SYS_LANDLOCK_CREATE_RULESET,
            &attr as *const RulesetAttr,
            mem::size_of::<RulesetAttr>(),
            0u32,
        )
    };
    let ruleset = owned("landlock_create_ruleset", fd as c_int)?;
    let lists: [(&[String], u64); 3] = [
        (&sandbox.read, READ),
        (&sandbox.execute, EXECUTE),
        (&sandbox.write, WRITE),
    ];
    for (paths, rights) in lists {
        for path in paths {
            allow_path(ruleset.as_raw_fd(), path.as_bytes(), rights & handled)?;
        }
    }
    // A sink Node opens when a standard descriptor is closed, and aborts without.
    allow_path(
        ruleset.as_raw_fd(),
        b"/dev/null",
        (FS_READ_FILE | FS_WRITE_FILE) & handled,
    )?;
    if abi >= 4 && sandbox.connect_listed() {
        for &port in &sandbox.connect {
            let rule = NetPortAttr {
                allowed_access: NET_CONNECT_TCP,
                port: port as u64,
            };
            // SAFETY: a valid rule of the type named, read by the kernel only.
            let ret = unsafe {
                libc::syscall(
                    SYS_LANDLOCK_ADD_RULE,
                    ruleset.as_raw_fd(),
                    RULE_NET_PORT,
                    &rule as *const NetPortAttr,
                    0u32,
                )
            };
            cvt("landlock_add_rule", ret as c_int)?;
        }
    }
    Ok(ruleset)
}

/// Adds a rule for `path` (followed if a symlink: the rule is on what it names) with
/// `rights`, less the folder rights when it is a file. A path that does not exist is skipped.
fn allow_path(ruleset: RawFd, path: &[u8], rights: u64) -> SysResult<()> {
    let c_path = match CString::new(path) {
        Ok(c_path) => c_path,
        Err(_) => return Ok(()),
    };
    // SAFETY: a NUL-terminated path; O_PATH opens nothing for reading.
    let fd = unsafe { libc::open(c_path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
    if fd == -1 {
        return match errno() {
            libc::ENOENT | libc::ENOTDIR | libc::EACCES | libc::ELOOP => Ok(()),
            _ => Err(SysError::new("open", io::Error::last_os_error())),
        };
    }
    // SAFETY: open returned a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: all-zero is a valid stat; fstat writes it.
    let mut stat: libc::stat = unsafe { mem::zeroed() };
    // SAFETY: `fd` is open and `stat` valid for writes.
    cvt("fstat", unsafe { libc::fstat(fd.as_raw_fd(), &mut stat) })?;
    let rights = if stat.st_mode & libc::S_IFMT == libc::S_IFDIR {
        rights
    } else {
        rights & FS_FILE
    };
    add_path_rule(ruleset, fd.as_raw_fd(), rights)
}

fn add_path_rule(ruleset: RawFd, fd: RawFd, rights: u64) -> SysResult<()> {
    let rule = PathBeneathAttr {
        allowed_access: rights,
        parent_fd: fd,
    };
    // SAFETY: a valid rule of the type named, read by the kernel only.
    let ret = unsafe {
        libc::syscall(
            SYS_LANDLOCK_ADD_RULE,
            ruleset,
            RULE_PATH_BENEATH,
            &rule as *const PathBeneathAttr,
            0u32,
        )
    };
    cvt("landlock_add_rule", ret as c_int).map(drop)
}

/// What the fork needs, as raw pointers and numbers taken before it: it may not allocate.
pub struct InFork {
    ruleset: c_int,
    required: bool,
    proc_rights: u64,
    filter: SockFprog,
    state: *mut u8,
    flags_at: (usize, usize),
}

impl Sandboxing {
    /// The `PRIVSEP_SANDBOX=...` entry for the child's environment (valid while `self` is).
    pub fn state_entry(&mut self) -> *const c_char {
        self.state.as_ptr().cast()
    }

    /// The pointers and numbers the fork uses; `self` must outlive the fork.
    pub fn in_fork(&mut self) -> InFork {
        InFork {
            ruleset: self.ruleset.as_ref().map_or(-1, |fd| fd.as_raw_fd()),
            required: self.required,
            proc_rights: READ & fs_rights(self.abi),
            filter: SockFprog {
                len: self.filter.len() as u16,
                filter: self.filter.as_ptr(),
            },
            state: self.state.as_mut_ptr(),
            flags_at: self.flags_at,
        }
    }
}

/// Where the fork failed to sandbox, when it was required.
pub enum SandboxFailure {
    Landlock(i32),
    Seccomp(i32),
}

impl InFork {
    /// Moves the ruleset's descriptor to `floor` or above, where the passed descriptors placed
    /// at 3.. cannot land on it.
    ///
    /// # Safety
    /// Only in the child between fork and exec.
    pub unsafe fn move_above(&mut self, floor: c_int) -> c_int {
        if self.ruleset == -1 {
            return 0;
        }
        self.ruleset = libc::fcntl(self.ruleset, libc::F_DUPFD_CLOEXEC, floor);
        self.ruleset
    }

    /// Adds /proc/self (this process's own, opened here), restricts itself to the ruleset,
    /// installs the filter, and marks in the state entry what is in force. Not required: what
    /// fails is left out (the state says so). Required: the first failure is returned.
    ///
    /// # Safety
    /// Only in the child between fork and exec, after no_new_privs: async-signal-safe calls
    /// on memory prepared before the fork.
    pub unsafe fn apply(&self) -> Result<(), SandboxFailure> {
        if self.ruleset != -1 {
            let proc = libc::open(
                b"/proc/self\0".as_ptr().cast(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            );
            let mut ok = proc != -1;
            if ok {
                let rule = PathBeneathAttr {
                    allowed_access: self.proc_rights,
                    parent_fd: proc,
                };
                ok = libc::syscall(
                    SYS_LANDLOCK_ADD_RULE,
                    self.ruleset,
                    RULE_PATH_BENEATH,
                    &rule as *const PathBeneathAttr,
                    0u32,
                ) == 0;
                libc::close(proc);
            }
            ok = ok && libc::syscall(SYS_LANDLOCK_RESTRICT_SELF, self.ruleset, 0u32) == 0;
            if ok {
                *self.state.add(self.flags_at.0) = b'y';
            } else if self.required {
                return Err(SandboxFailure::Landlock(errno()));
            }
        }
        if self.filter.len > 0 {
            if libc::prctl(
                libc::PR_SET_SECCOMP,
                SECCOMP_MODE_FILTER,
                &self.filter as *const SockFprog,
            ) == 0
            {
                *self.state.add(self.flags_at.1) = b'y';
            } else if self.required {
                return Err(SandboxFailure::Seccomp(errno()));
            }
        } else if self.required {
            return Err(SandboxFailure::Seccomp(libc::ENOSYS));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written numbers are libc's for this architecture.
    #[test]
    fn the_deny_list_has_this_architectures_numbers() {
        let libc_numbers: &[(&str, libc::c_long)] = &[
            ("ptrace", libc::SYS_ptrace),
            ("process_vm_readv", libc::SYS_process_vm_readv),
            ("process_vm_writev", libc::SYS_process_vm_writev),
            ("pidfd_getfd", libc::SYS_pidfd_getfd),
            ("bpf", libc::SYS_bpf),
            ("perf_event_open", libc::SYS_perf_event_open),
            ("userfaultfd", libc::SYS_userfaultfd),
            ("keyctl", libc::SYS_keyctl),
            ("add_key", libc::SYS_add_key),
            ("request_key", libc::SYS_request_key),
            ("mount", libc::SYS_mount),
            ("umount2", libc::SYS_umount2),
            ("pivot_root", libc::SYS_pivot_root),
            ("unshare", libc::SYS_unshare),
            ("setns", libc::SYS_setns),
            ("kexec_load", libc::SYS_kexec_load),
            ("init_module", libc::SYS_init_module),
            ("finit_module", libc::SYS_finit_module),
            ("delete_module", libc::SYS_delete_module),
            ("open_tree", libc::SYS_open_tree),
            ("fsopen", libc::SYS_fsopen),
            ("mount_setattr", libc::SYS_mount_setattr),
        ];
        for &(name, nr) in libc_numbers {
            let ours = arch::DENIED.iter().find(|&&(n, _)| n == name).unwrap().1;
            assert_eq!(ours as libc::c_long, nr, "{}", name);
        }
        assert_eq!(arch::IO_URING_SETUP as libc::c_long, libc::SYS_io_uring_setup);
        assert_eq!(SYS_LANDLOCK_CREATE_RULESET, libc::SYS_landlock_create_ruleset);
    }

    /// Every jump lands inside the program, on a return.
    #[test]
    fn the_filter_jumps_stay_inside() {
        for io_uring in [false, true] {
            let program = seccomp_filter(io_uring);
            for (i, op) in program.iter().enumerate() {
                if op.code == BPF_JEQ_K || op.code == BPF_JGE_K {
                    for target in [i + 1 + op.jt as usize, i + 1 + op.jf as usize] {
                        assert!(target < program.len(), "{} jumps out", i);
                    }
                    let taken = &program[i + 1 + op.jt as usize];
                    if i > 1 {
                        assert_eq!((taken.code, taken.k), (BPF_RET_K, RET_EPERM), "{}", i);
                    }
                }
            }
            let foreign = &program[1];
            assert_eq!(program[2 + foreign.jf as usize].k, RET_EPERM);
            assert_eq!(
                program
                    .iter()
                    .filter(|op| op.k == arch::IO_URING_SETUP && op.code == BPF_JEQ_K)
                    .count(),
                if io_uring { 0 } else { 1 }
            );
        }
    }
}
