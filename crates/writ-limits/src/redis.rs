//! `RedisLimiter`: limit state in Redis, so every gateway process pointed at the same Redis
//! shares it exactly. Owns the Lua scripts, the layout of the keys and the mapping of Redis
//! failures to [`BackendError`](crate::BackendError).
//!
//! A reservation is one `EVALSHA`, atomic over every key of the request: the script first
//! checks every charge (writing nothing) and either reports the first that refuses or applies
//! them all. It returns what each key held before, and the verdict and the numbers reported
//! (remaining, reset, retry-after) are computed from that by the same function
//! [`MemoryLimiter`](crate::MemoryLimiter) uses, so the two backends answer alike.
//! Settlements are one `EVALSHA` too, for one reservation or a batch of them
//! ([`RedisLimiter::settle_many`]), or ride with the next reservation in a single call that
//! settles them and then reserves ([`RedisLimiter::settle_then_reserve`]): a request then
//! costs one round trip to Redis, its settlement carried by the one after it.
//!
//! # Keys and precision
//!
//! Lua numbers are doubles, exact only below 2^53, and nanosecond timestamps (about 1.8e18)
//! are not. So:
//!
//! - **Rates** (GCRA): a string key holding the theoretical arrival time in **nanoseconds**,
//!   as a decimal `u64`. The script does its arithmetic exactly on two base-10^9 limbs, with
//!   the same saturation as the `u64` arithmetic in memory; the increments
//!   (`period_ns * units / limit`) are computed in Rust with [`rate_increment`] and passed in.
//!   The key expires (real clock) once the arrival time is a tolerance plus the lease TTL
//!   behind: by then it is as good as absent, and a request still in flight has outlived
//!   the lease TTL too (its settlement is then dropped, as for an expired lease).
//! - **Budgets**: a string key holding the units used, as a decimal `u64` (same limbs), with a
//!   `PEXPIREAT` at the window's end plus a day of margin.
//! - **Concurrency**: a sorted set of lease id → expiry. Sorted-set scores are doubles, so the
//!   expiry is stored in **microseconds** (exact until the year 2255). A lease counts while
//!   `expiry_us > now_us`: where memory compares nanoseconds, a lease here stops counting at
//!   the start of the microsecond it expires in, at most 999 ns earlier (identical when times
//!   are whole microseconds). Expired members are removed before a lease is added, and the
//!   key's `PEXPIRE` is kept at least the lease TTL, so a crashed gateway's leases vanish.
//! - **Strikes** (failed authentications): in **milliseconds**, a sorted set of failure
//!   times and a lock-out string per key; the `strike` submodule owns their layout.
//!
//! One Redis, not Redis Cluster: a request's keys need not hash to one slot.
//!
//! Every decision uses the `now_ns` passed in, never Redis' clock; only key expiry (clean-up
//! of state that no longer counts) runs on the Redis clock. A key missing because it expired
//! is read as empty, which is what its state had come to.

use std::fmt;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{RedisError, Script, ScriptInvocation, Value};

mod replay;
mod scripts;
mod session;
mod strike;
mod unlock;

use crate::error::ReserveError;
use crate::error::{BackendError, Operation};
use crate::model::{self, Amounts, Charge, Counting, Prior, Reservation, rate_increment};
use strike::{STRIKE_CHECK_LUA, STRIKE_LUA};

/// How long connecting to Redis, and any one command, may take.
const TIMEOUT: Duration = Duration::from_secs(2);
/// Connection attempts after the first, on connecting and on each reconnection.
const RETRIES: usize = 1;
/// Budgets' keys outlive their window by this much (ms).
const BUDGET_MARGIN_MS: u64 = 86_400_000;
/// Sorted-set scores are exact below this.
const MAX_EXACT: u64 = 1 << 53;

/// Limit state held in Redis and shared by every process that uses the same Redis.
pub struct RedisLimiter {
    conn: ConnectionManager,
    /// How to make more connections, and those made per thread.
    more: Box<MoreConnections>,
    lease_ttl: Duration,
    reserve: Script,
    settle: Script,
    settle_then_reserve: Script,
    strike: Script,
    strike_check: Script,
}

/// The client and settings to make connections with, and the connections made per thread.
struct MoreConnections {
    client: ::redis::Client,
    config: ConnectionManagerConfig,
    per_thread: Option<PerThread>,
}

/// One connection cell per thread slot, and the function naming the calling thread's slot.
struct PerThread {
    cells: Box<[tokio::sync::OnceCell<ConnectionManager>]>,
    slot: fn() -> usize,
}

impl fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the URL: it may hold a password.
        f.debug_struct("RedisLimiter")
            .field("lease_ttl", &self.lease_ttl)
            .finish_non_exhaustive()
    }
}

impl RedisLimiter {
    /// Connects to the Redis at `url` (`redis://[user:password@]host:port[/db]`) and loads
    /// the scripts, failing within about four seconds (two attempts of two) if Redis cannot
    /// be reached; each command afterwards times out after two seconds. Once connected, the
    /// connection is re-established by itself when Redis comes back after a failure.
    ///
    /// `lease_ttl` is the least time a concurrency key outlives its last reservation (and a
    /// rate key its tolerance); give the same value to
    /// [`LimitSpec::charge`](crate::LimitSpec::charge).
    pub async fn connect(url: &str, lease_ttl: Duration) -> Result<Self, BackendError> {
        Self::connect_with_timeout(url, lease_ttl, TIMEOUT).await
    }

    /// As [`RedisLimiter::connect`], with `timeout` for connecting and for each command.
    pub async fn connect_with_timeout(
        url: &str,
        lease_ttl: Duration,
        timeout: Duration,
    ) -> Result<Self, BackendError> {
        let fail = |op: Operation| move |e: RedisError| BackendError::redis(op, e);
        let client = ::redis::Client::open(url).map_err(fail(Operation::Connect))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(RETRIES)
            .set_max_delay(Duration::from_millis(500));
        let mut conn = ConnectionManager::new_with_config(client.clone(), config.clone())
            .await
            .map_err(fail(Operation::Connect))?;
        let reserve = Script::new(&scripts::reserve_lua());
        let settle = Script::new(&scripts::settle_lua());
        let settle_then_reserve = Script::new(&scripts::settle_then_reserve_lua());
        let strike = Script::new(STRIKE_LUA);
        let strike_check = Script::new(STRIKE_CHECK_LUA);
        for script in [
            &reserve,
            &settle,
            &settle_then_reserve,
            &strike,
            &strike_check,
        ] {
            script
                .prepare_invoke()
                .load_async(&mut conn)
                .await
                .map_err(fail(Operation::LoadScript))?;
        }
        Ok(Self {
            conn,
            more: Box::new(MoreConnections {
                client,
                config,
                per_thread: None,
            }),
            lease_ttl,
            reserve,
            settle,
            settle_then_reserve,
            strike,
            strike_check,
        })
    }

    /// Gives each of `slots` threads a connection of its own, made on that thread's
    /// runtime the first time it calls: `slot` says which thread is calling (0 uses the
    /// connection made at connect). A server running one runtime per thread then reaches
    /// Redis without handing every call to the thread that drives a shared connection.
    pub fn per_thread(mut self, slots: usize, slot: fn() -> usize) -> Self {
        self.more.per_thread = Some(PerThread {
            cells: (0..slots.max(1))
                .map(|_| tokio::sync::OnceCell::new())
                .collect(),
            slot,
        });
        self
    }

    /// Whether Redis answers a `PING` now.
    pub async fn probe(&self) -> Result<(), BackendError> {
        let mut conn = self.connection().await;
        let _: ::redis::Value = ::redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(|e| BackendError::redis(Operation::Probe, e))?;
        Ok(())
    }

    /// The calling thread's connection (the shared one if it has none, or if making one
    /// fails: that one reconnects by itself).
    async fn connection(&self) -> ConnectionManager {
        let Some(PerThread { cells, slot }) = &self.more.per_thread else {
            return self.conn.clone();
        };
        let slot = slot();
        let Some(cell) = cells.get(slot).filter(|_| slot != 0) else {
            return self.conn.clone();
        };
        match cell
            .get_or_try_init(|| {
                ConnectionManager::new_with_config(
                    self.more.client.clone(),
                    self.more.config.clone(),
                )
            })
            .await
        {
            Ok(conn) => conn.clone(),
            Err(_) => self.conn.clone(),
        }
    }

    /// The lease TTL given to [`connect`](Self::connect).
    pub fn lease_ttl(&self) -> Duration {
        self.lease_ttl
    }

    /// Reserves every charge at `now_ns`, or none: the first refusing charge is reported.
    /// One script call, atomic over every key of the request.
    /// [`ReserveError::Refused`] is a limit refusing, [`ReserveError::Backend`] Redis
    /// failing.
    pub async fn reserve(
        &self,
        id: String,
        charges: Vec<Charge>,
        estimate: Amounts,
        now_ns: u64,
    ) -> Result<Reservation, ReserveError> {
        if charges.is_empty() {
            return Ok(Reservation {
                id,
                charges,
                estimate,
                remaining: Vec::new(),
            });
        }
        let mut call = self.reserve.prepare_invoke();
        self.reserve_args(&mut call, &id, &charges, now_ns);
        let mut conn = self.connection().await;
        let reply: Vec<String> = call
            .invoke_async(&mut conn)
            .await
            .map_err(|e| BackendError::redis(Operation::Reserve, e))?;
        reservation_from(reply, id, charges, estimate, now_ns)
    }

    /// Settles `settlements` as [`settle_many`](Self::settle_many) does, then reserves as
    /// [`reserve`](Self::reserve) does, in one script call, atomic over every key of both:
    /// a request's round trip carries the settlements of earlier ones.
    ///
    /// The settlements apply whether the reservation is admitted or refused
    /// ([`ReserveError::Refused`]). On [`ReserveError::Backend`] nothing is known of either:
    /// the settlements may or may not have applied (a caller must not send them again, as
    /// settling twice is not idempotent), and no reservation is held.
    pub async fn settle_then_reserve(
        &self,
        settlements: &[(&Reservation, &Amounts)],
        id: String,
        charges: Vec<Charge>,
        estimate: Amounts,
        now_ns: u64,
    ) -> Result<Reservation, ReserveError> {
        if charges.is_empty() {
            self.settle_many(settlements).await?;
            return self.reserve(id, charges, estimate, now_ns).await;
        }
        let settled_keys: usize = settlements.iter().map(|(r, _)| r.charges.len()).sum();
        if settled_keys == 0 {
            return self.reserve(id, charges, estimate, now_ns).await;
        }
        let mut call = self.settle_then_reserve.prepare_invoke();
        call.arg(settled_keys);
        settle_args(&mut call, settlements);
        self.reserve_args(&mut call, &id, &charges, now_ns);
        let mut conn = self.connection().await;
        let reply: Vec<String> = call
            .invoke_async(&mut conn)
            .await
            .map_err(|e| BackendError::redis(Operation::Reserve, e))?;
        reservation_from(reply, id, charges, estimate, now_ns)
    }

    /// Adds the keys and arguments of reserving `charges` at `now_ns` under `id` to `call`,
    /// as the script's `reserve` reads them.
    fn reserve_args(
        &self,
        call: &mut ScriptInvocation<'_>,
        id: &str,
        charges: &[Charge],
        now_ns: u64,
    ) {
        let now_us = (now_ns / 1_000).min(MAX_EXACT);
        let lease_ttl_ns = u64::try_from(self.lease_ttl.as_nanos()).unwrap_or(u64::MAX);
        let keep_ms = lease_ttl_ns.div_ceil(1_000_000).clamp(1_000, MAX_EXACT / 4);
        call.arg(now_ns).arg(now_us).arg(id).arg(keep_ms);
        for charge in charges {
            call.key(&charge.key);
            let (amount, limit) = (charge.amount, charge.limit);
            match charge.counting {
                Counting::Rate { period_ns, burst } => {
                    call.arg("rate")
                        .arg(amount)
                        .arg(limit)
                        .arg(burst)
                        .arg(rate_increment(period_ns, limit, amount))
                        .arg(rate_increment(period_ns, limit, burst));
                }
                Counting::Budget { window_end_ns } => {
                    call.arg("budget")
                        .arg(amount)
                        .arg(limit)
                        .arg(window_end_ns)
                        .arg((window_end_ns / 1_000_000).saturating_add(BUDGET_MARGIN_MS))
                        .arg(0);
                }
                Counting::Leases { ttl_ns } => {
                    let expiry_us = (now_ns.saturating_add(ttl_ns) / 1_000).min(MAX_EXACT);
                    let key_ttl_ms = ttl_ns
                        .max(lease_ttl_ns)
                        .div_ceil(1_000_000)
                        .clamp(1, MAX_EXACT);
                    call.arg("leases")
                        .arg(amount)
                        .arg(limit)
                        .arg(ttl_ns)
                        .arg(expiry_us)
                        .arg(key_ttl_ms);
                }
            }
        }
    }

    /// Settles a reservation with what the request actually used: over-runs are charged,
    /// the unused part is given back (never below zero), and concurrency leases are
    /// released. One script call.
    pub async fn settle(
        &self,
        reservation: &Reservation,
        actual: &Amounts,
    ) -> Result<(), BackendError> {
        self.settle_many(&[(reservation, actual)]).await
    }

    /// Settles several reservations, each with what its request used, in one script call:
    /// all of them or, if Redis fails, possibly none (an error says nothing of which were
    /// applied). Each is settled as [`settle`](Self::settle) would, in the order given.
    pub async fn settle_many(
        &self,
        settlements: &[(&Reservation, &Amounts)],
    ) -> Result<(), BackendError> {
        let mut call = self.settle.prepare_invoke();
        let any = settle_args(&mut call, settlements) > 0;
        if !any {
            return Ok(());
        }
        let mut conn = self.connection().await;
        let _: Value = call
            .invoke_async(&mut conn)
            .await
            .map_err(|e| BackendError::redis(Operation::Settle, e))?;
        Ok(())
    }

    /// Current counters by key (every `writ:limit:*` key in this Redis), sorted: units used
    /// for budgets, nanoseconds ahead of `now_ns` for rates, unexpired leases for
    /// concurrency. For the admin usage read-out; not atomic across keys. Keys under that
    /// prefix that this backend did not write (another type or format) are left out.
    pub async fn snapshot(&self, now_ns: u64) -> Result<Vec<(String, u64)>, BackendError> {
        let now_us = (now_ns / 1_000).min(MAX_EXACT);
        let mut conn = self.connection().await;
        let mut cursor: u64 = 0;
        let mut out = Vec::new();
        loop {
            let (next, batch): (u64, Vec<Vec<u8>>) = ::redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg("writ:limit:*")
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .map_err(|e| BackendError::redis(Operation::Snapshot, e))?;
            let mut keys = Vec::with_capacity(batch.len());
            let mut pipe = ::redis::pipe();
            for key in batch {
                let Ok(key) = String::from_utf8(key) else {
                    continue;
                };
                match kind_of(&key) {
                    Some(Kind::Rate | Kind::Budget) => {
                        pipe.get(&key);
                    }
                    Some(Kind::Leases) => {
                        pipe.zcount(&key, format!("({now_us}"), "+inf");
                    }
                    None => continue,
                }
                keys.push(key);
            }
            if !keys.is_empty() {
                // One key that is not this backend's (another type, another format) must not
                // sink the whole read-out: its reply is an error or unparsable, and skipped.
                let values: Vec<Value> = pipe
                    .ignore_errors()
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| BackendError::redis(Operation::Snapshot, e))?;
                for (key, value) in keys.into_iter().zip(values) {
                    let n = match value {
                        Value::Int(n) => u64::try_from(n).ok(),
                        Value::BulkString(bytes) => std::str::from_utf8(&bytes)
                            .ok()
                            .and_then(|s| s.parse::<u64>().ok()),
                        // Nil: expired since the scan.
                        _ => None,
                    };
                    let Some(n) = n else {
                        continue;
                    };
                    let n = match kind_of(&key) {
                        Some(Kind::Rate) => n.saturating_sub(now_ns),
                        _ => n,
                    };
                    out.push((key, n));
                }
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        // SCAN may return a key twice.
        out.sort();
        out.dedup_by(|a, b| a.0 == b.0);
        Ok(out)
    }
}

/// Adds the keys and arguments of `settlements` to `call`, as the script's `settle` reads
/// them; returns how many keys.
fn settle_args(call: &mut ScriptInvocation<'_>, settlements: &[(&Reservation, &Amounts)]) -> usize {
    let mut keys = 0;
    for (reservation, actual) in settlements {
        for charge in &reservation.charges {
            keys += 1;
            call.key(&charge.key);
            let used = actual.of(charge.dimension);
            match charge.counting {
                Counting::Rate { period_ns, .. } => {
                    call.arg("rate")
                        .arg(rate_increment(period_ns, charge.limit, used))
                        .arg(rate_increment(period_ns, charge.limit, charge.amount));
                }
                Counting::Budget { .. } => {
                    call.arg("budget").arg(used).arg(charge.amount);
                }
                Counting::Leases { .. } => {
                    call.arg("leases").arg(&reservation.id).arg(0);
                }
            }
        }
    }
    keys
}

/// The reservation of `charges` under `id` at `now_ns`, from the script's `reply`; a
/// refusal is told by the same function memory uses, from what the script read.
fn reservation_from(
    reply: Vec<String>,
    id: String,
    charges: Vec<Charge>,
    estimate: Amounts,
    now_ns: u64,
) -> Result<Reservation, ReserveError> {
    let malformed = || BackendError::MalformedReply {
        op: Operation::Reserve,
    };
    let disagree = |c: &Charge| BackendError::Disagreement {
        op: Operation::Reserve,
        key: c.key.clone(),
    };
    match reply.first().map(String::as_str) {
        Some("0") => {
            let [_, index, prior] = reply.as_slice() else {
                return Err(malformed().into());
            };
            let charge = index
                .parse::<usize>()
                .ok()
                .and_then(|i| charges.get(i))
                .ok_or_else(malformed)?;
            match model::admit(charge, prior_of(charge, prior)?, now_ns) {
                Err(refusal) => Err(ReserveError::Refused(refusal)),
                Ok(_) => Err(disagree(charge).into()),
            }
        }
        Some("1") if reply.len() == charges.len() + 1 => {
            let mut remaining = Vec::with_capacity(charges.len());
            for (charge, prior) in charges.iter().zip(&reply[1..]) {
                let (_, left) = model::admit(charge, prior_of(charge, prior)?, now_ns)
                    .map_err(|_| disagree(charge))?;
                remaining.push(left);
            }
            Ok(Reservation {
                id,
                charges,
                estimate,
                remaining,
            })
        }
        _ => Err(malformed().into()),
    }
}

enum Kind {
    Rate,
    Budget,
    Leases,
}

/// How a key is counted, from its window (`writ:limit:{dimension}:{window}:...`).
fn kind_of(key: &str) -> Option<Kind> {
    match key.split(':').nth(3)?.as_bytes().first()? {
        b'r' => Some(Kind::Rate),
        b'd' | b'm' => Some(Kind::Budget),
        b'c' => Some(Kind::Leases),
        _ => None,
    }
}

/// What the script read for `charge`, as the model takes it.
fn prior_of(charge: &Charge, value: &str) -> Result<Prior, BackendError> {
    let n = value
        .parse::<u64>()
        .map_err(|_| BackendError::MalformedState {
            op: Operation::Reserve,
            key: charge.key.clone(),
        })?;
    Ok(match charge.counting {
        Counting::Rate { .. } => Prior::Tat(n),
        Counting::Budget { .. } => Prior::Used(n),
        Counting::Leases { .. } => Prior::Held(n),
    })
}
