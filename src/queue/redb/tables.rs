//! The redb file layout and the codec of stored records.
//!
//! Tuple keys sort element-wise, so `(channel, due_ms, id)` makes "due jobs of a
//! channel" a range scan and `(store, order_id, id)` makes "jobs of an order" one.

use std::path::Path;

use ::redb::{ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::queue::{Error, Job, JobId, Result};

/// Version of the table layout below. Bump it (and add a migration in
/// `open_schema`) when a table changes type or meaning; new *fields* of stored
/// JSON records are not a schema change.
/// 2: channel tables and job records renamed from schema 1's word, typed job
/// payload (see `migrate`).
pub(super) const SCHEMA_VERSION: u64 = 2;
pub(super) const META_SCHEMA_KEY: &str = "schema_version";

/// `"schema_version"` → version.
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Job id → versioned JSON [`Job`].
pub(super) const JOBS: TableDefinition<u128, &[u8]> = TableDefinition::new("jobs");
/// Pending jobs: (channel, due ms, id) → (priority, expires ms or `NO_EXPIRY`).
pub(super) const DUE: TableDefinition<(&str, u64, u128), (u8, u64)> = TableDefinition::new("due");
/// Running jobs: (lease end ms, id).
pub(super) const RUNNING: TableDefinition<(u64, u128), ()> = TableDefinition::new("running");
/// Finished jobs: (finished ms, id) → state code. Pruning walks it oldest first.
pub(super) const FINISHED: TableDefinition<(u64, u128), u8> = TableDefinition::new("finished");
/// Finished jobs per channel: (channel, finished ms, id) → state code ("sent in the last 5 minutes").
pub(super) const FINISHED_BY_CHANNEL: TableDefinition<(&str, u64, u128), u8> =
    TableDefinition::new("finished_by_channel");
/// Dedupe key → the job holding it.
pub(super) const DEDUPE: TableDefinition<&str, u128> = TableDefinition::new("dedupe");
/// (store, order id, job id): the jobs of an order.
pub(super) const ORDER_JOBS: TableDefinition<(&str, &str, u128), ()> =
    TableDefinition::new("order_jobs");
/// Channel → (pending, running), maintained with every transition.
pub(super) const CHANNEL_COUNTS: TableDefinition<&str, (u64, u64)> =
    TableDefinition::new("channel_counts");
/// Store → connector cursor.
pub(super) const CURSORS: TableDefinition<&str, &str> = TableDefinition::new("cursors");
/// (store, order id) → opaque order record.
pub(super) const ORDER_RECORDS: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("order_records");
/// Store → versioned JSON `StoreStatus`.
pub(super) const STORE_STATUS: TableDefinition<&str, &[u8]> = TableDefinition::new("store_status");
/// Channel → versioned JSON `ChannelStatus`.
pub(super) const CHANNEL_STATUS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("channel_status");
/// (local day, store, channel, kind, outcome) → count.
pub(super) const COUNTERS: TableDefinition<(&str, &str, &str, &str, &str), u64> =
    TableDefinition::new("counters");

/// `expires ms` of a job without expiry in the [`DUE`] value.
pub(super) const NO_EXPIRY: u64 = u64::MAX;

/// First byte of every stored JSON record: the record format. A future format
/// gets a new tag; an unknown tag is reported instead of misread.
const FORMAT_JSON_V1: u8 = 1;

pub(super) fn encode<T: Serialize>(value: &T, what: impl FnOnce() -> String) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(256);
    out.push(FORMAT_JSON_V1);
    serde_json::to_writer(&mut out, value).map_err(|error| Error::Invalid {
        what: what(),
        reason: format!("cannot be serialised: {error}"),
    })?;
    Ok(out)
}

pub(super) fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    path: &Path,
    what: impl FnOnce() -> String,
) -> Result<T> {
    let corrupt = |message: String, what: String| Error::Corrupt {
        path: path.to_path_buf(),
        what,
        message,
    };
    match bytes.split_first() {
        Some((&FORMAT_JSON_V1, json)) => {
            serde_json::from_slice(json).map_err(|error| corrupt(error.to_string(), what()))
        }
        Some((tag, _)) => Err(corrupt(
            format!("unknown record format {tag} (written by a newer arauto?)"),
            what(),
        )),
        None => Err(corrupt("empty record".to_owned(), what())),
    }
}

pub(super) fn load_job<T>(jobs: &T, id: JobId, path: &Path) -> Result<Option<Job>>
where
    T: ReadableTable<u128, &'static [u8]>,
{
    let guard = jobs.get(id.as_u128()).map_err(backend(path, "read job"))?;
    match guard {
        None => Ok(None),
        Some(bytes) => super::record::decode_job(bytes.value(), path, id).map(Some),
    }
}

/// Maps a redb error to [`Error::Backend`] with the file and what was being done.
pub(super) fn backend<'p, E>(
    path: &'p Path,
    op: &'static str,
) -> impl FnOnce(E) -> Error + use<'p, E>
where
    E: Into<::redb::Error>,
{
    move |error| Error::Backend {
        path: path.to_path_buf(),
        op,
        source: std::sync::Arc::new(error.into()),
    }
}
