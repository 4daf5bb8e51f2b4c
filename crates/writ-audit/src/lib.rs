//! Tamper-evident audit log: records, an RFC 6962 Merkle tree, signed checkpoints and
//! offline verification (DESIGN §7).
//!
//! Each gateway instance keeps its own log. [`AuditLog::append`] numbers a
//! [`AuditRecord`], links it to the record before (`prev`, a hash chain) and returns its
//! canonical JSON line and Merkle leaf hash; the caller writes the line. Now and then the
//! instance signs a [`Checkpoint`] (tree size and root) as a C2SP signed note with its
//! Ed25519 [`AuditKey`]. [`verify_log`] takes the lines, the checkpoints and the verifier
//! key and names the first [`Problem`]: an edited, missing, reordered or inserted record,
//! a truncated tail, a forged or rolled-back checkpoint.
//!
//! Everything but [`sink`] is pure: no files, clocks or sockets (times come in as
//! `SystemTime`, randomness only in [`AuditKey::generate`]). [`sink`] stores lines in
//! SQLite, PostgreSQL or a JSON-lines file.
//!
//! - [`record`]: the record schema and its canonical bytes;
//! - [`pseudonym`]: HMAC pseudonyms for writ ids and client IPs;
//! - [`merkle`]: RFC 6962 hashing and inclusion/consistency proofs over leaf hashes;
//! - [`tree`]: the same tree with its interior nodes kept, for fast proofs, and its right
//!   edge alone, for the appender;
//! - [`key`]: audit keys and their signed-note key strings;
//! - [`checkpoint`]: checkpoints as signed notes;
//! - [`log`]: the appender's state;
//! - [`verify`]: offline verification of one instance's log;
//! - [`verify_export`]: the same over a whole export, instance by instance;
//! - [`sink`]: where lines are kept, and the JSON-lines export format.

pub mod checkpoint;
pub mod key;
pub mod log;
pub mod merkle;
pub mod pseudonym;
pub mod record;
pub mod sink;
pub mod tree;
pub mod verify;
pub mod verify_export;

pub use checkpoint::{Checkpoint, CheckpointError, parse_and_verify, sign};
pub use key::{AuditKey, KeyError, VerifierKey};
pub use log::{AuditLog, GENESIS_PREV};
pub use merkle::Hash;
pub use pseudonym::Pseudonymizer;
pub use record::{AuditRecord, Decision, Kind, LimitHit, RecordError, Usage};
pub use tree::{Frontier, Tree};
pub use verify::{Problem, Summary, verify_log};
pub use verify_export::{ExportVerification, InstanceVerification, Position, verify_export};
