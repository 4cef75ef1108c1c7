//! Serving operator requests: one function for the daemon's control socket
//! and for the CLI working on the database itself, so both answer alike.

use super::protocol::{Request, Response};
use crate::report::checklist::ProgressFn;
use crate::report::{self, Context, OpsError};

/// Serve `request` (anything but [`Request::Status`], which only a running
/// daemon answers) from `ctx`. `progress` hears about the checklist's live
/// checks as they finish.
pub async fn handle(request: Request, ctx: &Context, progress: &ProgressFn<'_>) -> Response {
    let answer = match request {
        Request::Status => Err(OpsError::Unavailable(
            "status is only answered by a running daemon".to_owned(),
        )),
        Request::Check(query) => report::checklist::run(ctx, &query, progress)
            .await
            .map(Response::Checklist),
        Request::Report(query) => report::delivery::run(ctx, &query)
            .await
            .map(Response::Report),
        Request::QueueList(query) => report::queue_ops::list(ctx, &query)
            .await
            .map(Response::Jobs),
        Request::QueueShow { id } => report::queue_ops::show(ctx, id)
            .await
            .map(|job| Response::Job(Box::new(job))),
        Request::QueueCancel { ids, reason } => report::queue_ops::cancel(ctx, ids, reason)
            .await
            .map(|results| Response::Cancelled { results }),
        Request::QueueRetry { ids } => report::queue_ops::retry(ctx, ids)
            .await
            .map(|results| Response::Requeued { results }),
        Request::QueueRetryFailed(query) => report::queue_ops::retry_dead(ctx, &query)
            .await
            .map(|ids| Response::RequeuedFailed { ids }),
        Request::QueuePause { channel, reason } => report::queue_ops::pause(ctx, &channel, reason)
            .await
            .map(Response::Channel),
        Request::QueueResume { channel } => report::queue_ops::resume(ctx, &channel)
            .await
            .map(Response::Channel),
        Request::StoreResume { store } => report::queue_ops::resume_store(ctx, &store)
            .await
            .map(|change| Response::Store(Box::new(change))),
        Request::QueuePurge(query) => report::queue_ops::purge(ctx, &query)
            .await
            .map(Response::Purged),
    };
    answer.unwrap_or_else(|error| match error {
        OpsError::Invalid(message) => Response::Invalid {
            message,
            not_found: false,
        },
        OpsError::NoSuchJob(_) => Response::Invalid {
            message: error.to_string(),
            not_found: true,
        },
        other => Response::Error {
            message: other.to_string(),
        },
    })
}
