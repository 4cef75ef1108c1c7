//! The revisions a poll read, and the compare-and-set writes of the poll's
//! cursor, order records and store status against them (cluster review #2:
//! these were plain puts, so a node that lost its lease between its fence
//! check and its write could overwrite what the store's new owner wrote).
//!
//! A poll starts with [`crate::queue::StateStore::poll_started`]: the store's
//! read set is emptied. From then on the first read of the store's cursor,
//! status or an order record notes the revision it returned (a later read of
//! the same key, by the dispatcher say, does not move it), and every write of
//! the poll is a compare-and-set on the noted revision (0: the key did not
//! exist); a successful write notes its own new revision. If the key changed
//! since (another node now polls the store, or an operator changed its
//! status), the write is refused with [`Error::Superseded`], and so is every
//! later store write of this poll, until the next poll starts and reads
//! afresh. The cursor's revision is the one exception: it is carried from
//! one poll to the next until a poll reads the cursor again, because a
//! daemon's idle polls start from the cursor they keep in memory and never
//! read the stored one (see [`PollReads::carried_cursor`]). A key the poll
//! never read (a tool's commit, a test) is written against the revision it
//! has right before the write: then only the fence protects it, as before.

use std::collections::HashMap;
use std::sync::PoisonError;

use async_nats::jetstream::kv;
use tokio_util::bytes::Bytes;

use super::{Inner, boxed, nats_error};
use crate::queue::{Error, Result, Scope};

/// One record of a store's poll state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum PollRecord {
    Cursor,
    Status,
    Order(String),
}

impl PollRecord {
    fn describe(&self) -> String {
        match self {
            Self::Cursor => "its cursor".to_owned(),
            Self::Status => "its status".to_owned(),
            Self::Order(id) => format!("the record of order {id:?}"),
        }
    }
}

/// What the running poll of one store read or wrote.
#[derive(Debug, Default)]
pub(super) struct PollReads {
    /// Revision of each record (0: absent when read).
    revisions: HashMap<PollRecord, u64>,
    /// Set once a write of this poll was refused: the record that changed.
    superseded: Option<String>,
    /// The cursor's revision as the last poll that read or wrote it left it,
    /// for a poll that does not read the cursor: a daemon's idle poll starts
    /// from the cursor it keeps in memory (`src/poll/idle.rs`), and the
    /// write that finally carries that cursor (the next commit, or the flush
    /// when the poller stops) must still be a compare-and-set on the stored
    /// cursor the idle polls started from, not a plain overwrite of what a
    /// new owner wrote meanwhile. A read of the cursor replaces it.
    carried_cursor: Option<u64>,
}

impl Inner {
    /// Empties the read set of `store`: a new poll starts. Only the
    /// cursor's revision is carried over (see [`PollReads::carried_cursor`]),
    /// unless the last poll was superseded: then everything is read afresh.
    pub(super) fn poll_started(&self, store: &str) {
        let mut polls = self
            .poll_reads
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let carried_cursor = polls
            .get(store)
            .filter(|last| last.superseded.is_none())
            .and_then(|last| {
                last.revisions
                    .get(&PollRecord::Cursor)
                    .copied()
                    .or(last.carried_cursor)
            });
        polls.insert(
            store.to_owned(),
            PollReads {
                carried_cursor,
                ..PollReads::default()
            },
        );
    }

    /// Notes that a read of `record` returned `revision`, if a poll of
    /// `store` is running and had not read it yet.
    pub(super) fn note_read(&self, store: &str, record: PollRecord, revision: u64) {
        if let Some(reads) = self
            .poll_reads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(store)
        {
            reads.revisions.entry(record).or_insert(revision);
        }
    }

    /// The revision the poll of `store` expects `record` at, or why its
    /// writes are refused.
    fn expected(&self, store: &str, record: &PollRecord) -> Result<Option<u64>> {
        let reads = self
            .poll_reads
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(reads) = reads.get(store) else {
            return Ok(None);
        };
        if let Some(changed) = &reads.superseded {
            return Err(superseded(store, changed));
        }
        let carried = (*record == PollRecord::Cursor)
            .then_some(reads.carried_cursor)
            .flatten();
        Ok(reads.revisions.get(record).copied().or(carried))
    }

    fn note_written(&self, store: &str, record: PollRecord, revision: Option<u64>) {
        let mut reads = self
            .poll_reads
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let reads = reads.entry(store.to_owned()).or_default();
        match revision {
            Some(revision) => {
                reads.revisions.insert(record, revision);
            }
            // A purge does not answer with its revision: a later write of
            // the key in this poll reads it again.
            None => {
                reads.revisions.remove(&record);
            }
        }
    }

    fn note_superseded(&self, store: &str, record: &PollRecord) -> Error {
        let changed = record.describe();
        self.poll_reads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(store.to_owned())
            .or_default()
            .superseded = Some(changed.clone());
        superseded(store, &changed)
    }

    /// The revision `key` has now (0: never written), for a record the poll
    /// did not read.
    pub(super) async fn revision_now(
        &self,
        bucket: &kv::Store,
        bucket_name: &str,
        key: &str,
    ) -> Result<u64> {
        let entry = bucket.entry(key).await.map_err(|e| {
            nats_error(format!("bucket {bucket_name}, key {key}"), "read")(boxed(e))
        })?;
        Ok(entry.map_or(0, |entry| entry.revision))
    }

    /// Writes (`Some`) or purges (`None`) `record` of `store`'s poll state
    /// under `key`, compare-and-set on the revision the poll read (see the
    /// module docs), retried through a leader election while the fence
    /// holds the store. Asks the fence first.
    pub(super) async fn write_polled(
        &self,
        store: &str,
        record: PollRecord,
        bucket: &kv::Store,
        bucket_name: &str,
        key: &str,
        value: Option<Vec<u8>>,
    ) -> Result<()> {
        let scope = Scope::Store(store);
        self.fenced(scope)?;
        let expected = match self.expected(store, &record)? {
            Some(revision) => revision,
            None => self.revision_now(bucket, bucket_name, key).await?,
        };
        let target = || format!("bucket {bucket_name}, key {key}");
        match value {
            Some(value) => {
                let value = Bytes::from(value);
                match self
                    .through_elections(Some(scope), || bucket.update(key, value.clone(), expected))
                    .await?
                {
                    Ok(revision) => self.note_written(store, record, Some(revision)),
                    Err(error) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                        return Err(self.note_superseded(store, &record));
                    }
                    Err(error) => return Err(nats_error(target(), "write")(boxed(error))),
                }
            }
            None => {
                match self
                    .through_elections(Some(scope), || {
                        bucket.purge_expect_revision(key, Some(expected))
                    })
                    .await?
                {
                    Ok(()) => self.note_written(store, record, None),
                    Err(error) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                        return Err(self.note_superseded(store, &record));
                    }
                    Err(error) => return Err(nats_error(target(), "delete")(boxed(error))),
                }
            }
        }
        Ok(())
    }

    /// Notes the revision a status change of this node (a compare-and-set of
    /// its own, e.g. the poller scheduling a credentials check) wrote, so the
    /// poll's next status write does not take it for another writer's.
    pub(super) fn note_status_written(&self, store: &str, revision: u64) {
        let mut reads = self
            .poll_reads
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(reads) = reads.get_mut(store) {
            reads.revisions.insert(PollRecord::Status, revision);
        }
    }
}

fn superseded(store: &str, changed: &str) -> Error {
    Error::Superseded {
        scope: Scope::Store(store).to_string(),
        record: changed.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_describe_themselves_for_the_error() {
        assert_eq!(PollRecord::Cursor.describe(), "its cursor");
        assert_eq!(
            PollRecord::Order("12 3".to_owned()).describe(),
            "the record of order \"12 3\""
        );
        let error = superseded("loja", &PollRecord::Status.describe()).to_string();
        assert!(
            error.contains("store loja") && error.contains("its status"),
            "{error}"
        );
    }
}
