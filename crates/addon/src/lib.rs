//! The privsep addon: what JavaScript can call (see `src/native.ts` for the same list with
//! types), argument conversion, and every Rust error or panic turned into a thrown JS Error
//! with a `code`.

mod activation;
mod broker;
mod js;
mod process;
mod region;
mod user;

// Every raw system call: core's, and on Unix the Node side's own beside them.
#[cfg(unix)]
#[path = "sys_unix.rs"]
mod sys;
#[cfg(windows)]
use privsep_core::sys;

use js::{Cx, Fail};
use privsep_core::broker::Request;
use privsep_core::fdstore;
use privsep_core::handoff::{self, Handoff, Report};
use privsep_core::notify;
use privsep_core::paths;
use privsep_core::protocol::{self, Entry, Passed};
use privsep_core::socket::{self, Endpoint};
use privsep_core::{Error, Result};
use privsep_node_api::*;
use privsep_windows::restricted::{self, Child};
use std::os::raw::c_void;
use std::panic::AssertUnwindSafe;
use std::ptr;

/// `parseAddress(network, address): string`: the canonical form, or a throw.
unsafe extern "C" fn parse_address(env: napi_env, info: napi_callback_info) -> napi_value {
    js::export(env, info, |cx, args| {
        let endpoint = Endpoint::parse(&cx.string(args[0], "network")?, &cx.string(args[1], "address")?)?;
        cx.create_string(&endpoint.to_string())
    })
}

/// `listen(network, address, backlog, mode?): number`: a bound (and listening) socket's fd.
unsafe extern "C" fn listen(env: napi_env, info: napi_callback_info) -> napi_value {
    js::export(env, info, |cx, args| {
        let endpoint = Endpoint::parse(&cx.string(args[0], "network")?, &cx.string(args[1], "address")?)?;
        let mode = cx.optional_number(args[3], "mode")?.map(|m| m as u32);
        let fd = socket::listen(&endpoint, cx.int(args[2], "backlog")?, mode)?;
        cx.create_number(fd as f64)
    })
}

/// `restore(pid, fds, files, ppid): null | [[fd, kind, value][], channel | null]`: decodes the
/// protocol variables (undefined when unset), validates every descriptor, and finds the
/// broker channel at 3 + their number. A child of privsep first makes itself not dumpable
/// (it is since exec: see `spawn::exec_gid`), so no other process of its uid can take its
/// descriptors, then sets its real gid back and its parent-death signal again.
unsafe extern "C" fn restore(env: napi_env, info: napi_callback_info) -> napi_value {
    js::export(env, info, |cx, args| {
        let pid = cx.optional_string(args[0], protocol::PID)?;
        let fds = cx.optional_string(args[1], protocol::FDS)?;
        let files = cx.optional_string(args[2], protocol::FILES)?;
        let ppid = cx.int(args[3], "ppid")? as u32;
        if pid.is_some() || fds.is_some() || files.is_some() {
            process::set_not_dumpable()?;
        }
        let entries = match protocol::decode(pid.as_deref(), fds.as_deref(), files.as_deref(), ppid)? {
            None => return cx.null(),
            Some(entries) => entries,
        };
        process::settle_child(ppid)?;
        process::restore(&entries)?;
        let channel_fd = 3 + entries.len() as i32;
        let channel = if broker::is_channel(channel_fd) {
            cx.create_number(channel_fd as f64)?
        } else {
            cx.null()?
        };
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
        cx.array(&[cx.array(&rows)?, channel])
    })
}

/// `[fd, kind, value][]` as protocol entries.
fn passed_entries(cx: &Cx, array: napi_value) -> std::result::Result<Vec<Entry>, Fail> {
    cx.elements(array, "passed")?
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
        .collect()
}

/// `handOff({ program, argv, env, user, group?, umask?, signals, reportFd, parentPid,
/// passed: [fd, kind, value][], allow: [kind, value][], readable: string[] }): number`: resolves the user, checks as
/// that user that `program` can be executed and `readable` read, and returns a close-on-exec
/// descriptor of the encoded hand-off description.
unsafe extern "C" fn hand_off(env: napi_env, info: napi_callback_info) -> napi_value {
    js::export(env, info, |cx, args| {
        let options = args[0];
        let passed = passed_entries(cx, cx.property(options, "passed")?)?;
        let signals = cx
            .elements(cx.property(options, "signals")?, "signals")?
            .into_iter()
            .map(|s| cx.int(s, "signal"))
            .collect::<std::result::Result<Vec<_>, Fail>>()?;
        let user = cx.string(cx.property(options, "user")?, "user")?;
        let group = cx.optional_string(cx.property(options, "group")?, "group")?;
        let ids = user::resolve(&user, group.as_deref())?;
        let program = cx.string(cx.property(options, "program")?, "program")?;
        let readable = cx.strings(cx.property(options, "readable")?, "readable")?;
        let cwd = cx.string(cx.property(options, "cwd")?, "cwd")?;
        user::check_access(&user, &ids, &program, &cwd, &readable)?;
        let umask = cx.optional_number(cx.property(options, "umask")?, "umask")?;
        let mut allow_entries = Vec::new();
        let mut allow_folders = Vec::new();
        for row in cx.elements(cx.property(options, "allow")?, "allow")? {
            let row = cx.elements(row, "allow entry")?;
            if row.len() != 2 {
                return Err(Fail::invalid("allow entries are [kind, value]"));
            }
            let (kind, value) = (cx.string(row[0], "kind")?, cx.string(row[1], "value")?);
            if kind == "folder" {
                allow_folders.push(value);
            } else {
                allow_entries.push(Passed::parse(&kind, &value)?);
            }
        }
        let child = handoff::Child {
            program,
            argv: cx.strings(cx.property(options, "argv")?, "argv")?,
            env: cx.strings(cx.property(options, "env")?, "env")?,
            user,
            ids,
            // Not a whole number in range: a value the decoder below refuses.
            umask: umask.map_or(handoff::KEEP_UMASK, |m| {
                if m.fract() == 0.0 && (0.0..=511.0).contains(&m) {
                    m as u32
                } else {
                    handoff::KEEP_UMASK - 1
                }
            }),
            cwd,
            sandbox: sandbox_profile(cx, cx.property(options, "sandbox")?)?,
        };
        let handoff = Handoff {
            child,
            signals,
            report_fd: cx.int(cx.property(options, "reportFd")?, "reportFd")?,
            parent_pid: cx.int(cx.property(options, "parentPid")?, "parentPid")? as u32,
            passed,
            allow: allow_entries,
            allow_folders,
            notify_socket: cx
                .optional_string(cx.property(options, "notifySocket")?, "notifySocket")?
                .unwrap_or_default(),
            upgrade_signal: cx
                .optional_number(cx.property(options, "upgradeSignal")?, "upgradeSignal")?
                .map_or(0, |n| n as i32),
            ready_timeout_ms: cx
                .optional_number(cx.property(options, "readyTimeoutMs")?, "readyTimeoutMs")?
                .map_or(30_000, |n| n as u32),
        };
        // What the monitor will refuse, refused here, where it can still be thrown.
        handoff::decode(&handoff::encode(&handoff))?;
        cx.create_number(process::handoff_file(&handoff)? as f64)
    })
}

/// The hand-off's sandbox from `{ flags, read, execute, write, connect }` (src/sandbox.ts).
fn sandbox_profile(cx: &Cx, profile: napi_value) -> std::result::Result<privsep_core::spawn::Sandbox, Fail> {
    Ok(privsep_core::spawn::Sandbox {
        flags: cx.int(cx.property(profile, "flags")?, "sandbox flags")? as u32,
        read: cx.strings(cx.property(profile, "read")?, "sandbox read")?,
        execute: cx.strings(cx.property(profile, "execute")?, "sandbox execute")?,
        write: cx.strings(cx.property(profile, "write")?, "sandbox write")?,
        connect: cx
            .elements(cx.property(profile, "connect")?, "sandbox connect")?
            .into_iter()
            .map(|port| match cx.int(port, "port")? {
                port @ 1..=65535 => Ok(port as u16),
                port => Err(Fail::invalid(&format!(
                    "sandbox connect port {} is not in 1..65535",
                    port
                ))),
            })
            .collect::<std::result::Result<Vec<_>, Fail>>()?,
    })
}

/// `execMonitor(path, handoffFd, keep: number[]): never`: replaces this process with the
/// monitor; throws only if the exec failed.
unsafe extern "C" fn exec_monitor(env: napi_env, info: napi_callback_info) -> napi_value {
    js::export(env, info, |cx, args| {
        let path = cx.string(args[0], "path")?;
        let fd = cx.int(args[1], "handoffFd")?;
        let mut keep = cx
            .elements(args[2], "keep")?
            .into_iter()
            .map(|v| cx.int(v, "fd"))
            .collect::<std::result::Result<Vec<_>, Fail>>()?;
        keep.push(fd);
        Err(Fail::Core(process::exec_keeping(
            &path,
            &[path.clone(), fd.to_string()],
            &keep,
        )))
    })
}

/// `activated(LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES, pid): null | [fd, name, kind, address][]`:
/// the sockets systemd passed to this process, checked (crates/addon/src/activation.rs).
unsafe extern "C" fn activated(env: napi_env, info: napi_callback_info) -> napi_value {
    js::export(env, info, |cx, args| {
        let pid = cx.optional_string(args[0], activation::PID)?;
        let fds = cx.optional_string(args[1], activation::FDS)?;
        let names = cx.optional_string(args[2], activation::FDNAMES)?;
        let own = cx.int(args[3], "pid")? as u32;
        let sockets = match activation::decode(pid.as_deref(), fds.as_deref(), names.as_deref(), own)? {
            None => return cx.null(),
            Some(sockets) => sockets,
        };
        let rows = sockets
            .iter()
            .map(|a| {
                cx.array(&[
                    cx.create_number(a.fd as f64)?,
                    cx.create_string(&a.name)?,
                    cx.create_string(a.kind)?,
                    cx.create_string(&a.address)?,
                ])
            })
            .collect::<std::result::Result<Vec<_>, Fail>>()?;
        cx.array(&rows)
    })
}

/// `matches(fd, network, address): boolean`: whether socket `fd` is what `listen(network,
/// address)` declares (type, listening, family, address).
unsafe extern "C" fn matches(env: napi_env, info: napi_callback_info) -> napi_value {
    js::export(env, info, |cx, args| {
        let endpoint = Endpoint::parse(&cx.string(args[1], "network")?, &cx.string(args[2], "address")?)?;
        cx.boolean(activation::matches(cx.int(args[0], "fd")?, &endpoint))
    })
}

/// `notify(socket, state): void`: sends a systemd notification from this process (no monitor).
unsafe extern "C" fn notify_systemd(env: napi_env, info: napi_callback_info) -> napi_value {
    js::export(env, info, |cx, args| {
        notify::send(&cx.string(args[0], "socket")?, &cx.string(args[1], "state")?)?;
        cx.undefined()
    })
}

/// `storeName(network, address): string | null`: the name listener `network address` is kept
/// under in systemd's file descriptor store; null when too long (crates/core/src/fdstore.rs).
unsafe extern "C" fn store_name(env: napi_env, info: napi_callback_info) -> napi_value {
    js::export(env, info, |cx, args| {
        match fdstore::name(&cx.string(args[0], "network")?, &cx.string(args[1], "address")?) {
            Some(name) => cx.create_string(&name),
            None => cx.null(),
        }
    })
}

/// `fdStore(socket, name, fd | null): void`: sends listener `fd` to systemd's file descriptor
/// store under `name` (`FDSTORE=1`), or with null removes what is stored under it
/// (`FDSTOREREMOVE=1`).
unsafe extern "C" fn fd_store(env: napi_env, info: napi_callback_info) -> napi_value {
    js::export(env, info, |cx, args| {
        let socket = cx.string(args[0], "socket")?;
        let name = cx.string(args[1], "name")?;
        match cx.optional_number(args[2], "fd")? {
            Some(fd) => fdstore::store(&socket, &name, fd as i32)?,
            None => notify::send(&socket, &format!("FDSTOREREMOVE=1\nFDNAME={}", name))?,
        }
        cx.undefined()
    })
}

/// `openFile(path): number`: as root, a descriptor for reading the regular file at absolute
/// `path`, resolved safely (crates/core/src/paths.rs).
unsafe extern "C" fn open_file(env: napi_env, info: napi_callback_info) -> napi_value {
    js::export(env, info, |cx, args| {
        let fd = paths::open_file(&cx.string(args[0], "path")?)?;
        cx.create_number(fd as f64)
    })
}

/// `readReport(text): [pid] | [code, errno, syscall, message] | null`: the monitor's report,
/// decoded; null for anything that is not one.
unsafe extern "C" fn read_report(env: napi_env, info: napi_callback_info) -> napi_value {
    js::export(env, info, |cx, args| {
        match handoff::decode_report(cx.string(args[0], "report")?.as_bytes()) {
            None => cx.null(),
            Some(Report::Started(pid)) => cx.array(&[cx.create_number(pid as f64)?]),
            Some(Report::Failed {
                code,
                errno,
                syscall,
                message,
            }) => cx.array(&[
                cx.create_string(&code)?,
                cx.create_number(errno as f64)?,
                cx.create_string(&syscall)?,
                cx.create_string(&message)?,
            ]),
        }
    })
}

/// `decodeMessage(format, bytes): number[]`: a broker message (`'request'` or `'reply'`)
/// decoded by the monitor's or the child's decoder and encoded again, or the decoder's throw.
/// For the property tests: those decoders otherwise run only in the monitor, and on a pool
/// thread behind a SEQPACKET channel, which Node cannot open.
unsafe extern "C" fn decode_message(env: napi_env, info: napi_callback_info) -> napi_value {
    js::export(env, info, |cx, args| {
        let format = cx.string(args[0], "format")?;
        let bytes = cx
            .elements(args[1], "bytes")?
            .into_iter()
            .map(|b| match cx.int(b, "byte")? {
                b @ 0..=255 => Ok(b as u8),
                _ => Err(Fail::invalid("bytes are numbers from 0 to 255")),
            })
            .collect::<std::result::Result<Vec<u8>, Fail>>()?;
        let encoded = match format.as_str() {
            "request" => broker::encode_request(&broker::decode_request(&bytes)?),
            "reply" => broker::encode_reply(&broker::decode_reply(&bytes)?),
            _ => return Err(Fail::invalid("the format is 'request' or 'reply'")),
        };
        let items = encoded
            .iter()
            .map(|&b| cx.create_number(b as f64))
            .collect::<std::result::Result<Vec<_>, Fail>>()?;
        cx.array(&items)
    })
}

/// `brokerRequest(channel, id, ['file', path] | ['listener', network, address, backlog, mode]):
/// Promise<number>`: sends the request now (never blocking), waits for its reply on a libuv
/// pool thread (the event loop never waits), and resolves with the checked descriptor.
unsafe extern "C" fn broker_request(env: napi_env, info: napi_callback_info) -> napi_value {
    js::export(env, info, |cx, args| {
        let channel = cx.int(args[0], "channel")?;
        let id = cx.int(args[1], "id")? as u32;
        let what = cx.elements(args[2], "request")?;
        let request =
            match (cx.string(what[0], "kind")?.as_str(), what.len()) {
                ("file", 2) => Request::File {
                    id,
                    path: cx.string(what[1], "path")?,
                },
                ("listener", 5) => Request::Listener {
                    id,
                    endpoint: Endpoint::parse(&cx.string(what[1], "network")?, &cx.string(what[2], "address")?)?,
                    backlog: cx.int(what[3], "backlog")? as u32,
                    mode: cx
                        .optional_number(what[4], "mode")?
                        .map_or(broker::NO_MODE, |m| m as u32),
                },
                ("upgrade", 1) => Request::Upgrade { id },
                ("notify", 2) => Request::Notify {
                    id,
                    state: cx.string(what[1], "state")?,
                },
                _ => return Err(Fail::invalid(
                    "a request is ['file', path], ['listener', network, address, backlog, mode] or ['notify', state]",
                )),
            };
        broker::send_request(channel, &request)?;
        on_pool(cx, "privsep:broker", "asking the broker", move || {
            broker::await_reply(channel, &request).map(|fd| fd as f64)
        })
    })
}

/// Work for a libuv pool thread whose outcome settles a promise: a number, or an error.
struct PoolJob {
    task: Option<Box<dyn FnOnce() -> Result<f64> + Send>>,
    /// What the task does, for the error of a panic or a cancelled job.
    what: &'static str,
    deferred: napi_deferred,
    work: napi_async_work,
    outcome: Option<Result<f64>>,
}

/// Runs `task` on a libuv pool thread (the event loop never waits); the promise returned
/// resolves with its number or rejects with its error, on the JS thread.
unsafe fn on_pool(
    cx: &Cx,
    name: &str,
    what: &'static str,
    task: impl FnOnce() -> Result<f64> + Send + 'static,
) -> std::result::Result<napi_value, Fail> {
    let env = cx.env();
    let mut deferred = ptr::null_mut();
    let mut promise = ptr::null_mut();
    cx.check(napi_create_promise(env, &mut deferred, &mut promise))?;
    let job = Box::into_raw(Box::new(PoolJob {
        task: Some(Box::new(task)),
        what,
        deferred,
        work: ptr::null_mut(),
        outcome: None,
    }));
    let name = cx.create_string(name)?;
    let created = napi_create_async_work(
        env,
        ptr::null_mut(),
        name,
        Some(pool_execute),
        Some(pool_complete),
        job.cast(),
        &mut (*job).work,
    );
    if created != NAPI_OK || napi_queue_async_work(env, (*job).work) != NAPI_OK {
        drop(Box::from_raw(job));
        return Err(Fail::Napi);
    }
    Ok(promise)
}

unsafe extern "C" fn pool_execute(_env: napi_env, data: *mut c_void) {
    // SAFETY: `data` is the PoolJob from `on_pool`, touched only here until complete.
    let job = &mut *(data as *mut PoolJob);
    let what = job.what;
    job.outcome = job.task.take().map(|task| {
        std::panic::catch_unwind(AssertUnwindSafe(task))
            .unwrap_or_else(|_| Err(Error::invalid("ERR_PRIVSEP_INTERNAL", format!("panic while {}", what))))
    });
}

unsafe extern "C" fn pool_complete(env: napi_env, _status: napi_status, data: *mut c_void) {
    // SAFETY: `data` is the boxed PoolJob; complete runs once, on the JS thread.
    let job = Box::from_raw(data as *mut PoolJob);
    let cx = Cx::new(env);
    let outcome = match job.outcome {
        Some(Ok(value)) => cx.create_number(value),
        Some(Err(err)) => Err(Fail::Core(err)),
        None => Err(Fail::invalid(&format!("cancelled while {}", job.what))),
    };
    match outcome {
        Ok(value) => napi_resolve_deferred(env, job.deferred, value),
        Err(fail) => napi_reject_deferred(env, job.deferred, cx.error(fail)),
    };
    napi_delete_async_work(env, job.work);
}

/// `spawnRestricted(program, argv, env, passed: [fd, 'file', path][]): [pid, process, job]`:
/// Windows, in an elevated process: starts the program as a restricted child with the files
/// at its descriptors 3.. (crates/windows/src/restricted.rs).
unsafe extern "C" fn spawn_restricted(env: napi_env, info: napi_callback_info) -> napi_value {
    js::export(env, info, |cx, args| {
        let program = cx.string(args[0], "program")?;
        let argv = cx.strings(args[1], "argv")?;
        let environment = cx.strings(args[2], "env")?;
        let passed = passed_entries(cx, args[3])?;
        let child = restricted::spawn(&program, &argv, &environment, &passed)?;
        cx.array(&[
            cx.create_number(child.pid as f64)?,
            cx.create_number(child.process as f64)?,
            cx.create_number(child.job as f64)?,
        ])
    })
}

fn child_of(cx: &Cx, args: &[napi_value]) -> std::result::Result<Child, Fail> {
    Ok(Child {
        pid: 0,
        process: cx.number(args[0], "process")? as usize,
        job: cx.optional_number(args[1], "job")?.unwrap_or(0.0) as usize,
    })
}

/// `exitWithChild(process): never`: waits for the child, ignoring Ctrl+C and Ctrl+Break (the
/// child gets them from the console), then ends this process with the child's exit code.
/// No JavaScript runs in this process after the call; it throws only if the wait failed.
unsafe extern "C" fn exit_with_child(env: napi_env, info: napi_callback_info) -> napi_value {
    js::export(env, info, |cx, args| {
        Err(Fail::Core(restricted::exit_with(child_of(cx, args)?)))
    })
}

/// `waitChild(process, job): Promise<number>`: the child's exit code, waited for on a libuv
/// pool thread; both handles are closed then.
unsafe extern "C" fn wait_child(env: napi_env, info: napi_callback_info) -> napi_value {
    js::export(env, info, |cx, args| {
        let child = child_of(cx, args)?;
        on_pool(cx, "privsep:wait", "waiting for the child", move || {
            restricted::wait(child).map(|code| code as f64)
        })
    })
}

/// `processToken(): { elevated, integrity, user, groups: [sid, attributes][], privileges:
/// [name, attributes][] }`: Windows, this process's token (what the tests read back).
unsafe extern "C" fn process_token(env: napi_env, info: napi_callback_info) -> napi_value {
    js::export(env, info, |cx, _args| {
        let token = restricted::token()?;
        let pairs = |rows: &[(String, u32)]| {
            let items = rows
                .iter()
                .map(|(name, attributes)| cx.array(&[cx.create_string(name)?, cx.create_number(*attributes as f64)?]))
                .collect::<std::result::Result<Vec<_>, Fail>>()?;
            cx.array(&items)
        };
        cx.object(&[
            ("elevated", cx.boolean(token.elevated)?),
            ("integrity", cx.create_number(token.integrity as f64)?),
            ("user", cx.create_string(&token.user)?),
            ("groups", pairs(&token.groups)?),
            ("privileges", pairs(&token.privileges)?),
        ])
    })
}

/// `openHandles(): [handle, path][]`: Windows, every handle of this process that names a
/// file (what the tests check a child inherited).
unsafe extern "C" fn open_handles(env: napi_env, info: napi_callback_info) -> napi_value {
    js::export(env, info, |cx, _args| {
        let rows = restricted::open_files()?
            .iter()
            .map(|(handle, path)| cx.array(&[cx.create_number(*handle as f64)?, cx.create_string(path)?]))
            .collect::<std::result::Result<Vec<_>, Fail>>()?;
        cx.array(&rows)
    })
}

/// `leakInheritable(fd): number`: Windows, for tests: an inheritable duplicate of descriptor
/// `fd`'s handle, never closed (a decoy a restricted child must not inherit).
unsafe extern "C" fn leak_inheritable(env: napi_env, info: napi_callback_info) -> napi_value {
    js::export(env, info, |cx, args| {
        let handle = restricted::leak_inheritable(cx.int(args[0], "fd")?)?;
        cx.create_number(handle as f64)
    })
}

/// `queueSignal(pid, signal, timeoutMs): number | null`: queues `signal` to `pid` and waits
/// (blocking) for its answer: `privsep reload` (docs/PROTOCOL.md, "Reload"). null: no answer in time.
unsafe extern "C" fn queue_signal(env: napi_env, info: napi_callback_info) -> napi_value {
    js::export(env, info, |cx, args| {
        let pid = cx.int(args[0], "pid")?;
        let timeout = cx.int(args[2], "timeoutMs")?;
        if pid <= 0 || timeout < 0 {
            return Err(Fail::invalid(
                "queueSignal takes a pid above 0 and a timeout of 0 or more",
            ));
        }
        match process::queue_and_wait(pid as u32, cx.int(args[1], "signal")?, timeout as u32)? {
            Some(answer) => cx.create_number(answer as f64),
            None => cx.null(),
        }
    })
}

/// `metricsRegion(fd): ArrayBuffer | null`: the metrics region at `fd` mapped shared (for
/// the rest of the process), or null when `fd` is not one (`region::is_region`). The caller
/// closes `fd`; the mapping stays.
unsafe extern "C" fn metrics_region(env: napi_env, info: napi_callback_info) -> napi_value {
    js::export(env, info, |cx, args| {
        let fd = cx.int(args[0], "fd")?;
        if !region::is_region(fd) {
            return cx.null();
        }
        let data = region::map(fd)?;
        let mut buffer = ptr::null_mut();
        // SAFETY: `data` is region::SIZE writable bytes mapped for the rest of the process
        // (never unmapped, so no finalizer); `buffer` is a valid out pointer. (The block is
        // redundant inside this unsafe fn for rustc 1.63, which says so, and not for later ones.)
        #[allow(unused_unsafe)]
        let status = unsafe {
            napi_create_external_arraybuffer(env, data.cast(), region::SIZE, None, ptr::null_mut(), &mut buffer)
        };
        cx.check(status)?;
        Ok(buffer)
    })
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
    let functions: [(&str, napi_callback); 23] = [
        ("parseAddress", Some(parse_address)),
        ("listen", Some(listen)),
        ("restore", Some(restore)),
        ("openFile", Some(open_file)),
        ("notify", Some(notify_systemd)),
        ("storeName", Some(store_name)),
        ("fdStore", Some(fd_store)),
        ("activated", Some(activated)),
        ("matches", Some(matches)),
        ("brokerRequest", Some(broker_request)),
        ("handOff", Some(hand_off)),
        ("execMonitor", Some(exec_monitor)),
        ("readReport", Some(read_report)),
        ("close", Some(close)),
        ("metricsRegion", Some(metrics_region)),
        ("queueSignal", Some(queue_signal)),
        ("decodeMessage", Some(decode_message)),
        ("spawnRestricted", Some(spawn_restricted)),
        ("waitChild", Some(wait_child)),
        ("exitWithChild", Some(exit_with_child)),
        ("processToken", Some(process_token)),
        ("openHandles", Some(open_handles)),
        ("leakInheritable", Some(leak_inheritable)),
    ];
    for (name, function) in functions {
        if cx.define(exports, name, function).is_err() {
            return ptr::null_mut();
        }
    }
    exports
}
