//! A plugin's sessions: opening one in an instance of its own, calls
//! within it, closing it, and ending the remote state of one whose instance
//! died.

use super::*;

/// An open session: its own instance and the guest's session resource.
pub(crate) struct LiveSession {
    pub(super) warm: Warm,
    pub(super) handle: ResourceAny,
}

impl LoadedPlugin {
    /// Opens a session for `capability` in a new instance of its own.
    pub(crate) async fn open_session(
        self: &Arc<Self>,
        capability: &str,
        config: &Value,
        call: CallTag<'_>,
    ) -> Result<LiveSession> {
        let mut warm = self.new_instance(capability).await?;
        warm.store.data().auditor.enter(capability, call);
        let Some(guest) = warm.guests.sessions.clone() else {
            return Err(Error::Contract {
                plugin: self.name().to_string(),
                message: format!(
                    "`{capability}` asks for a session, and the plugin exports no session-handler"
                ),
            });
        };
        self.arm(&mut warm.store);
        let config = config.to_string();
        let r = self
            .timed(
                guest
                    .session()
                    .call_open(&mut warm.store, capability, &config),
            )
            .await;
        match self.settle(&warm.store, capability, r) {
            Ok(Ok(handle)) => Ok(LiveSession { warm, handle }),
            Ok(Err(e)) => {
                // Whatever it opened before failing is released.
                self.abandon(warm);
                Err(self.wit_error(capability, e))
            }
            Err(fatal) => {
                self.abandon(warm);
                Err(fatal)
            }
        }
    }

    /// Discards a session whose instance died (a trap, a limit); the remote
    /// state it had set is released from a fresh instance.
    pub(crate) fn abandon_session(self: &Arc<Self>, dead: LiveSession) {
        self.abandon(dead.warm);
    }

    /// Calls `capability` within `live`. The outer error means the session's
    /// instance trapped or hit a limit: drop the session, never enter it again.
    pub(crate) async fn session_call(
        &self,
        live: &mut LiveSession,
        capability: &str,
        input: &Value,
        call: CallTag<'_>,
    ) -> std::result::Result<Result<Value>, Error> {
        live.warm.store.data().auditor.enter(capability, call);
        let input_text =
            serde_json::to_string(input).map_err(|e| Error::Internal(e.to_string()))?;
        let guest = live
            .warm
            .guests
            .sessions
            .clone()
            .expect("a live session has a handler");
        self.arm(&mut live.warm.store);
        let r = self
            .timed(guest.session().call_call(
                &mut live.warm.store,
                live.handle,
                capability,
                &input_text,
            ))
            .await;
        let outcome = self.settle(&live.warm.store, capability, r);
        let flooded = live.warm.store.data().end_call(capability);
        let outcome = outcome?;
        if flooded {
            return Ok(Err(self.limit_error(capability, Limit::Log)));
        }
        if let Ok(text) = &outcome {
            if text.len() as u64 > self.limits().max_output_bytes {
                return Ok(Err(self.output_too_large(&live.warm.store, capability)));
            }
        }
        let auditor = live.warm.store.data().auditor.clone();
        Ok(self.output(&auditor, capability, outcome))
    }

    /// Closes a session: the guest's resource is dropped (a provider ends the
    /// remote session then, e.g. MCP `DELETE`) and its instance discarded.
    /// Remote state the instance still reports (the close failed or hit a
    /// limit) is released from a fresh instance.
    pub(crate) async fn close_session(self: &Arc<Self>, mut live: LiveSession) {
        self.arm(&mut live.warm.store);
        let r = self
            .timed(live.handle.resource_drop_async(&mut live.warm.store))
            .await;
        if let Err(e) = self.settle(&live.warm.store, "close session", r) {
            tracing::warn!(plugin = %self.name(), "closing a session failed: {e}");
        }
        self.abandon(live.warm);
    }
}
