//! The terminal approver: `approve` policy rules ask on the controlling
//! terminal.

/// Asks on the controlling terminal whether a call may run; denies, saying
/// why, where there is no terminal (a script, CI, a pipe).
pub(crate) struct TerminalApprover;

impl warden::Approver for TerminalApprover {
    fn approve<'a>(
        &'a self,
        request: &'a warden::ApprovalRequest,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = warden::Approval> + Send + 'a>> {
        let prompt = format!(
            "warden: `{}` (plugin `{}`) needs approval under policy rule `{}`.\n  input: {}\nAllow this call? [y/N] ",
            request.capability, request.plugin, request.rule, request.input
        );
        Box::pin(async move {
            tokio::task::spawn_blocking(move || ask_terminal(&prompt))
                .await
                .unwrap_or_else(|e| {
                    warden::Approval::Deny(format!("the approval prompt failed: {e}"))
                })
        })
    }
}

fn ask_terminal(prompt: &str) -> warden::Approval {
    use std::io::{BufRead, Write};
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty");
    let Ok(mut tty) = tty else {
        return warden::Approval::Deny(
            "it needs approval and there is no terminal to ask on".into(),
        );
    };
    if tty
        .write_all(prompt.as_bytes())
        .and_then(|_| tty.flush())
        .is_err()
    {
        return warden::Approval::Deny(
            "it needs approval and the terminal cannot be written".into(),
        );
    }
    let mut answer = String::new();
    if std::io::BufReader::new(tty).read_line(&mut answer).is_err() {
        return warden::Approval::Deny("it needs approval and the terminal cannot be read".into());
    }
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => warden::Approval::Approve,
        _ => warden::Approval::Deny("declined at the terminal".into()),
    }
}
