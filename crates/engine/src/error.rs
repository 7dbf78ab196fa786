//! The engine's one error type, and the one place it maps to OST status codes.
//!
//! An error carries a kind (what NetBackup can act on), a message for the admin (what was
//! wrong and what to fix), and, when a remote server answered, that answer's HTTP status and
//! error code ([`Remote`]), so code decides on facts the server gave rather than on text.

use std::fmt;
use std::io;

use ost_abi as abi;

/// What went wrong, in the terms NetBackup can act on. Each kind maps to one status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidArgument,
    TooLong,
    BadHandle,
    NotFound,
    /// The end of a list: not a failure.
    NoMoreEntries,
    AlreadyExists,
    Busy,
    NoSpace,
    Io,
    Network,
    Connect,
    Access,
    Auth,
    Tls,
    Config,
    State,
    Corrupt,
    NotSupported,
    NotClaimed,
    NotInitialized,
    Version,
    /// A WORM-locked image: the storage refuses to delete or change it until its lock ends.
    WormLocked,
    /// A retention lock shorter than the LSU's minimum.
    WormMin,
    /// A retention lock longer than the LSU's maximum.
    WormMax,
    /// An asynchronous operation is still running.
    Again,
    /// An asynchronous operation was cancelled.
    Cancelled,
    /// A failure recorded earlier with its status (an A.I.R. job's, read back from storage).
    Recorded(i32),
    Internal,
}

impl ErrorKind {
    /// The status code returned through the C interface.
    pub fn status(self) -> i32 {
        use ErrorKind::*;
        match self {
            InvalidArgument => abi::STS_EINVAL,
            TooLong => abi::STS_E2BIG,
            BadHandle => abi::STS_EHANDLE,
            NotFound => abi::STS_ENOENT,
            NoMoreEntries => abi::STS_ENO_MORE_ENTRIES,
            AlreadyExists => abi::STS_EEXIST,
            Busy => abi::STS_EBUSY,
            NoSpace => abi::STS_ENOSPC,
            Io => abi::STS_ESYSCALL,
            Network => abi::STS_ENET,
            Connect => abi::STS_ECONNECT,
            Access => abi::STS_EACCESS,
            Auth => abi::STS_EAUTH,
            Tls => abi::STS_ETLS,
            Config => abi::STS_ECONFIG,
            State => abi::STS_ESTATE,
            Corrupt => abi::STS_ECORRUPT,
            NotSupported => abi::STS_ENOTSUP,
            NotClaimed => abi::STS_ECLAIM,
            NotInitialized => abi::STS_ENOTINIT,
            Version => abi::STS_EVERSION,
            WormLocked => abi::STS_EWORM_LOCKED,
            WormMin => abi::STS_EWORM_MIN,
            WormMax => abi::STS_EWORM_MAX,
            Again => abi::STS_EAGAIN,
            Cancelled => abi::STS_ECANCELED,
            Recorded(status) => status,
            Internal => abi::STS_EPLUGIN,
        }
    }
}

/// What a remote server (S3 or VMS) answered to a failed request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Remote {
    /// The HTTP status.
    pub status: u16,
    /// The server's error code: S3's `<Code>` (`NoSuchBucket`, `SlowDown`, …), VMS's `code`
    /// (`token_not_valid`, `permission_denied`, …). Empty when it gave none.
    pub code: String,
    /// The request header or argument the server named as the problem (S3's `<Header>` or
    /// `<ArgumentName>`), when it named one.
    pub argument: Option<String>,
}

/// An error with a message for the admin: what was wrong, in words that say what to fix.
#[derive(Debug, Clone)]
pub struct Error {
    kind: ErrorKind,
    msg: String,
    remote: Option<Remote>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, msg: impl Into<String>) -> Self {
        Error { kind, msg: msg.into(), remote: None }
    }
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, msg)
    }
    pub fn not_found(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, msg)
    }
    pub fn state(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::State, msg)
    }
    pub fn corrupt(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::Corrupt, msg)
    }
    pub fn config(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, msg)
    }
    pub fn internal(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, msg)
    }

    /// An error a remote server answered with.
    pub fn remote(kind: ErrorKind, msg: impl Into<String>, remote: Remote) -> Self {
        Error { kind, msg: msg.into(), remote: Some(remote) }
    }

    /// An I/O error while doing `what`: the errno decides the kind (full disk and quota
    /// become `NoSpace`, permission problems `Access`, the rest `Io`).
    pub fn io(what: impl fmt::Display, err: io::Error) -> Self {
        use rustix::io::Errno;
        let errno = Errno::from_io_error(&err);
        let kind = if errno == Some(Errno::NOSPC) || errno == Some(Errno::DQUOT) {
            ErrorKind::NoSpace
        } else if errno == Some(Errno::ACCESS) || errno == Some(Errno::PERM) || errno == Some(Errno::ROFS) {
            ErrorKind::Access
        } else if err.kind() == io::ErrorKind::NotFound {
            ErrorKind::NotFound
        } else {
            ErrorKind::Io
        };
        Error::new(kind, format!("{what}: {err}"))
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    pub fn status(&self) -> i32 {
        self.kind.status()
    }
    pub fn message(&self) -> &str {
        &self.msg
    }

    /// What the remote server answered, when this error is its answer.
    pub fn remote_answer(&self) -> Option<&Remote> {
        self.remote.as_ref()
    }
    /// The remote HTTP status, when a server answered.
    pub fn http_status(&self) -> Option<u16> {
        self.remote.as_ref().map(|r| r.status)
    }
    /// The remote error code (`""` when there is none).
    pub fn code(&self) -> &str {
        self.remote.as_ref().map_or("", |r| r.code.as_str())
    }

    /// The same error as another kind (the remote answer is kept).
    pub fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }

    /// Prefix the message with where it happened.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.msg = format!("{what}: {}", self.msg);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}

/// `rustix` errors come from the same errno space as `io::Error`.
impl From<rustix::io::Errno> for Error {
    fn from(e: rustix::io::Errno) -> Self {
        Error::io("system call", e.into())
    }
}
