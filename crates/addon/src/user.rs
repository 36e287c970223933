//! The user the program runs as, resolved and checked in the Node process before the hand-off:
//! its ids and groups by name, and whether it may execute the program, enter its folder and
//! read what it needs, answered by the kernel as that user.

use crate::sys;
use privsep_core::handoff::Ids;
use privsep_core::spawn::c_string;
use privsep_core::{Error, Result};

/// Resolves `user` (and `group`) to ids, with the user's supplementary groups. Refuses uid 0
/// and gid 0: a child that runs as root, or in root's group, has dropped nothing.
pub fn resolve(user: &str, group: Option<&str>) -> Result<Ids> {
    let name = c_string("user", user)?;
    let (uid, primary) = sys::user_by_name(&name)
        .map_err(|e| e.about(format!("user {:?}", user)))?
        .ok_or_else(|| {
            Error::invalid(
                "ERR_PRIVSEP_UNKNOWN_USER",
                format!(
                    "no such user {:?}: create it (useradd --system {}) or name an existing unprivileged user",
                    user, user
                ),
            )
        })?;
    if uid == 0 {
        return Err(Error::invalid(
            "ERR_PRIVSEP_INVALID_ARGUMENT",
            format!("user {:?} is root (uid 0): name an unprivileged user", user),
        ));
    }
    let gid = match group {
        None => primary,
        Some(group) => sys::group_by_name(&c_string("group", group)?)
            .map_err(|e| e.about(format!("group {:?}", group)))?
            .ok_or_else(|| {
                Error::invalid(
                    "ERR_PRIVSEP_UNKNOWN_GROUP",
                    format!(
                        "no such group {:?}: create it (groupadd --system {}) or name an existing group",
                        group, group
                    ),
                )
            })?,
    };
    if gid == 0 {
        return Err(Error::invalid(
            "ERR_PRIVSEP_INVALID_ARGUMENT",
            format!(
                "group {:?} is gid 0 (root's group): name an unprivileged group",
                group.map_or_else(|| format!("of user {}", user), str::to_string)
            ),
        ));
    }
    let groups = sys::group_list(&name, gid).map_err(|e| e.about(format!("groups of user {:?}", user)))?;
    Ok(Ids { uid, gid, groups })
}

/// Checks, as `user` with `ids`, that `program` can be executed, the folder `cwd` entered and
/// every path in `readable` read: the kernel's answer for that user, folders on the way
/// included. Refuses with `ERR_PRIVSEP_NO_ACCESS` naming the user, the path and the errno.
pub fn check_access(user: &str, ids: &Ids, program: &str, cwd: &str, readable: &[String]) -> Result<()> {
    let mut paths = vec![(c_string("path", program)?, true), (c_string("path", cwd)?, true)];
    for path in readable {
        paths.push((c_string("path", path)?, false));
    }
    let asked: Vec<(&std::ffi::CStr, bool)> = paths.iter().map(|(p, x)| (p.as_c_str(), *x)).collect();
    let failed = sys::access_as(ids, &asked).map_err(|e| e.about(format!("checking access as user {:?}", user)))?;
    let (index, errno) = match failed {
        None => return Ok(()),
        Some(failed) => failed,
    };
    let (path, verb) = match index {
        0 => (program, "execute"),
        1 => (cwd, "enter"),
        _ => (readable[index - 2].as_str(), "read"),
    };
    Err(Error::invalid(
        "ERR_PRIVSEP_NO_ACCESS",
        format!(
            "user {:?} (uid {}) cannot {} {}: {}; the child runs as that user, so give it {} access to it and search (x) access to every folder above it{}",
            user,
            ids.uid,
            verb,
            path,
            std::io::Error::from_raw_os_error(errno),
            verb,
            if index == 1 { " (it starts in this folder: the option cwd, by default the current one)" } else { "" },
        ),
    ))
}

// Real users of this machine: these need root, as the whole test suite does.
#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn users_and_groups_resolve_and_root_is_refused() {
        assert_eq!(
            resolve("no-such-user-here", None).unwrap_err().code(),
            "ERR_PRIVSEP_UNKNOWN_USER"
        );
        assert_eq!(
            resolve("root", None).unwrap_err().code(),
            "ERR_PRIVSEP_INVALID_ARGUMENT"
        );
        assert_eq!(
            resolve("nobody", Some("no-such-group-here")).unwrap_err().code(),
            "ERR_PRIVSEP_UNKNOWN_GROUP"
        );
        let root_group = resolve("nobody", Some("root")).unwrap_err();
        assert_eq!(root_group.code(), "ERR_PRIVSEP_INVALID_ARGUMENT");
        assert!(root_group.to_string().contains("gid 0"), "{}", root_group);
    }

    #[test]
    fn access_is_checked_as_the_user() {
        let ids = resolve("nobody", None).unwrap();
        let readable = |paths: &[&str]| paths.iter().map(|p| p.to_string()).collect::<Vec<_>>();
        check_access("nobody", &ids, "/bin/sh", "/", &readable(&["/etc/passwd"])).unwrap();
        let err = check_access(
            "nobody",
            &ids,
            "/bin/sh",
            "/",
            &readable(&["/etc/passwd", "/etc/shadow"]),
        )
        .unwrap_err();
        assert_eq!(err.code(), "ERR_PRIVSEP_NO_ACCESS");
        let message = err.to_string();
        assert!(
            message.contains("read /etc/shadow") && message.contains("\"nobody\""),
            "{}",
            message
        );
        let err = check_access("nobody", &ids, "/etc/passwd", "/", &[]).unwrap_err();
        assert!(err.to_string().contains("execute /etc/passwd"), "{}", err);
        let err = check_access("nobody", &ids, "/bin/sh", "/root", &[]).unwrap_err();
        assert!(err.to_string().contains("enter /root"), "{}", err);
    }
}
