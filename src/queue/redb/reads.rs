//! Reads, each in its own MVCC read transaction (never blocked by the writer).

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use ::redb::{
    Database, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable,
    ReadableTableMetadata, TableDefinition,
};
use jiff::Timestamp;

use super::ops::{Slot, slot};
use super::record::decode_job;
use super::tables::{
    CHANNEL_COUNTS, CHANNEL_STATUS, COUNTERS, CURSORS, DEDUPE, DUE, FINISHED, FINISHED_BY_CHANNEL,
    JOBS, NO_EXPIRY, ORDER_JOBS, ORDER_RECORDS, RUNNING, STORE_STATUS, backend, decode, load_job,
};
use crate::job::timestamp_ms;
use crate::queue::{
    ChannelStats, ChannelStatus, CounterQuery, CounterRow, Error, FinishedJob, Job, JobFilter,
    JobId, JobState, Outcome, Result, StoreStatus, VerifyReport,
};

pub(super) fn from_ms(ms: u64) -> Timestamp {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| Timestamp::from_millisecond(ms).ok())
        .unwrap_or(Timestamp::MAX)
}

pub(super) struct Reader<'a> {
    txn: ReadTransaction,
    path: &'a Path,
}

type JobsTable = ReadOnlyTable<u128, &'static [u8]>;

impl<'a> Reader<'a> {
    pub(super) fn begin(db: &Database, path: &'a Path) -> Result<Self> {
        let txn = db
            .begin_read()
            .map_err(backend(path, "begin read transaction"))?;
        Ok(Self { txn, path })
    }

    fn table<K: ::redb::Key + 'static, V: ::redb::Value + 'static>(
        &self,
        definition: TableDefinition<K, V>,
    ) -> Result<ReadOnlyTable<K, V>> {
        self.txn
            .open_table(definition)
            .map_err(backend(self.path, "open table"))
    }

    fn load_all(
        &self,
        jobs: &JobsTable,
        ids: impl IntoIterator<Item = u128>,
        filter: &JobFilter,
    ) -> Result<Vec<Job>> {
        let limit = filter.limit.unwrap_or(usize::MAX);
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        for id in ids {
            let id = JobId::from_u128(id);
            let Some(job) = load_job(jobs, id, self.path)? else {
                continue;
            };
            if filter.matches(&job) {
                out.push(job);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// The newest job id (the jobs table is keyed by time-ordered id).
    pub(super) fn last_job_id(&self) -> Result<Option<JobId>> {
        let jobs = self.table(JOBS)?;
        let last = jobs.last().map_err(backend(self.path, "read newest job"))?;
        Ok(last.map(|(key, _)| JobId::from_u128(key.value())))
    }

    pub(super) fn get(&self, id: JobId) -> Result<Option<Job>> {
        load_job(&self.table(JOBS)?, id, self.path)
    }

    pub(super) fn list(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        let jobs = self.table(JOBS)?;
        let scan = backend(self.path, "scan index");
        // Index iterators yield Results; a failed read ends the scan with an error.
        let mut failure: Option<::redb::StorageError> = None;
        let result = if let (Some(store), Some(order_id)) = (&filter.store, &filter.order_id) {
            let index = self.table(ORDER_JOBS)?;
            let range = index
                .range(
                    (store.as_str(), order_id.as_str(), 0u128)
                        ..=(store.as_str(), order_id.as_str(), u128::MAX),
                )
                .map_err(backend(self.path, "scan order index"))?;
            let ids = range
                .map_while(|entry| keep(entry, &mut failure))
                .map(|(key, _)| key.value().2);
            self.load_all(&jobs, ids, filter)
        } else {
            match filter.state {
                Some(JobState::Pending) => {
                    let index = self.table(DUE)?;
                    let range = match filter.channel.as_deref() {
                        Some(channel) => {
                            index.range((channel, 0u64, 0u128)..=(channel, u64::MAX, u128::MAX))
                        }
                        None => index.iter(),
                    }
                    .map_err(backend(self.path, "scan due index"))?;
                    let ids = range
                        .map_while(|entry| keep(entry, &mut failure))
                        .map(|(key, _)| key.value().2);
                    self.load_all(&jobs, ids, filter)
                }
                Some(JobState::Running) => {
                    let index = self.table(RUNNING)?;
                    let range = index
                        .iter()
                        .map_err(backend(self.path, "scan running index"))?;
                    let ids = range
                        .map_while(|entry| keep(entry, &mut failure))
                        .map(|(key, _)| key.value().1);
                    self.load_all(&jobs, ids, filter)
                }
                Some(state) => {
                    let code = state.code();
                    if let Some(channel) = filter.channel.as_deref() {
                        let index = self.table(FINISHED_BY_CHANNEL)?;
                        let range = index
                            .range((channel, 0u64, 0u128)..=(channel, u64::MAX, u128::MAX))
                            .map_err(backend(self.path, "scan finished index"))?;
                        let ids = range
                            .rev()
                            .map_while(|entry| keep(entry, &mut failure))
                            .filter(|(_, value)| value.value() == code)
                            .map(|(key, _)| key.value().2);
                        self.load_all(&jobs, ids, filter)
                    } else {
                        let index = self.table(FINISHED)?;
                        let range = index
                            .iter()
                            .map_err(backend(self.path, "scan finished index"))?;
                        let ids = range
                            .rev()
                            .map_while(|entry| keep(entry, &mut failure))
                            .filter(|(_, value)| value.value() == code)
                            .map(|(key, _)| key.value().1);
                        self.load_all(&jobs, ids, filter)
                    }
                }
                None => {
                    let range = jobs.iter().map_err(backend(self.path, "scan jobs"))?;
                    let ids = range
                        .rev()
                        .map_while(|entry| keep(entry, &mut failure))
                        .map(|(key, _)| key.value());
                    self.load_all(&jobs, ids, filter)
                }
            }
        };
        match failure {
            Some(error) => Err(scan(error)),
            None => result,
        }
    }

    pub(super) fn jobs_for_order(&self, store: &str, order_id: &str) -> Result<Vec<Job>> {
        self.list(&JobFilter {
            store: Some(store.to_owned()),
            order_id: Some(order_id.to_owned()),
            ..JobFilter::default()
        })
    }

    pub(super) fn next_due(&self, channel: &str) -> Result<Option<Timestamp>> {
        let index = self.table(DUE)?;
        let mut range = index
            .range((channel, 0u64, 0u128)..=(channel, u64::MAX, u128::MAX))
            .map_err(backend(self.path, "scan due index"))?;
        match range.next() {
            None => Ok(None),
            Some(entry) => {
                let (key, _) = entry.map_err(backend(self.path, "scan due index"))?;
                Ok(Some(from_ms(key.value().1)))
            }
        }
    }

    pub(super) fn channel_stats(&self, channel: &str) -> Result<ChannelStats> {
        let counts = self.table(CHANNEL_COUNTS)?;
        let (pending, running) = counts
            .get(channel)
            .map_err(backend(self.path, "read channel counts"))?
            .map_or((0, 0), |guard| guard.value());
        Ok(ChannelStats {
            pending,
            running,
            oldest_due: self.next_due(channel)?,
        })
    }

    pub(super) fn channels(&self) -> Result<Vec<String>> {
        let mut channels = BTreeSet::new();
        collect_keys(&self.table(CHANNEL_COUNTS)?, &mut channels, self.path)?;
        collect_keys(&self.table(CHANNEL_STATUS)?, &mut channels, self.path)?;
        Ok(channels.into_iter().collect())
    }

    pub(super) fn stores(&self) -> Result<Vec<String>> {
        let mut stores = BTreeSet::new();
        collect_keys(&self.table(STORE_STATUS)?, &mut stores, self.path)?;
        collect_keys(&self.table(CURSORS)?, &mut stores, self.path)?;
        Ok(stores.into_iter().collect())
    }

    pub(super) fn cursor(&self, store: &str) -> Result<Option<String>> {
        Ok(self
            .table(CURSORS)?
            .get(store)
            .map_err(backend(self.path, "read cursor"))?
            .map(|guard| guard.value().to_owned()))
    }

    pub(super) fn order_record(&self, store: &str, order_id: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .table(ORDER_RECORDS)?
            .get((store, order_id))
            .map_err(backend(self.path, "read order record"))?
            .map(|guard| guard.value().to_vec()))
    }

    pub(super) fn store_status(&self, store: &str) -> Result<Option<StoreStatus>> {
        let table = self.table(STORE_STATUS)?;
        let guard = table
            .get(store)
            .map_err(backend(self.path, "read store status"))?;
        guard
            .map(|bytes| {
                decode(bytes.value(), self.path, || {
                    format!("status of store {store:?}")
                })
            })
            .transpose()
    }

    pub(super) fn channel_status(&self, channel: &str) -> Result<ChannelStatus> {
        let table = self.table(CHANNEL_STATUS)?;
        let guard = table
            .get(channel)
            .map_err(backend(self.path, "read channel status"))?;
        Ok(guard
            .map(|bytes| {
                decode(bytes.value(), self.path, || {
                    format!("status of channel {channel:?}")
                })
            })
            .transpose()?
            .unwrap_or_default())
    }

    pub(super) fn counters(&self, query: &CounterQuery) -> Result<Vec<CounterRow>> {
        let table = self.table(COUNTERS)?;
        let range = table
            .range((query.from_day.as_str(), "", "", "", "")..)
            .map_err(backend(self.path, "scan counters"))?;
        let wanted =
            |filter: &Option<String>, value: &str| filter.as_deref().is_none_or(|f| f == value);
        let mut rows = Vec::new();
        for entry in range {
            let (key, count) = entry.map_err(backend(self.path, "scan counters"))?;
            let (day, store, channel, kind, outcome) = key.value();
            if day > query.to_day.as_str() {
                break;
            }
            if !(wanted(&query.store, store)
                && wanted(&query.channel, channel)
                && wanted(&query.kind, kind))
            {
                continue;
            }
            let Some(outcome) = Outcome::parse(outcome) else {
                return Err(Error::Corrupt {
                    path: self.path.to_path_buf(),
                    what: format!("counter {day}/{store}/{channel}/{kind}"),
                    message: format!("unknown outcome {outcome:?}"),
                });
            };
            rows.push(CounterRow {
                day: day.to_owned(),
                store: store.to_owned(),
                channel: channel.to_owned(),
                kind: kind.to_owned(),
                outcome,
                count: count.value(),
            });
        }
        Ok(rows)
    }

    pub(super) fn recent(&self, channel: &str, since: Timestamp) -> Result<Vec<FinishedJob>> {
        let table = self.table(FINISHED_BY_CHANNEL)?;
        let range = table
            .range((channel, timestamp_ms(since), 0u128)..=(channel, u64::MAX, u128::MAX))
            .map_err(backend(self.path, "scan finished index"))?;
        let mut out = Vec::new();
        for entry in range {
            let (key, code) = entry.map_err(backend(self.path, "scan finished index"))?;
            let (_, finished_ms, id) = key.value();
            let id = JobId::from_u128(id);
            let state = JobState::from_code(code.value()).ok_or_else(|| Error::Corrupt {
                path: self.path.to_path_buf(),
                what: format!("finished index entry of job {id}"),
                message: format!("unknown state code {}", code.value()),
            })?;
            out.push(FinishedJob {
                id,
                state,
                finished_at: from_ms(finished_ms),
            });
        }
        Ok(out)
    }

    pub(super) fn entered_since(&self, since: Timestamp, limit: usize) -> Result<Vec<Job>> {
        let table = self.table(JOBS)?;
        let range = table
            .range(JobId::lower_bound_at(since).as_u128()..)
            .map_err(backend(self.path, "scan jobs"))?;
        let mut out = Vec::new();
        for entry in range.take(limit) {
            let (key, bytes) = entry.map_err(backend(self.path, "scan jobs"))?;
            let id = JobId::from_u128(key.value());
            out.push(decode_job(bytes.value(), self.path, id)?);
        }
        Ok(out)
    }

    /// Cross-checks every job against every index and counter.
    pub(super) fn verify(&self) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        let path = self.path;
        let jobs = self.table(JOBS)?;
        let due = self.table(DUE)?;
        let running = self.table(RUNNING)?;
        let finished = self.table(FINISHED)?;
        let finished_by_channel = self.table(FINISHED_BY_CHANNEL)?;
        let dedupe = self.table(DEDUPE)?;
        let order_jobs = self.table(ORDER_JOBS)?;
        let channel_counts = self.table(CHANNEL_COUNTS)?;
        let read = |op| backend(path, op);
        let mut per_channel: HashMap<String, (u64, u64)> = HashMap::new();
        let mut dedupe_keys = 0u64;
        for entry in jobs.iter().map_err(read("scan jobs"))? {
            let (key, bytes) = entry.map_err(read("scan jobs"))?;
            let id = JobId::from_u128(key.value());
            report.jobs += 1;
            let job: Job = match decode_job(bytes.value(), path, id) {
                Ok(job) => job,
                Err(error) => {
                    report.problems.push(error.to_string());
                    continue;
                }
            };
            if job.id != id {
                report
                    .problems
                    .push(format!("job stored under {id} says it is {}", job.id));
            }
            let channel_entry = per_channel.entry(job.channel.to_string()).or_default();
            let id_raw = id.as_u128();
            match slot(&job) {
                Slot::Due {
                    due_ms,
                    priority,
                    expires_ms,
                } => {
                    report.pending += 1;
                    channel_entry.0 += 1;
                    let value = due
                        .get((job.channel.as_str(), due_ms, id_raw))
                        .map_err(read("read due index"))?;
                    if value.map(|guard| guard.value()) != Some((priority, expires_ms)) {
                        report
                            .problems
                            .push(format!("pending job {id} is missing from the due index"));
                    }
                    if expires_ms != NO_EXPIRY && job.expires_at.is_none() {
                        report.problems.push(format!("job {id}: expiry mismatch"));
                    }
                }
                Slot::Running { lease_ms } => {
                    report.running += 1;
                    channel_entry.1 += 1;
                    if running
                        .get((lease_ms, id_raw))
                        .map_err(read("read running index"))?
                        .is_none()
                    {
                        report.problems.push(format!(
                            "running job {id} is missing from the running index"
                        ));
                    }
                }
                Slot::Finished { finished_ms, state } => {
                    report.finished += 1;
                    let code = Some(state.code());
                    let global = finished
                        .get((finished_ms, id_raw))
                        .map_err(read("read finished index"))?;
                    let by_channel = finished_by_channel
                        .get((job.channel.as_str(), finished_ms, id_raw))
                        .map_err(read("read finished index"))?;
                    if global.map(|guard| guard.value()) != code
                        || by_channel.map(|guard| guard.value()) != code
                    {
                        report.problems.push(format!(
                            "{state} job {id} is missing from the finished indexes"
                        ));
                    }
                }
            }
            // Cancelled jobs gave their keys up (they may be held by a later job).
            let holds_keys = job.state != JobState::Cancelled;
            for key in job.dedupe_keys.iter().filter(|_| holds_keys) {
                dedupe_keys += 1;
                let holder = dedupe.get(key.as_str()).map_err(read("read dedupe keys"))?;
                if holder.map(|guard| guard.value()) != Some(id_raw) {
                    report
                        .problems
                        .push(format!("dedupe key {key:?} of job {id} points elsewhere"));
                }
            }
            let indexed = order_jobs
                .get((job.store.as_str(), job.order_id.as_str(), id_raw))
                .map_err(read("read order index"))?;
            if indexed.is_none() {
                report
                    .problems
                    .push(format!("job {id} is missing from the order index"));
            }
        }
        let sizes = [
            ("due", due.len(), report.pending),
            ("running", running.len(), report.running),
            ("finished", finished.len(), report.finished),
            (
                "finished-by-channel",
                finished_by_channel.len(),
                report.finished,
            ),
            ("order", order_jobs.len(), report.jobs),
            ("dedupe", dedupe.len(), dedupe_keys),
        ];
        for (index, actual, expected) in sizes {
            let actual = actual.map_err(read("count index"))?;
            if actual != expected {
                report.problems.push(format!(
                    "the {index} index has {actual} entries, expected {expected}"
                ));
            }
        }
        for entry in channel_counts.iter().map_err(read("scan channel counts"))? {
            let (channel, counts) = entry.map_err(read("scan channel counts"))?;
            let expected = per_channel.remove(channel.value()).unwrap_or((0, 0));
            if counts.value() != expected {
                report.problems.push(format!(
                    "channel {:?} counts (pending, running) {:?}, expected {expected:?}",
                    channel.value(),
                    counts.value()
                ));
            }
        }
        for (channel, counts) in per_channel {
            if counts != (0, 0) {
                report
                    .problems
                    .push(format!("channel {channel:?} has jobs but no counters"));
            }
        }
        for entry in self
            .table(STORE_STATUS)?
            .iter()
            .map_err(read("scan statuses"))?
        {
            let (key, bytes) = entry.map_err(read("scan statuses"))?;
            let store = key.value();
            let decoded: Result<StoreStatus> =
                decode(bytes.value(), path, || format!("status of store {store:?}"));
            if let Err(error) = decoded {
                report.problems.push(error.to_string());
            }
        }
        for entry in self
            .table(CHANNEL_STATUS)?
            .iter()
            .map_err(read("scan statuses"))?
        {
            let (key, bytes) = entry.map_err(read("scan statuses"))?;
            let channel = key.value();
            let decoded: Result<ChannelStatus> = decode(bytes.value(), path, || {
                format!("status of channel {channel:?}")
            });
            if let Err(error) = decoded {
                report.problems.push(error.to_string());
            }
        }
        Ok(report)
    }
}

/// Passes entries through until the first error, which is parked in `failure`.
fn keep<T>(
    entry: std::result::Result<T, ::redb::StorageError>,
    failure: &mut Option<::redb::StorageError>,
) -> Option<T> {
    match entry {
        Ok(value) => Some(value),
        Err(error) => {
            *failure = Some(error);
            None
        }
    }
}

fn collect_keys<V: ::redb::Value + 'static>(
    table: &ReadOnlyTable<&'static str, V>,
    into: &mut BTreeSet<String>,
    path: &Path,
) -> Result<()> {
    for entry in table.iter().map_err(backend(path, "scan keys"))? {
        let (key, _) = entry.map_err(backend(path, "scan keys"))?;
        into.insert(key.value().to_owned());
    }
    Ok(())
}
