//! The redb backend's side of the portable state format
//! ([`crate::queue::portable`]): export walks every table in one read
//! transaction (a consistent snapshot, on a blocking thread, streamed with
//! back-pressure); import writes a batch in one write transaction through
//! the writer, placing each job in the indexes its state calls for and
//! keeping whatever the file has that the database already holds.

use ::redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use async_trait::async_trait;
use futures::StreamExt as _;
use tokio::sync::mpsc;

use super::ops::slot;
use super::record::decode_job;
use super::tables::{
    CHANNEL_STATUS, COUNTERS, CURSORS, DEDUPE, JOBS, ORDER_RECORDS, STORE_STATUS, backend, decode,
};
use super::writer::Ctx;
use super::{RedbStore, record::encode_job};
use crate::queue::portable::{
    Bytes, Counts, Imported, Portable, PortableJob, Record, RecordStream,
};
use crate::queue::{ChannelStatus, CounterRow, Error, Job, JobId, Outcome, Result, StoreStatus};

/// Records buffered between the reading thread and the file writer.
const EXPORT_BUFFER: usize = 512;

#[async_trait]
impl Portable for RedbStore {
    fn backend_name(&self) -> &'static str {
        "redb"
    }

    fn export(&self) -> RecordStream {
        let (sender, receiver) = mpsc::channel(EXPORT_BUFFER);
        let inner = std::sync::Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let send = |record: Result<Record>| sender.blocking_send(record).is_ok();
            if let Err(error) = export_all(&inner.db, &inner.shared.path, &send) {
                send(Err(error));
            }
        });
        futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|record| (record, receiver))
        })
        .boxed()
    }

    async fn is_empty(&self) -> Result<bool> {
        let inner = std::sync::Arc::clone(&self.inner);
        let path = inner.shared.path.clone();
        let task = tokio::task::spawn_blocking(move || {
            let path = &inner.shared.path;
            let txn = inner
                .db
                .begin_read()
                .map_err(backend(path, "begin read transaction"))?;
            fn empty<K: ::redb::Key + 'static, V: ::redb::Value + 'static>(
                txn: &::redb::ReadTransaction,
                table: TableDefinition<K, V>,
                path: &std::path::Path,
            ) -> Result<bool> {
                let table = txn.open_table(table).map_err(backend(path, "open table"))?;
                table.is_empty().map_err(backend(path, "read table"))
            }
            Ok(empty(&txn, JOBS, path)?
                && empty(&txn, DEDUPE, path)?
                && empty(&txn, CURSORS, path)?
                && empty(&txn, ORDER_RECORDS, path)?
                && empty(&txn, STORE_STATUS, path)?
                && empty(&txn, CHANNEL_STATUS, path)?
                && empty(&txn, COUNTERS, path)?)
        });
        task.await.map_err(|error| Error::Backend {
            path,
            op: "read",
            source: std::sync::Arc::new(error),
        })?
    }

    async fn import(&self, batch: Vec<Record>) -> Result<Imported> {
        for record in &batch {
            record.check().map_err(|reason| Error::Invalid {
                what: record.describe(),
                reason,
            })?;
        }
        self.submit(move |ctx| ctx.import(batch)).await
    }
}

/// Sends every record of the database, table by table, until `send` says
/// the reader is gone.
fn export_all(
    db: &::redb::Database,
    path: &std::path::Path,
    send: &dyn Fn(Result<Record>) -> bool,
) -> Result<()> {
    let txn = db
        .begin_read()
        .map_err(backend(path, "begin read transaction"))?;
    let open = |what: &'static str| backend(path, what);
    let scan = || backend(path, "scan for export");

    let table = txn.open_table(STORE_STATUS).map_err(open("open table"))?;
    for entry in table.iter().map_err(scan())? {
        let (store, bytes) = entry.map_err(scan())?;
        let store = store.value().to_owned();
        let status: StoreStatus =
            decode(bytes.value(), path, || format!("status of store {store:?}"))?;
        if !send(Ok(Record::StoreStatus { store, status })) {
            return Ok(());
        }
    }
    let table = txn.open_table(CURSORS).map_err(open("open table"))?;
    for entry in table.iter().map_err(scan())? {
        let (store, cursor) = entry.map_err(scan())?;
        let record = Record::Cursor {
            store: store.value().to_owned(),
            cursor: cursor.value().to_owned(),
        };
        if !send(Ok(record)) {
            return Ok(());
        }
    }
    let table = txn.open_table(ORDER_RECORDS).map_err(open("open table"))?;
    for entry in table.iter().map_err(scan())? {
        let (key, bytes) = entry.map_err(scan())?;
        let (store, order_id) = key.value();
        let record = Record::Order {
            store: store.to_owned(),
            order_id: order_id.to_owned(),
            record: Bytes::new(bytes.value().to_vec()),
        };
        if !send(Ok(record)) {
            return Ok(());
        }
    }
    let table = txn.open_table(CHANNEL_STATUS).map_err(open("open table"))?;
    for entry in table.iter().map_err(scan())? {
        let (channel, bytes) = entry.map_err(scan())?;
        let channel = channel.value().to_owned();
        let status: ChannelStatus = decode(bytes.value(), path, || {
            format!("status of channel {channel:?}")
        })?;
        if !send(Ok(Record::ChannelStatus { channel, status })) {
            return Ok(());
        }
    }
    let table = txn.open_table(JOBS).map_err(open("open table"))?;
    for entry in table.iter().map_err(scan())? {
        let (id, bytes) = entry.map_err(scan())?;
        let job = decode_job(bytes.value(), path, JobId::from_u128(id.value()))?;
        if !send(PortableJob::from_job(job).map(|job| Record::Job(Box::new(job)))) {
            return Ok(());
        }
    }
    let table = txn.open_table(DEDUPE).map_err(open("open table"))?;
    for entry in table.iter().map_err(scan())? {
        let (key, job) = entry.map_err(scan())?;
        let record = Record::DedupeKey {
            key: key.value().to_owned(),
            job: JobId::from_u128(job.value()),
        };
        if !send(Ok(record)) {
            return Ok(());
        }
    }
    let table = txn.open_table(COUNTERS).map_err(open("open table"))?;
    for entry in table.iter().map_err(scan())? {
        let (key, count) = entry.map_err(scan())?;
        let (day, store, channel, kind, outcome) = key.value();
        let outcome = Outcome::parse(outcome).ok_or_else(|| Error::Corrupt {
            path: path.to_path_buf(),
            what: format!("counter {day}/{store}/{channel}/{kind}"),
            message: format!("unknown outcome {outcome:?}"),
        })?;
        let record = Record::Counter(CounterRow {
            day: day.to_owned(),
            store: store.to_owned(),
            channel: channel.to_owned(),
            kind: kind.to_owned(),
            outcome,
            count: count.value(),
        });
        if !send(Ok(record)) {
            return Ok(());
        }
    }
    Ok(())
}

impl Ctx<'_> {
    /// Writes `batch` (already checked) as it is, keeping what the database
    /// already holds.
    fn import(&mut self, batch: Vec<Record>) -> Result<Imported> {
        // Everything that can be refused is refused before the first write
        // (see ops.rs): decode the order bytes and encode the jobs first.
        let mut prepared = Vec::with_capacity(batch.len());
        for record in batch {
            let mut unit = Counts::default();
            unit.add(&record);
            prepared.push((unit, Prepared::of(record)?));
        }
        let mut tally = Imported::default();
        let path = self.path;
        for (unit, prepared) in prepared {
            let kept = match prepared {
                Prepared::Job(job, bytes) => {
                    let kept = self.load(job.id)?.is_some();
                    if !kept {
                        self.mark_dirty();
                        self.jobs
                            .insert(job.id.as_u128(), bytes.as_slice())
                            .map_err(backend(path, "write job"))?;
                        self.order_jobs
                            .insert(
                                (job.store.as_str(), job.order_id.as_str(), job.id.as_u128()),
                                (),
                            )
                            .map_err(backend(path, "write order index"))?;
                        self.place(&job, slot(&job))?;
                        self.ids.advance_past(job.id);
                    }
                    kept
                }
                Prepared::Order {
                    store,
                    order_id,
                    bytes,
                } => {
                    let key = (store.as_str(), order_id.as_str());
                    let kept = self
                        .order_records
                        .get(key)
                        .map_err(backend(path, "read order record"))?
                        .is_some();
                    if !kept {
                        self.mark_dirty();
                        self.order_records
                            .insert(key, bytes.as_slice())
                            .map_err(backend(path, "write order record"))?;
                    }
                    kept
                }
                Prepared::Other(record) => self.import_plain(&record)?,
            };
            if kept {
                tally.kept.merge(unit);
            } else {
                tally.written.merge(unit);
            }
        }
        Ok(tally)
    }

    /// Imports a record that needs no preparation; true if the database
    /// already had it (and kept its own).
    fn import_plain(&mut self, record: &Record) -> Result<bool> {
        let path = self.path;
        match record {
            Record::DedupeKey { key, job } => {
                if self.dedupe_holder(key)?.is_some() {
                    return Ok(true);
                }
                self.mark_dirty();
                self.dedupe
                    .insert(key.as_str(), job.as_u128())
                    .map_err(backend(path, "write dedupe keys"))?;
            }
            Record::Cursor { store, cursor } => {
                let held = self
                    .cursors
                    .get(store.as_str())
                    .map_err(backend(path, "read cursor"))?
                    .is_some();
                if held {
                    return Ok(true);
                }
                self.mark_dirty();
                self.cursors
                    .insert(store.as_str(), cursor.as_str())
                    .map_err(backend(path, "write cursor"))?;
            }
            Record::StoreStatus { store, status } => {
                if self.store_status(store)?.is_some() {
                    return Ok(true);
                }
                self.put_store_status(store, status)?;
            }
            Record::ChannelStatus { channel, status } => {
                let changed_in_batch = self
                    .channels
                    .get(channel.as_str())
                    .is_some_and(|(_, changed)| *changed);
                let stored = self
                    .channel_status
                    .get(channel.as_str())
                    .map_err(backend(path, "read channel status"))?
                    .is_some();
                if changed_in_batch || stored {
                    return Ok(true);
                }
                self.put_channel(channel, status.clone())?;
            }
            Record::Counter(row) => {
                let key = (
                    row.day.as_str(),
                    row.store.as_str(),
                    row.channel.as_str(),
                    row.kind.as_str(),
                    row.outcome.as_str(),
                );
                let held = self
                    .counters
                    .get(key)
                    .map_err(backend(path, "read counters"))?
                    .is_some();
                if held {
                    return Ok(true);
                }
                self.mark_dirty();
                self.counters
                    .insert(key, row.count)
                    .map_err(backend(path, "write counters"))?;
            }
            Record::Job(_) | Record::Order { .. } => {
                return Err(Error::Invalid {
                    what: record.describe(),
                    reason: "imported without preparation (a bug)".to_owned(),
                });
            }
        }
        Ok(false)
    }
}

/// A record made ready to write: nothing about it can fail any more but the
/// storage.
enum Prepared {
    Job(Box<Job>, Vec<u8>),
    Order {
        store: String,
        order_id: String,
        bytes: Vec<u8>,
    },
    Other(Box<Record>),
}

impl Prepared {
    fn of(record: Record) -> Result<Self> {
        match record {
            Record::Job(job) => {
                let job = job.into_job();
                let bytes = encode_job(&job)?;
                Ok(Prepared::Job(Box::new(job), bytes))
            }
            Record::Order {
                store,
                order_id,
                record,
            } => {
                let bytes = record.to_bytes().map_err(|reason| Error::Invalid {
                    what: format!("record of order {order_id:?} of store {store:?}"),
                    reason,
                })?;
                Ok(Prepared::Order {
                    store,
                    order_id,
                    bytes,
                })
            }
            other => Ok(Prepared::Other(Box::new(other))),
        }
    }
}
