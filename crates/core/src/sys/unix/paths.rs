//! Walking paths as root: folders and files opened relative to a folder, `fstatat`,
//! `readlinkat`, and which pseudo file system a descriptor is on (see crate::paths).

use super::*;

/// A descriptor of a folder or file met on a walk (see crate::paths).
pub type Fd = OwnedFd;

#[allow(clippy::unnecessary_cast)] // mode_t is u16 on macOS
pub const S_IFMT: u32 = libc::S_IFMT as u32;
#[allow(clippy::unnecessary_cast)] // mode_t is u16 on macOS
pub const S_IFDIR: u32 = libc::S_IFDIR as u32;
#[allow(clippy::unnecessary_cast)] // mode_t is u16 on macOS
pub const S_IFLNK: u32 = libc::S_IFLNK as u32;
#[allow(clippy::unnecessary_cast)] // mode_t is u16 on macOS
pub const S_IFREG: u32 = libc::S_IFREG as u32;
#[allow(clippy::unnecessary_cast)] // mode_t is u16 on macOS
pub const S_ISVTX: u32 = libc::S_ISVTX as u32;

#[allow(clippy::unnecessary_cast)] // field types differ between Linux and macOS
fn to_stat(st: &libc::stat) -> Stat {
    Stat {
        uid: st.st_uid as u32,
        mode: st.st_mode as u32,
        dev: st.st_dev as u64,
        ino: st.st_ino as u64,
    }
}

/// Opens a folder for walking: `/` without `parent`, else `name` in `parent`, never
/// following a symlink.
pub fn open_dir(parent: Option<&Fd>, name: &CStr) -> SysResult<Fd> {
    #[cfg(target_os = "linux")]
    let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    #[cfg(not(target_os = "linux"))]
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: `name` is a C string; the parent descriptor is open.
    owned("openat", unsafe {
        match parent {
            None => libc::open(b"/\0".as_ptr().cast(), flags),
            Some(dir) => libc::openat(dir.as_raw_fd(), name.as_ptr(), flags),
        }
    })
}

/// Opens the regular file `name` in `dir` for reading: no symlink followed, no controlling
/// terminal acquired, no blocking on a FIFO.
pub fn open_file_at(dir: &Fd, name: &CStr) -> SysResult<Fd> {
    let flags = libc::O_RDONLY | libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: `name` is a C string; `dir` is open.
    owned("openat", unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags) })
}

/// The entry `name` in `dir` itself (a symlink is not followed).
pub fn stat_at(dir: &Fd, name: &CStr) -> SysResult<Stat> {
    // SAFETY: all-zero is a valid stat; fstatat writes it.
    let mut st: libc::stat = unsafe { mem::zeroed() };
    // SAFETY: `name` is a C string, `st` is valid for writes.
    cvt("fstatat", unsafe {
        libc::fstatat(dir.as_raw_fd(), name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW)
    })?;
    Ok(to_stat(&st))
}

pub fn stat_fd(fd: &Fd) -> SysResult<Stat> {
    // SAFETY: all-zero is a valid stat; fstat writes it.
    let mut st: libc::stat = unsafe { mem::zeroed() };
    // SAFETY: `st` is valid for writes.
    cvt("fstat", unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(to_stat(&st))
}

/// The target of the symlink `name` in `dir`.
pub fn read_link_at(dir: &Fd, name: &CStr) -> SysResult<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: `buf` is valid for `buf.len()` bytes of writes.
    let n = unsafe { libc::readlinkat(dir.as_raw_fd(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(SysError::new("readlinkat", io::Error::last_os_error()));
    }
    if n as usize == buf.len() {
        return Err(SysError::new(
            "readlinkat",
            io::Error::from_raw_os_error(libc::ENAMETOOLONG),
        ));
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// The name of the pseudo file system `fd` is on (procfs, sysfs, …), or `None` for a file
/// system that stores files.
pub fn pseudo_fs(fd: &Fd) -> SysResult<Option<&'static str>> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: all-zero is a valid statfs; fstatfs writes it.
        let mut st: libc::statfs = unsafe { mem::zeroed() };
        // SAFETY: `st` is valid for writes.
        cvt("fstatfs", unsafe { libc::fstatfs(fd.as_raw_fd(), &mut st) })?;
        let known: [(i64, &str); 10] = [
            (0x9fa0, "procfs"),
            (0x6265_6572, "sysfs"),
            (0x6462_6720, "debugfs"),
            (0x7472_6163, "tracefs"),
            (0x7363_6673, "securityfs"),
            (0x1cd1, "devpts"),
            (0x27e0eb, "cgroup"),
            (0x6367_7270, "cgroup2"),
            (0xcafe_4a11, "bpf"),
            (0x6e73_6673, "nsfs"),
        ];
        let kind = st.f_type as i64;
        Ok(known.iter().find(|(magic, _)| *magic == kind).map(|(_, name)| *name))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = fd;
        Ok(None)
    }
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Gives up ownership: the caller now owns the number.
pub fn into_raw(fd: Fd) -> RawFd {
    fd.into_raw_fd()
}
