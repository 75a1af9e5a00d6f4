//! The stdio transport: one client (the process that launched `warden
//! serve --stdio`), newline-delimited JSON-RPC. Only JSON-RPC goes to
//! stdout; logs go to stderr.

use crate::client_sessions::{Outbound, Session, Sink};
use crate::dispatch::Caller;
use crate::protocol::{self, Message, RpcError};
use crate::Shared;
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

/// The principal of the stdio client: whoever launched the process.
const PRINCIPAL: &str = "stdio";

/// Serves one client on `input`/`output` until `input` closes or the
/// server stops.
pub(crate) async fn serve<R, W>(shared: Arc<Shared>, input: R, output: W)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, writer) = spawn_writer(output);
    let mut client = Client {
        shared,
        tx,
        session: None,
        background: JoinSet::new(),
    };
    match client.read_requests(input).await {
        // Shutdown: listen streams send their closing result; the server
        // itself waits for calls in flight and ends sessions.
        Ended::Stopping => client.wait_for_background().await,
        // Input closed: what is still running has nobody to answer; its
        // calls end as `cancelled`. The session ends with it.
        Ended::InputClosed => client.end().await,
    }
    // The writer stops once every sender is gone: this one, and those of
    // the calls and streams still running. The rest of `client` (its
    // background tasks, its session) is dropped after the writer is done.
    let Client { tx, .. } = client;
    drop(tx);
    let _ = writer.await;
}

/// The task that writes what is sent on the channel to `output`, one line
/// each, until every sender is dropped or `output` fails.
fn spawn_writer<W>(mut output: W) -> (mpsc::Sender<String>, JoinHandle<()>)
where
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel::<String>(256);
    let writer = tokio::spawn(async move {
        while let Some(line) = rx.recv().await {
            let ok = output.write_all(line.as_bytes()).await.is_ok()
                && output.write_all(b"\n").await.is_ok()
                && output.flush().await.is_ok();
            if !ok {
                break;
            }
        }
    });
    (tx, writer)
}

/// Why [`Client::read_requests`] returned.
enum Ended {
    InputClosed,
    Stopping,
}

/// The stdio client: its session once initialized, the sender of lines to
/// its output, and the streams that list changes for it.
struct Client {
    shared: Arc<Shared>,
    tx: mpsc::Sender<String>,
    session: Option<Arc<Session>>,
    background: JoinSet<()>,
}

impl Client {
    /// Reads and handles messages, one a line, until `input` closes or the
    /// server stops. A line longer than `serve.max-request-bytes` is
    /// skipped and answered with an error.
    async fn read_requests<R>(&mut self, input: R) -> Ended
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        let mut reader = BufReader::new(input);
        let mut line = Vec::new();
        let max = self.shared.settings.max_request_bytes as usize;
        let mut stopping = self.shared.stopping.subscribe();
        loop {
            line.clear();
            let read = tokio::select! {
                r = read_line(&mut reader, &mut line, max) => r,
                _ = crate::stopped(&mut stopping) => return Ended::Stopping,
            };
            match read {
                Ok(Line::End) | Err(_) => return Ended::InputClosed,
                Ok(Line::TooLong) => {
                    let e = RpcError::new(
                        protocol::INVALID_REQUEST,
                        format!("message longer than {max} bytes (serve.max-request-bytes)"),
                    );
                    self.send(protocol::error_response(&Value::Null, &e)).await;
                }
                Ok(Line::Full) => self.on_line(&line).await,
            }
        }
    }

    /// One line: blank ones are skipped, others decoded and handled.
    async fn on_line(&mut self, line: &[u8]) {
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let message = match protocol::decode(line) {
            Ok(m) => m,
            Err(e) => {
                self.send(protocol::error_response(&Value::Null, &e)).await;
                return;
            }
        };
        match message {
            Message::Response { id, body } => {
                if let Some(s) = &self.session {
                    s.deliver(&id, body);
                }
            }
            Message::Notification { method, params } => self.on_notification(&method, &params),
            Message::Request { id, method, params } if method == "initialize" => {
                self.initialize(&id, &params).await;
            }
            Message::Request { id, method, params } if method == "subscriptions/listen" => {
                match protocol::envelope(&params) {
                    Err(e) => self.send(protocol::error_response(&id, &e)).await,
                    Ok(_) => {
                        let listen = listen(self.shared.clone(), self.tx.clone(), id, params);
                        self.background.spawn(listen);
                    }
                }
            }
            Message::Request { id, method, params } => self.request(id, method, params).await,
        }
    }

    /// `notifications/initialized` and `notifications/cancelled` of the
    /// session; any other notification, or one before `initialize`, is
    /// ignored.
    fn on_notification(&self, method: &str, params: &Value) {
        match (method, &self.session) {
            ("notifications/initialized", Some(s)) => {
                s.initialized
                    .store(true, std::sync::atomic::Ordering::Release);
            }
            ("notifications/cancelled", Some(s)) => {
                if let Some(id) = params.get("requestId") {
                    s.cancel(id);
                }
            }
            _ => {}
        }
    }

    /// `initialize`, once: the session starts, and so does the stream of
    /// list changes.
    async fn initialize(&mut self, id: &Value, params: &Value) {
        let outcome = match &self.session {
            Some(_) => Err(RpcError::new(
                protocol::INVALID_REQUEST,
                "initialized already",
            )),
            None => self
                .shared
                .initialize(params, PRINCIPAL)
                .map(|(session, result)| {
                    self.background.spawn(crate::client_sessions::list_changes(
                        self.shared.clone(),
                        Sink::Lines(self.tx.clone()),
                        None,
                    ));
                    self.session = Some(session);
                    result
                }),
        };
        self.send(protocol::response(id, outcome)).await;
    }

    /// Any other request, admitted under the client's budget, answered by
    /// a task of its own (tracked by the session, so it can be cancelled).
    async fn request(&self, id: Value, method: String, params: Value) {
        let in_flight = match self.shared.enter(PRINCIPAL) {
            Ok(f) => f,
            Err(busy) => {
                self.send(protocol::error_response(&id, &busy.error)).await;
                return;
            }
        };
        let caller = Caller {
            principal: PRINCIPAL.into(),
            scopes: Vec::new(),
            groups: Vec::new(),
            issuer: None,
            // One client per process.
            account: PRINCIPAL.into(),
            transport: "stdio",
            session: self.session.clone(),
            back: self.session.clone().map(|s| {
                Arc::new(Outbound {
                    session: s,
                    sink: Sink::Lines(self.tx.clone()),
                }) as Arc<dyn crate::approval::BackChannel>
            }),
            // stdout carries notifications at any time.
            notify: Some(Sink::Lines(self.tx.clone())),
            task_progress: None,
            trace_parent: None,
            access_token: None,
            request_id: self
                .shared
                .traced()
                .then(|| crate::protocol::id_text(&id))
                .flatten(),
        };
        let (shared, tx, id2) = (self.shared.clone(), self.tx.clone(), id.clone());
        let task = tokio::spawn(async move {
            let outcome = shared.handle(&method, params, &caller).await;
            let _ = tx.send(protocol::response(&id2, outcome).to_string()).await;
            if let Some(s) = &caller.session {
                s.untrack(&id2);
            }
            drop(in_flight);
        });
        if let Some(s) = &self.session {
            s.track(&id, task.abort_handle());
        }
    }

    /// Gives the streams a second to send their closing results.
    async fn wait_for_background(&mut self) {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
            while self.background.join_next().await.is_some() {}
        })
        .await;
    }

    /// Stops the streams and ends the session.
    async fn end(&mut self) {
        self.background.abort_all();
        if let Some(s) = self.session.take() {
            if let Some(s) = self.shared.sessions.remove(&s.id) {
                self.shared.end_session(&s).await;
            }
        }
    }

    /// Queues one message for the output; a closed output drops it.
    async fn send(&self, message: Value) {
        let _ = self.tx.send(message.to_string()).await;
    }
}

enum Line {
    Full,
    TooLong,
    End,
}

/// Reads one line of at most `max` bytes; a longer one is skipped whole.
async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Line> {
    let mut too_long = false;
    loop {
        let chunk = reader.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(if buf.is_empty() && !too_long {
                Line::End
            } else if too_long {
                Line::TooLong
            } else {
                Line::Full
            });
        }
        let (take, done) = match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        if !too_long {
            if buf.len() + take > max + 1 {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(&chunk[..take]);
            }
        }
        reader.consume(take);
        if done {
            return Ok(if too_long { Line::TooLong } else { Line::Full });
        }
    }
}

/// `subscriptions/listen` on stdio: acknowledged, then list changes until
/// shutdown, which ends it with its result.
async fn listen(shared: Arc<Shared>, tx: mpsc::Sender<String>, id: Value, params: Value) {
    let sink = Sink::Lines(tx.clone());
    let tools = params.pointer("/notifications/toolsListChanged") == Some(&Value::Bool(true));
    let ack = protocol::notification(
        "notifications/subscriptions/acknowledged",
        json!({"notifications": if tools { json!({"toolsListChanged": true}) } else { json!({}) }, "_meta": {protocol::META_SUBSCRIPTION: id}}),
    );
    if !sink.send(&ack).await {
        return;
    }
    let mut stopping = shared.stopping.subscribe();
    if tools {
        tokio::select! {
            _ = crate::client_sessions::list_changes(shared.clone(), sink, Some(id.clone())) => return,
            _ = crate::stopped(&mut stopping) => {}
        }
    } else {
        let _ = crate::stopped(&mut stopping).await;
    }
    let end = json!({"resultType": "complete", "_meta": {protocol::META_SUBSCRIPTION: id}});
    let _ = tx.send(protocol::response(&id, Ok(end)).to_string()).await;
}
