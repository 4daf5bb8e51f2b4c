//! What the gateway writes down: the tamper-evident audit log of requests and detections,
//! the usage log, and the operator's own trail of admin commands.

mod alone;
mod auditor;
mod group;
mod open;
pub mod operator_log;
mod realign;
pub(crate) mod record_filter;
mod request_log;
pub mod usage_log;
mod writer;

pub use auditor::*;
pub use open::*;
pub(crate) use writer::Appended;
