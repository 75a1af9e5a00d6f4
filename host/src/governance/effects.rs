//! The vocabulary of audit records: what a record is about ([`Effect`]) and
//! what was decided ([`Outcome`]), written by their names.

/// What a record is about: a call, its approval, a plugin's load, a limit
/// that stopped a call, or one effect of a guest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Effect {
    /// A call admitted, refused or ended (`call`).
    #[default]
    Call,
    /// An approver's answer (`approval`).
    Approval,
    /// A component refused at load (`load`).
    Load,
    /// A limit that stopped a call (`limit`).
    Limit,
    /// A guest that crashed (`trap`): a panic, an exception, `unreachable`.
    Trap,
    /// An environment variable read (`env`).
    Env,
    /// A file or directory opened (`file`).
    File,
    /// Log lines dropped over the budget (`log`).
    Log,
    /// A socket bind, connect or send (`socket`).
    Socket,
    /// An outbound HTTP request (`egress`).
    Egress,
    /// A name lookup (`lookup`).
    Lookup,
    /// A secret substituted into a request (`secret`).
    Secret,
    /// A claim on a capability id (`register`): refused when the id is
    /// registered already.
    Register,
}

impl Effect {
    /// The name written in records.
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Call => "call",
            Effect::Approval => "approval",
            Effect::Load => "load",
            Effect::Limit => "limit",
            Effect::Trap => "trap",
            Effect::Env => "env",
            Effect::File => "file",
            Effect::Log => "log",
            Effect::Socket => "socket",
            Effect::Egress => "egress",
            Effect::Lookup => "lookup",
            Effect::Secret => "secret",
            Effect::Register => "register",
        }
    }
}

/// What was decided, or how an admitted call ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Outcome {
    /// Allowed (`allow`).
    #[default]
    Allow,
    /// Refused (`deny`).
    Deny,
    /// The call completed (`ok`).
    Ok,
    /// The call failed (`error`).
    Error,
    /// The call's caller went away before it ended (`cancelled`).
    Cancelled,
}

impl Outcome {
    /// The name written in records.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Cancelled => "cancelled",
        }
    }
}
