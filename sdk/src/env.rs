//! Environment variables. A plugin sees only the variables its grants list;
//! asking for another is refused by the host (and recorded in its audit log).

use crate::__rt::bindings::warden::provider::host;
use crate::__rt::bindings::wasi::cli::environment;
use crate::Error;

/// The value of the variable `name`, or `None` if it is unset or not granted.
pub fn var(name: &str) -> Option<String> {
    try_var(name).ok().flatten()
}

/// The value of the variable `name`: `Ok(None)` if granted but unset,
/// [`Error::Denied`] if the plugin has no grant for it.
pub fn try_var(name: &str) -> Result<Option<String>, Error> {
    host::env_var(name).map_err(Error::from)
}

/// Every variable this plugin was granted, as `(name, value)` pairs.
pub fn vars() -> Vec<(String, String)> {
    environment::get_environment()
}
