//! The privsep addon: what JavaScript can call (see `src/native.ts` for the same list with
//! types), argument conversion, and every Rust error or panic turned into a thrown JS Error
//! with a `code`.

mod js;

use js::{Cx, Fail};
use privsep_core::protocol::{self, Entry, Passed};
use privsep_core::socket::{self, Endpoint};
use privsep_core::spawn::{self, Command, ExitStatus};
use privsep_core::Result;
use privsep_node_api::*;
use std::os::raw::c_void;
use std::ptr;

/// `parseAddress(network, address): string`: the canonical form, or a throw.
unsafe extern "C" fn parse_address(env: napi_env, info: napi_callback_info) -> napi_value {
    js::export(env, info, |cx, args| {
        let endpoint = Endpoint::parse(&cx.string(args[0], "network")?, &cx.string(args[1], "address")?)?;
        cx.create_string(&endpoint.to_string())
    })
}

/// `listen(network, address, backlog): number`: a bound (and listening) socket's fd.
unsafe extern "C" fn listen(env: napi_env, info: napi_callback_info) -> napi_value {
    js::export(env, info, |cx, args| {
        let endpoint = Endpoint::parse(&cx.string(args[0], "network")?, &cx.string(args[1], "address")?)?;
        let fd = socket::listen(&endpoint, cx.int(args[2], "backlog")?)?;
        cx.create_number(fd as f64)
    })
}

/// `restore(pid, fds, files, ppid): null | [fd, kind, value][]`: decodes the protocol
/// variables (undefined when unset) and validates every descriptor.
unsafe extern "C" fn restore(env: napi_env, info: napi_callback_info) -> napi_value {
    js::export(env, info, |cx, args| {
        let pid = cx.optional_string(args[0], protocol::PID)?;
        let fds = cx.optional_string(args[1], protocol::FDS)?;
        let files = cx.optional_string(args[2], protocol::FILES)?;
        let ppid = cx.int(args[3], "ppid")? as u32;
        let entries = match protocol::decode(pid.as_deref(), fds.as_deref(), files.as_deref(), ppid)? {
            None => return cx.null(),
            Some(entries) => entries,
        };
        protocol::restore(&entries)?;
        let rows = entries
            .iter()
            .map(|e| {
                cx.array(&[
                    cx.create_number(e.fd as f64)?,
                    cx.create_string(e.passed.kind())?,
                    cx.create_string(&e.passed.value())?,
                ])
            })
            .collect::<std::result::Result<Vec<_>, Fail>>()?;
        cx.array(&rows)
    })
}

/// `spawn({ program, argv, env, passed: [fd, kind, value][], user, group?, umask? }): number`.
unsafe extern "C" fn spawn_child(env: napi_env, info: napi_callback_info) -> napi_value {
    js::export(env, info, |cx, args| {
        let options = args[0];
        let passed = cx
            .elements(cx.property(options, "passed")?, "passed")?
            .into_iter()
            .map(|row| {
                let row = cx.elements(row, "passed entry")?;
                if row.len() != 3 {
                    return Err(Fail::invalid("passed entries are [fd, kind, value]"));
                }
                let passed = Passed::parse(&cx.string(row[1], "kind")?, &cx.string(row[2], "value")?)?;
                Ok(Entry {
                    fd: cx.int(row[0], "fd")?,
                    passed,
                })
            })
            .collect::<std::result::Result<Vec<_>, Fail>>()?;
        let umask = cx.optional_number(cx.property(options, "umask")?, "umask")?;
        let command = Command {
            program: cx.string(cx.property(options, "program")?, "program")?,
            argv: cx.strings(cx.property(options, "argv")?, "argv")?,
            env: cx.strings(cx.property(options, "env")?, "env")?,
            passed,
            user: cx.string(cx.property(options, "user")?, "user")?,
            group: cx.optional_string(cx.property(options, "group")?, "group")?,
            umask: umask.map(|m| m as u32),
        };
        cx.create_number(spawn::spawn(&command)? as f64)
    })
}

struct WaitJob {
    pid: u32,
    deferred: napi_deferred,
    work: napi_async_work,
    status: Option<Result<ExitStatus>>,
}

/// `wait(pid): Promise<[code | null, signal | null]>`: waits on a libuv pool thread.
unsafe extern "C" fn wait(env: napi_env, info: napi_callback_info) -> napi_value {
    js::export(env, info, |cx, args| {
        let pid = cx.int(args[0], "pid")? as u32;
        let mut deferred = ptr::null_mut();
        let mut promise = ptr::null_mut();
        cx.check(napi_create_promise(env, &mut deferred, &mut promise))?;
        let job = Box::into_raw(Box::new(WaitJob {
            pid,
            deferred,
            work: ptr::null_mut(),
            status: None,
        }));
        let name = cx.create_string("privsep:wait")?;
        let created = napi_create_async_work(
            env,
            ptr::null_mut(),
            name,
            Some(wait_execute),
            Some(wait_complete),
            job.cast(),
            &mut (*job).work,
        );
        if created != NAPI_OK || napi_queue_async_work(env, (*job).work) != NAPI_OK {
            drop(Box::from_raw(job));
            return Err(Fail::Napi);
        }
        Ok(promise)
    })
}

unsafe extern "C" fn wait_execute(_env: napi_env, data: *mut c_void) {
    // SAFETY: `data` is the WaitJob from `wait`, touched only by this thread until complete.
    let job = &mut *(data as *mut WaitJob);
    job.status = Some(std::panic::catch_unwind(|| spawn::wait(job.pid)).unwrap_or_else(|_| {
        Err(privsep_core::Error::invalid(
            "ERR_PRIVSEP_INTERNAL",
            "panic while waiting for the child",
        ))
    }));
}

unsafe extern "C" fn wait_complete(env: napi_env, _status: napi_status, data: *mut c_void) {
    // SAFETY: `data` is the boxed WaitJob from `wait`; complete runs once, on the JS thread.
    let job = Box::from_raw(data as *mut WaitJob);
    let cx = Cx::new(env);
    let outcome = match job.status {
        Some(Ok(status)) => {
            let number = |n: Option<i32>| n.map_or_else(|| cx.null(), |n| cx.create_number(n as f64));
            number(status.code).and_then(|c| number(status.signal).and_then(|s| cx.array(&[c, s])))
        }
        Some(Err(err)) => Err(Fail::Core(err)),
        None => Err(Fail::invalid("the wait was cancelled")),
    };
    match outcome {
        Ok(value) => napi_resolve_deferred(env, job.deferred, value),
        Err(fail) => napi_reject_deferred(env, job.deferred, cx.error(fail)),
    };
    napi_delete_async_work(env, job.work);
}

/// `dieBySignal(signal): never`.
unsafe extern "C" fn die_by_signal(env: napi_env, info: napi_callback_info) -> napi_value {
    js::export(env, info, |cx, args| spawn::die_by_signal(cx.int(args[0], "signal")?))
}

/// `close(fd): void`.
unsafe extern "C" fn close(env: napi_env, info: napi_callback_info) -> napi_value {
    js::export(env, info, |cx, args| {
        socket::close(cx.int(args[0], "fd")?)?;
        cx.undefined()
    })
}

/// Node's entry point: fills `exports` with the functions above.
///
/// # Safety
/// Called by Node with a valid environment and exports object.
#[no_mangle]
pub unsafe extern "C" fn napi_register_module_v1(env: napi_env, exports: napi_value) -> napi_value {
    let cx = Cx::new(env);
    let functions: [(&str, napi_callback); 7] = [
        ("parseAddress", Some(parse_address)),
        ("listen", Some(listen)),
        ("restore", Some(restore)),
        ("spawn", Some(spawn_child)),
        ("wait", Some(wait)),
        ("dieBySignal", Some(die_by_signal)),
        ("close", Some(close)),
    ];
    for (name, function) in functions {
        if cx.define(exports, name, function).is_err() {
            return ptr::null_mut();
        }
    }
    exports
}
