//! Safe path resolution as root, for real: these need root (as the whole test suite does).
#![cfg(target_os = "linux")]

use privsep_core::paths;
use std::ffi::CString;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::io::FromRawFd;
use std::path::Path;
use std::path::PathBuf;

/// A fresh root-owned 0755 folder under /tmp (sticky, root's): a safe place to start.
fn tree(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("privsep-paths-{}-{}", name, std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// chown(2) (std's is newer than the workspace's Rust 1.63).
fn chown(path: &Path, uid: Option<u32>, gid: Option<u32>) -> std::io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a C string; -1 (u32::MAX) leaves an id unchanged.
    match unsafe { libc::chown(c.as_ptr(), uid.unwrap_or(u32::MAX), gid.unwrap_or(u32::MAX)) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

fn read(path: &str) -> String {
    let fd = paths::open_file(path).unwrap_or_else(|e| panic!("{}: {}", path, e));
    // SAFETY: open_file hands over a fresh descriptor.
    let mut file = unsafe { fs::File::from_raw_fd(fd) };
    let mut text = String::new();
    file.read_to_string(&mut text).unwrap();
    text
}

fn refused(path: &str) -> (&'static str, String) {
    let err = paths::open_file(path).unwrap_err();
    (err.code(), err.to_string())
}

#[test]
fn a_lets_encrypt_tree_resolves_through_its_relative_links() {
    let dir = tree("le");
    let (archive, live) = (dir.join("archive/example.com"), dir.join("live/example.com"));
    fs::create_dir_all(&archive).unwrap();
    fs::create_dir_all(&live).unwrap();
    for folder in [dir.join("archive"), dir.join("live")] {
        fs::set_permissions(folder, fs::Permissions::from_mode(0o700)).unwrap();
    }
    fs::write(archive.join("privkey2.pem"), "generation 2").unwrap();
    symlink("../../archive/example.com/privkey2.pem", live.join("privkey.pem")).unwrap();
    assert_eq!(read(live.join("privkey.pem").to_str().unwrap()), "generation 2");
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_folder_another_user_owns_or_can_write_is_refused() {
    let dir = tree("owned");
    let theirs = dir.join("theirs");
    fs::create_dir(&theirs).unwrap();
    fs::write(theirs.join("key.pem"), "secret").unwrap();
    chown(&theirs, Some(65534), Some(65534)).unwrap();
    let (code, message) = refused(theirs.join("key.pem").to_str().unwrap());
    assert_eq!(code, "ERR_PRIVSEP_UNSAFE_PATH");
    assert!(message.contains("owned by uid 65534"), "{}", message);

    chown(&theirs, Some(0), Some(0)).unwrap();
    fs::set_permissions(&theirs, fs::Permissions::from_mode(0o777)).unwrap();
    let (code, message) = refused(theirs.join("key.pem").to_str().unwrap());
    assert_eq!(code, "ERR_PRIVSEP_UNSAFE_PATH");
    assert!(message.contains("others can write"), "{}", message);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_symlink_planted_by_the_user_is_refused_whatever_it_points_at() {
    let dir = tree("planted");
    let theirs = dir.join("theirs");
    fs::create_dir(&theirs).unwrap();
    chown(&theirs, Some(65534), Some(65534)).unwrap();
    for target in ["/proc/self/mem", "/etc/shadow", "/etc/passwd"] {
        let link = theirs.join("key.pem");
        let _ = fs::remove_file(&link);
        symlink(target, &link).unwrap();
        assert_eq!(
            refused(link.to_str().unwrap()).0,
            "ERR_PRIVSEP_UNSAFE_PATH",
            "{}",
            target
        );
    }
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn pseudo_file_systems_devices_and_loops_are_refused() {
    let (code, message) = refused("/proc/self/mem");
    assert_eq!(code, "ERR_PRIVSEP_UNSAFE_PATH");
    assert!(message.contains("procfs"), "{}", message);
    assert!(refused("/sys/kernel/notes").1.contains("sysfs"));
    let dir = tree("links");
    symlink("/proc/self/maps", dir.join("maps")).unwrap();
    assert!(refused(dir.join("maps").to_str().unwrap()).1.contains("procfs"));
    assert_eq!(refused("/dev/null").0, "ERR_PRIVSEP_NOT_FILE");
    assert_eq!(refused("/dev/tty").0, "ERR_PRIVSEP_NOT_FILE");
    symlink("loop", dir.join("loop")).unwrap();
    assert!(refused(dir.join("loop").to_str().unwrap()).1.contains("40 symlinks"));
    assert_eq!(refused("relative/key.pem").0, "ERR_PRIVSEP_INVALID_ARGUMENT");
    assert_eq!(refused(dir.to_str().unwrap()).0, "ERR_PRIVSEP_NOT_FILE");
    assert_eq!(refused(dir.join("missing").to_str().unwrap()).0, "ERR_PRIVSEP_OS");
    paths::check_folders(dir.join("a.sock").to_str().unwrap()).unwrap();
    fs::remove_dir_all(dir).unwrap();
}
