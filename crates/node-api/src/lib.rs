//! The Node-API functions privsep uses, declared by hand (there is no `napi` crate here).
//!
//! On Unix the symbols resolve from the host executable when the addon is loaded. On Windows
//! they live in the host `.exe` too, but its name is not known at link time (node.exe, an
//! embedder, a renamed binary), so each function is looked up at run time with
//! `GetModuleHandleW(NULL)` + `GetProcAddress` and cached.
#![allow(non_camel_case_types)]

use std::os::raw::{c_char, c_void};

/// A `napi_status`. Kept as an integer: a status this crate does not know must not be UB.
pub type napi_status = i32;
pub const NAPI_OK: napi_status = 0;
pub const NAPI_PENDING_EXCEPTION: napi_status = 10;

pub type napi_valuetype = i32;
pub const NAPI_UNDEFINED: napi_valuetype = 0;
pub const NAPI_NULL: napi_valuetype = 1;
pub const NAPI_NUMBER: napi_valuetype = 3;
pub const NAPI_STRING: napi_valuetype = 4;
pub const NAPI_OBJECT: napi_valuetype = 6;

#[repr(C)]
pub struct napi_env__ {
    _private: [u8; 0],
}
#[repr(C)]
pub struct napi_value__ {
    _private: [u8; 0],
}
#[repr(C)]
pub struct napi_callback_info__ {
    _private: [u8; 0],
}
#[repr(C)]
pub struct napi_deferred__ {
    _private: [u8; 0],
}
#[repr(C)]
pub struct napi_async_work__ {
    _private: [u8; 0],
}
pub type napi_env = *mut napi_env__;
pub type napi_value = *mut napi_value__;
pub type napi_callback_info = *mut napi_callback_info__;
pub type napi_deferred = *mut napi_deferred__;
pub type napi_async_work = *mut napi_async_work__;
pub type napi_callback = Option<unsafe extern "C" fn(napi_env, napi_callback_info) -> napi_value>;
pub type napi_async_execute_callback = Option<unsafe extern "C" fn(napi_env, *mut c_void)>;
pub type napi_async_complete_callback = Option<unsafe extern "C" fn(napi_env, napi_status, *mut c_void)>;
pub type napi_finalize = Option<unsafe extern "C" fn(napi_env, *mut c_void, *mut c_void)>;

/// Declares each function once; the platform decides how it is bound.
macro_rules! node_api {
    ($(pub fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> napi_status;)*) => {
        #[cfg(not(windows))]
        extern "C" {
            $(pub fn $name($($arg: $ty),*) -> napi_status;)*
        }
        $(
            #[cfg(windows)]
            /// # Safety
            /// Same contract as the Node-API function of the same name.
            pub unsafe fn $name($($arg: $ty),*) -> napi_status {
                static ADDRESS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
                let address = windows::lookup(&ADDRESS, concat!(stringify!($name), "\0"));
                // SAFETY: the symbol of this name exported by the host has this signature.
                let f: unsafe extern "C" fn($($ty),*) -> napi_status = std::mem::transmute(address);
                f($($arg),*)
            }
        )*
    };
}

node_api! {
    pub fn napi_create_function(env: napi_env, name: *const c_char, length: usize, cb: napi_callback, data: *mut c_void, result: *mut napi_value) -> napi_status;
    pub fn napi_set_named_property(env: napi_env, object: napi_value, name: *const c_char, value: napi_value) -> napi_status;
    pub fn napi_get_named_property(env: napi_env, object: napi_value, name: *const c_char, result: *mut napi_value) -> napi_status;
    pub fn napi_get_cb_info(env: napi_env, info: napi_callback_info, argc: *mut usize, argv: *mut napi_value, this: *mut napi_value, data: *mut *mut c_void) -> napi_status;
    pub fn napi_typeof(env: napi_env, value: napi_value, result: *mut napi_valuetype) -> napi_status;
    pub fn napi_get_value_string_utf8(env: napi_env, value: napi_value, buf: *mut c_char, bufsize: usize, result: *mut usize) -> napi_status;
    pub fn napi_get_value_double(env: napi_env, value: napi_value, result: *mut f64) -> napi_status;
    pub fn napi_get_array_length(env: napi_env, value: napi_value, result: *mut u32) -> napi_status;
    pub fn napi_get_element(env: napi_env, object: napi_value, index: u32, result: *mut napi_value) -> napi_status;
    pub fn napi_set_element(env: napi_env, object: napi_value, index: u32, value: napi_value) -> napi_status;
    pub fn napi_is_array(env: napi_env, value: napi_value, result: *mut bool) -> napi_status;
    pub fn napi_create_array_with_length(env: napi_env, length: usize, result: *mut napi_value) -> napi_status;
    pub fn napi_create_object(env: napi_env, result: *mut napi_value) -> napi_status;
    pub fn napi_create_string_utf8(env: napi_env, s: *const c_char, length: usize, result: *mut napi_value) -> napi_status;
    pub fn napi_create_double(env: napi_env, value: f64, result: *mut napi_value) -> napi_status;
    pub fn napi_get_undefined(env: napi_env, result: *mut napi_value) -> napi_status;
    pub fn napi_get_null(env: napi_env, result: *mut napi_value) -> napi_status;
    pub fn napi_get_boolean(env: napi_env, value: bool, result: *mut napi_value) -> napi_status;
    pub fn napi_create_error(env: napi_env, code: napi_value, msg: napi_value, result: *mut napi_value) -> napi_status;
    pub fn napi_throw(env: napi_env, error: napi_value) -> napi_status;
    pub fn napi_is_exception_pending(env: napi_env, result: *mut bool) -> napi_status;
    pub fn napi_create_promise(env: napi_env, deferred: *mut napi_deferred, promise: *mut napi_value) -> napi_status;
    pub fn napi_resolve_deferred(env: napi_env, deferred: napi_deferred, resolution: napi_value) -> napi_status;
    pub fn napi_reject_deferred(env: napi_env, deferred: napi_deferred, rejection: napi_value) -> napi_status;
    pub fn napi_create_async_work(env: napi_env, resource: napi_value, resource_name: napi_value, execute: napi_async_execute_callback, complete: napi_async_complete_callback, data: *mut c_void, result: *mut napi_async_work) -> napi_status;
    pub fn napi_queue_async_work(env: napi_env, work: napi_async_work) -> napi_status;
    pub fn napi_delete_async_work(env: napi_env, work: napi_async_work) -> napi_status;
    pub fn napi_create_external_arraybuffer(env: napi_env, data: *mut c_void, length: usize, finalize: napi_finalize, hint: *mut c_void, result: *mut napi_value) -> napi_status;
}

#[cfg(windows)]
mod windows {
    use std::os::raw::{c_char, c_void};
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[link(name = "kernel32")]
    extern "system" {
        fn GetModuleHandleW(name: *const u16) -> *mut c_void;
        fn GetProcAddress(module: *mut c_void, name: *const c_char) -> *mut c_void;
    }

    /// The address of `name` (NUL-terminated) in the host executable, cached in `slot`.
    /// A host without Node-API cannot have loaded this addon, so absence is a bug: abort.
    pub fn lookup(slot: &AtomicUsize, name: &str) -> usize {
        let cached = slot.load(Ordering::Relaxed);
        if cached != 0 {
            return cached;
        }
        // SAFETY: a null name asks for the module of the running executable; `name` is
        // NUL-terminated by the macro that calls us.
        let address = unsafe { GetProcAddress(GetModuleHandleW(std::ptr::null()), name.as_ptr().cast()) } as usize;
        if address == 0 {
            std::process::abort();
        }
        slot.store(address, Ordering::Relaxed);
        address
    }
}
