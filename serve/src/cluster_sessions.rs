//! 2025-11-25 sessions across replicas (`[cluster]`): a session's record
//! (principal, revision, client, whether it can ask its user) is kept in
//! Redis while the session is used, so that any replica serves any of its
//! requests. A replica that has not seen a session adopts it from its
//! record; every request refreshes the record's time to live
//! (`session-idle-ms`) and finds one ended elsewhere (`DELETE`) gone.
//!
//! What stays with one replica: the host sessions a session's calls open
//! (an upstream MCP session, say: a request on another replica opens its
//! own), its GET stream, and a question to its user (the answer must come
//! to the replica that asked: put 2025-11-25 clients that approve calls
//! on one replica with the load balancer's affinity on `Mcp-Session-Id`).

use crate::client_sessions::Session;
use crate::Shared;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use warden::cluster::{Cluster, OnUnreachable};

/// What a replica needs to serve a session it did not open.
#[derive(Serialize, Deserialize)]
struct Record {
    principal: String,
    version: String,
    client: String,
    elicitation: bool,
}

/// A session looked up by id.
pub(crate) enum Found {
    Session(Arc<Session>),
    /// Not open (or another principal's: as unknown as a closed one).
    Unknown,
    /// Whether it is open cannot be told (Redis silent, `fail-closed`),
    /// or this replica has no room to adopt it.
    Unavailable(String),
}

fn name(id: &str) -> String {
    format!("session:{id}")
}

impl Shared {
    /// The serving host's `[cluster]`, when set.
    pub(crate) fn cluster(&self) -> Option<Arc<Cluster>> {
        self.host().cluster().cloned()
    }

    fn idle(&self) -> Duration {
        Duration::from_millis(self.settings.session_idle_ms)
    }

    /// Records a new session for the other replicas. `Err` (Redis silent
    /// under `fail-closed`): the session is not opened.
    pub(crate) async fn share_session(&self, session: &Session) -> Result<(), String> {
        let Some(cluster) = self.cluster() else {
            return Ok(());
        };
        let record = Record {
            principal: session.principal.clone(),
            version: session.version.clone(),
            client: session.client.clone(),
            elicitation: session.elicitation,
        };
        let text = serde_json::to_string(&record).expect("a record serializes");
        match cluster.put(&name(&session.id), &text, self.idle()).await {
            Ok(()) => Ok(()),
            Err(_) if cluster.mode() == OnUnreachable::FailOpen => Ok(()),
            Err(e) => Err(format!(
                "the session cannot be shared with the other replicas ({e}; cluster.on-unreachable = fail-closed)"
            )),
        }
    }

    /// The session `id` of `principal`, opened here or on another replica.
    pub(crate) async fn find_session(&self, id: &str, principal: &str) -> Found {
        let here = self.sessions.get(id, principal);
        let Some(cluster) = self.cluster() else {
            return here.map_or(Found::Unknown, Found::Session);
        };
        let record = match cluster.get_refreshed(&name(id), self.idle()).await {
            Ok(record) => record,
            Err(_) if cluster.mode() == OnUnreachable::FailOpen => {
                return here.map_or(Found::Unknown, Found::Session)
            }
            Err(e) => {
                return Found::Unavailable(format!(
                    "whether the session is open cannot be checked ({e}; cluster.on-unreachable = fail-closed)"
                ))
            }
        };
        let record = record.and_then(|text| serde_json::from_str::<Record>(&text).ok());
        match (record, here) {
            (Some(r), _) if r.principal != principal => Found::Unknown,
            (Some(_), Some(s)) => Found::Session(s),
            (Some(r), None) => self.adopt(id, r),
            // Ended on another replica (or expired there): ended here too.
            (None, Some(_)) => {
                if let Some(s) = self.sessions.remove(id) {
                    self.end_session(&s).await;
                }
                Found::Unknown
            }
            (None, None) => Found::Unknown,
        }
    }

    fn adopt(&self, id: &str, r: Record) -> Found {
        match self
            .sessions
            .adopt(id, &r.principal, &r.version, r.client, r.elicitation)
        {
            Ok(s) => {
                tracing::debug!(session = %id, principal = %r.principal, "a session opened on another replica is served here");
                Found::Session(s)
            }
            Err(_) => Found::Unavailable(
                "this replica has no room for another session (serve.max-sessions)".into(),
            ),
        }
    }

    /// Ends session `id` for every replica (`DELETE`).
    pub(crate) async fn forget_session(&self, id: &str) {
        if let Some(cluster) = self.cluster() {
            let _ = cluster.remove(&name(id)).await;
        }
    }
}
