//! How long the cluster keeps what it no longer needs: the history stream's
//! age limit follows `daemon.history_retention`, and the delete markers that
//! purges leave in the KV buckets are removed once every node has seen them.
//!
//! A KV delete or purge writes a *marker* (a message with the key's subject
//! and a `KV-Operation` header) so that every node's watch learns the key is
//! gone; with `max_messages_per_subject = 1` it replaces the value, but the
//! marker itself stays for ever: one per purged job, freed dedupe key and
//! forgotten order. Markers older than [`MARKERS_KEPT`] are removed by a
//! stream purge of their subject *up to and including the marker's
//! sequence*, so a value written to the key after the marker (a dedupe key
//! taken again) is never touched. Every node runs this with its hourly
//! prune: it is idempotent, so no node needs to own it. A node that was cut
//! off for longer than [`MARKERS_KEPT`] and then resumed its watch may keep a
//! finished job in its view that others deleted (its reads show it until it
//! restarts); nothing it writes depends on it.

use std::time::Duration;

use async_nats::jetstream::kv;
use futures::StreamExt;

use super::{Inner, NatsStore, boxed, nats_error};
use crate::queue::Result;

/// How long a delete marker stays: far longer than any watch takes to
/// deliver it, while a node is connected.
pub(super) const MARKERS_KEPT: Duration = Duration::from_secs(3600);

/// How long reading a bucket's markers may take before the compaction stops
/// (it goes on at the next prune).
const SCAN_LIMIT: Duration = Duration::from_secs(60);
/// How long the scan waits for the next entry before it takes the bucket as
/// read (a server that stopped answering).
const SCAN_IDLE: Duration = Duration::from_secs(5);

impl NatsStore {
    /// Makes the history stream keep outcomes for `retention`
    /// (`daemon.history_retention`), changing the stream's age limit if it
    /// differs. Called by the daemon at start.
    pub async fn apply_history_retention(&self, retention: Duration) -> Result<()> {
        let inner = &self.inner;
        let name = inner.names.history_stream();
        let target = || format!("stream {name}");
        let mut stream = inner
            .js
            .get_stream(&name)
            .await
            .map_err(|e| nats_error(target(), "read stream settings")(boxed(e)))?;
        let info = stream
            .info()
            .await
            .map_err(|e| nats_error(target(), "read stream settings")(boxed(e)))?;
        let mut config = info.config.clone();
        if config.max_age == retention {
            return Ok(());
        }
        let was = config.max_age;
        config.max_age = retention;
        inner
            .js
            .update_stream(config)
            .await
            .map_err(|e| nats_error(target(), "change the history's age limit")(boxed(e)))?;
        tracing::info!(
            stream = %name,
            was = ?was,
            now = ?retention,
            "the cluster's delivery history follows daemon.history_retention"
        );
        Ok(())
    }
}

impl NatsStore {
    /// Removes the buckets' delete markers older than `kept` now (the prune
    /// does it with [`MARKERS_KEPT`]); for tests and tools. Returns how many.
    #[doc(hidden)]
    pub async fn compact_delete_markers(&self, kept: Duration) -> Result<usize> {
        self.inner.compact_markers(kept).await
    }
}

impl Inner {
    /// Removes delete markers older than `kept` from the buckets that get
    /// deletes (jobs, dedupe keys, order records). Returns how many.
    pub(super) async fn compact_markers(&self, kept: Duration) -> Result<usize> {
        let mut removed = 0;
        for (what, bucket) in [
            ("jobs", &self.buckets.jobs),
            ("dedupe", &self.buckets.dedupe),
            ("orders", &self.buckets.orders),
        ] {
            removed += self.compact_bucket(what, bucket, kept).await?;
        }
        Ok(removed)
    }

    async fn compact_bucket(
        &self,
        what: &str,
        bucket: &kv::Store,
        kept: Duration,
    ) -> Result<usize> {
        let name = self.names.bucket(what);
        let target = || format!("bucket {name}");
        // An empty bucket's watch delivers nothing at all: nothing to wait for.
        if self.bucket_state(&name).await?.messages == 0 {
            return Ok(0);
        }
        let cutoff = jiff::Timestamp::now()
            .as_second()
            .saturating_sub(i64::try_from(kept.as_secs()).unwrap_or(i64::MAX));
        // The latest entry of every key, deletes included, then stop.
        let mut watch = bucket
            .watch_with_history(">")
            .await
            .map_err(|e| nats_error(target(), "read delete markers")(boxed(e)))?;
        let mut old_markers = Vec::new();
        let started = tokio::time::Instant::now();
        loop {
            let left = SCAN_LIMIT.saturating_sub(started.elapsed()).min(SCAN_IDLE);
            let next = match tokio::time::timeout(left, watch.next()).await {
                Ok(next) => next,
                Err(_) => break,
            };
            let Some(entry) = next else { break };
            let entry = entry.map_err(|e| nats_error(target(), "read delete markers")(boxed(e)))?;
            let last = entry.delta == 0;
            if entry.operation != kv::Operation::Put && entry.created.unix_timestamp() <= cutoff {
                old_markers.push((entry.key, entry.revision));
            }
            if last {
                break;
            }
        }
        let stream_name = format!("KV_{name}");
        let stream = self
            .js
            .get_stream(&stream_name)
            .await
            .map_err(|e| nats_error(target(), "remove delete markers")(boxed(e)))?;
        let mut removed = 0;
        for (key, revision) in old_markers {
            // Up to the marker, never past it: a value written after the
            // marker stays.
            stream
                .purge()
                .filter(format!("$KV.{name}.{key}"))
                .sequence(revision.saturating_add(1))
                .await
                .map_err(|e| nats_error(target(), "remove a delete marker")(boxed(e)))?;
            removed += 1;
        }
        Ok(removed)
    }
}
