//! PostgreSQL connections of their own for the threads that append records themselves
//! (a strict request served alone), one per thread slot, each opened on its thread's
//! runtime, and the one statement that appends a batch of records.
//!
//! A record handed to the audit writer's thread and answered from there costs two thread
//! wake-ups besides its round trip to the server; a thread with a connection of its own
//! pays only the round trip. A lane is used by one task at a time and never waited for:
//! a caller that finds it busy, closed or still opening writes through the writer.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

use super::{Durability, SinkError};

/// The `application_name` of a lane's session (`pg_stat_activity` shows it).
pub const LANE_APPLICATION_NAME: &str = "writ-audit-lane";

/// How long opening a lane's connection may take before the lane is left closed.
const OPEN_TIMEOUT: Duration = Duration::from_secs(2);

/// The options of every connection that appends records: with [`Durability::Committed`]
/// a record's commit does not wait for the server's WAL flush.
pub(super) fn append_options(
    url: &str,
    durability: Durability,
) -> Result<PgConnectOptions, SinkError> {
    let mut options: PgConnectOptions = url.parse().map_err(|_| SinkError::InvalidPostgresUrl)?;
    if durability == Durability::Committed {
        options = options.options([("synchronous_commit", "off")]);
    }
    Ok(options)
}

/// Appends `lines` as records `first_seq..` of `instance`: one statement, one round trip,
/// for the whole batch (atomic on its own), written only where the instance's records end.
/// A server that lost the last records it acknowledged (asynchronous commit, then a crash),
/// or a retry of a write that committed though its answer was lost, is told where the log
/// really ends ([`SinkError::NotContiguous`]) instead of leaving a gap or failing on a
/// duplicate key for ever. The count is an index-only scan of the key.
pub(super) async fn append<'c, E: sqlx::PgExecutor<'c>>(
    executor: E,
    instance: &str,
    first_seq: u64,
    lines: &[String],
) -> Result<(), SinkError> {
    let seq = |i: usize| i64::try_from(first_seq + i as u64).unwrap_or(i64::MAX);
    let seqs: Vec<i64> = (0..lines.len()).map(seq).collect();
    let (held,): (i64,) = sqlx::query_as(
        "WITH held AS (SELECT COALESCE(MAX(seq) + 1, 0) AS n \
                       FROM audit_records WHERE instance = $1), \
         ins AS (INSERT INTO audit_records (instance, seq, line) \
                 SELECT $1, s, l FROM UNNEST($2::BIGINT[], $3::TEXT[]) AS batch(s, l), held \
                 WHERE held.n = $4) \
         SELECT n FROM held",
    )
    .bind(instance)
    .bind(&seqs)
    .bind(lines)
    .bind(seq(0))
    .fetch_one(executor)
    .await
    .map_err(SinkError::Postgres)?;
    let held = u64::try_from(held).unwrap_or(0);
    if held != first_seq {
        return Err(SinkError::NotContiguous {
            held,
            first: first_seq,
        });
    }
    Ok(())
}

/// One connection per thread slot, opened the first time its thread asks for it.
pub struct PostgresLanes {
    options: PgConnectOptions,
    lanes: Box<[Mutex<Lane>]>,
}

/// A lane's connection, and whether someone uses it now.
enum Lane {
    /// No connection: the next [`PostgresLanes::borrow`] opens one.
    Closed,
    /// A connection is being opened on the lane's thread.
    Opening,
    /// Open and free.
    Idle(Box<PgConnection>),
    /// Lent out ([`LaneConnection`]).
    Lent,
}

impl std::fmt::Debug for PostgresLanes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the options: they may hold a password.
        f.debug_struct("PostgresLanes")
            .field("lanes", &self.lanes.len())
            .finish_non_exhaustive()
    }
}

impl PostgresLanes {
    /// Lanes `0..slots` to the PostgreSQL at `url`, none open yet; records written on them
    /// commit as the audit writer's do (`durability`). Their sessions are named
    /// [`LANE_APPLICATION_NAME`] on the server.
    pub fn new(url: &str, durability: Durability, slots: usize) -> Result<Self, SinkError> {
        Ok(Self {
            options: append_options(url, durability)?.application_name(LANE_APPLICATION_NAME),
            lanes: (0..slots).map(|_| Mutex::new(Lane::Closed)).collect(),
        })
    }

    fn lane(&self, slot: usize) -> Option<MutexGuard<'_, Lane>> {
        let lane = self.lanes.get(slot)?;
        Some(lane.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Lane `slot`'s connection, when it is open and free. A closed lane starts opening
    /// on the calling thread's runtime (the connection belongs to that runtime, so a lane
    /// must be asked for only by the thread of its slot) and gives nothing this time, as
    /// does a busy one: the caller writes some other way.
    pub fn borrow(self: &Arc<Self>, slot: usize) -> Option<LaneConnection> {
        let mut lane = self.lane(slot)?;
        match std::mem::replace(&mut *lane, Lane::Lent) {
            Lane::Idle(connection) => Some(LaneConnection {
                lanes: self.clone(),
                slot,
                connection: Some(connection),
            }),
            Lane::Closed => {
                *lane = Lane::Opening;
                drop(lane);
                let _ = self.open(slot);
                None
            }
            other => {
                *lane = other;
                None
            }
        }
    }

    /// Lane `slot`'s connection as [`PostgresLanes::borrow`], but a closed lane is opened
    /// first (on the calling runtime) and waited for.
    pub async fn open_and_borrow(self: &Arc<Self>, slot: usize) -> Option<LaneConnection> {
        let opening = {
            let mut lane = self.lane(slot)?;
            match *lane {
                Lane::Closed => {
                    *lane = Lane::Opening;
                    true
                }
                _ => false,
            }
        };
        if opening && let Some(opened) = self.open(slot) {
            let _ = opened.await;
        }
        self.borrow(slot)
    }

    /// A new connection, or none if it cannot be opened in time. Records go through the
    /// writer meanwhile, which reports a sink that fails; the next borrow tries again.
    async fn connect(&self) -> Option<Box<PgConnection>> {
        let opened = tokio::time::timeout(OPEN_TIMEOUT, async {
            PgConnection::connect_with(&self.options).await
        })
        .await;
        match opened {
            Ok(Ok(connection)) => Some(Box::new(connection)),
            Ok(Err(_)) | Err(_) => None,
        }
    }

    /// Opens lane `slot`'s connection on a task of the calling runtime (which finishes
    /// whether or not anyone waits for it).
    fn open(self: &Arc<Self>, slot: usize) -> Option<tokio::task::JoinHandle<()>> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.set(slot, Lane::Closed);
            return None;
        };
        let lanes = self.clone();
        Some(runtime.spawn(async move {
            let lane = match lanes.connect().await {
                Some(connection) => Lane::Idle(connection),
                None => Lane::Closed,
            };
            lanes.set(slot, lane);
        }))
    }

    fn set(&self, slot: usize, to: Lane) {
        if let Some(mut lane) = self.lane(slot) {
            *lane = to;
        }
    }

    /// Whether lane `slot` has a connection open and free now (for tests).
    pub fn is_idle(&self, slot: usize) -> bool {
        self.lane(slot)
            .is_some_and(|lane| matches!(*lane, Lane::Idle(_)))
    }
}

/// A lane's connection, lent to one writer; given back when dropped.
pub struct LaneConnection {
    lanes: Arc<PostgresLanes>,
    slot: usize,
    connection: Option<Box<PgConnection>>,
}

impl std::fmt::Debug for LaneConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaneConnection")
            .field("slot", &self.slot)
            .finish_non_exhaustive()
    }
}

impl LaneConnection {
    /// Appends `lines` as records `first_seq..` of `instance`, as [`super::Sink::append`]
    /// does on PostgreSQL, and gives the connection back to its lane; one that failed
    /// (or whose write was dropped half way: its state on the server is then unknown) is
    /// closed instead.
    pub async fn append(
        mut self,
        instance: &str,
        first_seq: u64,
        lines: &[String],
    ) -> Result<(), SinkError> {
        let Some(mut connection) = self.connection.take() else {
            // Never: a lent connection holds one until this call takes it.
            return Err(SinkError::Io(std::io::Error::other(
                "audit lane lent without a connection",
            )));
        };
        let result = append(&mut *connection, instance, first_seq, lines).await;
        if !matches!(result, Err(SinkError::Postgres(_))) {
            self.connection = Some(connection);
        }
        result
    }
}

impl Drop for LaneConnection {
    fn drop(&mut self) {
        let lane = match self.connection.take() {
            Some(connection) => Lane::Idle(connection),
            None => Lane::Closed,
        };
        self.lanes.set(self.slot, lane);
    }
}
