//! Upstream faults: a hostile upstream (a raw TCP server in the test, loopback only) resets
//! the connection mid-stream and mid-body, sends garbage, stalls, or floods the gateway
//! with events. Each fault has its expected outcome asserted: the client's status and
//! error (in the shape of the route's API) or how its stream ends, the call's one audit
//! entry and usage record (metered up to the cut), the agent's concurrency slot freed at
//! once, and other clients served meanwhile.
#![allow(clippy::unwrap_used)]

mod encoding;
mod events;
mod fault_gateway;
mod flood;
mod garbage;
mod hostile;
mod reset;
mod stall;
mod stream_garbage;

use std::time::Duration;

/// The bound on anything a test waits for: far above what each step needs, so a hang
/// fails the test instead of stalling the run.
const PATIENCE: Duration = Duration::from_secs(20);
