//! MCP Tasks across replicas (`[cluster]`): a task runs on the replica its
//! call reached, and its state is shared through Redis, so that
//! `tasks/get`, `tasks/cancel`, `tasks/update` and `subscriptions/listen`
//! are answered by every replica. A task's end is final: when one replica
//! cancels it while its own finishes it, the first end written is the one
//! every replica reports. A running task's replica renews a lease on it;
//! a task whose replica died is reported `failed`, saying so, once the
//! lease ends. How many tasks a principal holds is bounded per replica.

use crate::protocol::{RpcError, INTERNAL_ERROR};
use crate::tasks::{self, Tasks};
use crate::{Server, Shared};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use warden::cluster::{Cluster, Unreachable};
use warden_manifest::time::rfc3339;

/// How long a running task counts as alive without news from its replica.
const LEASE: Duration = Duration::from_secs(15);
/// How often a replica renews the leases of the tasks it runs.
pub(crate) const RENEW: Duration = Duration::from_secs(5);
/// The least time between two rounds of sharing: a task reporting
/// progress in a tight loop costs Redis one write per round at most.
pub(crate) const ROUND: Duration = Duration::from_millis(50);
/// News that tasks changed (the message: the replica that wrote them).
pub(crate) const CHANGED_TOPIC: &str = "tasks-changed";
/// A task to stop (the message: its id), cancelled through a replica
/// other than the one running it.
pub(crate) const CANCEL_TOPIC: &str = "task-cancel";

/// A task's shared state.
#[derive(Serialize, Deserialize)]
struct Record {
    principal: String,
    /// The replica running it.
    replica: String,
    /// Its detailed view (with the result or error once it ended).
    view: Value,
}

/// A task as Redis holds it.
struct Found {
    record: Record,
    /// It ended (or its replica is gone).
    ended: bool,
}

fn state(id: &str) -> String {
    format!("task:{id}")
}

fn alive(id: &str) -> String {
    format!("task-alive:{id}")
}

/// Writes `tasks`' changes since the last round to `cluster` as run by
/// `replica`, and tells the replicas. A change Redis did not take is
/// tried again at the next round.
pub(crate) async fn share(tasks: &Tasks, replica: &str, cluster: &Cluster) {
    let changed = tasks.unshared();
    if changed.is_empty() {
        return;
    }
    for (id, principal, view, ended) in changed {
        let record = Record {
            principal,
            replica: replica.to_string(),
            view,
        };
        if write(cluster, &id, &record, ended, tasks.ttl())
            .await
            .is_err()
        {
            tasks.unshare(&id);
        }
    }
    let _ = cluster.publish(CHANGED_TOPIC, replica).await;
}

/// Writes `record`: alive first, so that no reader sees a running task
/// without its lease; an end before the lease is let go.
async fn write(
    cluster: &Cluster,
    id: &str,
    record: &Record,
    ended: bool,
    ttl: Duration,
) -> Result<(), Unreachable> {
    let text = serde_json::to_string(record).expect("a task record serializes");
    if ended {
        cluster.advance(&state(id), &text, ttl, true).await?;
        return cluster.remove(&alive(id)).await;
    }
    cluster.put(&alive(id), "1", LEASE).await?;
    cluster
        .advance(&state(id), &text, ttl + LEASE, false)
        .await?;
    Ok(())
}

/// `principal`'s task `id` as Redis holds it; `None` if there is none (or
/// it is another principal's).
async fn lookup(
    cluster: &Cluster,
    principal: &str,
    id: &str,
) -> Result<Option<Found>, Unreachable> {
    let Some((text, last)) = cluster.state(&state(id)).await? else {
        return Ok(None);
    };
    let Ok(mut record) = serde_json::from_str::<Record>(&text) else {
        return Ok(None);
    };
    if record.principal != principal {
        return Ok(None);
    }
    if last || cluster.exists(&alive(id)).await? {
        return Ok(Some(Found {
            record,
            ended: last,
        }));
    }
    let message = format!(
        "the replica running it ({}) stopped before it ended",
        record.replica
    );
    record.view["status"] = json!("failed");
    record.view["statusMessage"] = json!(message);
    record.view["error"] = json!({"code": INTERNAL_ERROR, "message": message});
    Ok(Some(Found {
        record,
        ended: true,
    }))
}

/// The error for a task that cannot be looked up while Redis is silent.
fn unavailable(id: &str, e: &Unreachable) -> RpcError {
    let mut error = RpcError::new(INTERNAL_ERROR, format!("the task cannot be looked up: {e}"));
    error.data = Some(json!({"taskId": id}));
    error
}

impl Shared {
    /// `principal`'s task `id` with whether it ended, wherever it runs:
    /// an end shared by any replica is final; otherwise this replica's own
    /// state of a task it runs is the freshest.
    pub(crate) async fn task(&self, principal: &str, id: &str) -> Result<(Value, bool), RpcError> {
        let here = self.tasks.views(principal, &[id.to_string()]).pop();
        let Some(cluster) = self.cluster() else {
            return here.ok_or_else(|| tasks::not_found(id));
        };
        match lookup(&cluster, principal, id).await {
            Ok(Some(found)) if found.ended => Ok((found.record.view, true)),
            Ok(found) => match (here, found) {
                (Some(here), _) => Ok(here),
                (None, Some(found)) => Ok((found.record.view, false)),
                (None, None) => Err(tasks::not_found(id)),
            },
            Err(e) => here.ok_or_else(|| unavailable(id, &e)),
        }
    }

    /// `tasks/cancel`: a running task is stopped, on whichever replica
    /// runs it; an ended one stays as it ended.
    pub(crate) async fn cancel_task(&self, principal: &str, id: &str) -> Result<(), RpcError> {
        let Some(cluster) = self.cluster() else {
            return self.tasks.cancel(principal, id);
        };
        if self.tasks.cancel(principal, id).is_ok() {
            share(&self.tasks, &self.replica, &cluster).await;
            return Ok(());
        }
        let found = match lookup(&cluster, principal, id).await {
            Ok(Some(found)) => found,
            Ok(None) => return Err(tasks::not_found(id)),
            Err(e) => return Err(unavailable(id, &e)),
        };
        if found.ended {
            return Ok(());
        }
        let mut record = found.record;
        record.view["status"] = json!("cancelled");
        record.view["statusMessage"] = json!("cancelled by the client");
        record.view["lastUpdatedAt"] = json!(rfc3339(SystemTime::now(), true));
        let written = write(&cluster, id, &record, true, self.tasks.ttl()).await;
        written.map_err(|e| unavailable(id, &e))?;
        let _ = cluster.publish(CANCEL_TOPIC, id).await;
        let _ = cluster.publish(CHANGED_TOPIC, &self.replica).await;
        Ok(())
    }

    /// `tasks/update`: the task must be the caller's (this server never
    /// asks a task's client for input).
    pub(crate) async fn check_task(&self, principal: &str, id: &str) -> Result<(), RpcError> {
        self.task(principal, id).await.map(|_| ())
    }

    /// The views of those of `ids` that are `principal`'s, with whether
    /// each has ended.
    pub(crate) async fn task_views(&self, principal: &str, ids: &[String]) -> Vec<(Value, bool)> {
        if self.cluster().is_none() {
            return self.tasks.views(principal, ids);
        }
        let mut views = Vec::with_capacity(ids.len());
        for id in ids {
            if let Ok(view) = self.task(principal, id).await {
                views.push(view);
            }
        }
        views
    }

    /// Shares a new task at once, so that every replica knows it before
    /// its client hears of it.
    pub(crate) async fn share_new_task(&self) {
        if let Some(cluster) = self.cluster() {
            share(&self.tasks, &self.replica, &cluster).await;
        }
    }

    /// What the replicas' task news asks of this one.
    pub(crate) fn on_task_news(&self, topic: &str, message: &str) {
        match topic {
            CANCEL_TOPIC => self.tasks.stop(message),
            _ => self.tasks.notify(),
        }
    }
}

impl Server {
    /// With `[cluster]`: this replica's tasks shared with the others, and
    /// theirs heard of (`cluster_tasks`).
    pub(crate) fn spawn_task_sharing(&self) {
        let Some(cluster) = self.shared.cluster() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(keep_shared(
            self.shared.tasks.clone(),
            self.shared.replica.clone(),
            cluster,
            self.shared.stopping.subscribe(),
        ));
        for topic in [CHANGED_TOPIC, CANCEL_TOPIC] {
            self.spawn_listener(topic, move |shared, message| {
                shared.on_task_news(topic, message)
            });
        }
    }
}

/// Shares `tasks` while `cluster` runs: at each change (a round at most
/// every [`ROUND`]) and every [`RENEW`] (the leases of running tasks).
pub(crate) async fn keep_shared(
    tasks: Arc<Tasks>,
    replica: String,
    cluster: Arc<Cluster>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    let mut changes = tasks.subscribe();
    loop {
        tokio::select! {
            r = changes.changed() => if r.is_err() { return },
            () = tokio::time::sleep(RENEW) => tasks.reshare_running(),
            _ = crate::stopped(&mut stopping) => return,
        }
        changes.borrow_and_update();
        share(&tasks, &replica, &cluster).await;
        tokio::time::sleep(ROUND).await;
    }
}
