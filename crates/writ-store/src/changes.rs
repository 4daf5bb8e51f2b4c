//! The change feed: every write appends a row to `changes` in its own transaction, so a
//! gateway that sees the sequence number grow knows to reload what it holds. PostgreSQL
//! also wakes listeners at once (`NOTIFY writ_changes`, delivered at commit); the poll
//! catches up on whatever a lost notification or a reconnection missed.

use std::time::{Duration, UNIX_EPOCH};

use sqlx::{Any, Transaction};
use tokio::sync::watch;

use crate::error::StoreError;
use crate::store::{Backend, Store};

/// The notification channel writes are announced on (PostgreSQL).
const CHANNEL: &str = "writ_changes";

/// Records in `tx` that `what` changed (a short description, never a secret), and on
/// PostgreSQL announces it when `tx` commits.
pub(crate) async fn record(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    what: &str,
) -> Result<(), StoreError> {
    // When, for people reading the table; the sequence number is what orders changes.
    let at = writ_token::Clock::now(&writ_token::SystemClock)
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    sqlx::query("INSERT INTO changes (at, what) VALUES ($1, $2)")
        .bind(crate::store::secs(at))
        .bind(what)
        .execute(&mut **tx)
        .await?;
    if backend == Backend::Postgres {
        sqlx::query("SELECT CAST(pg_notify($1, $2) AS TEXT)")
            .bind(CHANNEL)
            .bind(what)
            .fetch_optional(&mut **tx)
            .await?;
    }
    Ok(())
}

/// A running watch on the change feed: [`ChangeFeed::subscribe`] yields the latest
/// sequence number seen, which only grows.
#[derive(Debug)]
pub struct ChangeFeed {
    latest: watch::Receiver<i64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ChangeFeed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ChangeFeed {
    /// A receiver of the latest sequence number; it changes when the store does.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.latest.clone()
    }
}

impl Store {
    /// The sequence number of the latest change (0 before any).
    pub async fn change_seq(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT CAST(COALESCE(MAX(seq), 0) AS BIGINT) FROM changes")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Watches for changes: reads the sequence number every `poll`, and on PostgreSQL
    /// also as soon as a change is announced. Runs on the current Tokio runtime until the
    /// feed is dropped.
    pub async fn watch_changes(&self, poll: Duration) -> Result<ChangeFeed, StoreError> {
        let first = self.change_seq().await?;
        let (tx, latest) = watch::channel(first);
        let store = self.clone();
        let task = tokio::spawn(async move {
            let mut listener = None;
            loop {
                if store.backend == Backend::Postgres && listener.is_none() {
                    listener = store.listen().await;
                }
                match listener.as_mut() {
                    Some(l) => {
                        if let Ok(Err(e)) = tokio::time::timeout(poll, l.recv()).await {
                            tracing::warn!(error = %e, "change notifications lost; reconnecting (polling meanwhile)");
                            listener = None;
                        }
                    }
                    None => tokio::time::sleep(poll).await,
                }
                match store.change_seq().await {
                    Ok(seq) => {
                        tx.send_if_modified(|latest| {
                            let grew = seq > *latest;
                            if grew {
                                *latest = seq;
                            }
                            grew
                        });
                    }
                    Err(e) => tracing::warn!(error = %e, "the store could not be read for changes"),
                }
                if tx.is_closed() {
                    return;
                }
            }
        });
        Ok(ChangeFeed { latest, task })
    }

    /// A connection listening for announced changes, or `None` when it cannot be had now.
    async fn listen(&self) -> Option<sqlx::postgres::PgListener> {
        let url = self.url.as_deref()?;
        let mut listener = match sqlx::postgres::PgListener::connect(url).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for store changes; polling");
                return None;
            }
        };
        listener.listen(CHANNEL).await.ok()?;
        Some(listener)
    }
}
