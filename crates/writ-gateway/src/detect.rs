//! Attacks noticed and reported: detections and their modes, brute force on the token
//! endpoint and the data plane, and webhooks told of detections.

pub(crate) mod brute_force;
pub mod detections;
pub mod webhook;

/// Addresses the data plane refuses for now, and until when (`true`: locked out): this
/// instance's memory of the brute-force verdicts, checked on every request without a round
/// trip to the limiter backend (see `brute_force.rs`).
pub(crate) type BlockedAddresses =
    std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, (std::time::SystemTime, bool)>>;
