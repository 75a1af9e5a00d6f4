//! `wasi:sockets`: every bind, connect and send is decided by the plugin's
//! policy and audited, a connect to an address the instance looked up by
//! the grant that names the host; sockets are counted against the plugin's
//! cap.

use crate::audit::{Effect, Outcome};
use crate::governance::Auditor;
use std::pin::Pin;
use std::sync::Arc;
use wasmtime_wasi::sockets::SocketAddrUse;

/// The address check for a plugin's WASI context: asks `policy`, records
/// the decision with `auditor`, and fails closed when it cannot be recorded.
pub(crate) fn check(
    policy: Arc<crate::governance::effect_policy::EffectPolicy>,
    plugin: Arc<str>,
    auditor: Auditor,
    looked_up: Arc<super::lookup::LookedUp>,
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
        use crate::governance::effect_policy::{Decision, SocketUse};
        let usage_kind = match usage {
            SocketAddrUse::TcpConnect => SocketUse::TcpConnect,
            SocketAddrUse::TcpBind => SocketUse::TcpBind,
            SocketAddrUse::TcpListen => SocketUse::TcpListen,
            SocketAddrUse::TcpAccept => SocketUse::TcpAccept,
            SocketAddrUse::UdpBind => SocketUse::UdpBind,
            SocketAddrUse::UdpSend => SocketUse::UdpSend,
            SocketAddrUse::UdpReceive => SocketUse::UdpReceive,
        };
        let names = looked_up.names_for(addr.ip());
        let decision = check_policy.check_socket(usage_kind, addr, &names);
        let target = format!("{usage:?} {addr}");
        let allowed = decision.allowed();
        let audited: Pin<Box<dyn std::future::Future<Output = bool> + Send + Sync>> =
            match &decision {
                // The auditor logs the warning, within the call's log budget.
                Decision::Deny(reason) => Box::pin(
                    check_auditor
                        .record_async(Effect::Socket, &target, Outcome::Deny, reason)
                        .done(),
                ),
                // The wildcard ephemeral bind the OS makes before a connect or
                // send reaches nothing: the connect or send is what is recorded.
                Decision::Allow(_) if is_ephemeral_bind(usage, addr) => {
                    Box::pin(std::future::ready(true))
                }
                Decision::Allow(reason) => {
                    tracing::info!(
                        target: "warden::egress", plugin = %check_plugin, effect = "socket", usage = ?usage,
                        destination = %addr, decision = "allow", %reason, "egress"
                    );
                    Box::pin(
                        check_auditor
                            .record_async(Effect::Socket, &target, Outcome::Allow, reason)
                            .done(),
                    )
                }
            };
        // Fail closed: an effect that cannot be audited does not happen. The
        // record is queued now and awaited without holding the thread.
        Box::pin(async move { audited.await && allowed })
    }
}

/// A bind of the wildcard address to an ephemeral port.
fn is_ephemeral_bind(usage: SocketAddrUse, addr: std::net::SocketAddr) -> bool {
    matches!(usage, SocketAddrUse::TcpBind | SocketAddrUse::UdpBind)
        && addr.ip().is_unspecified()
        && addr.port() == 0
}

/// Replaces `wasi:sockets` `create-tcp-socket` and `create-udp-socket` with
/// the same calls charged to the plugin's `limits.max-sockets` (which the
/// host's HTTP connections for the plugin count toward too; idle ones are
/// closed to make room): past it, the guest gets `new-socket-limit` and the
/// refusal is audited.
pub(crate) fn add_counted_socket_creation(
    linker: &mut wasmtime::component::Linker<super::State>,
) -> wasmtime::Result<()> {
    use crate::limits::Kind;
    use wasmtime::component::Resource;
    use wasmtime_wasi::p2::bindings::sockets::network::{ErrorCode, IpAddressFamily};
    use wasmtime_wasi::p2::bindings::sockets::{tcp_create_socket, udp_create_socket};
    use wasmtime_wasi::p2::{TcpSocket, UdpSocket};
    use wasmtime_wasi::sockets::WasiSocketsView;

    fn target(proto: &str, family: IpAddressFamily) -> String {
        let family = match family {
            IpAddressFamily::Ipv4 => "ipv4",
            IpAddressFamily::Ipv6 => "ipv6",
        };
        format!("create {proto} socket ({family})")
    }

    let mut tcp = linker.instance("wasi:sockets/tcp-create-socket@0.2.12")?;
    tcp.func_wrap_async(
        "create-tcp-socket",
        |mut store: wasmtime::StoreContextMut<'_, super::State>, (family,): (IpAddressFamily,)| {
            Box::new(async move {
                let state = store.data_mut();
                if !state.take_socket(&target("tcp", family)).await {
                    return Ok((Err(ErrorCode::NewSocketLimit),));
                }
                match tcp_create_socket::Host::create_tcp_socket(&mut state.sockets(), family) {
                    Ok(socket) => Ok((Ok::<Resource<TcpSocket>, ErrorCode>(socket),)),
                    Err(e) => {
                        state.give_back_descriptor(Kind::Socket);
                        Ok((Err(e.downcast()?),))
                    }
                }
            })
        },
    )?;
    let mut udp = linker.instance("wasi:sockets/udp-create-socket@0.2.12")?;
    udp.func_wrap_async(
        "create-udp-socket",
        |mut store: wasmtime::StoreContextMut<'_, super::State>, (family,): (IpAddressFamily,)| {
            Box::new(async move {
                let state = store.data_mut();
                if !state.take_socket(&target("udp", family)).await {
                    return Ok((Err(ErrorCode::NewSocketLimit),));
                }
                let created =
                    udp_create_socket::Host::create_udp_socket(&mut state.sockets(), family).await;
                match created {
                    Ok(socket) => Ok((Ok::<Resource<UdpSocket>, ErrorCode>(socket),)),
                    Err(e) => {
                        state.give_back_descriptor(Kind::Socket);
                        Ok((Err(e.downcast()?),))
                    }
                }
            })
        },
    )?;
    Ok(())
}
