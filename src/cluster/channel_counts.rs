//! Every channel's pending and running counts, asked of a running node
//! (cluster mode), so `arauto status` from a machine without a daemon reads
//! no job at all: a job's key carries no state, so counting them from the
//! jobs bucket means reading every job it keeps, while every daemon node
//! already holds all of them in its view (`queue::nats::mirror`).
//!
//! Every node serves core-NATS requests on `<prefix>.query.channel-counts`
//! in the queue group `<prefix>.query` (the server hands each request to
//! one of them). Before answering, the node's view catches up with the jobs
//! bucket as its stream's leader has it at that moment (at most
//! [`CATCH_UP`]), so the counts include every job write made before the
//! request ([`NatsStore::channel_counts`]). The answer is JSON: a format
//! `version` ([`VERSION`]; raised only for a change an older reader would
//! misread; unknown fields are ignored), the node's name, whether its view
//! of the jobs is current (else why not), and each channel's pending and
//! running counts: configuration ids and numbers, never a secret.
//!
//! The asker ([`ask`]) takes the first answer within its wait. Plain core
//! NATS, nothing stored: with no daemon anywhere (or only nodes older than
//! this, which do not subscribe) the server says at once that nobody
//! listens, and the asker reads the jobs bucket itself, as it does for a
//! stale or unreadable answer; `arauto status` says which it did.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::{Client, RequestErrorKind};
use async_trait::async_trait;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::queue::ChannelStats;
use crate::queue::nats::{ChannelCounts, NatsStore};

/// The answer's format version this arauto writes and reads.
pub const VERSION: u32 = 1;

/// How long a node lets its view catch up with the jobs bucket before it
/// answers (it then answers anyway, saying its view is behind): well inside
/// the asker's wait.
pub const CATCH_UP: Duration = Duration::from_secs(1);

/// The subject nodes answer on.
pub fn subject(prefix: &str) -> String {
    format!("{prefix}.query.channel-counts")
}

/// The queue group of the answering nodes (one of them answers).
fn queue_group(prefix: &str) -> String {
    format!("{prefix}.query")
}

/// What a node's counts come from: its view of the jobs.
#[async_trait]
pub trait CountSource: Send + Sync + 'static {
    /// Every channel's counts, after catching up with the jobs bucket.
    async fn channel_counts(&self) -> ChannelCounts;
}

#[async_trait]
impl CountSource for NatsStore {
    async fn channel_counts(&self) -> ChannelCounts {
        NatsStore::channel_counts(self, CATCH_UP).await
    }
}

/// The request: the format the asker reads (a later node may answer an
/// older asker in its format).
#[derive(Debug, Serialize, Deserialize)]
struct Question {
    version: u32,
}

/// A node's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// The format ([`VERSION`]).
    pub version: u32,
    /// The answering node's `cluster.node_name`.
    pub node: String,
    /// Whether its view of the jobs held every job write made before the
    /// request: only then are the counts the cluster's.
    pub current: bool,
    /// Why not, when not (`stale since <time> (<reason>)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale: Option<String>,
    /// Every channel that has had a job in its view.
    #[serde(default)]
    pub channels: BTreeMap<String, Counts>,
}

/// One channel's counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Jobs waiting (due or scheduled).
    pub pending: u64,
    /// Jobs claimed and not yet completed.
    pub running: u64,
}

impl From<ChannelStats> for Counts {
    fn from(stats: ChannelStats) -> Self {
        Self {
            pending: stats.pending,
            running: stats.running,
        }
    }
}

impl Answer {
    /// `node`'s answer from `counts`.
    pub fn new(node: &str, counts: ChannelCounts) -> Self {
        let current = counts.jobs_view.is_current();
        Self {
            version: VERSION,
            node: node.to_owned(),
            current,
            stale: (!current).then(|| counts.jobs_view.to_string()),
            channels: counts
                .channels
                .into_iter()
                .map(|(channel, stats)| (channel, Counts::from(stats)))
                .collect(),
        }
    }
}

/// Why no usable answer came.
#[derive(Debug, thiserror::Error)]
pub enum NoAnswer {
    /// Nobody subscribes: no daemon runs, or only older ones.
    #[error("no node answered (no arauto daemon of this version runs)")]
    NoResponders,
    /// Subscribers, but no answer in time.
    #[error("no node answered within {0:?}")]
    TimedOut(Duration),
    /// The request could not be made.
    #[error("the question could not be asked: {0}")]
    Request(async_nats::RequestError),
    /// An answer this arauto cannot read.
    #[error("a node answered something unreadable: {0}")]
    Unreadable(serde_json::Error),
    /// An answer in another format.
    #[error(
        "node {node} answered in format version {version}; this arauto reads version {VERSION}"
    )]
    Version {
        /// Who answered.
        node: String,
        /// Its format.
        version: u32,
    },
}

/// Asks the nodes of the cluster under `prefix` for their counts; the first
/// answer within `wait`.
pub async fn ask(client: &Client, prefix: &str, wait: Duration) -> Result<Answer, NoAnswer> {
    let question =
        serde_json::to_vec(&Question { version: VERSION }).map_err(NoAnswer::Unreadable)?;
    let asked = tokio::time::timeout(wait, client.request(subject(prefix), question.into())).await;
    let message = match asked {
        Err(_) => return Err(NoAnswer::TimedOut(wait)),
        Ok(Err(error)) => {
            return Err(match error.kind() {
                RequestErrorKind::NoResponders => NoAnswer::NoResponders,
                RequestErrorKind::TimedOut => NoAnswer::TimedOut(wait),
                _ => NoAnswer::Request(error),
            });
        }
        Ok(Ok(message)) => message,
    };
    // The version first: a later format may not parse as this one.
    #[derive(Deserialize)]
    struct Versioned {
        version: u32,
        #[serde(default)]
        node: String,
    }
    let versioned: Versioned =
        serde_json::from_slice(&message.payload).map_err(NoAnswer::Unreadable)?;
    if versioned.version != VERSION {
        return Err(NoAnswer::Version {
            node: versioned.node,
            version: versioned.version,
        });
    }
    serde_json::from_slice(&message.payload).map_err(NoAnswer::Unreadable)
}

/// Answers the cluster's questions as node `node` from `source`, until
/// `stop`. One question at a time (each is bounded by [`CATCH_UP`]).
pub async fn serve(
    client: Client,
    prefix: &str,
    node: String,
    source: Arc<dyn CountSource>,
    stop: CancellationToken,
) -> Result<JoinHandle<()>, async_nats::SubscribeError> {
    let mut questions = client
        .queue_subscribe(subject(prefix), queue_group(prefix))
        .await?;
    Ok(tokio::spawn(async move {
        loop {
            let question = tokio::select! {
                () = stop.cancelled() => return,
                question = questions.next() => question,
            };
            let Some(question) = question else { return };
            let Some(reply) = question.reply else {
                continue;
            };
            let answer = Answer::new(&node, source.channel_counts().await);
            let payload = match encode(&answer, client.server_info().max_payload) {
                Ok(payload) => payload,
                Err(error) => {
                    tracing::warn!("cannot answer a question for the channels' counts: {error}");
                    continue;
                }
            };
            if let Err(error) = client.publish(reply, payload.into()).await {
                tracing::debug!("cannot answer a question for the channels' counts: {error}");
            }
        }
    }))
}

/// `answer` as JSON; one saying that it does not fit when it is longer than
/// `max_payload` (the asker then reads the jobs bucket).
fn encode(answer: &Answer, max_payload: usize) -> Result<Vec<u8>, serde_json::Error> {
    let payload = serde_json::to_vec(answer)?;
    if payload.len() <= max_payload {
        return Ok(payload);
    }
    let too_long = Answer {
        current: false,
        stale: Some(format!(
            "the counts of {} channel(s) take {} bytes, more than the server's max_payload ({max_payload})",
            answer.channels.len(),
            payload.len()
        )),
        channels: BTreeMap::new(),
        ..answer.clone()
    };
    serde_json::to_vec(&too_long)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::nats::Freshness;

    fn counts(current: bool) -> ChannelCounts {
        ChannelCounts {
            channels: [(
                "whatsapp".to_owned(),
                ChannelStats {
                    pending: 3,
                    running: 1,
                    oldest_due: None,
                },
            )]
            .into_iter()
            .collect(),
            jobs_view: if current {
                Freshness::Current
            } else {
                Freshness::Stale {
                    since: jiff::Timestamp::UNIX_EPOCH,
                    reason: "its consumer's subscription ended".to_owned(),
                }
            },
        }
    }

    #[test]
    fn an_answer_reads_back_and_ignores_fields_it_does_not_know() {
        let answer = Answer::new("node-b", counts(true));
        let mut json = serde_json::to_value(&answer).expect("json");
        assert_eq!(
            json,
            serde_json::json!({
                "version": 1,
                "node": "node-b",
                "current": true,
                "channels": {"whatsapp": {"pending": 3, "running": 1}},
            })
        );
        json["later"] = serde_json::json!({"anything": true});
        json["channels"]["whatsapp"]["later"] = serde_json::json!(7);
        let read: Answer = serde_json::from_value(json).expect("read back");
        assert_eq!(read, answer);
    }

    #[test]
    fn a_stale_view_says_so_and_an_answer_too_long_says_why() {
        let answer = Answer::new("node-b", counts(false));
        assert!(!answer.current);
        assert_eq!(
            answer.stale.as_deref(),
            Some("stale since 1970-01-01T00:00:00Z (its consumer's subscription ended)")
        );
        let payload = encode(&Answer::new("node-b", counts(true)), 20).expect("encode");
        let read: Answer = serde_json::from_slice(&payload).expect("read back");
        assert!(!read.current);
        assert!(read.channels.is_empty());
        assert!(
            read.stale
                .as_deref()
                .is_some_and(|why| why.contains("more than the server's max_payload (20)")),
            "{read:?}"
        );
    }
}
