//! Exit codes: 0 ok, 2 usage or configuration error, 3 denied by policy,
//! 4 capability error (limits included), 128 + the signal's number when a
//! command is stopped by a signal.

use std::process::ExitCode;

/// A command stopped by a signal; exits 128 + the signal's number.
#[derive(Debug, thiserror::Error)]
#[error("stopped by {0}")]
pub(crate) struct Interrupted(pub(crate) &'static str);

impl Interrupted {
    fn exit_code(&self) -> u8 {
        match self.0 {
            "SIGINT" => 130,
            _ => 143,
        }
    }
}

/// The exit code of a command that loads a host; an error is printed on
/// stderr (an interruption was reported when it happened). The host's
/// errors have their own codes; any other error is a usage error (2).
pub(crate) fn from_result(result: anyhow::Result<()>) -> ExitCode {
    let Err(e) = result else {
        return ExitCode::SUCCESS;
    };
    if let Some(stopped) = e.downcast_ref::<Interrupted>() {
        return ExitCode::from(stopped.exit_code());
    }
    let code = match e.downcast_ref::<warden::Error>() {
        Some(err) => exit_code(err),
        None => 2,
    };
    eprintln!("error: {e:#}");
    ExitCode::from(code)
}

/// The exit code for a host error: 2 configuration or load error, 3 denied
/// by policy (rate limits and full slots included), 4 any other capability
/// error (limits included).
pub(crate) fn exit_code(err: &warden::Error) -> u8 {
    use warden::Error;
    match err {
        Error::Config(_)
        | Error::Load { .. }
        | Error::DuplicateCapability { .. }
        | Error::UnknownPlugin(_)
        | Error::Marketplace(_) => 2,
        Error::Denied { .. }
        | Error::RateLimited { .. }
        | Error::Busy { .. }
        | Error::SourceUnavailable { denied: true, .. } => 3,
        _ => 4,
    }
}

/// The exit code of a command without a host, which chooses its own; an
/// error is printed on stderr and is a usage or configuration error (2).
pub(crate) fn usage_errors(result: anyhow::Result<ExitCode>) -> ExitCode {
    result.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::from(2)
    })
}

#[cfg(test)]
mod tests {
    use super::exit_code;
    use warden::{Error, ErrorKind, Limit};

    fn s(text: &str) -> String {
        text.to_string()
    }

    #[test]
    fn configuration_and_load_errors_exit_2() {
        for e in [
            Error::Config(s("bad")),
            Error::Load {
                plugin: s("p"),
                message: s("init failed"),
            },
            Error::DuplicateCapability {
                id: s("a.b"),
                first: s("p"),
                second: s("q"),
            },
            Error::UnknownPlugin(s("p")),
            Error::Marketplace(s("unreadable")),
        ] {
            assert_eq!(exit_code(&e), 2, "{e}");
        }
    }

    #[test]
    fn refusals_by_policy_exit_3() {
        let source = |denied| Error::SourceUnavailable {
            id: s("mcp.x.y"),
            plugin: s("mcp"),
            source_name: s("x"),
            reason: s("down"),
            denied,
        };
        for e in [
            Error::Denied {
                capability: s("a.b"),
                message: s("no"),
            },
            Error::RateLimited {
                capability: s("a.b"),
                message: s("3 per minute"),
            },
            Error::Busy {
                capability: s("a.b"),
                message: s("slots full"),
            },
            source(true),
        ] {
            assert_eq!(exit_code(&e), 3, "{e}");
        }
        assert_eq!(exit_code(&source(false)), 4);
    }

    #[test]
    fn other_capability_errors_exit_4() {
        for e in [
            Error::UnknownCapability {
                id: s("a.b"),
                suggestions: vec![],
            },
            Error::InvalidInput {
                capability: s("a.b"),
                message: s("$.n"),
            },
            Error::LimitExceeded {
                plugin: s("p"),
                capability: s("a.b"),
                limit: Limit::Fuel,
                detail: s("out of fuel"),
            },
            Error::Capability {
                plugin: s("p"),
                capability: s("a.b"),
                kind: ErrorKind::Internal,
                message: s("failed"),
            },
            Error::Trap {
                plugin: s("p"),
                capability: s("a.b"),
                message: s("unreachable"),
            },
            Error::InvalidOutput {
                plugin: s("p"),
                capability: s("a.b"),
                message: s("$.ok"),
            },
            Error::NotServed {
                capability: s("a.b"),
                provider: s("Http"),
            },
            Error::Contract {
                plugin: s("p"),
                message: s("not JSON"),
            },
            Error::Internal(s("oops")),
        ] {
            assert_eq!(exit_code(&e), 4, "{e}");
        }
    }
}
