//! Revocation fan-out between gateway instances through Redis: a revocation made on one
//! instance is added to a shared set and published; a lifted one is removed from the set
//! and published on a second channel. Every instance subscribes to both, applies what it
//! hears, and on every (re)subscription reads the whole set so nothing said while it was
//! disconnected is missed.

use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use writ_limits::{BackendError, Operation};
use writ_token::Revocation;

/// What an instance does with the revocations it hears of (the gateway's revocation state).
pub(crate) trait Listener: Send + Sync + 'static {
    /// Every revocation in force, read at each (re)subscription.
    fn replace_all(&self, all: HashSet<Revocation>);
    /// A revocation made on another instance.
    fn revoked(&self, revocation: &Revocation);
    /// A revocation lifted on another instance.
    fn lifted(&self, revocation: &Revocation) -> impl Future<Output = ()> + Send;
}

/// The channel revocations are published on.
const CHANNEL: &str = "writ:revocations";
/// The channel lifted revocations are published on.
const LIFT_CHANNEL: &str = "writ:revocations:lifted";
/// The set every revocation in force is kept in.
const SET: &str = "writ:revocations:all";

/// Why sharing revocations failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FanoutError {
    /// The shared Redis failed; named as the limit backend's failures are (no part of
    /// its URL).
    #[error("revocation fan-out: {0}")]
    Redis(BackendError),
    /// A revocation could not be encoded as JSON.
    #[error("revocation fan-out: a revocation could not be encoded: {0}")]
    Encode(serde_json::Error),
    /// The subscription's stream of messages ended (the connection closed).
    #[error("revocation fan-out: the subscription ended")]
    SubscriptionEnded,
}

/// `e`, met during `op`, as a fan-out failure.
fn redis(op: Operation) -> impl FnOnce(redis::RedisError) -> FanoutError {
    move |e| FanoutError::Redis(BackendError::redis(op, e))
}

/// Publishes revocations and listens for other instances'.
pub(crate) struct Fanout {
    client: redis::Client,
    conn: ConnectionManager,
}

impl std::fmt::Debug for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password.
        f.debug_struct("Fanout").finish_non_exhaustive()
    }
}

impl Fanout {
    /// Connects to the Redis at `url`; fails as the limit backend's connection does
    /// (`op` [`Operation::Connect`]).
    pub(crate) async fn connect(url: &str, timeout: Duration) -> Result<Self, BackendError> {
        let connect = |e| BackendError::redis(Operation::Connect, e);
        let client = redis::Client::open(url).map_err(connect)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(connect)?;
        Ok(Self { client, conn })
    }

    /// Shares a revocation with every instance; fails when Redis does.
    pub(crate) async fn publish(&self, revocation: &Revocation) -> Result<(), FanoutError> {
        let text = serde_json::to_string(revocation).map_err(FanoutError::Encode)?;
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .sadd(SET, &text)
            .publish(CHANNEL, &text)
            .query_async::<()>(&mut conn)
            .await
            .map_err(redis(Operation::Publish))
    }

    /// Takes a revocation out of the shared set and tells every instance it was lifted;
    /// fails when Redis does.
    pub(crate) async fn publish_lift(&self, revocation: &Revocation) -> Result<(), FanoutError> {
        let text = serde_json::to_string(revocation).map_err(FanoutError::Encode)?;
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .srem(SET, &text)
            .publish(LIFT_CHANNEL, &text)
            .query_async::<()>(&mut conn)
            .await
            .map_err(redis(Operation::Publish))
    }

    /// Tells `gw` of every shared revocation, now and as they are published, until it is
    /// dropped. Reconnects by itself.
    pub(crate) async fn listen<L: Listener>(self: Arc<Self>, gw: Weak<L>) {
        loop {
            if gw.strong_count() == 0 {
                return;
            }
            if let Err(e) = self.listen_once(&gw).await {
                tracing::warn!(error = %e, "revocation fan-out disconnected; reconnecting");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Subscribes, applies the shared set, then every message until the subscription
    /// ends; always ends in an error saying why.
    async fn listen_once<L: Listener>(&self, gw: &Weak<L>) -> Result<(), FanoutError> {
        let mut pubsub = self
            .client
            .get_async_pubsub()
            .await
            .map_err(redis(Operation::Subscribe))?;
        pubsub
            .subscribe(&[CHANNEL, LIFT_CHANNEL])
            .await
            .map_err(redis(Operation::Subscribe))?;
        // Subscribed first, then read the set: nothing published in between is lost.
        let mut conn = self.conn.clone();
        let all: Vec<String> = conn
            .smembers(SET)
            .await
            .map_err(redis(Operation::Subscribe))?;
        let all = all.iter().filter_map(|text| parse(text)).collect();
        if let Some(gw) = gw.upgrade() {
            gw.replace_all(all);
        }
        let mut messages = pubsub.into_on_message();
        while let Some(message) = messages.next().await {
            let Ok(text) = message.get_payload::<String>() else {
                continue;
            };
            let (Some(gw), Some(revocation)) = (gw.upgrade(), parse(&text)) else {
                continue;
            };
            if message.get_channel_name() == LIFT_CHANNEL {
                gw.lifted(&revocation).await;
            } else {
                gw.revoked(&revocation);
            }
        }
        Err(FanoutError::SubscriptionEnded)
    }
}

fn parse(text: &str) -> Option<Revocation> {
    let parsed = serde_json::from_str::<Revocation>(text);
    if parsed.is_err() {
        tracing::warn!("ignored a malformed shared revocation");
    }
    parsed.ok()
}
