//! Fault injection on the gateway's backends, with real processes on loopback of each
//! test's own: Redis (limits) killed and restarted under load, and PostgreSQL (the strict
//! audit sink) crashed and restarted under load. Each test is bounded (every wait has a
//! deadline) and stops its processes and removes their data in `Drop`, also on a panic.
//!
//! Needs `redis-server` and `redis-cli`, and PostgreSQL's `initdb` and `pg_ctl` (run as
//! `nobody` when the tests run as root); panics saying so when one is missing. Run with
//! `cargo test -p writ-gateway --test faults_backends`.
#![allow(clippy::unwrap_used)]

mod load;
mod postgres_restart;
mod redis_restart;
