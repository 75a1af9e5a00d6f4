//! Remote state a plugin's instances leave behind (`host.set-remote-state`):
//! released from a fresh instance (`cleanup.release`) when an instance dies
//! in a call or is given up, and by idle instances themselves at shutdown.

use super::*;

/// An instance inside a call. Dropped while still holding it (a trap, a
/// limit, a caller that went away), it is discarded and the remote state
/// it had set is released from a fresh instance.
pub(super) struct Entered<'a> {
    plugin: &'a Arc<LoadedPlugin>,
    warm: Option<Warm>,
}

impl<'a> Entered<'a> {
    pub(super) fn new(plugin: &'a Arc<LoadedPlugin>, warm: Warm) -> Self {
        Entered {
            plugin,
            warm: Some(warm),
        }
    }

    /// The instance, while the call is in it.
    pub(super) fn warm(&mut self) -> &mut Warm {
        self.warm.as_mut().expect("held until `back`")
    }

    /// The call came back: the instance is the caller's again.
    pub(super) fn back(mut self) -> Warm {
        self.warm.take().expect("held until `back`")
    }
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        if let Some(warm) = self.warm.take() {
            self.plugin.abandon(warm);
        }
    }
}

impl LoadedPlugin {
    /// Discards an instance that died or was given up in a call; the remote
    /// state it had set is released from a fresh instance, in the
    /// background.
    pub(super) fn abandon(self: &Arc<Self>, warm: Warm) {
        let mut warm = warm;
        let state = std::mem::take(&mut warm.store.data_mut().remote_state);
        if state.is_empty() || self.exports.cleanup.is_none() {
            return;
        }
        // The release's effects are recorded under the call that left the
        // state behind.
        let (capability, call_id) = warm.store.data().auditor.current();
        drop(warm);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(plugin = %self.name(), "an instance died with remote state, and there is no runtime to release it on");
            return;
        };
        let plugin = self.clone();
        runtime.spawn(async move {
            let during = format!("release after {capability}");
            plugin.release(state, &during, &call_id).await
        });
    }

    /// Ends the remote state a dead instance left: `cleanup.release` on a
    /// fresh instance, its records under `during` and `call_id`. Failures
    /// are logged.
    async fn release(&self, state: String, during: &str, call_id: &str) {
        let released = async {
            let mut warm = self.new_instance(during).await?;
            self.release_on(&mut warm, &state, during, call_id).await
        };
        match released.await {
            Ok(()) => {
                tracing::debug!(plugin = %self.name(), "released a dead instance's remote state")
            }
            Err(e) => {
                tracing::warn!(plugin = %self.name(), "releasing a dead instance's remote state failed: {e}")
            }
        }
    }

    /// Ends the remote state idle instances hold (for MCP: sessions kept
    /// for direct calls), each on itself and all at once; the instances are
    /// discarded. The caller bounds the whole (the shutdown budget).
    pub(crate) async fn release_idle(&self) {
        let idle: Vec<Warm> = std::mem::take(&mut *self.idle.lock().expect("pool lock"));
        let releases = idle.into_iter().map(|mut warm| async move {
            let state = std::mem::take(&mut warm.store.data_mut().remote_state);
            if state.is_empty() || warm.guests.cleanup.is_none() {
                return;
            }
            let released = self
                .release_on(&mut warm, &state, "release at shutdown", "")
                .await;
            if let Err(e) = released {
                tracing::warn!(plugin = %self.name(), "releasing an idle instance's remote state failed: {e}");
            }
        });
        futures::future::join_all(releases).await;
    }

    /// Runs `cleanup.release(state)` in `warm`, under the plugin's limits,
    /// its records under `during` and `call_id`.
    async fn release_on(
        &self,
        warm: &mut Warm,
        state: &str,
        during: &str,
        call_id: &str,
    ) -> Result<()> {
        let guest = warm
            .guests
            .cleanup
            .clone()
            .ok_or_else(|| Error::Internal("no cleanup export".into()))?;
        warm.store
            .data()
            .auditor
            .enter(during, CallTag::untraced(call_id));
        self.arm(&mut warm.store);
        let r = self.timed(guest.call_release(&mut warm.store, state)).await;
        self.settle(&warm.store, "release", r)
    }
}
