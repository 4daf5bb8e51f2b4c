//! Attacks noticed and reported: detections and their modes, brute force on the token
//! endpoint, and the fan-out of detections to logs, the audit log and webhooks.

pub(crate) mod brute_force;
pub mod detections;
pub(crate) mod fanout;
pub mod webhook;
