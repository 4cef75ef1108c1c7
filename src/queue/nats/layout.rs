//! The layout of the cluster's state (how jobs and outcomes are keyed), the
//! record of it in the jobs bucket, and the migration from layout 1.
//!
//! * **Layout 1** (up to session 25): a job's key was its id alone, and an
//!   outcome's subject `<prefix>.history.<channel>`. No key filter could
//!   select one store's jobs, nor one store's outcomes, so an operator
//!   command without a local daemon read the whole bucket and stream.
//! * **Layout 2**: a job's key is `<channel>.<store>.<id>` and an outcome's
//!   subject `<prefix>.history.<channel>.<store>` (`keys.rs`); a dedupe
//!   key's value is its holder's whole job key. The layout is recorded
//!   under [`keys::LAYOUT_KEY`] in the jobs bucket (as the lease-slot count
//!   is recorded in the leases bucket).
//!
//! Opening ([`check`]) accepts a bucket that records layout 2, writes the
//! record into a state that holds nothing of layout 1 (a new cluster), and
//! refuses one that still holds layout-1 keys or subjects with one error
//! naming the command to run: `arauto state migrate`, with every node
//! stopped. [`migrate`] converts in an order that a stop at any point
//! repeats safely (see `docs/cluster-state.md` §Layout and migration).

use async_nats::jetstream::consumer::{DeliverPolicy, push};
use async_nats::jetstream::{self, kv, stream};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio_util::bytes::Bytes;

use super::keys::{self, Names};
use super::mirror::JobRecord;
use super::{HistoryEvent, boxed, follow, nats_error};
use crate::queue::{Error, JobId, Result};

/// The layout this build reads and writes.
pub const STATE_LAYOUT: u32 = 2;

/// Header of an outcome copied by the migration: the stream sequence of the
/// layout-1 message it copies (a migration that stopped resumes after the
/// last one copied).
const MIGRATED_FROM: &str = "Arauto-Migrated-From";

/// The command that converts a layout-1 state.
const MIGRATE_COMMAND: &str = "arauto state migrate";

#[derive(Serialize, Deserialize)]
struct LayoutRecord {
    layout: u32,
}

/// What [`migrate`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LayoutMigration {
    /// The state recorded layout 2 already, with nothing of layout 1 left.
    pub already_current: bool,
    /// Jobs moved to their layout-2 key.
    pub jobs: usize,
    /// Dedupe keys now naming their holder's layout-2 key.
    pub dedupe_keys: usize,
    /// Dedupe keys left by an enqueue that stopped before writing its job
    /// (they name no job): freed.
    pub dedupe_leftovers: usize,
    /// Outcomes copied to their layout-2 subject.
    pub outcomes: usize,
}

fn layout_error(bucket: &str, error: impl std::error::Error + Send + Sync + 'static) -> Error {
    nats_error(
        format!("bucket {bucket}, key {}", keys::LAYOUT_KEY),
        "read state layout",
    )(boxed(error))
}

/// The layout the jobs bucket records (`None`: no record).
async fn recorded(jobs: &kv::Store) -> Result<Option<u32>> {
    let entry = follow::leader_entry(jobs, keys::LAYOUT_KEY)
        .await
        .map_err(|e| nats_error(format!("bucket {}", jobs.name), "read state layout")(e))?;
    let Some(entry) = entry.filter(|entry| entry.operation == kv::Operation::Put) else {
        return Ok(None);
    };
    let record: LayoutRecord =
        serde_json::from_slice(&entry.value).map_err(|error| Error::Corrupt {
            path: format!("nats:{}/{}", jobs.name, keys::LAYOUT_KEY).into(),
            what: "the state layout record".to_owned(),
            message: error.to_string(),
        })?;
    Ok(Some(record.layout))
}

/// Whether anything of layout 1 is left: a one-token key in the jobs
/// bucket, or an outcome on a `<prefix>.history.<channel>` subject.
async fn holds_layout1(names: &Names, jobs: &kv::Store, history: &stream::Stream) -> Result<bool> {
    let old_job = follow::leader_entry_matching(jobs, "*")
        .await
        .map_err(|e| nats_error(format!("bucket {}", jobs.name), "look for layout-1 jobs")(e))?;
    if old_job.is_some() {
        return Ok(true);
    }
    match history
        .get_last_raw_message_by_subject(&names.history_subjects_layout1())
        .await
    {
        Ok(_) => Ok(true),
        Err(error) if error.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(false),
        Err(error) => Err(nats_error(
            format!("stream {}", names.history_stream()),
            "look for layout-1 outcomes",
        )(boxed(error))),
    }
}

/// The error of a node or command that finds a layout-1 state.
fn needs_migration(names: &Names, jobs: &kv::Store) -> Error {
    Error::Invalid {
        what: format!(
            "cluster state (cluster.prefix {:?}, bucket {})",
            names.prefix, jobs.name
        ),
        reason: format!(
            "it is in layout 1 (jobs keyed by id alone), written by an arauto before this one, \
             which keys them by channel and store (layout {STATE_LAYOUT}); stop every arauto \
             node of the cluster, run `{MIGRATE_COMMAND}` once from any machine with this \
             configuration, then start the nodes again (docs/cluster.md, \"Upgrading\")"
        ),
    }
}

/// Checks the layout when a node or command opens the state: see the
/// module docs. `create`: a daemon, which records layout 2 in a state that
/// has nothing of layout 1.
pub(super) async fn check(
    names: &Names,
    jobs: &kv::Store,
    history: &stream::Stream,
    create: super::Create,
) -> Result<()> {
    match recorded(jobs).await? {
        Some(STATE_LAYOUT) => return Ok(()),
        Some(found) if found > STATE_LAYOUT => {
            return Err(Error::NewerSchema {
                path: format!("nats:{}/{}", jobs.name, keys::LAYOUT_KEY).into(),
                found: u64::from(found),
                supported: u64::from(STATE_LAYOUT),
            });
        }
        Some(_) => return Err(needs_migration(names, jobs)),
        None => {}
    }
    if holds_layout1(names, jobs, history).await? {
        return Err(needs_migration(names, jobs));
    }
    if create == super::Create::Yes {
        write_record(jobs).await?;
    }
    Ok(())
}

/// Records layout 2 (a record another node wrote first is as good).
async fn write_record(jobs: &kv::Store) -> Result<()> {
    let record = serde_json::to_vec(&LayoutRecord {
        layout: STATE_LAYOUT,
    })
    .map_err(|e| layout_error(&jobs.name, e))?;
    match jobs.create(keys::LAYOUT_KEY, Bytes::from(record)).await {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(nats_error(
            format!("bucket {}, key {}", jobs.name, keys::LAYOUT_KEY),
            "record state layout",
        )(boxed(error))),
    }
}

/// The latest value of every key `filter` selects, keys as stored (empty
/// when none matches: a watch of no key would wait for ever).
async fn snapshot(bucket: &kv::Store, filter: &str) -> Result<Vec<(String, Bytes, u64)>> {
    let target = || format!("bucket {}", bucket.name);
    if follow::leader_entry_matching(bucket, filter)
        .await
        .map_err(|e| nats_error(target(), "read bucket")(e))?
        .is_none()
    {
        return Ok(Vec::new());
    }
    let mut watch = bucket
        .watch_with_history(filter)
        .await
        .map_err(|e| nats_error(target(), "read bucket")(boxed(e)))?;
    let mut entries = Vec::new();
    while let Some(entry) = watch.next().await {
        let entry = entry.map_err(|e| nats_error(target(), "read bucket")(boxed(e)))?;
        let last = entry.delta == 0;
        if entry.operation == kv::Operation::Put {
            entries.push((entry.key, entry.value, entry.revision));
        }
        if last {
            break;
        }
    }
    Ok(entries)
}

/// Converts a layout-1 state to layout 2 (see the module docs). Every
/// arauto node of the cluster must be stopped: the caller checks that no
/// node heartbeats. Each step can be repeated: a migration that stopped
/// anywhere is finished by running it again.
pub(super) async fn migrate(
    js: &jetstream::Context,
    names: &Names,
    jobs: &kv::Store,
    dedupe: &kv::Store,
    history: &stream::Stream,
) -> Result<LayoutMigration> {
    let mut done = LayoutMigration::default();
    let recorded = recorded(jobs).await?;
    if let Some(found) = recorded.filter(|found| *found > STATE_LAYOUT) {
        return Err(Error::NewerSchema {
            path: format!("nats:{}/{}", jobs.name, keys::LAYOUT_KEY).into(),
            found: u64::from(found),
            supported: u64::from(STATE_LAYOUT),
        });
    }
    if recorded == Some(STATE_LAYOUT) && !holds_layout1(names, jobs, history).await? {
        done.already_current = true;
        return Ok(done);
    }

    // 1. Each layout-1 job is created under its layout-2 key (the same
    //    bytes), and its dedupe keys are pointed at that key. The old key
    //    stays until step 3: a stop here repeats this step, whose `create`
    //    then finds the new key there.
    for (old_key, value, _) in snapshot(jobs, "*").await? {
        let Ok(id) = old_key.parse::<JobId>() else {
            continue;
        };
        let record: JobRecord = serde_json::from_slice(&value).map_err(|error| Error::Corrupt {
            path: format!("nats:{}/{old_key}", jobs.name).into(),
            what: format!("job {id}"),
            message: error.to_string(),
        })?;
        let job = &record.job;
        let new_key = keys::job_key(job.channel.as_str(), &job.store, id);
        match jobs.create(new_key.as_str(), value.clone()).await {
            Ok(_) => done.jobs += 1,
            Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => {}
            Err(error) => {
                return Err(nats_error(
                    format!("bucket {}, key {new_key}", jobs.name),
                    "move job",
                )(boxed(error)));
            }
        }
        for key in &job.dedupe_keys {
            let stored = keys::dedupe_key(key);
            if repoint_dedupe(dedupe, &stored, id, &new_key).await? {
                done.dedupe_keys += 1;
            }
        }
    }

    // 2. Dedupe keys still naming a bare id: a holder moved in step 1 by a
    //    run that stopped, or the mark of an enqueue that stopped before
    //    writing its job (no job has the id). The first is pointed at the
    //    job's key, the second freed: with no daemon running, no enqueue
    //    is waiting to adopt it, and the next poll plans the job afresh.
    for (stored, value, revision) in snapshot(dedupe, ">").await? {
        let Ok(id) = String::from_utf8_lossy(&value).parse::<JobId>() else {
            continue;
        };
        let holder = follow::leader_entry_matching(jobs, &keys::job_key_pattern(id))
            .await
            .map_err(|e| nats_error(format!("bucket {}", jobs.name), "find job")(e))?
            .filter(|entry| entry.operation == kv::Operation::Put);
        let target = || format!("bucket {}, key {stored}", dedupe.name);
        match holder {
            Some(entry) => {
                dedupe
                    .update(stored.as_str(), Bytes::from(entry.key), revision)
                    .await
                    .map_err(|e| nats_error(target(), "repoint dedupe key")(boxed(e)))?;
                done.dedupe_keys += 1;
            }
            None => {
                dedupe
                    .purge_expect_revision(stored.as_str(), Some(revision))
                    .await
                    .map_err(|e| nats_error(target(), "free dedupe key")(boxed(e)))?;
                done.dedupe_leftovers += 1;
            }
        }
    }

    // 3. Every layout-1 key goes, with its delete markers: every job it
    //    held exists under its layout-2 key (step 1).
    let jobs_stream = format!("KV_{}", jobs.name);
    js.get_stream(&jobs_stream)
        .await
        .map_err(|e| nats_error(format!("stream {jobs_stream}"), "bind")(boxed(e)))?
        .purge()
        .filter(format!("{}*", jobs.prefix))
        .await
        .map_err(|e| {
            nats_error(format!("stream {jobs_stream}"), "purge layout-1 keys")(boxed(e))
        })?;

    // 4. Outcomes: copied in stream order to their layout-2 subject, each
    //    naming the sequence it copies; a run that stopped resumes after
    //    the last copy (nothing else publishes while every node is
    //    stopped). Then the layout-1 subjects are purged.
    done.outcomes = copy_outcomes(js, names, history).await?;
    history
        .purge()
        .filter(names.history_subjects_layout1())
        .await
        .map_err(|e| {
            nats_error(
                format!("stream {}", names.history_stream()),
                "purge layout-1 outcomes",
            )(boxed(e))
        })?;

    // 5. The record, last: until it is written, nodes refuse to start.
    write_record(jobs).await?;
    Ok(done)
}

/// Points dedupe key `stored` at `new_key` if it still names `id`; true if
/// it changed.
async fn repoint_dedupe(
    dedupe: &kv::Store,
    stored: &str,
    id: JobId,
    new_key: &str,
) -> Result<bool> {
    let target = || format!("bucket {}, key {stored}", dedupe.name);
    let Some(entry) = follow::leader_entry(dedupe, stored)
        .await
        .map_err(|e| nats_error(target(), "read dedupe key")(e))?
        .filter(|entry| entry.operation == kv::Operation::Put)
    else {
        return Ok(false);
    };
    if String::from_utf8_lossy(&entry.value) != id.to_string() {
        return Ok(false);
    }
    dedupe
        .update(stored, Bytes::from(new_key.to_owned()), entry.revision)
        .await
        .map_err(|e| nats_error(target(), "repoint dedupe key")(boxed(e)))?;
    Ok(true)
}

/// Copies every layout-1 outcome after the last one copied; how many.
async fn copy_outcomes(
    js: &jetstream::Context,
    names: &Names,
    history: &stream::Stream,
) -> Result<usize> {
    let target = || format!("stream {}", names.history_stream());
    let copied_up_to = match history
        .get_last_raw_message_by_subject(&names.history_subjects_layout2())
        .await
    {
        Ok(message) => message
            .headers
            .get(MIGRATED_FROM)
            .and_then(|value| value.as_str().parse::<u64>().ok())
            .unwrap_or(0),
        Err(error) if error.kind() == stream::LastRawMessageErrorKind::NoMessageFound => 0,
        Err(error) => return Err(nats_error(target(), "read")(boxed(error))),
    };
    let consumer = history
        .create_consumer(push::OrderedConfig {
            deliver_subject: js.client().new_inbox(),
            description: Some("arauto state migrate: layout-1 outcomes".to_owned()),
            filter_subject: names.history_subjects_layout1(),
            deliver_policy: if copied_up_to == 0 {
                DeliverPolicy::All
            } else {
                DeliverPolicy::ByStartSequence {
                    start_sequence: copied_up_to + 1,
                }
            },
            replay_policy: jetstream::consumer::ReplayPolicy::Instant,
            ..Default::default()
        })
        .await
        .map_err(|e| nats_error(target(), "read layout-1 outcomes")(boxed(e)))?;
    if consumer.cached_info().num_pending == 0 {
        return Ok(0);
    }
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| nats_error(target(), "read layout-1 outcomes")(boxed(e)))?;
    let mut copied = 0;
    while let Some(message) = messages.next().await {
        let message =
            message.map_err(|e| nats_error(target(), "read layout-1 outcomes")(boxed(e)))?;
        let info = message
            .info()
            .map_err(|e| nats_error(target(), "read layout-1 outcomes")(e))?;
        let (sequence, pending) = (info.stream_sequence, info.pending);
        let event: HistoryEvent =
            serde_json::from_slice(&message.payload).map_err(|error| Error::Corrupt {
                path: format!("nats:{}/{sequence}", names.history_stream()).into(),
                what: format!("outcome at sequence {sequence}"),
                message: error.to_string(),
            })?;
        let subject = names.history_subject(&event.channel, &event.store);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(MIGRATED_FROM, sequence.to_string().as_str());
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            format!("migrated.{sequence}").as_str(),
        );
        js.publish_with_headers(subject.clone(), headers, message.payload.clone())
            .await
            .map_err(|e| nats_error(subject.clone(), "copy outcome")(boxed(e)))?
            .await
            .map_err(|e| nats_error(subject, "copy outcome")(boxed(e)))?;
        copied += 1;
        if pending == 0 {
            break;
        }
    }
    Ok(copied)
}
