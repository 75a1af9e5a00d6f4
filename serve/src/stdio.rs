//! The stdio transport: one client (the process that launched `warden
//! serve --stdio`), newline-delimited JSON-RPC. Only JSON-RPC goes to
//! stdout; logs go to stderr.

use crate::dispatch::Caller;
use crate::protocol::{self, Message, RpcError};
use crate::sessions::{Outbound, Session, Sink};
use crate::Shared;
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// The principal of the stdio client: whoever launched the process.
const PRINCIPAL: &str = "stdio";

/// Serves one client on `input`/`output` until `input` closes.
pub(crate) async fn serve<R, W>(shared: Arc<Shared>, input: R, output: W)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, writer) = spawn_writer(output);
    let mut reader = BufReader::new(input);
    let mut session: Option<Arc<Session>> = None;
    let mut background = tokio::task::JoinSet::new();
    let mut line = Vec::new();
    let max = shared.settings.max_request_bytes as usize;
    let mut stopping = shared.stopping.subscribe();
    loop {
        line.clear();
        let read = tokio::select! {
            r = read_line(&mut reader, &mut line, max) => r,
            _ = crate::stopped(&mut stopping) => {
                // Shutdown: listen streams send their closing result; the
                // server itself waits for calls in flight and ends sessions.
                let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
                    while background.join_next().await.is_some() {}
                })
                .await;
                drop(tx);
                let _ = writer.await;
                return;
            }
        };
        match read {
            Ok(Line::End) | Err(_) => break,
            Ok(Line::TooLong) => {
                let e = RpcError::new(
                    protocol::INVALID_REQUEST,
                    format!("message longer than {max} bytes (serve.max-request-bytes)"),
                );
                let _ = tx
                    .send(protocol::error_response(&Value::Null, &e).to_string())
                    .await;
                continue;
            }
            Ok(Line::Full) => {}
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let message = match protocol::decode(&line) {
            Ok(m) => m,
            Err(e) => {
                let _ = tx
                    .send(protocol::error_response(&Value::Null, &e).to_string())
                    .await;
                continue;
            }
        };
        match message {
            Message::Response { id, body } => {
                if let Some(s) = &session {
                    s.deliver(&id, body);
                }
            }
            Message::Notification { method, params } => {
                if let Some(s) = &session {
                    notified(s, &method, &params);
                }
            }
            Message::Request { id, method, params } if method == "initialize" => {
                let outcome = match &session {
                    Some(_) => Err(RpcError::new(
                        protocol::INVALID_REQUEST,
                        "initialized already",
                    )),
                    None => shared.initialize(&params, PRINCIPAL).map(|(s, result)| {
                        background.spawn(crate::sessions::list_changes(
                            shared.clone(),
                            Sink::Lines(tx.clone()),
                            None,
                        ));
                        session = Some(s);
                        result
                    }),
                };
                let _ = tx.send(protocol::response(&id, outcome).to_string()).await;
            }
            Message::Request { id, method, params } if method == "subscriptions/listen" => {
                match protocol::envelope(&params) {
                    Err(e) => {
                        let _ = tx.send(protocol::error_response(&id, &e).to_string()).await;
                    }
                    Ok(_) => {
                        background.spawn(listen(shared.clone(), tx.clone(), id, params));
                    }
                }
            }
            Message::Request { id, method, params } => {
                let in_flight = match shared.enter(PRINCIPAL) {
                    Ok(f) => f,
                    Err(busy) => {
                        let e = protocol::error_response(&id, &busy.error);
                        let _ = tx.send(e.to_string()).await;
                        continue;
                    }
                };
                let caller = Caller {
                    principal: PRINCIPAL.into(),
                    transport: "stdio",
                    session: session.clone(),
                    back: session.clone().map(|s| {
                        Arc::new(Outbound {
                            session: s,
                            sink: Sink::Lines(tx.clone()),
                        }) as Arc<dyn crate::approval::BackChannel>
                    }),
                };
                let (shared2, tx2, id2) = (shared.clone(), tx.clone(), id.clone());
                let task = tokio::spawn(async move {
                    let outcome = shared2.handle(&method, params, &caller).await;
                    let _ = tx2
                        .send(protocol::response(&id2, outcome).to_string())
                        .await;
                    if let Some(s) = &caller.session {
                        s.untrack(&id2);
                    }
                    drop(in_flight);
                });
                if let Some(s) = &session {
                    s.track(&id, task.abort_handle());
                }
            }
        }
    }
    // Input closed (or shutdown): what is still running has nobody to
    // answer; its calls end as `cancelled`. The session ends with it.
    background.abort_all();
    if let Some(s) = session {
        if let Some(s) = shared.sessions.remove(&s.id) {
            shared.end_session(&s).await;
        }
    }
    drop(tx);
    let _ = writer.await;
}

/// The writer of `output`: each line sent to it, then a newline, until
/// the channel closes or a write fails.
fn spawn_writer<W>(output: W) -> (mpsc::Sender<String>, tokio::task::JoinHandle<()>)
where
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel::<String>(256);
    let writer = tokio::spawn(async move {
        let mut output = output;
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

/// A notification from the client to its session.
fn notified(session: &Session, method: &str, params: &Value) {
    match method {
        "notifications/initialized" => {
            session
                .initialized
                .store(true, std::sync::atomic::Ordering::Release);
        }
        "notifications/cancelled" => {
            if let Some(id) = params.get("requestId") {
                session.cancel(id);
            }
        }
        _ => {}
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
            _ = crate::sessions::list_changes(shared.clone(), sink, Some(id.clone())) => return,
            _ = crate::stopped(&mut stopping) => {}
        }
    } else {
        let _ = crate::stopped(&mut stopping).await;
    }
    let end = json!({"resultType": "complete", "_meta": {protocol::META_SUBSCRIPTION: id}});
    let _ = tx.send(protocol::response(&id, Ok(end)).to_string()).await;
}
