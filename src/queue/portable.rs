//! The portable state format: a whole arauto state (queue, poll state,
//! channel state, history) as a file that any backend can write and read, so
//! `arauto state export` / `arauto state import` move a single node's redb
//! state into a NATS JetStream cluster, or back, without losing a job.
//!
//! The file is JSON Lines: a header line (format, version, source backend,
//! export time and the record counts), one line per [`Record`], and a
//! trailer line repeating the counts. A file without its trailer, or whose
//! trailer disagrees with the lines before it, was cut short (a full disk, an
//! interrupted copy) and is refused as a whole before anything is imported:
//! importing half a queue would look like success and lose the rest.
//!
//! What a backend provides is the small [`Portable`] trait, deliberately not
//! part of [`StateStore`](super::StateStore) (which the daemon uses and which
//! stays narrow): stream out every record, say whether it holds anything,
//! and write a batch of records as they are. Jobs keep their ids, states,
//! attempts, claims, leases, attempt logs, receipts and dedupe keys; daily
//! counters are copied, never recomputed, so `arauto report` reads the same
//! figures on the target. A job exported while running stays running with
//! its lease: the target backend's own lease recovery retries it once, as
//! after a crash.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use futures::stream::BoxStream;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{
    AttemptRecord, ChannelStatus, CounterRow, Job, JobBody, JobId, JobState, Receipt, Result,
    StoreStatus,
};
use crate::model::ChannelId;

/// The `format` of the header line: what kind of file this is.
pub const FORMAT_NAME: &str = "arauto-state";

/// The version this arauto writes. A reader refuses a newer one; a new
/// *optional* field is not a new version.
pub const FORMAT_VERSION: u32 = 1;

/// Records of a file per kind (header, trailer and import tallies).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counts {
    /// Jobs, in any state.
    pub jobs: u64,
    /// Dedupe keys held.
    pub dedupe_keys: u64,
    /// Connector cursors.
    pub cursors: u64,
    /// Order records.
    pub orders: u64,
    /// Store statuses.
    pub store_statuses: u64,
    /// Channel statuses.
    pub channel_statuses: u64,
    /// Daily counter rows.
    pub counters: u64,
}

impl Counts {
    /// Counts `record` in.
    pub fn add(&mut self, record: &Record) {
        let field = match record {
            Record::Job(_) => &mut self.jobs,
            Record::DedupeKey { .. } => &mut self.dedupe_keys,
            Record::Cursor { .. } => &mut self.cursors,
            Record::Order { .. } => &mut self.orders,
            Record::StoreStatus { .. } => &mut self.store_statuses,
            Record::ChannelStatus { .. } => &mut self.channel_statuses,
            Record::Counter(_) => &mut self.counters,
        };
        *field += 1;
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: Counts) {
        self.jobs += other.jobs;
        self.dedupe_keys += other.dedupe_keys;
        self.cursors += other.cursors;
        self.orders += other.orders;
        self.store_statuses += other.store_statuses;
        self.channel_statuses += other.channel_statuses;
        self.counters += other.counters;
    }

    /// All records.
    pub fn total(&self) -> u64 {
        self.jobs
            + self.dedupe_keys
            + self.cursors
            + self.orders
            + self.store_statuses
            + self.channel_statuses
            + self.counters
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} jobs, {} dedupe keys, {} cursors, {} order records, {} store statuses, {} channel statuses, {} counter rows",
            self.jobs,
            self.dedupe_keys,
            self.cursors,
            self.orders,
            self.store_statuses,
            self.channel_statuses,
            self.counters
        )
    }
}

/// The first line of a file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// [`FORMAT_VERSION`] when written.
    pub version: u32,
    /// The backend it was exported from (`redb`, `nats`).
    pub source_backend: String,
    /// When the export started.
    pub exported_at: Timestamp,
    /// The records that follow.
    pub counts: Counts,
}

/// The last line of a file: proof that it is complete.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trailer {
    /// The records before it (the same as the header's).
    pub counts: Counts,
}

/// One piece of state. Backends export and import these as they are.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
// Records stream one at a time; boxing the statuses would only change the
// shape helpers already build against (the portable-format milestone).
#[allow(clippy::large_enum_variant)]
pub enum Record {
    /// A job in any state, with its whole history.
    Job(Box<PortableJob>),
    /// A dedupe key and the job holding it (a cancelled job lists keys it no
    /// longer holds, so holders are records of their own).
    DedupeKey {
        /// The key.
        key: String,
        /// The holder.
        job: JobId,
    },
    /// A store's connector cursor.
    Cursor {
        /// The store.
        store: String,
        /// The cursor, opaque.
        cursor: String,
    },
    /// The stored record of one order (opaque to the store).
    Order {
        /// The store.
        store: String,
        /// The platform's order id.
        order_id: String,
        /// The record's bytes.
        record: Bytes,
    },
    /// A store's status (pause, errors, first-sync cutoff, tallies).
    StoreStatus {
        /// The store.
        store: String,
        /// Its status.
        status: StoreStatus,
    },
    /// A channel's status (pause, pacing day and count, warm-up start, fallbacks).
    ChannelStatus {
        /// The channel.
        channel: String,
        /// Its status.
        status: ChannelStatus,
    },
    /// One daily counter row, as `arauto report` reads it.
    Counter(CounterRow),
}

impl Record {
    /// What the record is about, for messages ("job 01j…", "cursor of store loja-1").
    pub fn describe(&self) -> String {
        match self {
            Record::Job(job) => format!(
                "job {} (store {:?}, order {:?}, channel {:?})",
                job.id, job.store, job.order_id, job.channel
            ),
            Record::DedupeKey { key, job } => format!("dedupe key {key:?} of job {job}"),
            Record::Cursor { store, .. } => format!("cursor of store {store:?}"),
            Record::Order {
                store, order_id, ..
            } => format!("record of order {order_id:?} of store {store:?}"),
            Record::StoreStatus { store, .. } => format!("status of store {store:?}"),
            Record::ChannelStatus { channel, .. } => format!("status of channel {channel:?}"),
            Record::Counter(row) => format!(
                "counter {}/{}/{}/{}/{}",
                row.day, row.store, row.channel, row.kind, row.outcome
            ),
        }
    }

    /// Checks what every backend relies on (names present, a state's own
    /// fields set), so a bad line is refused with its line number before
    /// anything is written.
    pub fn check(&self) -> std::result::Result<(), String> {
        fn named(field: &str, value: &str) -> std::result::Result<(), String> {
            if value.is_empty() {
                Err(format!("{field} is empty"))
            } else {
                Ok(())
            }
        }
        match self {
            Record::Job(job) => {
                named("channel", job.channel.as_str())?;
                named("store", &job.store)?;
                named("order_id", &job.order_id)?;
                named("kind", &job.kind)?;
                if job.max_attempts == 0 {
                    return Err("max_attempts is 0 (at least 1)".to_owned());
                }
                if job.state == JobState::Running && job.lease_until.is_none() {
                    return Err("a running job without lease_until".to_owned());
                }
                if job.state.is_terminal() && job.finished_at.is_none() {
                    return Err(format!("a {} job without finished_at", job.state));
                }
                job.dedupe_keys
                    .iter()
                    .try_for_each(|key| named("a dedupe key", key))
            }
            Record::DedupeKey { key, .. } => named("key", key),
            Record::Cursor { store, .. } => named("store", store),
            Record::Order {
                store, order_id, ..
            } => {
                named("store", store)?;
                named("order_id", order_id)
            }
            Record::StoreStatus { store, .. } => named("store", store),
            Record::ChannelStatus { channel, .. } => named("channel", channel),
            Record::Counter(row) => {
                named("day", &row.day)?;
                named("store", &row.store)?;
                named("channel", &row.channel)?;
                named("kind", &row.kind)
            }
        }
    }
}

/// Opaque bytes: as text when they are UTF-8 (order records are JSON, so a
/// file stays readable), else as hex.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bytes {
    /// UTF-8 bytes.
    Text(String),
    /// Any other bytes, lowercase hex.
    Hex(String),
}

impl Bytes {
    /// Wraps `bytes`.
    pub fn new(bytes: Vec<u8>) -> Self {
        match String::from_utf8(bytes) {
            Ok(text) => Bytes::Text(text),
            Err(error) => Bytes::Hex(hex::encode(error.into_bytes())),
        }
    }

    /// The bytes, or why the hex is not hex.
    pub fn to_bytes(&self) -> std::result::Result<Vec<u8>, String> {
        match self {
            Bytes::Text(text) => Ok(text.as_bytes().to_vec()),
            Bytes::Hex(text) => hex::decode(text).map_err(|error| format!("bad hex: {error}")),
        }
    }
}

/// A job as the portable format holds it: every field of [`Job`], with the
/// notification as its kind's name and its payload's JSON, so a job this
/// arauto cannot read (written by a newer one) crosses unchanged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PortableJob {
    /// Time-ordered id, kept across backends.
    pub id: JobId,
    /// Channel.
    pub channel: ChannelId,
    /// Store.
    pub store: String,
    /// Platform order id.
    pub order_id: String,
    /// Notification kind's name.
    pub kind: String,
    /// Lower is claimed first.
    pub priority: u8,
    /// State.
    pub state: JobState,
    /// When it was enqueued.
    pub created_at: Timestamp,
    /// When it may next be claimed.
    pub due_at: Timestamp,
    /// When it becomes stale.
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
    /// Attempts spent.
    pub attempt: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Claims so far (fences late completions).
    #[serde(default)]
    pub claims: u32,
    /// While running: the lease's end.
    #[serde(default)]
    pub lease_until: Option<Timestamp>,
    /// The most recent error.
    #[serde(default)]
    pub last_error: Option<String>,
    /// The last attempts.
    #[serde(default)]
    pub attempts_log: Vec<AttemptRecord>,
    /// When it finished.
    #[serde(default)]
    pub finished_at: Option<Timestamp>,
    /// Why it ended so.
    #[serde(default)]
    pub outcome_reason: Option<String>,
    /// Proof of delivery.
    #[serde(default)]
    pub receipt: Option<Receipt>,
    /// The keys it was planned under (see [`Record::DedupeKey`] for which it holds).
    #[serde(default)]
    pub dedupe_keys: Vec<String>,
    /// The job it fell back to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fell_back_to: Option<JobId>,
    /// The job it is the fallback of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_of: Option<JobId>,
    /// The notification's payload as stored.
    #[serde(default)]
    pub payload: serde_json::Value,
}

impl PortableJob {
    /// The portable form of `job`.
    pub fn from_job(job: Job) -> Result<Self> {
        let (kind, payload) = match job.body {
            JobBody::Readable { kind, payload } => (
                kind.as_str().to_owned(),
                serde_json::to_value(&payload).map_err(|error| super::Error::Invalid {
                    what: format!("job {}", job.id),
                    reason: format!("payload cannot be serialised: {error}"),
                })?,
            ),
            JobBody::Unreadable {
                kind,
                stored_payload,
                ..
            } => (
                kind,
                serde_json::from_str(&stored_payload)
                    .unwrap_or(serde_json::Value::String(stored_payload)),
            ),
        };
        Ok(Self {
            id: job.id,
            channel: job.channel,
            store: job.store,
            order_id: job.order_id,
            kind,
            priority: job.priority,
            state: job.state,
            created_at: job.created_at,
            due_at: job.due_at,
            expires_at: job.expires_at,
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            claims: job.claims,
            lease_until: job.lease_until,
            last_error: job.last_error,
            attempts_log: job.attempts_log,
            finished_at: job.finished_at,
            outcome_reason: job.outcome_reason,
            receipt: job.receipt,
            dedupe_keys: job.dedupe_keys,
            fell_back_to: job.fell_back_to,
            fallback_of: job.fallback_of,
            payload,
        })
    }

    /// The job (its notification unreadable, as in the source, when this
    /// arauto does not know its kind or payload).
    pub fn into_job(self) -> Job {
        Job {
            id: self.id,
            channel: self.channel,
            store: self.store,
            order_id: self.order_id,
            priority: self.priority,
            state: self.state,
            created_at: self.created_at,
            due_at: self.due_at,
            expires_at: self.expires_at,
            attempt: self.attempt,
            max_attempts: self.max_attempts,
            claims: self.claims,
            lease_until: self.lease_until,
            last_error: self.last_error,
            attempts_log: self.attempts_log,
            finished_at: self.finished_at,
            outcome_reason: self.outcome_reason,
            receipt: self.receipt,
            dedupe_keys: self.dedupe_keys,
            fell_back_to: self.fell_back_to,
            fallback_of: self.fallback_of,
            body: {
                // A JSON value always serialises; `None` would read as `null`.
                let raw = serde_json::value::to_raw_value(&self.payload).ok();
                super::redb::body_of(self.kind, raw.as_deref())
            },
        }
    }
}

/// What an import did with a batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Imported {
    /// Records written.
    pub written: Counts,
    /// Records the target already had (same job id, dedupe key, cursor,
    /// order, status or counter row): kept as the target has them.
    pub kept: Counts,
}

impl Imported {
    /// Adds another batch's tally.
    pub fn merge(&mut self, other: Imported) {
        self.written.merge(other.written);
        self.kept.merge(other.kept);
    }
}

/// Every record of a state, one at a time.
pub type RecordStream = BoxStream<'static, Result<Record>>;

/// What a backend provides to be exported from and imported into.
///
/// Contract:
/// * [`Portable::export`] yields every record once, from one consistent
///   view of the state where the backend has one (redb: one read
///   transaction); for a live cluster, stop the daemons first.
/// * [`Portable::import`] writes each record as it is: jobs keep their id,
///   state, attempts, claims, lease, history and dedupe keys (dedupe
///   *holders* come as their own records), the indexes and per-channel
///   depths follow the jobs, counters are copied and never recounted. A
///   record the target already has is kept as the target has it and counted
///   in [`Imported::kept`], so importing the same file twice changes
///   nothing. A batch is written whole or not at all where the backend can.
/// * Imported jobs must not collide with jobs the target creates later:
///   the target's id generator continues after the largest imported id.
#[async_trait]
pub trait Portable: Send + Sync {
    /// The backend's name in the header (`redb`, `nats`).
    fn backend_name(&self) -> &'static str;

    /// Every record of the state.
    fn export(&self) -> RecordStream;

    /// True when the state holds no record at all.
    async fn is_empty(&self) -> Result<bool>;

    /// Writes a batch of records (see the trait's contract).
    async fn import(&self, batch: Vec<Record>) -> Result<Imported>;
}

/// Why a file cannot be read as a state export. Every variant names the
/// file and, where there is one, the line.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// Reading or writing failed.
    #[error("{path}:{line}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The line being read or written.
        line: usize,
        /// What the system said.
        source: std::io::Error,
    },
    /// The first line is not a header of this format.
    #[error(
        "{path}:1: not an arauto state export (the first line must be the header written by `arauto state export`): {reason}"
    )]
    NoHeader {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// Written by a newer arauto.
    #[error(
        "{path}:1: format version {found} is newer than this arauto reads (up to {FORMAT_VERSION}); import it with the arauto that exported it, or a newer one"
    )]
    NewerVersion {
        /// The file.
        path: PathBuf,
        /// The header's version.
        found: u32,
    },
    /// A line is not a record, or a record is invalid.
    #[error("{path}:{line}: {reason}")]
    BadLine {
        /// The file.
        path: PathBuf,
        /// The line.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The file ends before its trailer.
    #[error(
        "{path}: truncated: it ends after line {lines} without the trailer line (the header announced {expected}); nothing was imported"
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Lines read.
        lines: usize,
        /// The header's counts.
        expected: Box<Counts>,
    },
    /// The trailer's counts are not what the file holds.
    #[error(
        "{path}:{line}: the trailer announces {announced} but the file holds {found}; nothing was imported"
    )]
    CountMismatch {
        /// The file.
        path: PathBuf,
        /// The trailer's line.
        line: usize,
        /// The trailer's (or header's) counts.
        announced: Box<Counts>,
        /// The records read.
        found: Box<Counts>,
    },
}

/// The `type` of a line, read before the line itself.
#[derive(Deserialize)]
struct LineType<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
}

/// Writes the header line.
pub fn write_header(out: &mut impl Write, header: &Header) -> std::io::Result<()> {
    write_tagged(out, "header", header)
}

/// Writes one record line.
pub fn write_record(out: &mut impl Write, record: &Record) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, record)?;
    out.write_all(b"\n")
}

/// Writes the trailer line.
pub fn write_trailer(out: &mut impl Write, trailer: &Trailer) -> std::io::Result<()> {
    write_tagged(out, "trailer", trailer)
}

fn write_tagged(out: &mut impl Write, kind: &str, value: &impl Serialize) -> std::io::Result<()> {
    let mut object = serde_json::to_value(value)?;
    if let serde_json::Value::Object(map) = &mut object {
        map.insert("type".to_owned(), kind.into());
    }
    serde_json::to_writer(&mut *out, &object)?;
    out.write_all(b"\n")
}

/// Reads a file line by line: the header first, then the records, and
/// checks the trailer at the end.
pub struct FileReader<R> {
    input: R,
    path: PathBuf,
    header: Header,
    line: usize,
    buffer: String,
    seen: Counts,
    finished: bool,
}

impl<R: BufRead> FileReader<R> {
    /// Reads the header of `input` (the file `path`).
    pub fn new(mut input: R, path: &Path) -> std::result::Result<Self, FormatError> {
        let mut buffer = String::new();
        let no_header = |reason: String| FormatError::NoHeader {
            path: path.to_path_buf(),
            reason,
        };
        let read = input
            .read_line(&mut buffer)
            .map_err(|source| FormatError::Io {
                path: path.to_path_buf(),
                line: 1,
                source,
            })?;
        if read == 0 {
            return Err(no_header("the file is empty".to_owned()));
        }
        let value: serde_json::Value =
            serde_json::from_str(&buffer).map_err(|error| no_header(error.to_string()))?;
        if value.get("type").and_then(serde_json::Value::as_str) != Some("header")
            || value.get("format").and_then(serde_json::Value::as_str) != Some(FORMAT_NAME)
        {
            return Err(no_header(format!(
                "expected \"type\":\"header\" and \"format\":\"{FORMAT_NAME}\""
            )));
        }
        if let Some(found) = value.get("version").and_then(serde_json::Value::as_u64)
            && found > u64::from(FORMAT_VERSION)
        {
            return Err(FormatError::NewerVersion {
                path: path.to_path_buf(),
                found: u32::try_from(found).unwrap_or(u32::MAX),
            });
        }
        let header: Header =
            serde_json::from_value(value).map_err(|error| no_header(error.to_string()))?;
        Ok(Self {
            input,
            path: path.to_path_buf(),
            header,
            line: 1,
            buffer,
            seen: Counts::default(),
            finished: false,
        })
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The next record and its line number; `None` after a trailer that
    /// matches what was read. A missing or wrong trailer is an error.
    pub fn next_record(&mut self) -> std::result::Result<Option<(usize, Record)>, FormatError> {
        if self.finished {
            return Ok(None);
        }
        self.buffer.clear();
        self.line += 1;
        let line = self.line;
        let read = self
            .input
            .read_line(&mut self.buffer)
            .map_err(|source| FormatError::Io {
                path: self.path.clone(),
                line,
                source,
            })?;
        let bad = |reason: String| FormatError::BadLine {
            path: self.path.clone(),
            line,
            reason,
        };
        if read == 0 || !self.buffer.ends_with('\n') {
            // A last line without its newline was cut mid-write too.
            return Err(FormatError::Truncated {
                path: self.path.clone(),
                lines: if read == 0 { line - 1 } else { line },
                expected: Box::new(self.header.counts),
            });
        }
        let kind = serde_json::from_str::<LineType<'_>>(&self.buffer)
            .map_err(|error| bad(format!("not a record: {error}")))?
            .kind;
        match kind.as_ref() {
            "header" => Err(bad("a second header".to_owned())),
            "trailer" => {
                let trailer: Trailer = serde_json::from_str(&self.buffer)
                    .map_err(|error| bad(format!("unreadable trailer: {error}")))?;
                let mismatch = |announced| FormatError::CountMismatch {
                    path: self.path.clone(),
                    line,
                    announced: Box::new(announced),
                    found: Box::new(self.seen),
                };
                if trailer.counts != self.seen {
                    return Err(mismatch(trailer.counts));
                }
                if self.header.counts != self.seen {
                    return Err(mismatch(self.header.counts));
                }
                self.buffer.clear();
                let after =
                    self.input
                        .read_line(&mut self.buffer)
                        .map_err(|source| FormatError::Io {
                            path: self.path.clone(),
                            line: line + 1,
                            source,
                        })?;
                if after > 0 {
                    return Err(FormatError::BadLine {
                        path: self.path.clone(),
                        line: line + 1,
                        reason: "something follows the trailer".to_owned(),
                    });
                }
                self.finished = true;
                Ok(None)
            }
            _ => {
                let record: Record = serde_json::from_str(&self.buffer)
                    .map_err(|error| bad(format!("unreadable {kind} record: {error}")))?;
                record
                    .check()
                    .map_err(|reason| bad(format!("{}: {reason}", record.describe())))?;
                self.seen.add(&record);
                Ok(Some((line, record)))
            }
        }
    }

    /// The records read so far.
    pub fn seen(&self) -> Counts {
        self.seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

    fn file(records: &[Record], trailer: Option<Counts>) -> TestResult<Vec<u8>> {
        let mut counts = Counts::default();
        records.iter().for_each(|record| counts.add(record));
        let mut out = Vec::new();
        write_header(
            &mut out,
            &Header {
                format: FORMAT_NAME.to_owned(),
                version: FORMAT_VERSION,
                source_backend: "redb".to_owned(),
                exported_at: Timestamp::UNIX_EPOCH,
                counts,
            },
        )?;
        for record in records {
            write_record(&mut out, record)?;
        }
        if let Some(counts) = trailer {
            write_trailer(&mut out, &Trailer { counts })?;
        }
        Ok(out)
    }

    fn read_all(bytes: &[u8]) -> std::result::Result<Vec<Record>, FormatError> {
        let mut reader = FileReader::new(bytes, Path::new("state.jsonl"))?;
        let mut out = Vec::new();
        while let Some((_, record)) = reader.next_record()? {
            out.push(record);
        }
        Ok(out)
    }

    fn cursor(store: &str) -> Record {
        Record::Cursor {
            store: store.to_owned(),
            cursor: "c".to_owned(),
        }
    }

    #[test]
    fn records_round_trip_through_a_file() -> TestResult {
        let records = vec![
            cursor("loja-1"),
            Record::Order {
                store: "loja-1".to_owned(),
                order_id: "42".to_owned(),
                record: Bytes::new(vec![0xff, 0x00]),
            },
        ];
        let counts = Counts {
            cursors: 1,
            orders: 1,
            ..Counts::default()
        };
        let bytes = file(&records, Some(counts))?;
        assert_eq!(read_all(&bytes)?, records);
        Ok(())
    }

    #[test]
    fn a_file_without_its_trailer_or_with_wrong_counts_is_refused() -> TestResult {
        let records = vec![cursor("a"), cursor("b")];
        let error = read_all(&file(&records, None)?).err().ok_or("read")?;
        assert!(
            matches!(error, FormatError::Truncated { lines: 3, .. }),
            "{error}"
        );
        let mut cut = file(&records, None)?;
        cut.truncate(cut.len() - 5);
        let error = read_all(&cut).err().ok_or("read")?;
        assert!(error.to_string().contains("truncated"), "{error}");
        let wrong = Counts {
            cursors: 3,
            ..Counts::default()
        };
        let error = read_all(&file(&records, Some(wrong))?)
            .err()
            .ok_or("read")?;
        assert!(
            error.to_string().starts_with("state.jsonl:4: the trailer"),
            "{error}"
        );
        Ok(())
    }

    #[test]
    fn a_bad_record_names_its_line() -> TestResult {
        let mut bytes = file(&[cursor("a")], None)?;
        bytes.extend_from_slice(b"{\"type\":\"cursor\",\"store\":\"\",\"cursor\":\"x\"}\n");
        let error = read_all(&bytes).err().ok_or("read")?;
        assert_eq!(
            error.to_string(),
            "state.jsonl:3: cursor of store \"\": store is empty"
        );
        let error = read_all(b"{\"type\":\"cursor\"}\n").err().ok_or("read")?;
        assert!(
            error
                .to_string()
                .starts_with("state.jsonl:1: not an arauto state export"),
            "{error}"
        );
        Ok(())
    }
}
