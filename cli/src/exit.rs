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
        Some(err) => err.exit_code() as u8,
        None => 2,
    };
    eprintln!("error: {e:#}");
    ExitCode::from(code)
}

/// The exit code of a command without a host, which chooses its own; an
/// error is printed on stderr and is a usage or configuration error (2).
pub(crate) fn usage_errors(result: anyhow::Result<ExitCode>) -> ExitCode {
    result.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::from(2)
    })
}
