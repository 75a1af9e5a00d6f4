//! `wasi:sockets`: every bind, connect and send is decided by the plugin's
//! policy and audited; name lookups are off.

use crate::governance::audit::{Effect, Outcome};
use crate::governance::Auditor;
use std::pin::Pin;
use std::sync::Arc;
use wasmtime_wasi::sockets::SocketAddrUse;

/// The address check for a plugin's WASI context: asks `policy`, records
/// the decision with `auditor`, and fails closed when it cannot be recorded.
pub(crate) fn check(
    policy: Arc<crate::governance::policy::Policy>,
    plugin: Arc<str>,
    auditor: Auditor,
) -> impl Fn(
    std::net::SocketAddr,
    SocketAddrUse,
) -> Pin<Box<dyn std::future::Future<Output = bool> + Send + Sync>>
       + Send
       + Sync
       + 'static {
    let check_policy = policy;
    let check_plugin = plugin;
    let check_auditor = auditor;
    move |addr, usage| {
        use crate::governance::policy::{Decision, SocketUse};
        let usage_kind = match usage {
            SocketAddrUse::TcpConnect => SocketUse::TcpConnect,
            SocketAddrUse::TcpBind => SocketUse::TcpBind,
            SocketAddrUse::TcpListen => SocketUse::TcpListen,
            SocketAddrUse::TcpAccept => SocketUse::TcpAccept,
            SocketAddrUse::UdpBind => SocketUse::UdpBind,
            SocketAddrUse::UdpSend => SocketUse::UdpSend,
            SocketAddrUse::UdpReceive => SocketUse::UdpReceive,
        };
        let decision = check_policy.check_socket(usage_kind, addr);
        let target = format!("{usage:?} {addr}");
        let audited = match &decision {
            Decision::Deny(reason) => {
                tracing::warn!(
                    target: "warden::egress", plugin = %check_plugin, effect = "socket", usage = ?usage,
                    destination = %addr, decision = "deny", %reason, "egress denied"
                );
                check_auditor.record(Effect::Socket, &target, Outcome::Deny, reason)
            }
            Decision::Allow(reason) => {
                tracing::info!(
                    target: "warden::egress", plugin = %check_plugin, effect = "socket", usage = ?usage,
                    destination = %addr, decision = "allow", %reason, "egress"
                );
                check_auditor.record(Effect::Socket, &target, Outcome::Allow, reason)
            }
        };
        // Fail closed: an effect that cannot be audited does not happen.
        let allowed = decision.allowed() && audited;
        Box::pin(async move { allowed })
    }
}
