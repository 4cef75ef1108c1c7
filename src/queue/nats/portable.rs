//! The NATS backend's side of the portable state format
//! ([`crate::queue::portable`]), for `arauto state export|import` between a
//! single node's redb file and a cluster.
//!
//! Export reads each bucket once through a KV watch that replays the latest
//! value of every key and stops when it has caught up (a snapshot per
//! bucket, not across buckets: export a cluster whose daemons are stopped).
//! A dedupe key is exported only while its holder really holds it (the key
//! names the job, which lists it and is not cancelled). Counters come from
//! this node's view of the history stream.
//!
//! Import writes every record with `create`, so whatever the cluster
//! already has is kept and counted as such: importing a file twice is a
//! no-op. Counter rows become one history message each carrying the row's
//! count (a row the cluster already counts is kept), so `arauto report`
//! reads the same figures and nothing is recounted.

use async_nats::jetstream::kv;
use async_trait::async_trait;
use futures::StreamExt as _;
use tokio_util::bytes::Bytes as KvBytes;

use super::{HistoryEvent, Inner, NatsStore, boxed, keys, nats_error};
use crate::queue::portable::{
    Bytes, Counts, Imported, Portable, PortableJob, Record, RecordStream,
};
use crate::queue::{ChannelStatus, CounterQuery, Error, JobState, Result, StoreStatus};

#[async_trait]
impl Portable for NatsStore {
    fn backend_name(&self) -> &'static str {
        "nats"
    }

    fn export(&self) -> RecordStream {
        let inner = std::sync::Arc::clone(&self.inner);
        let store = self.clone();
        futures::stream::once(async move { collect(&inner, &store).await })
            .flat_map(|collected| match collected {
                Ok(records) => futures::stream::iter(records.into_iter().map(Ok)).boxed(),
                Err(error) => futures::stream::iter([Err(error)]).boxed(),
            })
            .boxed()
    }

    async fn is_empty(&self) -> Result<bool> {
        let inner = &self.inner;
        let has_jobs = inner.mirror.read(|view| !view.jobs.is_empty());
        let published = *inner
            .history_published
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        inner.mirror.await_history(published).await;
        let has_counters = inner.mirror.read(|view| !view.counters.is_empty());
        if has_jobs || has_counters {
            return Ok(false);
        }
        let buckets = &inner.buckets;
        for (bucket, what) in [
            (&buckets.dedupe, "dedupe"),
            (&buckets.orders, "orders"),
            (&buckets.cursors, "cursors"),
            (&buckets.stores, "stores"),
            (&buckets.channels, "channels"),
        ] {
            if !snapshot(inner, bucket, &inner.names.bucket(what))
                .await?
                .is_empty()
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    async fn import(&self, batch: Vec<Record>) -> Result<Imported> {
        let mut tally = Imported::default();
        for record in batch {
            let mut unit = Counts::default();
            unit.add(&record);
            if self.inner.import_one(record).await? {
                tally.kept.merge(unit);
            } else {
                tally.written.merge(unit);
            }
        }
        // Reads right after the import (arauto state import's summary, the
        // tests) see what it wrote.
        // The bucket's state is asked of the server: `kv::Store::status` is
        // the state cached when the bucket was bound.
        let state = self
            .inner
            .bucket_state(&self.inner.names.bucket("jobs"))
            .await?;
        self.inner.mirror.await_jobs(state.last_sequence).await;
        Ok(tally)
    }
}

/// The latest value of every live key of a bucket, keys as stored.
async fn snapshot(inner: &Inner, bucket: &kv::Store, name: &str) -> Result<Vec<(String, KvBytes)>> {
    if inner.bucket_state(name).await?.messages == 0 {
        return Ok(Vec::new());
    }
    let mut watch = bucket
        .watch_with_history(">")
        .await
        .map_err(|e| nats_error(format!("bucket {name}"), "read bucket")(boxed(e)))?;
    let mut entries = Vec::new();
    while let Some(entry) = watch.next().await {
        let entry =
            entry.map_err(|e| nats_error(format!("bucket {name}"), "read bucket")(boxed(e)))?;
        let last = entry.delta == 0;
        if entry.operation == kv::Operation::Put {
            entries.push((entry.key, entry.value));
        }
        if last {
            break;
        }
    }
    Ok(entries)
}

fn corrupt(bucket: &str, key: &str, what: String, message: impl ToString) -> Error {
    Error::Corrupt {
        path: format!("nats:{bucket}/{key}").into(),
        what,
        message: message.to_string(),
    }
}

/// Every record of the cluster's state, in the order the format lists them.
async fn collect(inner: &Inner, store: &NatsStore) -> Result<Vec<Record>> {
    let mut records = Vec::new();
    let jobs: Vec<crate::queue::Job> = inner.mirror.read(|view| {
        view.jobs
            .values()
            .map(|stored| stored.job.clone())
            .collect()
    });

    let dedupe_name = inner.names.bucket("dedupe");
    let holders: std::collections::HashMap<String, String> =
        snapshot(inner, &inner.buckets.dedupe, &dedupe_name)
            .await?
            .into_iter()
            .map(|(key, value)| (key, String::from_utf8_lossy(&value).into_owned()))
            .collect();
    let mut held = Vec::new();
    for job in &jobs {
        if job.state == JobState::Cancelled {
            continue;
        }
        // A dedupe key's value is its holder's job key (layout 2).
        let job_key = keys::job_key(job.channel.as_str(), &job.store, job.id);
        for key in &job.dedupe_keys {
            if holders.get(&keys::dedupe_key(key)) == Some(&job_key) {
                held.push(Record::DedupeKey {
                    key: key.clone(),
                    job: job.id,
                });
            }
        }
    }
    for job in jobs {
        records.push(Record::Job(Box::new(PortableJob::from_job(job)?)));
    }
    records.extend(held);

    let cursors = inner.names.bucket("cursors");
    for (key, value) in snapshot(inner, &inner.buckets.cursors, &cursors).await? {
        let store_name = keys::unescape(&key).ok_or_else(|| {
            corrupt(
                &cursors,
                &key,
                "cursor key".into(),
                "not an escaped store id",
            )
        })?;
        let cursor = String::from_utf8(value.to_vec()).map_err(|error| {
            corrupt(
                &cursors,
                &key,
                format!("cursor of store {store_name:?}"),
                error,
            )
        })?;
        records.push(Record::Cursor {
            store: store_name,
            cursor,
        });
    }

    let orders = inner.names.bucket("orders");
    for (key, value) in snapshot(inner, &inner.buckets.orders, &orders).await? {
        let parsed = key
            .split_once('.')
            .and_then(|(store, order)| Some((keys::unescape(store)?, keys::unescape(order)?)));
        let Some((store_name, order_id)) = parsed else {
            return Err(corrupt(
                &orders,
                &key,
                "order record key".into(),
                "not <store>.<order>",
            ));
        };
        records.push(Record::Order {
            store: store_name,
            order_id,
            record: Bytes::new(value.to_vec()),
        });
    }

    let stores = inner.names.bucket("stores");
    for (key, value) in snapshot(inner, &inner.buckets.stores, &stores).await? {
        let store_name = keys::unescape(&key)
            .ok_or_else(|| corrupt(&stores, &key, "store key".into(), "not an escaped store id"))?;
        let status: StoreStatus = serde_json::from_slice(&value).map_err(|error| {
            corrupt(
                &stores,
                &key,
                format!("status of store {store_name:?}"),
                error,
            )
        })?;
        records.push(Record::StoreStatus {
            store: store_name,
            status,
        });
    }

    let channels = inner.names.bucket("channels");
    for (key, value) in snapshot(inner, &inner.buckets.channels, &channels).await? {
        let channel = keys::unescape(&key).ok_or_else(|| {
            corrupt(
                &channels,
                &key,
                "channel key".into(),
                "not an escaped channel id",
            )
        })?;
        let status: ChannelStatus = serde_json::from_slice(&value).map_err(|error| {
            corrupt(
                &channels,
                &key,
                format!("status of channel {channel:?}"),
                error,
            )
        })?;
        records.push(Record::ChannelStatus { channel, status });
    }

    let all_days = CounterQuery {
        from_day: String::new(),
        to_day: "9999-99-99".to_owned(),
        ..CounterQuery::default()
    };
    for row in crate::queue::StateStore::counters(store, all_days).await? {
        records.push(Record::Counter(row));
    }
    Ok(records)
}

impl Inner {
    /// Writes one imported record; true if the cluster already had it (kept).
    async fn import_one(&self, record: Record) -> Result<bool> {
        let describe = record.describe();
        match record {
            Record::Job(job) => {
                let job = job.into_job();
                let id = job.id;
                let bytes = serde_json::to_vec(&job).map_err(|error| Error::Invalid {
                    what: describe.clone(),
                    reason: error.to_string(),
                })?;
                let kept = self
                    .create(
                        &self.buckets.jobs,
                        "jobs",
                        &keys::job_key(job.channel.as_str(), &job.store, id),
                        bytes,
                        &describe,
                    )
                    .await?;
                self.ids
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .advance_past(id);
                Ok(kept)
            }
            Record::DedupeKey { key, job } => {
                // The value is the holder's job key: the job is imported
                // before its keys (the format lists jobs first).
                let holder = super::follow::leader_entry_matching(
                    &self.buckets.jobs,
                    &keys::job_key_pattern(job),
                )
                .await
                .map_err(nats_error(format!("job {job}"), "find job"))?
                .filter(|entry| entry.operation == kv::Operation::Put)
                .ok_or_else(|| Error::Invalid {
                    what: describe.clone(),
                    reason: format!(
                        "job {job}, which holds it, is neither in the file nor in the cluster"
                    ),
                })?;
                self.create(
                    &self.buckets.dedupe,
                    "dedupe",
                    &keys::dedupe_key(&key),
                    holder.key.into_bytes(),
                    &describe,
                )
                .await
            }
            Record::Cursor { store, cursor } => {
                self.create(
                    &self.buckets.cursors,
                    "cursors",
                    &keys::store_key(&store),
                    cursor.into_bytes(),
                    &describe,
                )
                .await
            }
            Record::Order {
                store,
                order_id,
                record,
            } => {
                let bytes = record.to_bytes().map_err(|reason| Error::Invalid {
                    what: describe.clone(),
                    reason,
                })?;
                self.create(
                    &self.buckets.orders,
                    "orders",
                    &keys::order_key(&store, &order_id),
                    bytes,
                    &describe,
                )
                .await
            }
            Record::StoreStatus { store, status } => {
                let bytes = serde_json::to_vec(&status).map_err(|error| Error::Invalid {
                    what: describe.clone(),
                    reason: error.to_string(),
                })?;
                self.create(
                    &self.buckets.stores,
                    "stores",
                    &keys::store_key(&store),
                    bytes,
                    &describe,
                )
                .await
            }
            Record::ChannelStatus { channel, status } => {
                let bytes = serde_json::to_vec(&status).map_err(|error| Error::Invalid {
                    what: describe.clone(),
                    reason: error.to_string(),
                })?;
                self.create(
                    &self.buckets.channels,
                    "channels",
                    &keys::channel_key(&channel),
                    bytes,
                    &describe,
                )
                .await
            }
            Record::Counter(row) => {
                let published = *self
                    .history_published
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                self.mirror.await_history(published).await;
                let key = (
                    row.day.clone(),
                    row.store.clone(),
                    row.channel.clone(),
                    row.kind.clone(),
                    row.outcome,
                );
                if self.mirror.read(|view| view.counters.contains_key(&key)) {
                    return Ok(true);
                }
                let event = HistoryEvent {
                    day: row.day.clone(),
                    store: row.store.clone(),
                    channel: row.channel.clone(),
                    kind: row.kind.clone(),
                    outcome: row.outcome,
                    job: None,
                    count: row.count,
                };
                let message_id = format!(
                    "import.{}.{}.{}.{}.{}",
                    keys::escape(&row.day),
                    keys::escape(&row.store),
                    keys::escape(&row.channel),
                    keys::escape(&row.kind),
                    row.outcome.as_str()
                );
                self.publish_event(event, message_id).await?;
                Ok(false)
            }
        }
    }

    /// `create`s a key; true if it existed (the existing value is kept).
    async fn create(
        &self,
        bucket: &kv::Store,
        what: &str,
        key: &str,
        bytes: Vec<u8>,
        describe: &str,
    ) -> Result<bool> {
        match bucket.create(key, KvBytes::from(bytes)).await {
            Ok(_) => Ok(false),
            Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => Ok(true),
            Err(error) => Err(nats_error(
                format!("bucket {}, key {key} ({describe})", self.names.bucket(what)),
                "import",
            )(boxed(error))),
        }
    }
}
