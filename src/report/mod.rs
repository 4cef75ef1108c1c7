//! The operator's view: the readiness checklist (`arauto check`), delivery
//! reports (`arauto report`), queue management (`arauto queue …`) and the
//! Prometheus endpoint.
//!
//! Every operator command is computed here from one [`Context`] — the
//! configuration, the built plugin instances and the state database — so the
//! daemon (answering on its control socket) and the CLI (working on the
//! database itself when no daemon runs) produce the same answers from the same
//! code: the control module's `handle` dispatches a request to these functions in
//! both cases.

pub mod checklist;
mod context;
pub mod delivery;
mod error;
mod format;
pub mod metrics_http;
pub mod queue_ops;

pub use checklist::{
    CheckItem, CheckLine, CheckQuery, CheckSection, Checklist, Level, SectionKind,
};
pub use context::{Context, DaemonFacts};
pub use delivery::{
    ChannelReport, KindTally, QuarantinedOrder, QueueFigures, Report, ReportQuery, StoreReport,
    Tally,
};
pub use error::OpsError;
pub use queue_ops::{
    CancelResult, ChannelChange, JobList, ListQuery, PurgeQuery, PurgeResult, RequeueResult,
    RetryDeadQuery, StoreChange,
};

pub use crate::queue::SharedStore;
