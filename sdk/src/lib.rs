//! # warden-sdk
//!
//! Write a Warden capability provider as a plain Rust
//! type. Implement [`Provider`], declare each capability with its schema and a
//! typed handler, and export the type with [`export!`]:
//!
//! ```ignore
//! use serde::{Deserialize, Serialize};
//! use warden_sdk::{Capabilities, Capability, Config, Error, Provider};
//!
//! struct Hello;
//!
//! #[derive(Deserialize)]
//! struct GreetIn { name: String }
//! #[derive(Serialize)]
//! struct GreetOut { greeting: String }
//!
//! impl Provider for Hello {
//!     fn info() -> warden_sdk::ProviderInfo {
//!         warden_sdk::ProviderInfo::new("hello", "0.1.0", "Says hello")
//!     }
//!     fn capabilities(caps: &mut Capabilities<Self>) {
//!         caps.add(
//!             Capability::new("hello.greet", "Greet")
//!                 .input("[:map [:name :string]]")
//!                 .output("[:map [:greeting :string]]"),
//!             |_, i: GreetIn| Ok(GreetOut { greeting: format!("Hello, {}!", i.name) }),
//!         );
//!     }
//!     fn init(_config: Config) -> Result<Self, Error> { Ok(Hello) }
//! }
//!
//! warden_sdk::export!(Hello);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2` (or, without
//! that rustup target, with the Debian recipe in the repository's
//! `docs/sdks.md` or its `cargo xtask build-plugin DIR`) and list it in the
//! host's `warden.toml`.
//!
//! Effects go through the host and are governed by the plugin's grants:
//! [`env`](mod@env) (granted variables only), [`fs`] (granted directories only),
//! [`http`] (granted destinations only), [`log`] (always allowed, tagged with
//! the plugin's name). A refused effect comes back as [`Error::Denied`] (or an
//! error your code can report), never as a crash.
#![deny(missing_docs)]

#[doc(hidden)]
pub mod __rt;
// Not public: its `Sync` holds only on single-threaded wasm.
#[cfg_attr(
    not(all(
        feature = "allocator",
        target_family = "wasm",
        not(target_feature = "atomics")
    )),
    allow(dead_code)
)]
mod alloc;
mod capability;
mod config;
pub mod dns;
pub mod env;
mod error;
pub mod fs;
pub mod http;
pub mod log;
pub mod time;

pub use capability::{Capabilities, Capability, Health, ProviderInfo};
pub use config::{Config, SessionConfig};
pub use error::Error;
pub use serde_json::{json, Value};

/// The guest's global allocator: freed blocks of up to 1 KiB are kept in
/// per-size-class lists in front of the standard allocator. Turn off the
/// default `allocator` feature to bring your own.
#[cfg(all(
    feature = "allocator",
    target_family = "wasm",
    not(target_feature = "atomics")
))]
#[global_allocator]
static ALLOCATOR: alloc::SizeClasses = alloc::SizeClasses::new();

/// A capability provider: the one trait a plugin author implements.
///
/// One value of the implementing type lives in each instance of the
/// component. The host may run several instances side by side and may replace
/// an instance at any time (for example after a limit stopped it), so keep
/// durable state outside the plugin.
pub trait Provider: Sized + 'static {
    /// Who the provider is. Called when the host loads the component.
    fn info() -> ProviderInfo;

    /// Declares every capability with its schemas and a typed handler.
    /// Must not depend on configuration: the host calls it before [`init`](Provider::init).
    fn capabilities(caps: &mut Capabilities<Self>);

    /// Builds the provider from the `config` table of its host configuration.
    /// Called once per instance, before the first call.
    fn init(config: Config) -> Result<Self, Error>;

    /// Reports health. The default says healthy.
    fn health(&self) -> Health {
        Health::healthy()
    }

    /// The sources of capabilities found at run time (for example one per
    /// remote server), beyond the static ones of
    /// [`capabilities`](Provider::capabilities). Called after
    /// [`init`](Provider::init); should not do remote calls. The default has
    /// none.
    fn sources(&mut self) -> Vec<String> {
        Vec::new()
    }

    /// The capabilities of one of [`sources`](Provider::sources). The host
    /// asks each source in a call of its own, under its own time limit, and
    /// asks a failed source again later. Calls to the capabilities go to
    /// [`Sessions`] when their metadata asks for a session.
    fn discover(&mut self, source: &str) -> Result<Vec<Capability>, Error> {
        Err(Error::not_found(format!("no source `{source}`")))
    }

    /// Serves a call to a capability found by [`discover`](Provider::discover)
    /// whose metadata asks for no session (a session's calls go to
    /// [`Sessions::call`]). The default knows none.
    fn call_discovered(
        &mut self,
        capability: &str,
        input: serde_json::Value,
    ) -> Result<serde_json::Value, Error> {
        let _ = input;
        Err(Error::not_found(format!(
            "no capability `{capability}` in this provider"
        )))
    }

    /// Ends the remote state a dead instance left behind, from the last
    /// text it gave [`set_remote_state`]: cancel its request in flight,
    /// close its session. Runs on a fresh instance after
    /// [`init`](Provider::init), under the plugin's limits and grants; best
    /// effort. The default does nothing.
    fn release(&mut self, state: &str) {
        let _ = state;
    }
}

/// Tells the host what another instance would need to end this instance's
/// remote state (a server's session, a request in flight) should it die
/// before ending it itself: a limit, a trap, a caller that went away. The
/// host then hands the text to [`Provider::release`] on a fresh instance.
/// Replaces what was set before; `""` clears it. Keep it current around
/// each remote step; at most 64 KiB. Costs one host call, no effect.
pub fn set_remote_state(state: &str) -> Result<(), Error> {
    __rt::bindings::warden::provider::host::set_remote_state(state).map_err(Error::from)
}

/// Reports how far the call in progress has come: `done` of `total` (when
/// known), with a short message. The host passes it on to whoever asked for
/// the call (an MCP client's `notifications/progress`, the CLI's progress
/// line, an embedder's callback), a few times a second at most: report as
/// often as is natural, a report that reaches `total` always goes. Costs one
/// host call; outside a call, or when nobody listens, it goes nowhere.
pub fn progress(done: u64, total: Option<u64>, message: &str) {
    __rt::bindings::warden::provider::host::progress(done, total, message);
}

/// A stateful provider: the host keeps one session per caller (and per
/// server) in a pool and routes each capability whose metadata has a
/// `*.requires-session` key here. Export it with `export!(T, sessions)`.
pub trait Sessions: Provider {
    /// One session's state.
    type Session: 'static;

    /// Opens a session for a call to `config.capability`.
    fn open(&mut self, config: SessionConfig) -> Result<Self::Session, Error>;

    /// Runs `capability` within `session`.
    fn call(
        &mut self,
        session: &mut Self::Session,
        capability: &str,
        input: Value,
    ) -> Result<Value, Error>;

    /// Closes `session` (the host dropped it: idle, evicted or shutting
    /// down). The default just drops it.
    fn close(&mut self, session: Self::Session) {
        drop(session);
    }
}

/// Exports a [`Provider`] implementation as the component's `provider`
/// interface. Use it once, at the crate root of a `cdylib` crate:
/// `export!(T)`, or `export!(T, sessions)` when `T` also implements
/// [`Sessions`].
#[macro_export]
macro_rules! export {
    ($provider:ty) => {
        $crate::export!(@with $provider, $crate::__rt::NoSessions);
    };
    ($provider:ty, sessions) => {
        $crate::export!(@with $provider, $crate::__rt::SessionOf<$provider>);
    };
    (@with $provider:ty, $session:ty) => {
        #[doc(hidden)]
        pub struct __WardenExport;

        impl $crate::__rt::bindings::exports::warden::provider::provider::Guest for __WardenExport {
            fn describe() -> $crate::__rt::bindings::warden::provider::types::Description {
                $crate::__rt::describe::<$provider>()
            }
            fn init(
                config: ::std::string::String,
            ) -> ::std::result::Result<(), $crate::__rt::bindings::warden::provider::types::Error> {
                $crate::__rt::init::<$provider>(config)
            }
            fn call(
                id: ::std::string::String,
                input: ::std::string::String,
            ) -> ::std::result::Result<
                ::std::string::String,
                $crate::__rt::bindings::warden::provider::types::Error,
            > {
                $crate::__rt::call::<$provider>(id, input)
            }
            fn health() -> $crate::__rt::bindings::warden::provider::types::HealthReport {
                $crate::__rt::health::<$provider>()
            }
        }

        impl $crate::__rt::bindings::exports::warden::provider::discovery::Guest for __WardenExport {
            fn sources() -> ::std::vec::Vec<::std::string::String> {
                $crate::__rt::sources::<$provider>()
            }
            fn discover(name: ::std::string::String) -> ::std::result::Result<::std::vec::Vec<$crate::__rt::bindings::exports::warden::provider::discovery::CapabilityDescriptor>, $crate::__rt::bindings::exports::warden::provider::discovery::Error> {
                $crate::__rt::discover::<$provider>(name)
            }
        }

        impl $crate::__rt::bindings::exports::warden::provider::session_handler::Guest for __WardenExport {
            type Session = __WardenSession;
        }

        impl $crate::__rt::bindings::exports::warden::provider::cleanup::Guest for __WardenExport {
            fn release(state: ::std::string::String) {
                $crate::__rt::release::<$provider>(state)
            }
        }

        #[doc(hidden)]
        pub struct __WardenSession($session);

        impl $crate::__rt::bindings::exports::warden::provider::session_handler::GuestSession for __WardenSession {
            fn open(
                capability: ::std::string::String,
                config: ::std::string::String,
            ) -> ::std::result::Result<
                $crate::__rt::bindings::exports::warden::provider::session_handler::Session,
                $crate::__rt::bindings::warden::provider::types::Error,
            > {
                <$session>::open(capability, config).map(|s| {
                    $crate::__rt::bindings::exports::warden::provider::session_handler::Session::new(__WardenSession(s))
                })
            }
            fn call(
                &self,
                capability: ::std::string::String,
                input: ::std::string::String,
            ) -> ::std::result::Result<
                ::std::string::String,
                $crate::__rt::bindings::warden::provider::types::Error,
            > {
                self.0.call(capability, input)
            }
        }

        $crate::__rt::bindings::__warden_export_world!(__WardenExport with_types_in $crate::__rt::bindings);
    };
}
