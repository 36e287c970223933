//! Users and groups by name (`getpwnam_r`, `getgrnam_r`, `getgrouplist`).

use super::*;

/// Runs a `get*_r` lookup with a growing buffer; `None` when there is no such entry.
fn lookup_r<T>(
    syscall: &'static str,
    mut call: impl FnMut(&mut Vec<c_char>) -> (c_int, Option<T>),
) -> SysResult<Option<T>> {
    let mut buf: Vec<c_char> = vec![0; 4096];
    loop {
        match call(&mut buf) {
            (0, found) => return Ok(found),
            (libc::ERANGE, _) if buf.len() < 1 << 20 => buf.resize(buf.len() * 4, 0),
            (errno, _) => return Err(SysError::new(syscall, io::Error::from_raw_os_error(errno))),
        }
    }
}

/// `(uid, gid)` of the user `name`.
pub fn user_by_name(name: &CStr) -> SysResult<Option<(u32, u32)>> {
    lookup_r("getpwnam_r", |buf| {
        // SAFETY: all-zero is a valid passwd; getpwnam_r fills it and points into `buf`.
        let mut pw: libc::passwd = unsafe { mem::zeroed() };
        let mut found: *mut libc::passwd = ptr::null_mut();
        // SAFETY: every pointer is valid for the sizes given.
        let ret = unsafe { libc::getpwnam_r(name.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut found) };
        (
            ret,
            if found.is_null() {
                None
            } else {
                Some((pw.pw_uid, pw.pw_gid))
            },
        )
    })
}

pub fn group_by_name(name: &CStr) -> SysResult<Option<u32>> {
    lookup_r("getgrnam_r", |buf| {
        // SAFETY: all-zero is a valid group; getgrnam_r fills it and points into `buf`.
        let mut gr: libc::group = unsafe { mem::zeroed() };
        let mut found: *mut libc::group = ptr::null_mut();
        // SAFETY: every pointer is valid for the sizes given.
        let ret = unsafe { libc::getgrnam_r(name.as_ptr(), &mut gr, buf.as_mut_ptr(), buf.len(), &mut found) };
        (ret, if found.is_null() { None } else { Some(gr.gr_gid) })
    })
}

/// The groups of user `name` with primary group `gid` included.
pub fn group_list(name: &CStr, gid: u32) -> SysResult<Vec<u32>> {
    let mut count: c_int = 32;
    loop {
        let mut groups: Vec<libc::gid_t> = vec![0; count as usize];
        let asked = count;
        // SAFETY: `groups` has room for `count` entries. macOS takes c_int pointers of the same size.
        let ret = unsafe { libc::getgrouplist(name.as_ptr(), gid as _, groups.as_mut_ptr() as *mut _, &mut count) };
        if ret >= 0 {
            groups.truncate(count as usize);
            return Ok(groups);
        }
        if asked >= 1 << 16 {
            return Err(SysError::new("getgrouplist", io::Error::from_raw_os_error(libc::E2BIG)));
        }
        count = count.max(asked * 2);
    }
}
