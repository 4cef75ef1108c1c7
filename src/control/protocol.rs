//! The control protocol: one JSON object per line each way. A client sends a
//! [`Request`], the daemon answers with one [`Response`]; a connection may carry
//! several requests in turn. A request line is at most [`MAX_LINE`] bytes and
//! must arrive whole within 5 s of the connection being accepted (or of the
//! previous answer), else the daemon closes the connection; answers are one
//! line of any length, up to [`MAX_ANSWER`].
//!
//! ```text
//! → {"request":"status"}
//! ← {"response":"status","pid":4242,"version":"0.1.0",…}
//! ```
//!
//! ```text
//! → {"request":"queue-pause","channel":"whatsapp","reason":"number being replaced"}
//! ← {"response":"channel","channel":"whatsapp","changed":true,"status":{…}}
//! → {"request":"check","store":null}
//! ← {"response":"checklist","status":"fail","sections":[…],…}
//! ```
//!
//! Requests other than `status` are served by [`super::handle`], the same
//! function the CLI runs on the database itself when no daemon is up. A
//! daemon that does not know a request answers with [`Response::Error`], so
//! an upgraded CLI talking to an older daemon gets a clear message instead of
//! a hang.

use std::path::PathBuf;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::queue::{Job, JobId};
use crate::report::{
    CancelResult, ChannelChange, CheckQuery, Checklist, JobList, ListQuery, PurgeQuery,
    PurgeResult, Report, ReportQuery, RequeueResult, RetryDeadQuery, StoreChange,
};
use crate::state::{Phase, ReloadOutcome};

/// Largest request line the daemon accepts, in bytes. Answers are not capped
/// by it: they are one line of any length (see [`MAX_ANSWER`]).
pub const MAX_LINE: usize = 1024 * 1024;

/// Largest answer the CLI reads, in bytes: far above any real answer (a
/// `queue list` of 10,000 jobs is about 5 MiB), it only keeps a confused peer
/// from exhausting the CLI's memory.
pub const MAX_ANSWER: usize = 512 * 1024 * 1024;

/// What a client asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "kebab-case")]
pub enum Request {
    /// Is the daemon up, and what is it running?
    Status,
    /// The readiness checklist, with live plugin checks. Answer: [`Response::Checklist`].
    Check(CheckQuery),
    /// Delivery report. Answer: [`Response::Report`].
    Report(ReportQuery),
    /// List jobs. Answer: [`Response::Jobs`].
    QueueList(ListQuery),
    /// One job. Answer: [`Response::Job`].
    QueueShow {
        /// The job.
        id: JobId,
    },
    /// Cancel pending jobs. Answer: [`Response::Cancelled`].
    QueueCancel {
        /// The jobs.
        ids: Vec<JobId>,
        /// Recorded on each job (default "cancelled by an operator").
        reason: Option<String>,
    },
    /// Put finished jobs back on the queue. Answer: [`Response::Requeued`].
    QueueRetry {
        /// The jobs.
        ids: Vec<JobId>,
    },
    /// Put every dead (and/or expired) job back on the queue. Answer: [`Response::RequeuedFailed`].
    QueueRetryFailed(RetryDeadQuery),
    /// Stop sending on a channel. Answer: [`Response::Channel`].
    QueuePause {
        /// The channel.
        channel: String,
        /// Why (default "paused by an operator").
        reason: Option<String>,
    },
    /// Resume sending on a channel. Answer: [`Response::Channel`].
    QueueResume {
        /// The channel.
        channel: String,
    },
    /// Resume polling a paused store. Answer: [`Response::Store`].
    StoreResume {
        /// The store.
        store: String,
    },
    /// Delete finished jobs (or count them). Answer: [`Response::Purged`].
    QueuePurge(PurgeQuery),
}

/// What the daemon answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "response", rename_all = "kebab-case")]
pub enum Response {
    /// Answer to [`Request::Status`].
    Status(StatusReport),
    /// Answer to [`Request::Check`].
    Checklist(Checklist),
    /// Answer to [`Request::Report`].
    Report(Report),
    /// Answer to [`Request::QueueList`].
    Jobs(JobList),
    /// Answer to [`Request::QueueShow`].
    Job(Box<Job>),
    /// Answer to [`Request::QueueCancel`], one result per id in order.
    Cancelled {
        /// Per job.
        results: Vec<CancelResult>,
    },
    /// Answer to [`Request::QueueRetry`], one result per id in order.
    Requeued {
        /// Per job.
        results: Vec<RequeueResult>,
    },
    /// Answer to [`Request::QueueRetryFailed`].
    RequeuedFailed {
        /// The jobs put back on the queue.
        ids: Vec<JobId>,
    },
    /// Answer to [`Request::QueuePause`] and [`Request::QueueResume`].
    Channel(ChannelChange),
    /// Answer to [`Request::StoreResume`].
    Store(Box<StoreChange>),
    /// Answer to [`Request::QueuePurge`].
    Purged(PurgeResult),
    /// The request names something that does not exist or is malformed (an
    /// unknown store, channel or job): the CLI exits with status 2 for
    /// unknown names, 1 for unknown jobs.
    Invalid {
        /// What is wrong, listing what exists.
        message: String,
        /// True when a job id was not found (the rest is a usage error).
        #[serde(default)]
        not_found: bool,
    },
    /// The request could not be served.
    Error {
        /// Why.
        message: String,
    },
}

/// The daemon's status. Never contains secrets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The daemon's pid.
    pub pid: u32,
    /// arauto's version.
    pub version: String,
    /// Starting, running, reloading or stopping.
    pub phase: Phase,
    /// When the daemon started.
    pub started_at: Timestamp,
    /// Seconds since start.
    pub uptime_secs: u64,
    /// The configuration file.
    pub config_path: PathBuf,
    /// When the configuration in effect was loaded.
    pub config_loaded_at: Timestamp,
    /// `--dry-run`: nothing is sent.
    pub dry_run: bool,
    /// The configured stores.
    pub stores: Vec<StoreSummary>,
    /// The configured channels.
    pub channels: Vec<ChannelSummary>,
    /// The last reload, if there was one.
    pub last_reload: Option<ReloadOutcome>,
    /// Running services.
    pub services: Vec<String>,
}

/// A store as `status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreSummary {
    /// Store id.
    pub id: String,
    /// Free text.
    pub description: Option<String>,
    /// Connector plugin.
    pub platform: String,
    /// Polled or not.
    pub enabled: bool,
    /// `"5m"`.
    pub poll_interval: String,
    /// Channel ids.
    pub channels: Vec<String>,
}

/// A channel as `status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelSummary {
    /// Channel id.
    pub id: String,
    /// Sender plugin.
    pub plugin: String,
    /// Free text.
    pub description: Option<String>,
}
