//! Pushes that arrive at a node that does not poll the store (cluster mode):
//! the webhook listener verified the push (any node can: every node builds
//! every store's connector), but only the store's owner sweeps it. So every
//! verified push is also published on `<prefix>.wake.store.<store id>` with
//! the order ids it names, and every node subscribes to
//! `<prefix>.wake.store.*`: the node whose poller runs for that store (its
//! push inbox exists) drops the ids into the inbox, which wakes the poller
//! within the time of one NATS message instead of at its next scheduled
//! sweep.
//!
//! Plain core NATS, not JetStream: a wake-up lost while the owner is
//! changing hands costs only latency (the listing finds the change at the
//! next sweep), so nothing needs storing. A node ignores its own messages
//! (its local inbox already has the ids). Store ids are configuration ids
//! (`[a-z0-9_-]`), valid subject tokens as they are.

use async_nats::{Client, HeaderMap};
use futures::StreamExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::plugin::MAX_LOOK_AT;
use crate::poll::inbox::PushInboxes;

/// The header naming the process that published a wake-up.
const SENDER_HEADER: &str = "Arauto-Node";

/// The subject of `store`'s wake-ups.
pub fn subject(prefix: &str, store: &str) -> String {
    format!("{prefix}.wake.store.{store}")
}

/// Subscribes to the cluster's wake-ups and makes `inboxes` publish every
/// verified push; runs until `stop`. `sender` tells this process's messages
/// apart (the node name plus a per-process id).
pub async fn start(
    client: Client,
    prefix: &str,
    sender: String,
    inboxes: PushInboxes,
    stop: CancellationToken,
) -> Result<JoinHandle<()>, async_nats::SubscribeError> {
    let mut wakes = client.subscribe(format!("{prefix}.wake.store.*")).await?;
    let publisher = client.clone();
    let prefix = prefix.to_owned();
    let own = sender.clone();
    inboxes.set_forward(std::sync::Arc::new(move |store: &str, orders: &[String]| {
        let client = publisher.clone();
        let subject = subject(&prefix, store);
        let mut headers = HeaderMap::new();
        headers.insert(SENDER_HEADER, own.as_str());
        let payload = match serde_json::to_vec(orders) {
            Ok(payload) => payload,
            Err(error) => {
                tracing::warn!(store, "cannot forward a push: {error}");
                return;
            }
        };
        let store = store.to_owned();
        // Out of the request's way: the listener answers the platform at once.
        tokio::spawn(async move {
            if let Err(error) = client
                .publish_with_headers(subject, headers, payload.into())
                .await
            {
                tracing::warn!(store = %store, "cannot forward a push to the store's node: {error}");
            }
        });
    }));
    Ok(tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                () = stop.cancelled() => return,
                message = wakes.next() => message,
            };
            let Some(message) = message else { return };
            let from_self = message
                .headers
                .as_ref()
                .and_then(|headers| headers.get(SENDER_HEADER))
                .is_some_and(|value| value.as_str() == sender);
            if from_self {
                continue;
            }
            let Some(store) = message.subject.as_str().rsplit('.').next() else {
                continue;
            };
            let orders: Vec<String> = match serde_json::from_slice(&message.payload) {
                Ok(orders) => orders,
                Err(error) => {
                    tracing::warn!(subject = %message.subject, "ignoring a wake-up that is not a list of order ids: {error}");
                    continue;
                }
            };
            let orders: Vec<String> = orders.into_iter().take(MAX_LOOK_AT).collect();
            let named = orders.len();
            if inboxes.accept_forwarded(store, orders) {
                tracing::info!(
                    store,
                    orders = named,
                    "push forwarded by another node: polling now"
                );
            }
        }
    }))
}
