//! `wasi:sockets/ip-name-lookup`, governed. An IP literal is answered as it
//! is, without a lookup. A name is looked up only when a network grant names
//! it (and, with `[host] resolve-wildcards = false`, only when it is pinned
//! or granted exactly), through the resolution HTTP uses (`[host] resolve`
//! pins, then the plugin's own resolver, at most four lookups at once
//! (`egress/dns.rs`), within the plugin's `request-timeout-ms`, the wait
//! included), and answers
//! only addresses the plugin could reach by that name (a non-public one only
//! for a grant naming it exactly). Every lookup is audited (`lookup`) with
//! its full name **before** any query leaves: one the audit log refuses
//! (past the call's record cap) never reaches a nameserver. Its answer is
//! recorded too.
//!
//! The names an instance looked up are remembered with their answers (a
//! bounded list), so that a socket connect to such an address is judged by
//! the grant that names the host, as an HTTP request to it would be.

use crate::audit::{Effect, Outcome};
use crate::egress::{Egress, Refusal};
use crate::governance::auditor::Recording;
use crate::governance::Auditor;
use std::collections::VecDeque;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use wasmtime::component::{Resource, ResourceType};
use wasmtime_wasi::p2::bindings::sockets::network::{ErrorCode, IpAddress};
use wasmtime_wasi::p2::{DynPollable, Network, Pollable};

/// Most (address, name) answers an instance remembers; the oldest go first.
const MAX_REMEMBERED: usize = 256;

/// The names an instance looked up, by the addresses they answered.
#[derive(Default)]
pub(crate) struct LookedUp {
    answers: Mutex<VecDeque<(IpAddr, Arc<str>)>>,
}

impl LookedUp {
    fn remember(&self, name: &str, ips: &[IpAddr]) {
        let name: Arc<str> = name.into();
        let mut answers = self.answers.lock().expect("lookup memory lock");
        answers.retain(|(_, n)| **n != *name);
        for ip in ips {
            if answers.len() == MAX_REMEMBERED {
                answers.pop_front();
            }
            answers.push_back((*ip, name.clone()));
        }
    }

    /// The names that answered `ip`, most recent first.
    pub(crate) fn names_for(&self, ip: IpAddr) -> Vec<String> {
        let answers = self.answers.lock().expect("lookup memory lock");
        answers
            .iter()
            .rev()
            .filter(|(a, _)| *a == ip)
            .map(|(_, n)| n.to_string())
            .collect()
    }
}

type Answer = Result<Vec<IpAddr>, ErrorCode>;

/// A `resolve-address-stream`: the lookup under way, then its answer.
pub(crate) enum Lookup {
    Pending(Pin<Box<dyn Future<Output = Answer> + Send>>),
    Ready(Result<std::vec::IntoIter<IpAddr>, ErrorCode>),
}

impl Lookup {
    fn poll_answer(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Lookup::Pending(fut) = self {
            match fut.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(answer) => *self = Lookup::Ready(answer.map(Vec::into_iter)),
            }
        }
        Poll::Ready(())
    }
}

impl Pollable for Lookup {
    fn ready<'a, 'b>(&'a mut self) -> Pin<Box<dyn Future<Output = ()> + Send + 'b>>
    where
        'a: 'b,
    {
        Box::pin(std::future::poll_fn(move |cx| self.poll_answer(cx)))
    }
}

/// What one lookup needs from its instance.
struct Resolver {
    egress: Arc<Egress>,
    auditor: Auditor,
    looked_up: Arc<LookedUp>,
    timeout: Duration,
}

impl Resolver {
    /// Records a decision on `name`; `false` if it could not be recorded.
    fn record(&self, name: &str, outcome: Outcome, reason: &str) -> bool {
        self.auditor.record(Effect::Lookup, name, outcome, reason)
    }

    /// [`record`](Self::record) from the lookup's task: queued now, awaited
    /// without holding a thread.
    fn record_async(&self, name: &str, outcome: Outcome, reason: &str) -> Recording {
        self.auditor
            .record_async(Effect::Lookup, name, outcome, reason)
    }

    /// Starts the lookup of `name`: an answer now (a literal, a refusal) or
    /// one to wait for.
    fn start(self, name: String) -> Lookup {
        let literal = name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .unwrap_or(&name)
            .parse::<IpAddr>();
        if let Ok(ip) = literal {
            let reason = "an IP literal, answered without a lookup";
            return Lookup::Ready(if self.record(&name, Outcome::Allow, reason) {
                Ok(vec![ip].into_iter())
            } else {
                Err(ErrorCode::AccessDenied)
            });
        }
        // The form grants and pins use: IDNA to ASCII, lower case, no
        // trailing dot. (The URL parser also reads `127.1` as an address.)
        let host = match url::Host::parse(&name) {
            Ok(url::Host::Domain(d)) => d.trim_end_matches('.').to_string(),
            Ok(url::Host::Ipv4(ip)) => {
                let reason = format!("`{name}` is the IP literal {ip}, answered without a lookup");
                return Lookup::Ready(if self.record(&name, Outcome::Allow, &reason) {
                    Ok(vec![IpAddr::V4(ip)].into_iter())
                } else {
                    Err(ErrorCode::AccessDenied)
                });
            }
            _ => {
                self.record(&name, Outcome::Deny, "not a host name");
                return Lookup::Ready(Err(ErrorCode::InvalidArgument));
            }
        };
        let policy = self.egress.policy().clone();
        let granted = match self.egress.admit_lookup(&host) {
            Ok(granted) => granted,
            Err(reason) => {
                self.record(&host, Outcome::Deny, &reason);
                return Lookup::Ready(Err(ErrorCode::AccessDenied));
            }
        };
        let how = if self.egress.pinned(&host) {
            "answered from [host] resolve"
        } else {
            "querying the nameservers"
        };
        // Queued before any query leaves; the lookup's task waits for it.
        // Past the call's record cap it is refused now, holding nothing.
        let reason = format!("{granted}; {how}");
        let recorded = self.record_async(&host, Outcome::Allow, &reason);
        if recorded.decided() == Some(false) {
            return Lookup::Ready(Err(ErrorCode::AccessDenied));
        }
        Lookup::Pending(Box::pin(async move {
            if !recorded.done().await {
                return Err(ErrorCode::AccessDenied);
            }
            let span = self.auditor.lookup_span(&host);
            let found = self.egress.resolve(&host, self.timeout).await;
            if let (Some(span), Err(Refusal::Failed(_, why) | Refusal::Denied(why))) =
                (&span, &found)
            {
                span.failed(why);
            }
            let all = match found {
                Ok(all) => all,
                Err(Refusal::Failed(wasmtime_wasi_http::Error::DnsTimeout, reason)) => {
                    self.record_async(&host, Outcome::Error, &reason)
                        .done()
                        .await;
                    return Err(ErrorCode::TemporaryResolverFailure);
                }
                Err(Refusal::Failed(_, reason)) | Err(Refusal::Denied(reason)) => {
                    self.record_async(&host, Outcome::Error, &reason)
                        .done()
                        .await;
                    return Err(ErrorCode::NameUnresolvable);
                }
            };
            let (allowed, refused): (Vec<IpAddr>, Vec<IpAddr>) = all
                .iter()
                .partition(|ip| policy.lookup_answer_allowed(&host, **ip));
            let list = |ips: &[IpAddr]| {
                ips.iter()
                    .map(IpAddr::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            if allowed.is_empty() {
                let reason = format!(
                    "{host} resolves only to non-public addresses ({}); only a grant naming `{host}` exactly allows that",
                    list(&refused)
                );
                self.record(&host, Outcome::Deny, &reason);
                return Err(ErrorCode::AccessDenied);
            }
            let mut reason = format!("{host} -> {}", list(&allowed));
            if !refused.is_empty() {
                reason.push_str(&format!(" (non-public {} left out)", list(&refused)));
            }
            if !self
                .record_async(&host, Outcome::Allow, &reason)
                .done()
                .await
            {
                return Err(ErrorCode::AccessDenied);
            }
            self.looked_up.remember(&host, &allowed);
            Ok(allowed)
        }))
    }
}

/// Replaces `wasi:sockets/ip-name-lookup` with the governed lookup above.
pub(crate) fn add_governed_lookup(
    linker: &mut wasmtime::component::Linker<super::State>,
) -> wasmtime::Result<()> {
    let mut i = linker.instance("wasi:sockets/ip-name-lookup@0.2.12")?;
    i.resource(
        "resolve-address-stream",
        ResourceType::host::<Lookup>(),
        |mut store, rep| {
            store
                .data_mut()
                .table
                .delete(Resource::<Lookup>::new_own(rep))?;
            Ok(())
        },
    )?;
    i.func_wrap(
        "resolve-addresses",
        |mut store: wasmtime::StoreContextMut<'_, super::State>,
         (network, name): (Resource<Network>, String)|
         -> wasmtime::Result<(Result<Resource<Lookup>, ErrorCode>,)> {
            let state = store.data_mut();
            // The network resource is the capability to look up at all.
            state.table.get(&network)?;
            let resolver = Resolver {
                egress: state.hooks.egress().clone(),
                auditor: state.auditor.clone(),
                looked_up: state.looked_up.clone(),
                timeout: Duration::from_millis(state.hooks.limits().request_timeout_ms),
            };
            let lookup = resolver.start(name);
            // A refusal or a bad name is answered at once.
            if let Lookup::Ready(Err(code)) = lookup {
                return Ok((Err(code),));
            }
            Ok((Ok(state.table.push(lookup)?),))
        },
    )?;
    i.func_wrap(
        "[method]resolve-address-stream.resolve-next-address",
        |mut store: wasmtime::StoreContextMut<'_, super::State>,
         (stream,): (Resource<Lookup>,)|
         -> wasmtime::Result<(Result<Option<IpAddress>, ErrorCode>,)> {
            let lookup = store.data_mut().table.get_mut(&stream)?;
            let mut cx = Context::from_waker(std::task::Waker::noop());
            if lookup.poll_answer(&mut cx).is_pending() {
                return Ok((Err(ErrorCode::WouldBlock),));
            }
            Ok((match lookup {
                Lookup::Ready(Ok(ips)) => Ok(ips.next().map(IpAddress::from)),
                Lookup::Ready(Err(code)) => Err(*code),
                Lookup::Pending(_) => Err(ErrorCode::WouldBlock),
            },))
        },
    )?;
    i.func_wrap(
        "[method]resolve-address-stream.subscribe",
        |mut store: wasmtime::StoreContextMut<'_, super::State>,
         (stream,): (Resource<Lookup>,)|
         -> wasmtime::Result<(Resource<DynPollable>,)> {
            Ok((wasmtime_wasi::p2::subscribe(
                &mut store.data_mut().table,
                stream,
            )?,))
        },
    )?;
    Ok(())
}
