//! Resolving a path as root, safely, in the spirit of systemd's `CHASE_SAFE` and OpenSSH's
//! secure-path check: root opens a path only if nobody but root can change where it leads.
//!
//! The walk starts at `/` and goes one component at a time with descriptors (`openat`, never
//! following a symlink by itself). Each entry it passes through (folder, symlink, the file)
//! must sit in a folder that is owned by root and writable by nobody else, or, in a sticky
//! folder such as `/tmp`, be owned by root itself. Symlinks are followed by hand (at most 40),
//! their targets walked by the same rules, so a Let's Encrypt `live/` link into
//! `../../archive/` is fine while a link planted in a user's folder is not. Folders and the file
//! are checked on the descriptor to be what was looked at, and never on a pseudo file system
//! (procfs, sysfs, …: checked at `/` and wherever the device changes, i.e. at each mount). The file's type is known before it is opened: only a regular file is,
//! with `O_NOCTTY | O_NONBLOCK`.

use crate::sys::{self, Fd, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, S_ISVTX};
use crate::{Error, Result};
use std::collections::VecDeque;
use std::ffi::CString;

pub use privsep_wire::facts::Stat;

/// Most symlinks one walk follows, as the kernel's own limit.
const MAX_LINKS: usize = 40;

/// A descriptor for reading the regular file at absolute `path`, opened as described above.
pub fn open_file(path: &str) -> Result<i32> {
    match walk(path, true)? {
        Walked::File(fd) => Ok(sys::into_raw(fd)),
        Walked::Folder(..) => Err(not_file(path, "is a folder")),
    }
}

/// Checks that every folder on the way to absolute `path` (a unix socket's, say), and the
/// folder that holds it, can be changed by root only (a sticky folder such as `/tmp` holds
/// root's own files safely); the last component itself need not exist.
pub fn check_folders(path: &str) -> Result<()> {
    let parent = match path.rfind('/') {
        Some(0) => "/",
        Some(i) => &path[..i],
        None => return Err(relative(path)),
    };
    match walk(parent, false)? {
        Walked::Folder(stat, shown) if stat.uid != 0 || (stat.mode & 0o022 != 0 && stat.mode & S_ISVTX == 0) => {
            Err(unsafe_path(
                path,
                &format!(
                    "its folder {} (uid {}, mode {:o}) is not root's alone: others can write it",
                    shown,
                    stat.uid,
                    stat.mode & 0o7777
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// Where a walk ended: the file it opened, or the last folder.
enum Walked {
    File(Fd),
    Folder(Stat, String),
}

/// One folder on the walk: its descriptor, what it is, and how it is shown in messages.
struct Folder {
    fd: Fd,
    stat: Stat,
    shown: String,
}

fn walk(path: &str, want_file: bool) -> Result<Walked> {
    if !path.starts_with('/') {
        return Err(relative(path));
    }
    let os = |what: &str| {
        let what = what.to_string();
        move |e: crate::error::SysError| e.about(format!("{} (resolving {})", what, path))
    };
    let root_fd = sys::open_dir(None, &c("/")?).map_err(os("/"))?;
    let root_stat = sys::stat_fd(&root_fd).map_err(os("/"))?;
    if root_stat.uid != 0 || root_stat.mode & 0o022 != 0 {
        return Err(unsafe_path(path, "/ can be changed by someone other than root"));
    }
    pseudo(path, "/", &root_fd)?;
    let mut stack = vec![Folder {
        fd: root_fd,
        stat: root_stat,
        shown: String::new(),
    }];
    let mut todo: VecDeque<String> = components(path);
    let mut links = 0;
    while let Some(name) = todo.pop_front() {
        if name.is_empty() || name == "." {
            continue;
        }
        if name == ".." {
            if stack.len() > 1 {
                stack.pop();
            }
            continue;
        }
        let folder = stack.last().expect("the walk always holds /");
        let shown = format!("{}/{}", folder.shown, name);
        let c_name = c(&name)?;
        let folder_shown = if folder.shown.is_empty() { "/" } else { &folder.shown };
        if folder.stat.uid != 0 {
            return Err(unsafe_path(
                path,
                &format!(
                    "{} is in folder {}, owned by uid {}",
                    shown, folder_shown, folder.stat.uid
                ),
            ));
        }
        let entry = sys::stat_at(&folder.fd, &c_name).map_err(os(&shown))?;
        let sticky_but_ours = folder.stat.mode & S_ISVTX != 0 && entry.uid == 0;
        if folder.stat.mode & 0o022 != 0 && !sticky_but_ours {
            return Err(unsafe_path(
                path,
                &format!(
                    "{} is in folder {}, which others can write (mode {:o})",
                    shown,
                    folder_shown,
                    folder.stat.mode & 0o7777
                ),
            ));
        }
        let last = todo.iter().all(|rest| rest.is_empty() || rest == ".");
        match entry.mode & S_IFMT {
            S_IFLNK => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(unsafe_path(path, "more than 40 symlinks"));
                }
                let target = sys::read_link_at(&folder.fd, &c_name).map_err(os(&shown))?;
                let target = String::from_utf8(target)
                    .map_err(|_| unsafe_path(path, &format!("symlink {} is not UTF-8", shown)))?;
                if target.starts_with('/') {
                    stack.truncate(1);
                }
                for (i, part) in components(&target).into_iter().enumerate() {
                    todo.insert(i, part);
                }
            }
            S_IFDIR => {
                let fd = sys::open_dir(Some(&folder.fd), &c_name).map_err(os(&shown))?;
                let stat = same(path, &shown, &entry, sys::stat_fd(&fd).map_err(os(&shown))?)?;
                if stat.dev != folder.stat.dev {
                    pseudo(path, &shown, &fd)?; // another file system is mounted here
                }
                stack.push(Folder { fd, stat, shown });
            }
            S_IFREG if want_file && last => {
                let fd = sys::open_file_at(&folder.fd, &c_name).map_err(os(&shown))?;
                let stat = same(path, &shown, &entry, sys::stat_fd(&fd).map_err(os(&shown))?)?;
                if stat.dev != folder.stat.dev {
                    pseudo(path, &shown, &fd)?;
                }
                return Ok(Walked::File(fd));
            }
            _ if want_file && last => return Err(not_file(path, &format!("{} is not a regular file", shown))),
            _ => return Err(unsafe_path(path, &format!("{} is not a folder", shown))),
        }
    }
    let last = stack.pop().expect("the walk always holds /");
    Ok(Walked::Folder(
        last.stat,
        if last.shown.is_empty() { "/".into() } else { last.shown },
    ))
}

fn components(path: &str) -> VecDeque<String> {
    path.split('/').map(str::to_string).collect()
}

/// The descriptor must be the entry that was checked: otherwise it was swapped meanwhile.
fn same(path: &str, shown: &str, looked: &Stat, opened: Stat) -> Result<Stat> {
    if (looked.dev, looked.ino) != (opened.dev, opened.ino) || looked.mode & S_IFMT != opened.mode & S_IFMT {
        return Err(unsafe_path(path, &format!("{} changed while it was opened", shown)));
    }
    Ok(opened)
}

fn pseudo(path: &str, shown: &str, fd: &Fd) -> Result<()> {
    match sys::pseudo_fs(fd).map_err(|e| e.about(shown.to_string()))? {
        Some(kind) => Err(unsafe_path(
            path,
            &format!("{} is on {}, not a file system that stores files", shown, kind),
        )),
        None => Ok(()),
    }
}

fn c(name: &str) -> Result<CString> {
    CString::new(name).map_err(|_| {
        Error::invalid(
            "ERR_PRIVSEP_INVALID_ARGUMENT",
            format!("path component {:?} contains a NUL byte", name),
        )
    })
}

fn relative(path: &str) -> Error {
    Error::invalid(
        "ERR_PRIVSEP_INVALID_ARGUMENT",
        format!("{:?} is not an absolute path", path),
    )
}

fn unsafe_path(path: &str, why: &str) -> Error {
    Error::invalid(
        "ERR_PRIVSEP_UNSAFE_PATH",
        format!(
            "{}: {}; root opens a path only if nobody but root can change where it leads (make every folder on the way root's and not writable by others)",
            path, why
        ),
    )
}

fn not_file(path: &str, why: &str) -> Error {
    Error::invalid("ERR_PRIVSEP_NOT_FILE", format!("{}: {}", path, why))
}
