//! A valid component that exports something other than `warden:provider/provider`.

/// Generated from `wit/other.wit` by `cargo xtask bindings`.
#[rustfmt::skip]
mod bindings;

struct Other;

impl bindings::exports::other::thing::greeter::Guest for Other {
    fn hello() -> String {
        "not a provider".into()
    }
}

bindings::export!(Other);
