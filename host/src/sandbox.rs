//! Per-instance sandbox state: the WASI context built from a plugin's
//! policy, the egress hook for `wasi:http`, the resource limiter, and the
//! host services a guest imports.

use crate::bindings::warden::provider::host::{self, Level};
use crate::bindings::warden::provider::http_client;
use crate::bindings::warden::provider::types::Error as WitError;
use crate::config::DirMode;
use crate::config::ResolvedLimits;
use crate::egress::{Egress, EgressHooks};
use crate::egress::{Failure, OutBody, Timeouts};
use crate::error::Limit;
use crate::governance::Auditor;
use bytes::Bytes;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use wasmtime::component::Resource;
use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Longest log line or guest output line kept; the rest is cut.
const MAX_LOG_LINE: usize = 8 * 1024;

/// What lives in each instance's store.
pub(crate) struct State {
    plugin: Arc<str>,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    pub(crate) hooks: EgressHooks,
    table: ResourceTable,
    pub(crate) limiter: Limiter,
    pub(crate) auditor: Auditor,
    log_budget: Arc<LogBudget>,
}

/// Log lines a call may still write (`limits.max-log-lines`), shared by the
/// host log import and the guest's stdout/stderr.
pub(crate) struct LogBudget {
    limit: u32,
    used: std::sync::atomic::AtomicU32,
    dropped: std::sync::atomic::AtomicU64,
}

impl LogBudget {
    fn new(limit: u32) -> Self {
        LogBudget {
            limit,
            used: Default::default(),
            dropped: Default::default(),
        }
    }
    /// Whether one more line may be written.
    fn take(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        if self.used.fetch_add(1, Relaxed) < self.limit {
            true
        } else {
            self.dropped.fetch_add(1, Relaxed);
            false
        }
    }
}

impl State {
    /// Starts a new call's log budget.
    pub(crate) fn reset_log_budget(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        self.log_budget.used.store(0, Relaxed);
        self.log_budget.dropped.store(0, Relaxed);
    }

    /// Ends a call: a flood of log lines is reported once and audited;
    /// returns whether there was one.
    pub(crate) fn end_call(&self, capability: &str) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let dropped = self.log_budget.dropped.swap(0, Relaxed);
        if dropped > 0 {
            let reason = format!(
                "{dropped} log lines dropped past limits.max-log-lines ({})",
                self.log_budget.limit
            );
            tracing::warn!(target: "guest", plugin = %self.plugin, capability, "{reason}");
            self.auditor.record("log", capability, "deny", &reason);
        }
        dropped > 0
    }
}

impl State {
    /// Builds the sandbox for one instance of `plugin` from its policy alone.
    pub(crate) fn new(
        plugin: Arc<str>,
        egress: Arc<Egress>,
        limits: ResolvedLimits,
        auditor: Auditor,
    ) -> Result<State, String> {
        let policy = egress.policy().clone();
        let memory = limits.memory;
        let mut b = WasiCtxBuilder::new();
        b.envs(&policy.environment(|name| std::env::var(name).ok()));
        for dir in policy.dirs() {
            let perms = match dir.mode {
                DirMode::ReadOnly => FsPerms::ReadOnly,
                DirMode::ReadWrite => FsPerms::ReadWrite,
            };
            b.preopened_dir(&dir.host, &dir.guest, perms).map_err(|e| {
                format!("cannot open granted directory {}: {e}", dir.host.display())
            })?;
        }
        let log_budget = Arc::new(LogBudget::new(limits.max_log_lines));
        b.stdout(LogStream {
            plugin: plugin.clone(),
            stream: "stdout",
            budget: log_budget.clone(),
        });
        b.stderr(LogStream {
            plugin: plugin.clone(),
            stream: "stderr",
            budget: log_budget.clone(),
        });
        // Sockets may be created; every bind, connect and send is decided
        // (and audited) by the address check below, which denies by default.
        b.allow_tcp(true);
        b.allow_udp(true);
        // Name lookups would let a guest probe the resolver; the HTTP issue
        // routes them through the egress policy. Until then: off.
        b.allow_ip_name_lookup(false);
        let check_policy = policy.clone();
        let check_plugin = plugin.clone();
        let check_auditor = auditor.clone();
        b.socket_addr_check(move |addr, usage| {
            use crate::governance::policy::Decision;
            let ip = addr.ip().to_string();
            // The OS binds a wildcard address with port 0 before connecting or
            // sending; any other bind, listen or accept is never granted.
            let implicit_bind = addr.ip().is_unspecified() && addr.port() == 0;
            let decision = match usage {
                SocketAddrUse::TcpConnect => check_policy.check_egress("tcp", &ip, addr.port()),
                SocketAddrUse::UdpSend | SocketAddrUse::UdpReceive => check_policy.check_egress("udp", &ip, addr.port()),
                SocketAddrUse::TcpBind if implicit_bind && check_policy.any_egress("tcp") => {
                    Decision::Allow("implicit bind before a granted connect".into())
                }
                SocketAddrUse::UdpBind if implicit_bind && check_policy.any_egress("udp") => {
                    Decision::Allow("implicit bind before a granted send".into())
                }
                SocketAddrUse::TcpBind | SocketAddrUse::UdpBind => Decision::Deny(format!("binding {addr} is not granted")),
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
        });
        Ok(State {
            hooks: EgressHooks::new(egress, limits, auditor.clone()),
            auditor,
            log_budget,
            plugin,
            wasi: b.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            limiter: Limiter {
                memory: memory as usize,
                table_elements: crate::engine::MAX_TABLE_ELEMENTS,
                hit: None,
            },
        })
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

impl crate::bindings::warden::provider::types::Host for State {}

impl host::Host for State {
    fn env_var(&mut self, name: String) -> Result<Option<String>, WitError> {
        use crate::governance::policy::Decision;
        match self.hooks.policy().env_allowed(&name) {
            Decision::Allow(reason) => {
                if !self.auditor.record("env", &name, "allow", &reason) {
                    return Err(WitError::Denied("the audit log cannot be written".into()));
                }
                Ok(std::env::var(&name).ok())
            }
            Decision::Deny(reason) => {
                self.auditor.record("env", &name, "deny", &reason);
                Err(WitError::Denied(reason))
            }
        }
    }

    fn log(&mut self, level: Level, message: String) {
        if !self.log_budget.take() {
            return;
        }
        let plugin = &*self.plugin;
        let message = clip(&message);
        match level {
            Level::Trace => tracing::trace!(target: "guest", plugin, "{message}"),
            Level::Debug => tracing::debug!(target: "guest", plugin, "{message}"),
            Level::Info => tracing::info!(target: "guest", plugin, "{message}"),
            Level::Warn => tracing::warn!(target: "guest", plugin, "{message}"),
            Level::Error => tracing::error!(target: "guest", plugin, "{message}"),
        }
    }
}

/// A response body handed to a guest by `http-client.send`.
pub struct ResponseBody {
    body: wasmtime_wasi_http::WasiBody,
    /// Longest wait for each chunk.
    wait: Duration,
    /// The end was seen (or the body failed): later reads return `none`.
    done: bool,
}

/// Most bytes one `read` hands over.
const MAX_READ: usize = 256 * 1024;

impl ResponseBody {
    /// The next bytes of the body, up to [`MAX_READ`]: with `wait`, waits
    /// (up to `self.wait`) for the first frame, then takes whatever else is
    /// ready; without, takes only what is ready now (maybe nothing).
    async fn take(&mut self, wait: bool) -> Result<Vec<u8>, WitError> {
        use http_body_util::BodyExt;
        let mut out: Vec<u8> = Vec::new();
        while !self.done && out.len() < MAX_READ {
            let next = if wait && out.is_empty() {
                match tokio::time::timeout(self.wait, self.body.frame()).await {
                    Ok(n) => n,
                    Err(_) => {
                        self.done = true;
                        return Err(WitError::Timeout(format!(
                            "no response data within {} ms",
                            self.wait.as_millis()
                        )));
                    }
                }
            } else {
                let ready = std::future::poll_fn(|cx| {
                    use http_body::Body;
                    match Pin::new(&mut self.body).poll_frame(cx) {
                        Poll::Ready(n) => Poll::Ready(Some(n)),
                        Poll::Pending => Poll::Ready(None),
                    }
                })
                .await;
                match ready {
                    Some(n) => n,
                    None => break,
                }
            };
            match next {
                None => self.done = true,
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        out.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Err(body_error(e));
                }
            }
        }
        Ok(out)
    }
}

/// `headers` as `name: value` lines, each ended by CR LF (hyper has checked
/// that no name holds `:` and no value CR or LF).
fn field_lines(headers: &http::HeaderMap) -> String {
    let mut out = String::with_capacity(headers.len() * 40);
    for (k, v) in headers {
        out.push_str(k.as_str());
        out.push_str(": ");
        match v.to_str() {
            Ok(text) => out.push_str(text),
            Err(_) => out.push_str(&String::from_utf8_lossy(v.as_bytes())),
        }
        out.push_str("\r\n");
    }
    out
}

impl http_client::Host for State {
    async fn send(
        &mut self,
        request: http_client::Request,
    ) -> wasmtime::Result<Result<http_client::Response, WitError>> {
        let head = match build_head(&request) {
            Ok(h) => h,
            Err(e) => return Ok(Err(WitError::InvalidInput(format!("{}: {e}", request.url)))),
        };
        let url = request.url;
        let wait = match request.timeout_ms {
            0 => None,
            ms => Some(Duration::from_millis(ms.into())),
        };
        let timeouts = Timeouts {
            connect: wait,
            first_byte: wait,
        };
        let limit = Duration::from_millis(self.hooks.limits().request_timeout_ms);
        let dispatch =
            self.hooks
                .dispatch(head, OutBody::Full(Bytes::from(request.body)), timeouts);
        let response = match dispatch.await {
            Ok(r) => r,
            Err(f) => return Ok(Err(failure_error(&url, f))),
        };
        let (parts, body) = response.into_parts();
        let headers = field_lines(&parts.headers);
        let mut body = ResponseBody {
            body,
            wait: wait.map_or(limit, |w| w.min(limit)),
            done: false,
        };
        // What came with the head goes with it: a small response needs no
        // `read` at all.
        let body_start = match body.take(false).await {
            Ok(data) => data,
            Err(e) => return Ok(Err(e)),
        };
        let body = if body.done {
            None
        } else {
            Some(self.table.push(body)?)
        };
        Ok(Ok(http_client::Response {
            status: parts.status.as_u16(),
            headers,
            body_start,
            body,
        }))
    }
}

impl http_client::HostBody for State {
    async fn read(
        &mut self,
        body: Resource<ResponseBody>,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, WitError>> {
        let body = self.table.get_mut(&body)?;
        Ok(match body.take(true).await {
            Ok(out) if out.is_empty() && body.done => Ok(None),
            Ok(out) => Ok(Some(out)),
            Err(e) => Err(e),
        })
    }

    async fn drop(&mut self, body: Resource<ResponseBody>) -> wasmtime::Result<()> {
        self.table.delete(body)?;
        Ok(())
    }
}

/// Replaces `wasi:filesystem` `open-at` with the same call plus an audit
/// record: every file or directory a guest opens (or is refused) is logged.
pub(crate) fn add_audited_open_at(
    linker: &mut wasmtime::component::Linker<State>,
) -> wasmtime::Result<()> {
    use wasmtime_wasi::filesystem::WasiFilesystemView;
    use wasmtime_wasi::p2::bindings::filesystem::types::{
        Descriptor, DescriptorFlags, ErrorCode, HostDescriptor, OpenFlags, PathFlags,
    };
    type Args = (
        Resource<Descriptor>,
        PathFlags,
        String,
        OpenFlags,
        DescriptorFlags,
    );
    let mut instance = linker.instance("wasi:filesystem/types@0.2.12")?;
    instance.func_wrap_async(
        "[method]descriptor.open-at",
        |mut store: wasmtime::StoreContextMut<'_, State>,
         (fd, path_flags, path, oflags, flags): Args| {
            Box::new(async move {
                let state = store.data_mut();
                let writes = flags.contains(DescriptorFlags::WRITE)
                    || oflags.contains(OpenFlags::CREATE)
                    || oflags.contains(OpenFlags::TRUNCATE);
                let result = {
                    let mut view = state.filesystem();
                    HostDescriptor::open_at(&mut view, fd, path_flags, path.clone(), oflags, flags)
                        .await
                };
                let result = match result {
                    Ok(fd) => Ok(fd),
                    Err(e) => Err(e.downcast()?),
                };
                let target = format!("{} {path}", if writes { "write" } else { "read" });
                let (decision, reason) = match &result {
                    Ok(_) => ("allow", "within a granted directory".to_string()),
                    Err(
                        code @ (ErrorCode::NotPermitted
                        | ErrorCode::Access
                        | ErrorCode::ReadOnly
                        | ErrorCode::Loop),
                    ) => (
                        "deny",
                        format!("outside the plugin's grants ({})", code.name()),
                    ),
                    Err(code) => ("allow", format!("failed: {}", code.name())),
                };
                if !state.auditor.record("file", &target, decision, &reason) && result.is_ok() {
                    return Ok((Err(ErrorCode::Access),));
                }
                Ok((result,))
            })
        },
    )?;
    Ok(())
}

fn build_head(r: &http_client::Request) -> Result<http::request::Parts, String> {
    let method = if r.method.bytes().any(|b| b.is_ascii_lowercase()) {
        http::Method::from_bytes(r.method.to_ascii_uppercase().as_bytes())
    } else {
        http::Method::from_bytes(r.method.as_bytes())
    }
    .map_err(|_| format!("invalid method `{}`", r.method))?;
    let uri: http::Uri = r.url.parse().map_err(|e| format!("invalid URL: {e}"))?;
    if uri.scheme().is_none() || uri.host().is_none() {
        return Err("not an absolute URL".into());
    }
    let mut b = http::Request::builder().method(method.clone()).uri(uri);
    let mut has_length = false;
    for (k, v) in &r.headers {
        let name = http::header::HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("invalid header name `{k}`"))?;
        if is_forbidden(&name) {
            return Err(format!("header `{k}` is set by the host"));
        }
        has_length |= name == http::header::CONTENT_LENGTH;
        let value = http::HeaderValue::from_str(v)
            .map_err(|_| format!("invalid value for header `{k}`"))?;
        b = b.header(name, value);
    }
    if !has_length
        && (!r.body.is_empty()
            || matches!(
                method,
                http::Method::POST | http::Method::PUT | http::Method::PATCH
            ))
    {
        b = b.header(http::header::CONTENT_LENGTH, r.body.len());
    }
    let (parts, ()) = b.body(()).map_err(|e| e.to_string())?.into_parts();
    Ok(parts)
}

/// Hop-by-hop headers the host's connection manages (as `wasi:http` forbids them).
fn is_forbidden(name: &http::header::HeaderName) -> bool {
    use http::header::*;
    [
        CONNECTION,
        TRANSFER_ENCODING,
        UPGRADE,
        TE,
        PROXY_AUTHORIZATION,
    ]
    .contains(name)
        || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection"
}

fn failure_error(url: &str, f: Failure) -> WitError {
    use wasmtime_wasi_http::Error as E;
    match f {
        Failure::Denied(reason) => WitError::Denied(format!("{url}: denied by the host: {reason}")),
        Failure::Failed(E::HttpResponseBodySize(_) | E::HttpRequestBodySize(_), reason) => {
            WitError::Denied(format!("{url}: cut by the host: {reason}"))
        }
        Failure::Failed(
            E::ConnectionTimeout
            | E::ConnectionReadTimeout
            | E::DnsTimeout
            | E::HttpResponseTimeout,
            reason,
        ) => WitError::Timeout(format!("{url}: {reason}")),
        Failure::Failed(_, reason) => WitError::Upstream(format!("{url}: {reason}")),
    }
}

fn body_error(e: wasmtime_wasi_http::Error) -> WitError {
    use wasmtime_wasi_http::Error as E;
    match e {
        E::HttpResponseBodySize(n) => WitError::Denied(format!(
            "response body cut by the host after {} bytes: larger than limits.max-response-bytes",
            n.unwrap_or(0)
        )),
        E::HttpRequestBodySize(_) => WitError::Denied(
            "cut by the host: the call's traffic exceeds limits.max-egress-bytes".into(),
        ),
        other => WitError::Upstream(format!("reading the response body: {other}")),
    }
}

fn clip(s: &str) -> &str {
    if s.len() <= MAX_LOG_LINE {
        return s;
    }
    let mut end = MAX_LOG_LINE;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Per-store memory and table caps; remembers which one it refused so a
/// trap that follows can be reported as that limit.
pub(crate) struct Limiter {
    memory: usize,
    table_elements: usize,
    pub(crate) hit: Option<Limit>,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory {
            self.hit = Some(Limit::Memory);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_elements {
            self.hit = Some(Limit::Memory);
            return Ok(false);
        }
        Ok(true)
    }

    // Growth refused by the engine itself (past the pool's per-instance
    // maximum) counts as the same limit.
    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.hit = Some(Limit::Memory);
        Ok(())
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.hit = Some(Limit::Memory);
        Ok(())
    }
}

/// Guest stdout/stderr: each line goes to the host's log, tagged with the
/// plugin. Never inherited from the host process.
#[derive(Clone)]
struct LogStream {
    plugin: Arc<str>,
    stream: &'static str,
    budget: Arc<LogBudget>,
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(LineLogger::new(self.clone()))
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(LineLogger::new(self.clone()))
    }
}

struct LineLogger {
    target: LogStream,
    buf: Vec<u8>,
}

impl LineLogger {
    fn new(target: LogStream) -> Self {
        LineLogger {
            target,
            buf: Vec::new(),
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        for chunk in bytes.split_inclusive(|b| *b == b'\n') {
            if self.buf.len() < MAX_LOG_LINE {
                let room = MAX_LOG_LINE - self.buf.len();
                self.buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            if chunk.ends_with(b"\n") {
                self.emit();
            }
        }
    }

    fn emit(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        if !self.target.budget.take() {
            self.buf.clear();
            return;
        }
        let line = String::from_utf8_lossy(&self.buf);
        let line = line.trim_end_matches(['\n', '\r']);
        tracing::info!(target: "guest", plugin = %self.target.plugin, stream = self.target.stream, "{line}");
        self.buf.clear();
    }
}

impl Drop for LineLogger {
    fn drop(&mut self) {
        self.emit();
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LineLogger {
    async fn ready(&mut self) {}
}

impl OutputStream for LineLogger {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for LineLogger {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.emit();
        Poll::Ready(Ok(()))
    }
}
