//! `wasi:sockets`: every bind, connect and send is decided by the plugin's
//! policy and audited; name lookups are off.

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
        use crate::governance::policy::Decision;
        let ip = addr.ip().to_string();
        // The OS binds a wildcard address with port 0 before connecting or
        // sending; any other bind, listen or accept is never granted.
        let implicit_bind = addr.ip().is_unspecified() && addr.port() == 0;
        let decision = match usage {
            SocketAddrUse::TcpConnect => check_policy.check_egress("tcp", &ip, addr.port()),
            SocketAddrUse::UdpSend | SocketAddrUse::UdpReceive => {
                check_policy.check_egress("udp", &ip, addr.port())
            }
            SocketAddrUse::TcpBind if implicit_bind && check_policy.any_egress("tcp") => {
                Decision::Allow("implicit bind before a granted connect".into())
            }
            SocketAddrUse::UdpBind if implicit_bind && check_policy.any_egress("udp") => {
                Decision::Allow("implicit bind before a granted send".into())
            }
            SocketAddrUse::TcpBind | SocketAddrUse::UdpBind => {
                Decision::Deny(format!("binding {addr} is not granted"))
            }
            SocketAddrUse::TcpListen | SocketAddrUse::TcpAccept => {
                Decision::Deny(format!("listening on {addr} is not granted"))
            }
        };
        let target = format!("{usage:?} {addr}");
        let audited = match &decision {
            crate::governance::policy::Decision::Deny(reason) => {
                tracing::warn!(
                    target: "warden::egress", plugin = %check_plugin, effect = "socket", usage = ?usage,
                    destination = %addr, decision = "deny", %reason, "egress denied"
                );
                check_auditor.record("socket", &target, "deny", reason)
            }
            crate::governance::policy::Decision::Allow(reason) => {
                tracing::info!(
                    target: "warden::egress", plugin = %check_plugin, effect = "socket", usage = ?usage,
                    destination = %addr, decision = "allow", %reason, "egress"
                );
                check_auditor.record("socket", &target, "allow", reason)
            }
        };
        // Fail closed: an effect that cannot be audited does not happen.
        let allowed = decision.allowed() && audited;
        Box::pin(async move { allowed })
    }
}
