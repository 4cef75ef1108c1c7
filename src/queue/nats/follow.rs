//! The background tasks that keep a node's [`Mirror`] in step with the
//! cluster: a KV watch of the jobs bucket, an ordered consumer of the
//! history stream and KV watches of the store and channel statuses (for the
//! pause flags whose lifting wakes a poller or dispatcher on any node).
//!
//! A watch that ends (the connection dropped for good) is opened again; the
//! jobs watch re-delivers the latest revision of every key, which the view
//! applies idempotently, and the history consumer resumes after the last
//! sequence it counted, so nothing is counted twice.

use std::sync::Arc;

use async_nats::jetstream::consumer::{DeliverPolicy, push};
use async_nats::jetstream::{kv, stream};
use futures::StreamExt;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::mirror::{JobRecord, Mirror};
use super::{HistoryEvent, boxed, keys, nats_error};
use crate::queue::{ChannelStatus, JobId, Result, StoreStatus};

/// Signals that a follower has delivered everything that existed when it started.
pub(super) struct Ready(oneshot::Receiver<()>);

impl Ready {
    /// Waits for it (returns at once if the follower died: reads then see
    /// what it loaded, and the error was logged).
    pub(super) async fn await_ready(self) {
        let _ = self.0.await;
    }
}

impl std::future::IntoFuture for Ready {
    type Output = ();
    type IntoFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.await_ready())
    }
}

/// Pause seconds between attempts to re-open a broken watch.
const REOPEN_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

/// Follows the jobs bucket into the view.
pub(super) async fn jobs(
    bucket: kv::Store,
    mirror: Arc<Mirror>,
) -> Result<(JoinHandle<()>, Ready)> {
    let name = bucket.name.clone();
    let empty = bucket
        .status()
        .await
        .map_err(|e| nats_error(format!("bucket {name}"), "read bucket status")(boxed(e)))?
        .values()
        == 0;
    let watch = bucket
        .watch_with_history(">")
        .await
        .map_err(|e| nats_error(format!("bucket {name}"), "watch")(boxed(e)))?;
    let (ready_tx, ready_rx) = oneshot::channel();
    let mut ready_tx = Some(ready_tx);
    if empty && let Some(ready) = ready_tx.take() {
        let _ = ready.send(());
    }
    let task = tokio::spawn(async move {
        let mut watch = watch;
        loop {
            while let Some(entry) = watch.next().await {
                let entry = match entry {
                    Ok(entry) => entry,
                    Err(error) => {
                        tracing::warn!(bucket = %name, %error, "the jobs watch failed; re-opening it");
                        break;
                    }
                };
                apply_job_entry(&mirror, &name, &entry);
                if entry.delta == 0
                    && let Some(ready) = ready_tx.take()
                {
                    let _ = ready.send(());
                }
            }
            tokio::time::sleep(REOPEN_PAUSE).await;
            match bucket.watch_with_history(">").await {
                Ok(reopened) => watch = reopened,
                Err(error) => {
                    tracing::warn!(bucket = %name, %error, "cannot re-open the jobs watch; trying again");
                }
            }
        }
    });
    Ok((task, Ready(ready_rx)))
}

fn apply_job_entry(mirror: &Mirror, bucket: &str, entry: &kv::Entry) {
    let Ok(id) = entry.key.parse::<JobId>() else {
        tracing::warn!(bucket, key = %entry.key, "a key of the jobs bucket is no job id; ignored");
        mirror.skip_job_revision(entry.revision);
        return;
    };
    match entry.operation {
        kv::Operation::Put => match serde_json::from_slice::<JobRecord>(&entry.value) {
            Ok(record) => mirror.apply_job(id, entry.revision, Some(record)),
            Err(error) => {
                tracing::warn!(bucket, job = %id, %error, "a job record is unreadable; left out of this node's view");
                mirror.skip_job_revision(entry.revision);
            }
        },
        kv::Operation::Delete | kv::Operation::Purge => mirror.apply_job(id, entry.revision, None),
    }
}

/// Follows the history stream into the daily counters.
pub(super) async fn history(
    mut stream: stream::Stream,
    client: async_nats::Client,
    mirror: Arc<Mirror>,
) -> Result<(JoinHandle<()>, Ready)> {
    let name = stream.cached_info().config.name.clone();
    let info = stream
        .info()
        .await
        .map_err(|e| nats_error(format!("stream {name}"), "read stream info")(boxed(e)))?;
    let empty = info.state.messages == 0;
    let (ready_tx, ready_rx) = oneshot::channel();
    let mut ready_tx = Some(ready_tx);
    if empty && let Some(ready) = ready_tx.take() {
        let _ = ready.send(());
    }
    let mut messages = open_history(&stream, &client, DeliverPolicy::All).await?;
    let task = tokio::spawn(async move {
        let mut last_sequence = 0;
        loop {
            while let Some(message) = messages.next().await {
                let message = match message {
                    Ok(message) => message,
                    Err(error) => {
                        tracing::warn!(stream = %name, %error, "the history consumer failed; re-opening it");
                        break;
                    }
                };
                let Ok(info) = message.info() else {
                    continue;
                };
                let (sequence, pending) = (info.stream_sequence, info.pending);
                last_sequence = sequence;
                let event = serde_json::from_slice::<HistoryEvent>(&message.payload).ok();
                if event.is_none() {
                    tracing::warn!(stream = %name, sequence, "a history event is unreadable; not counted");
                }
                mirror.apply_history(sequence, event);
                if pending == 0
                    && let Some(ready) = ready_tx.take()
                {
                    let _ = ready.send(());
                }
            }
            tokio::time::sleep(REOPEN_PAUSE).await;
            let from = DeliverPolicy::ByStartSequence {
                start_sequence: last_sequence + 1,
            };
            match open_history(&stream, &client, from).await {
                Ok(reopened) => messages = reopened,
                Err(error) => {
                    tracing::warn!(stream = %name, %error, "cannot re-open the history consumer; trying again");
                }
            }
        }
    });
    Ok((task, Ready(ready_rx)))
}

async fn open_history(
    stream: &stream::Stream,
    client: &async_nats::Client,
    from: DeliverPolicy,
) -> Result<push::Ordered> {
    let name = stream.cached_info().config.name.clone();
    let consumer = stream
        .create_consumer(push::OrderedConfig {
            deliver_subject: client.new_inbox(),
            description: Some("arauto counters".to_owned()),
            deliver_policy: from,
            ..Default::default()
        })
        .await
        .map_err(|e| nats_error(format!("stream {name}"), "create consumer")(boxed(e)))?;
    consumer
        .messages()
        .await
        .map_err(|e| nats_error(format!("stream {name}"), "consume")(boxed(e)))
}

/// Which statuses a pause follower reads.
#[derive(Clone, Copy, Debug)]
pub(super) enum Paused {
    Store,
    Channel,
}

/// Follows store or channel statuses for their pause flags.
pub(super) async fn pauses(
    bucket: kv::Store,
    mirror: Arc<Mirror>,
    which: Paused,
) -> Result<JoinHandle<()>> {
    let name = bucket.name.clone();
    let mut watch = bucket
        .watch_with_history(">")
        .await
        .map_err(|e| nats_error(format!("bucket {name}"), "watch")(boxed(e)))?;
    Ok(tokio::spawn(async move {
        loop {
            while let Some(Ok(entry)) = watch.next().await {
                let Some(scope) = keys::unescape(&entry.key) else {
                    continue;
                };
                let paused = entry.operation == kv::Operation::Put
                    && match which {
                        Paused::Store => serde_json::from_slice::<StoreStatus>(&entry.value)
                            .is_ok_and(|status| status.paused.is_some()),
                        Paused::Channel => serde_json::from_slice::<ChannelStatus>(&entry.value)
                            .is_ok_and(|status| status.paused.is_some()),
                    };
                match which {
                    Paused::Store => mirror.apply_store_pause(&scope, paused),
                    Paused::Channel => mirror.apply_channel_pause(&scope, paused),
                }
            }
            tokio::time::sleep(REOPEN_PAUSE).await;
            match bucket.watch_with_history(">").await {
                Ok(reopened) => watch = reopened,
                Err(error) => {
                    tracing::warn!(bucket = %name, %error, "cannot re-open the status watch; trying again");
                }
            }
        }
    }))
}
