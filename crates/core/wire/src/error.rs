//! Errors as data: what the OS refused, what input was wrong, what this platform cannot do.

use std::fmt;
use std::io;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The OS refused: `errno` is the raw value, kept as an integer on purpose.
    Os {
        syscall: &'static str,
        errno: i32,
        context: String,
    },
    /// Input that privsep refuses, with a stable `ERR_PRIVSEP_*` code.
    Invalid { code: &'static str, message: String },
    /// The platform cannot do this.
    Unsupported(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Error {
        Error::Invalid {
            code,
            message: message.into(),
        }
    }

    /// Wraps an `io::Error` from `syscall`, naming what it was about.
    pub fn os(syscall: &'static str, err: io::Error, context: impl Into<String>) -> Error {
        Error::Os {
            syscall,
            errno: err.raw_os_error().unwrap_or(0),
            context: context.into(),
        }
    }

    /// The stable code callers match on; OS errors get theirs from the errno in the addon.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Os { .. } => "ERR_PRIVSEP_OS",
            Error::Invalid { code, .. } => code,
            Error::Unsupported(_) => "ERR_PRIVSEP_UNSUPPORTED",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Os {
                syscall,
                errno,
                context,
            } => {
                write!(f, "{} {}: {}", syscall, context, io::Error::from_raw_os_error(*errno))
            }
            Error::Invalid { message, .. } => f.write_str(message),
            Error::Unsupported(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {}

/// What a `sys` function reports: the syscall that failed and how. The portable layer adds
/// what it was about with [`SysError::about`].
#[derive(Debug)]
pub struct SysError {
    pub syscall: &'static str,
    pub err: io::Error,
}

pub type SysResult<T> = std::result::Result<T, SysError>;

impl SysError {
    pub fn new(syscall: &'static str, err: io::Error) -> SysError {
        SysError { syscall, err }
    }

    pub fn about(self, context: impl Into<String>) -> Error {
        let context = context.into();
        if self.err.kind() == io::ErrorKind::Unsupported {
            return Error::Unsupported(format!(
                "{} ({}) is not supported on this platform",
                self.syscall, context
            ));
        }
        Error::os(self.syscall, self.err, context)
    }
}
