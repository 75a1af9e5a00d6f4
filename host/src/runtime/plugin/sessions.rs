//! A plugin's sessions: opening one in an instance of its own, calls
//! within it, closing it, and ending the remote state of one whose instance
//! died.

use super::*;

/// An open session: its own instance and the guest's session resource.
pub(crate) struct LiveSession {
    pub(super) warm: Warm,
    pub(super) handle: ResourceAny,
    /// What ends its remote state from another instance if this one dies.
    pub(crate) remains: Remains,
}

/// A session's remote state as its provider last reported it
/// (`remote-state`), with what `release` needs besides.
#[derive(Clone, Default)]
pub(crate) struct Remains {
    pub(crate) capability: String,
    pub(crate) config: String,
    pub(crate) state: String,
}

impl LoadedPlugin {
    /// Opens a session for `capability` in a new instance of its own.
    pub(crate) async fn open_session(
        &self,
        capability: &str,
        config: &Value,
        call_id: &str,
    ) -> Result<LiveSession> {
        let mut warm = self.new_instance(capability).await?;
        warm.store.data().auditor.enter(capability, call_id);
        let Some(guest) = warm.sessions.clone() else {
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
        match self.settle(&warm.store, capability, r)? {
            Ok(handle) => {
                let mut live = LiveSession {
                    warm,
                    handle,
                    remains: Remains {
                        capability: capability.to_string(),
                        config,
                        state: String::new(),
                    },
                };
                self.refresh_remains(&mut live).await?;
                Ok(live)
            }
            Err(e) => Err(self.wit_error(capability, e)),
        }
    }

    /// Asks the session what would end its remote state from elsewhere.
    async fn refresh_remains(&self, live: &mut LiveSession) -> Result<()> {
        let guest = live
            .warm
            .sessions
            .clone()
            .expect("a live session has a handler");
        let r = self
            .timed(
                guest
                    .session()
                    .call_remote_state(&mut live.warm.store, live.handle),
            )
            .await;
        live.remains.state = self.settle(&live.warm.store, "remote-state", r)?;
        Ok(())
    }

    /// Ends the remote state of a session whose instance died, on a fresh
    /// instance of its own (`release`). Failures are logged.
    pub(crate) async fn release_session(&self, remains: Remains) {
        if remains.state.is_empty() {
            return;
        }
        let released = async {
            let mut warm = self.new_instance("release").await?;
            let guest = warm
                .sessions
                .clone()
                .ok_or_else(|| Error::Internal("a session without a session handler".into()))?;
            self.arm(&mut warm.store);
            let r = self
                .timed(guest.call_release(
                    &mut warm.store,
                    &remains.capability,
                    &remains.config,
                    &remains.state,
                ))
                .await;
            self.settle(&warm.store, "release session", r)
        };
        match released.await {
            Ok(()) => {
                tracing::debug!(plugin = %self.name(), capability = %remains.capability, "released a dead session's remote state")
            }
            Err(e) => {
                tracing::warn!(plugin = %self.name(), "releasing a dead session's remote state failed: {e}")
            }
        }
    }

    /// Calls `capability` within `live`. The outer error means the session's
    /// instance trapped or hit a limit: drop the session, never enter it again.
    pub(crate) async fn session_call(
        &self,
        live: &mut LiveSession,
        capability: &str,
        input: &Value,
        call_id: &str,
    ) -> std::result::Result<Result<Value>, Error> {
        live.warm.store.data().auditor.enter(capability, call_id);
        let input_text =
            serde_json::to_string(input).map_err(|e| Error::Internal(e.to_string()))?;
        let guest = live
            .warm
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
        self.refresh_remains(live).await?;
        if flooded {
            return Ok(Err(self.limit_error(capability, Limit::Log)));
        }
        if let Ok(text) = &outcome {
            if text.len() as u64 > self.limits().max_output_bytes {
                return Ok(Err(self.output_too_large(&live.warm.store, capability)));
            }
        }
        Ok(match outcome {
            Ok(text) => serde_json::from_str(&text).map_err(|e| Error::Contract {
                plugin: self.name().to_string(),
                message: format!("`{capability}` returned output that is not JSON: {e}"),
            }),
            Err(e) => Err(self.wit_error(capability, e)),
        })
    }

    /// Closes a session: the guest's resource is dropped (a provider ends the
    /// remote session then, e.g. MCP `DELETE`) and its instance discarded.
    pub(crate) async fn close_session(&self, mut live: LiveSession) {
        self.arm(&mut live.warm.store);
        let r = self
            .timed(live.handle.resource_drop_async(&mut live.warm.store))
            .await;
        if let Err(e) = self.settle(&live.warm.store, "close session", r) {
            tracing::warn!(plugin = %self.name(), "closing a session failed: {e}");
        }
    }
}
