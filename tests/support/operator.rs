//! Helpers of the operator tests (`check`, `report`, `queue`, metrics): the
//! `arauto` CLI as a child process, and a state database seeded with jobs in
//! known states through the real queue engine.
//!
//! Include with `#[path = "support/operator.rs"] mod operator;` next to
//! `support/mod.rs` and `support/daemon.rs`.

#![allow(dead_code, clippy::expect_used)]

use std::path::Path;
use std::process::Output;

use arauto::queue::redb::{RedbOptions, RedbStore};
use arauto::queue::{Completion, JobId, NewJob, Receipt, StateStore};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// What a CLI run produced.
#[derive(Debug)]
pub struct Run {
    /// Exit status (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// The standard output as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

impl From<Output> for Run {
    fn from(out: Output) -> Self {
        Self {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Run `arauto <args…>` with a scrubbed environment.
pub fn arauto(args: &[&str]) -> Run {
    super::daemon::arauto()
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run arauto")
        .into()
}

/// A state database in `state_dir`, opened like the daemon opens it.
pub fn open_store(state_dir: &Path) -> RedbStore {
    RedbStore::open(
        state_dir,
        RedbOptions {
            time_zone: TimeZone::get("America/Sao_Paulo").expect("time zone"),
            ..RedbOptions::default()
        },
    )
    .expect("open the state database")
}

/// How a seeded job ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Delivered.
    Sent,
    /// Dead-lettered.
    Dead,
    /// Expired during delivery.
    Expired,
    /// Skipped (no usable phone).
    Skipped,
    /// Cancelled while pending.
    Cancelled,
}

/// A job of `store` for `order` on `lane`, due a second ago.
pub fn job(store: &str, lane: &str, order: &str, kind: &str) -> NewJob {
    NewJob {
        lane: lane.to_owned(),
        store: store.to_owned(),
        order_id: order.to_owned(),
        kind: kind.to_owned(),
        priority: 1,
        due_at: Timestamp::now() - SignedDuration::from_secs(1),
        expires_at: None,
        max_attempts: 3,
        dedupe_keys: vec![format!("{store}/{order}/{kind}/{lane}")],
        payload: serde_json::json!({
            "v": 1,
            "facts": {"kind": kind, "priority": 1, "status_code": "pedido_pago", "tracking": null},
            "order_number": format!("#{order}"),
            "quiet_hours": "defer"
        }),
    }
}

/// Put `job` on the queue; its id.
pub async fn enqueue(store: &RedbStore, job: NewJob) -> JobId {
    store
        .enqueue(vec![job])
        .await
        .expect("enqueue")
        .remove(0)
        .id()
}

/// Put `job` on the queue and take it to `end` through the queue engine
/// (claim + complete, or cancel). The lane must have no other due job.
pub async fn finish(store: &RedbStore, job: NewJob, end: End) -> JobId {
    let lane = job.lane.clone();
    let id = enqueue(store, job).await;
    if end == End::Cancelled {
        store
            .cancel(vec![id], "the order moved on".to_owned())
            .await
            .expect("cancel");
        return id;
    }
    let now = Timestamp::now();
    let claimed = store
        .claim(&lane, now, 1, SignedDuration::from_mins(5))
        .await
        .expect("claim");
    assert_eq!(
        claimed.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![id],
        "the seeded job must be the only due one on {lane}"
    );
    let completion = match end {
        End::Sent => Completion::Sent {
            receipt: Receipt {
                provider_message_id: Some(format!("wamid.{id}")),
                recipient_id: Some("5511987654321".to_owned()),
            },
            at: now,
            pacing_day: now
                .to_zoned_datetime(TimeZone::get("America/Sao_Paulo").expect("tz"))
                .date()
                .to_string(),
        },
        End::Dead => Completion::Dead {
            reason: "recipient is not on WhatsApp".to_owned(),
        },
        End::Expired => Completion::Expired,
        End::Skipped => Completion::Skipped {
            reason: "no usable mobile phone".to_owned(),
        },
        End::Cancelled => unreachable!("handled above"),
    };
    store
        .complete(claimed[0].claim(), completion)
        .await
        .expect("complete");
    id
}
