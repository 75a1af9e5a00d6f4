use crate::__rt::bindings::warden::provider::types::Error as WitError;
use std::fmt;

/// Why a capability call failed. Each case reaches the host's caller as a
/// typed error of the same kind.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The input did not match what the capability accepts.
    InvalidInput(String),
    /// Something the input names does not exist.
    NotFound(String),
    /// An effect was refused by the host's policy.
    Denied(String),
    /// A remote service failed or could not be reached.
    Upstream(String),
    /// An operation took too long.
    Timeout(String),
    /// The provider is not ready.
    Unavailable(String),
    /// A bug or unexpected state in the provider.
    Internal(String),
}

impl Error {
    /// An [`Error::InvalidInput`] with `msg`.
    pub fn invalid_input(msg: impl Into<String>) -> Self {
        Error::InvalidInput(msg.into())
    }
    /// An [`Error::NotFound`] with `msg`.
    pub fn not_found(msg: impl Into<String>) -> Self {
        Error::NotFound(msg.into())
    }
    /// An [`Error::Denied`] with `msg`.
    pub fn denied(msg: impl Into<String>) -> Self {
        Error::Denied(msg.into())
    }
    /// An [`Error::Upstream`] with `msg`.
    pub fn upstream(msg: impl Into<String>) -> Self {
        Error::Upstream(msg.into())
    }
    /// An [`Error::Internal`] with `msg`.
    pub fn internal(msg: impl Into<String>) -> Self {
        Error::Internal(msg.into())
    }

    /// The message carried by the error.
    pub fn message(&self) -> &str {
        match self {
            Error::InvalidInput(m)
            | Error::NotFound(m)
            | Error::Denied(m)
            | Error::Upstream(m)
            | Error::Timeout(m)
            | Error::Unavailable(m)
            | Error::Internal(m) => m,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            Error::InvalidInput(_) => "invalid input",
            Error::NotFound(_) => "not found",
            Error::Denied(_) => "denied",
            Error::Upstream(_) => "upstream error",
            Error::Timeout(_) => "timeout",
            Error::Unavailable(_) => "unavailable",
            Error::Internal(_) => "internal error",
        };
        write!(f, "{kind}: {}", self.message())
    }
}

impl std::error::Error for Error {}

impl From<Error> for WitError {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidInput(m) => WitError::InvalidInput(m),
            Error::NotFound(m) => WitError::NotFound(m),
            Error::Denied(m) => WitError::Denied(m),
            Error::Upstream(m) => WitError::Upstream(m),
            Error::Timeout(m) => WitError::Timeout(m),
            Error::Unavailable(m) => WitError::Unavailable(m),
            Error::Internal(m) => WitError::Internal(m),
        }
    }
}

impl From<WitError> for Error {
    fn from(e: WitError) -> Self {
        match e {
            WitError::InvalidInput(m) => Error::InvalidInput(m),
            WitError::NotFound(m) => Error::NotFound(m),
            WitError::Denied(m) => Error::Denied(m),
            WitError::Upstream(m) => Error::Upstream(m),
            WitError::Timeout(m) => Error::Timeout(m),
            WitError::Unavailable(m) => Error::Unavailable(m),
            WitError::Internal(m) => Error::Internal(m),
        }
    }
}
