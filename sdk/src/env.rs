//! Environment variables. A plugin sees only the variables its grants list;
//! every other variable is simply absent.

use crate::__rt::bindings::wasi::cli::environment;

/// The value of the variable `name`, or `None` if it is unset or not granted.
pub fn var(name: &str) -> Option<String> {
    environment::get_environment()
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// Every variable this plugin was granted, as `(name, value)` pairs.
pub fn vars() -> Vec<(String, String)> {
    environment::get_environment()
}
