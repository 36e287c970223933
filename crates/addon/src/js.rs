//! Conversion between JS values and Rust, and the one place errors and panics become throws.

use privsep_core::Error;
use privsep_node_api::*;
use std::ffi::CString;
use std::os::raw::c_char;
use std::panic::{self, AssertUnwindSafe};
use std::ptr;

/// Why an export failed: a core error to throw, or a Node-API call that failed (an
/// exception may already be pending).
pub enum Fail {
    Core(Error),
    Napi,
}

impl Fail {
    pub fn invalid(message: &str) -> Fail {
        Fail::Core(Error::invalid("ERR_PRIVSEP_INVALID_ARGUMENT", message))
    }
}

impl From<Error> for Fail {
    fn from(err: Error) -> Fail {
        Fail::Core(err)
    }
}

pub type JsResult<T> = Result<T, Fail>;

/// Most arguments any export takes.
const MAX_ARGS: usize = 4;

/// Runs an export body with its arguments, catching errors and panics into a JS throw.
pub fn export(
    env: napi_env,
    info: napi_callback_info,
    body: impl FnOnce(&Cx, &[napi_value; MAX_ARGS]) -> JsResult<napi_value>,
) -> napi_value {
    let cx = Cx::new(env);
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        let mut argc = MAX_ARGS;
        let mut args = [ptr::null_mut(); MAX_ARGS];
        // SAFETY: `args` has room for `argc` values; missing ones are set to undefined.
        cx.check(unsafe {
            napi_get_cb_info(
                env,
                info,
                &mut argc,
                args.as_mut_ptr(),
                ptr::null_mut(),
                ptr::null_mut(),
            )
        })?;
        body(&cx, &args)
    }));
    let fail = match outcome {
        Ok(Ok(value)) => return value,
        Ok(Err(fail)) => fail,
        Err(_) => Fail::Core(Error::invalid(
            "ERR_PRIVSEP_INTERNAL",
            "privsep panicked: this is a bug, please report it",
        )),
    };
    if !cx.exception_pending() {
        let error = cx.error(fail);
        // SAFETY: throwing a value we created in this env.
        unsafe { napi_throw(env, error) };
    }
    ptr::null_mut()
}

/// A Node-API environment for the duration of one call.
pub struct Cx {
    env: napi_env,
}

impl Cx {
    pub fn new(env: napi_env) -> Cx {
        Cx { env }
    }

    pub fn env(&self) -> napi_env {
        self.env
    }

    pub fn check(&self, status: napi_status) -> JsResult<()> {
        if status == NAPI_OK {
            Ok(())
        } else {
            Err(Fail::Napi)
        }
    }

    fn exception_pending(&self) -> bool {
        let mut pending = false;
        // SAFETY: `pending` is valid for writes.
        unsafe { napi_is_exception_pending(self.env, &mut pending) };
        pending
    }

    /// An Error with `code`, and for OS errors `errno` (positive, as the OS gave it) and
    /// `syscall`; the TypeScript loader renames the code to the errno's name.
    pub fn error(&self, fail: Fail) -> napi_value {
        let err = match fail {
            Fail::Core(err) => err,
            Fail::Napi => Error::invalid("ERR_PRIVSEP_INTERNAL", "a Node-API call failed"),
        };
        self.build_error(&err).unwrap_or(ptr::null_mut())
    }

    fn build_error(&self, err: &Error) -> JsResult<napi_value> {
        let code = self.create_string(err.code())?;
        let message = self.create_string(&err.to_string())?;
        let mut error = ptr::null_mut();
        // SAFETY: code and message are strings of this env.
        self.check(unsafe { napi_create_error(self.env, code, message, &mut error) })?;
        if let Error::Os { syscall, errno, .. } = err {
            self.set(error, "errno", self.create_number(*errno as f64)?)?;
            self.set(error, "syscall", self.create_string(syscall)?)?;
        }
        Ok(error)
    }

    fn type_of(&self, value: napi_value) -> JsResult<napi_valuetype> {
        let mut kind = NAPI_UNDEFINED;
        // SAFETY: `kind` is valid for writes.
        self.check(unsafe { napi_typeof(self.env, value, &mut kind) })?;
        Ok(kind)
    }

    fn expect(&self, value: napi_value, kind: napi_valuetype, what: &str, expected: &str) -> JsResult<()> {
        if self.type_of(value)? == kind {
            Ok(())
        } else {
            Err(Fail::invalid(&format!("{} must be {}", what, expected)))
        }
    }

    pub fn string(&self, value: napi_value, what: &str) -> JsResult<String> {
        self.expect(value, NAPI_STRING, what, "a string")?;
        let mut len = 0;
        // SAFETY: a null buffer asks for the length.
        self.check(unsafe { napi_get_value_string_utf8(self.env, value, ptr::null_mut(), 0, &mut len) })?;
        let mut buf = vec![0u8; len + 1];
        // SAFETY: `buf` has room for `len` bytes and the NUL.
        self.check(unsafe {
            napi_get_value_string_utf8(self.env, value, buf.as_mut_ptr() as *mut c_char, len + 1, &mut len)
        })?;
        buf.truncate(len);
        String::from_utf8(buf).map_err(|_| Fail::invalid(&format!("{} is not valid UTF-8", what)))
    }

    fn is_nullish(&self, value: napi_value) -> JsResult<bool> {
        Ok(matches!(self.type_of(value)?, NAPI_UNDEFINED | NAPI_NULL))
    }

    pub fn optional_string(&self, value: napi_value, what: &str) -> JsResult<Option<String>> {
        if self.is_nullish(value)? {
            return Ok(None);
        }
        self.string(value, what).map(Some)
    }

    pub fn number(&self, value: napi_value, what: &str) -> JsResult<f64> {
        self.expect(value, NAPI_NUMBER, what, "a number")?;
        let mut number = 0.0;
        // SAFETY: `number` is valid for writes.
        self.check(unsafe { napi_get_value_double(self.env, value, &mut number) })?;
        Ok(number)
    }

    pub fn optional_number(&self, value: napi_value, what: &str) -> JsResult<Option<f64>> {
        if self.is_nullish(value)? {
            return Ok(None);
        }
        self.number(value, what).map(Some)
    }

    /// A number that must be a whole 32-bit signed integer.
    pub fn int(&self, value: napi_value, what: &str) -> JsResult<i32> {
        let number = self.number(value, what)?;
        if number.fract() != 0.0 || number < i32::MIN as f64 || number > i32::MAX as f64 {
            return Err(Fail::invalid(&format!("{} must be an integer, not {}", what, number)));
        }
        Ok(number as i32)
    }

    pub fn property(&self, object: napi_value, name: &str) -> JsResult<napi_value> {
        self.expect(object, NAPI_OBJECT, "options", "an object")?;
        let name = CString::new(name).map_err(|_| Fail::Napi)?;
        let mut value = ptr::null_mut();
        // SAFETY: `name` is NUL-terminated, `value` valid for writes.
        self.check(unsafe { napi_get_named_property(self.env, object, name.as_ptr(), &mut value) })?;
        Ok(value)
    }

    pub fn elements(&self, array: napi_value, what: &str) -> JsResult<Vec<napi_value>> {
        let mut is_array = false;
        // SAFETY: `is_array` is valid for writes.
        self.check(unsafe { napi_is_array(self.env, array, &mut is_array) })?;
        if !is_array {
            return Err(Fail::invalid(&format!("{} must be an array", what)));
        }
        let mut len = 0;
        // SAFETY: `len` is valid for writes.
        self.check(unsafe { napi_get_array_length(self.env, array, &mut len) })?;
        (0..len)
            .map(|i| {
                let mut value = ptr::null_mut();
                // SAFETY: `value` is valid for writes.
                self.check(unsafe { napi_get_element(self.env, array, i, &mut value) })?;
                Ok(value)
            })
            .collect()
    }

    pub fn strings(&self, array: napi_value, what: &str) -> JsResult<Vec<String>> {
        self.elements(array, what)?
            .into_iter()
            .map(|v| self.string(v, what))
            .collect()
    }

    pub fn create_string(&self, text: &str) -> JsResult<napi_value> {
        let mut value = ptr::null_mut();
        // SAFETY: `text` is valid for `len` bytes.
        self.check(unsafe {
            napi_create_string_utf8(self.env, text.as_ptr() as *const c_char, text.len(), &mut value)
        })?;
        Ok(value)
    }

    pub fn create_number(&self, number: f64) -> JsResult<napi_value> {
        let mut value = ptr::null_mut();
        // SAFETY: `value` is valid for writes.
        self.check(unsafe { napi_create_double(self.env, number, &mut value) })?;
        Ok(value)
    }

    pub fn boolean(&self, value: bool) -> JsResult<napi_value> {
        let mut result = ptr::null_mut();
        // SAFETY: `result` is valid for writes.
        self.check(unsafe { napi_get_boolean(self.env, value, &mut result) })?;
        Ok(result)
    }

    pub fn null(&self) -> JsResult<napi_value> {
        let mut value = ptr::null_mut();
        // SAFETY: `value` is valid for writes.
        self.check(unsafe { napi_get_null(self.env, &mut value) })?;
        Ok(value)
    }

    pub fn undefined(&self) -> JsResult<napi_value> {
        let mut value = ptr::null_mut();
        // SAFETY: `value` is valid for writes.
        self.check(unsafe { napi_get_undefined(self.env, &mut value) })?;
        Ok(value)
    }

    pub fn array(&self, items: &[napi_value]) -> JsResult<napi_value> {
        let mut array = ptr::null_mut();
        // SAFETY: `array` is valid for writes.
        self.check(unsafe { napi_create_array_with_length(self.env, items.len(), &mut array) })?;
        for (i, item) in items.iter().enumerate() {
            // SAFETY: setting an element of the array we just created.
            self.check(unsafe { napi_set_element(self.env, array, i as u32, *item) })?;
        }
        Ok(array)
    }

    /// A plain object with these properties.
    pub fn object(&self, fields: &[(&str, napi_value)]) -> JsResult<napi_value> {
        let mut object = ptr::null_mut();
        // SAFETY: `object` is valid for writes.
        self.check(unsafe { napi_create_object(self.env, &mut object) })?;
        for (name, value) in fields {
            self.set(object, name, *value)?;
        }
        Ok(object)
    }

    fn set(&self, object: napi_value, name: &str, value: napi_value) -> JsResult<()> {
        let name = CString::new(name).map_err(|_| Fail::Napi)?;
        // SAFETY: `name` is NUL-terminated; object and value belong to this env.
        self.check(unsafe { napi_set_named_property(self.env, object, name.as_ptr(), value) })
    }

    pub fn define(&self, exports: napi_value, name: &str, function: napi_callback) -> JsResult<()> {
        let mut value = ptr::null_mut();
        // SAFETY: `name` is valid for `len` bytes; `function` is an extern "C" callback.
        self.check(unsafe {
            napi_create_function(
                self.env,
                name.as_ptr() as *const c_char,
                name.len(),
                function,
                ptr::null_mut(),
                &mut value,
            )
        })?;
        self.set(exports, name, value)
    }
}
