//! The host's error type.

use std::fmt;

/// Which per-plugin limit stopped a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Limit {
    /// The call used up its fuel (`limits.fuel`).
    Fuel,
    /// The instance tried to grow past `limits.memory`.
    Memory,
    /// The call ran past `limits.timeout-ms`.
    Time,
    /// The guest ran out of wasm stack.
    Stack,
    /// The call's output was larger than `limits.max-output-bytes`.
    Output,
    /// The call wrote more than `limits.max-log-lines` log lines.
    Log,
    /// Every instance slot of the plugin (`max-instances` plus
    /// `sessions.max` plus one) was in use; no other plugin's slots are taken.
    Instances,
    /// The instance held more host-side resources (header sets, streams,
    /// sockets, descriptors, ...) than its share of host memory allows.
    HostState,
}

impl Limit {
    /// Its name, as configuration and messages give it.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Fuel => "fuel",
            Limit::Memory => "memory",
            Limit::Time => "time",
            Limit::Stack => "stack",
            Limit::Output => "output",
            Limit::Log => "log",
            Limit::Instances => "instances",
            Limit::HostState => "host-state",
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of a failure a provider reported (the WIT `error` variant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// The input did not match what the capability accepts.
    InvalidInput,
    /// Something named by the input does not exist.
    NotFound,
    /// A remote service failed.
    Upstream,
    /// An operation inside the provider took too long.
    Timeout,
    /// The provider is not ready.
    Unavailable,
    /// A bug in the provider.
    Internal,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::NotFound => "not found",
            ErrorKind::Upstream => "upstream error",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal error",
        })
    }
}

/// Everything that can go wrong in the host, from configuration to a call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration file could not be read or is invalid.
    #[error("config error: {0}")]
    Config(String),

    /// A plugin's component could not be loaded.
    #[error("plugin `{plugin}`: {message}")]
    Load {
        /// The plugin's name in the configuration.
        plugin: String,
        /// What went wrong.
        message: String,
    },

    /// A new version of a plugin changes what its lockfile entry accepted,
    /// and `[host] on-update` does not let it in.
    #[error("plugin `{plugin}`: the new version ({digest}) is refused by [host] on-update = \"{policy}\": {diff}; `warden lock --accept {plugin}` accepts it")]
    UpdateRefused {
        /// The plugin's name in the configuration.
        plugin: String,
        /// The new component's digest.
        digest: String,
        /// The policy that refused it.
        policy: String,
        /// What changed.
        diff: String,
    },

    /// Two plugins declare the same capability id.
    #[error("capability `{id}` is declared by both plugin `{first}` and plugin `{second}`")]
    DuplicateCapability {
        /// The capability id.
        id: String,
        /// The plugin loaded first.
        first: String,
        /// The plugin that declared it again.
        second: String,
    },

    /// No loaded plugin offers the capability.
    #[error("unknown capability `{id}`{}", suggest(.suggestions))]
    UnknownCapability {
        /// The id asked for.
        id: String,
        /// The nearest known ids, best first.
        suggestions: Vec<String>,
    },

    /// The capability is not registered because the source that would
    /// offer it failed discovery (e.g. its server is down); it is retried.
    #[error("capability `{id}` is not available: source `{source_name}` of plugin `{plugin}` could not be listed ({reason}); a long-running host (`warden serve`, an embedder) asks it again every `sessions.discovery-retry-ms`")]
    SourceUnavailable {
        /// The id asked for.
        id: String,
        /// The plugin.
        plugin: String,
        /// The source (e.g. the MCP server's name).
        source_name: String,
        /// Why it failed last.
        reason: String,
        /// Whether policy refused it (a missing grant, a secret without a
        /// value): then the call counts as denied.
        denied: bool,
    },

    /// A rate limit of the policy refused the call.
    #[error("rate limited: {capability}: {message}")]
    RateLimited {
        /// The capability.
        capability: String,
        /// Which limit.
        message: String,
    },

    /// The plugin's `max-concurrent` slots stayed full for `max-wait-ms`.
    #[error("busy: {capability}: {message}")]
    Busy {
        /// The capability.
        capability: String,
        /// Which limit.
        message: String,
    },

    /// No plugin has that name.
    #[error("unknown plugin `{0}`")]
    UnknownPlugin(String),

    /// The input is not valid for the call (before any guest ran).
    #[error("invalid input for `{capability}`: {message}")]
    InvalidInput {
        /// The capability called.
        capability: String,
        /// What is wrong.
        message: String,
    },

    /// Policy refused the call or one of its effects.
    #[error("denied: {capability}: {message}")]
    Denied {
        /// The capability called.
        capability: String,
        /// Why.
        message: String,
    },

    /// A per-plugin limit stopped the call. The instance was discarded.
    #[error("`{capability}` stopped by the {limit} limit of plugin `{plugin}`: {detail}")]
    LimitExceeded {
        /// The plugin.
        plugin: String,
        /// The capability called.
        capability: String,
        /// Which limit.
        limit: Limit,
        /// The configured value and what happened.
        detail: String,
    },

    /// The provider returned an error.
    #[error("`{capability}` failed: {kind}: {message}")]
    Capability {
        /// The plugin.
        plugin: String,
        /// The capability called.
        capability: String,
        /// The provider's error kind.
        kind: ErrorKind,
        /// The provider's message.
        message: String,
    },

    /// The guest trapped (a panic, an `unreachable`). The instance was discarded.
    #[error("`{capability}` crashed in plugin `{plugin}`: {message}")]
    Trap {
        /// The plugin.
        plugin: String,
        /// The capability called.
        capability: String,
        /// The trap.
        message: String,
    },

    /// The provider's output does not match the capability's output schema.
    #[error("`{capability}` returned output that breaks its schema: {message}")]
    InvalidOutput {
        /// The plugin.
        plugin: String,
        /// The capability called.
        capability: String,
        /// Where and how it breaks the schema.
        message: String,
    },

    /// The capability is registered (imported) but nothing loaded serves it.
    #[error("capability `{capability}` (provider :{provider}) is registered, but no loaded plugin serves :{provider} capabilities")]
    NotServed {
        /// The capability.
        capability: String,
        /// Its provider kind.
        provider: String,
    },

    /// A snapshot or the marketplace store could not be read or written.
    #[error("marketplace: {0}")]
    Marketplace(String),

    /// The guest broke the contract (output that is not JSON, ...).
    #[error("plugin `{plugin}` broke the provider contract: {message}")]
    Contract {
        /// The plugin.
        plugin: String,
        /// What it did.
        message: String,
    },

    /// An unexpected failure inside the host.
    #[error("internal host error: {0}")]
    Internal(String),
}

fn suggest(s: &[String]) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!(
            " (did you mean {}?)",
            s.iter()
                .map(|x| format!("`{x}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

impl Error {
    /// A stable name for the kind of error, for machines (`denied`,
    /// `limit-exceeded`, `invalid-input`, ...; a provider's own error is
    /// `capability`).
    pub fn code(&self) -> &'static str {
        match self {
            Error::Config(_) => "config",
            Error::Load { .. } => "load",
            Error::UpdateRefused { .. } => "update-refused",
            Error::DuplicateCapability { .. } => "duplicate-capability",
            Error::UnknownCapability { .. } => "unknown-capability",
            Error::SourceUnavailable { denied: true, .. } => "denied",
            Error::SourceUnavailable { .. } => "source-unavailable",
            Error::RateLimited { .. } => "rate-limited",
            Error::Busy { .. } => "busy",
            Error::UnknownPlugin(_) => "unknown-plugin",
            Error::InvalidInput { .. } => "invalid-input",
            Error::Denied { .. } => "denied",
            Error::LimitExceeded { .. } => "limit-exceeded",
            Error::Capability { .. } => "capability",
            Error::Trap { .. } => "trap",
            Error::InvalidOutput { .. } => "invalid-output",
            Error::NotServed { .. } => "not-served",
            Error::Marketplace(_) => "marketplace",
            Error::Contract { .. } => "contract",
            Error::Internal(_) => "internal",
        }
    }

    /// The same error, naming `id` as the capability called (for calls the
    /// host routed to a provider plugin's entry point).
    pub(crate) fn for_capability(self, id: &str) -> Error {
        let id = id.to_string();
        match self {
            Error::Denied { message, .. } => Error::Denied {
                capability: id,
                message,
            },
            Error::InvalidInput { message, .. } => Error::InvalidInput {
                capability: id,
                message,
            },
            Error::LimitExceeded {
                plugin,
                limit,
                detail,
                ..
            } => Error::LimitExceeded {
                plugin,
                capability: id,
                limit,
                detail,
            },
            Error::Capability {
                plugin,
                kind,
                message,
                ..
            } => Error::Capability {
                plugin,
                capability: id,
                kind,
                message,
            },
            Error::Trap {
                plugin, message, ..
            } => Error::Trap {
                plugin,
                capability: id,
                message,
            },
            Error::InvalidOutput {
                plugin, message, ..
            } => Error::InvalidOutput {
                plugin,
                capability: id,
                message,
            },
            other => other,
        }
    }

    pub(crate) fn config(path: &std::path::Path, msg: impl fmt::Display) -> Self {
        Error::Config(format!("{}: {msg}", path.display()))
    }

    pub(crate) fn load(plugin: &str, msg: impl fmt::Display) -> Self {
        Error::Load {
            plugin: plugin.to_string(),
            message: msg.to_string(),
        }
    }
}

/// Shorthand for results with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
