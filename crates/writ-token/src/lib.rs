//! The writ format: grants compiled to Biscuit Datalog, minting, verification and authorization.
//!
//! A writ is a Biscuit v3 token serialized as `writ_` + base64url (DESIGN §2). This crate
//! is pure: it never reads a clock, a file or a socket. Callers pass `now` and keys.
//!
//! The types follow the order a request must go through them:
//! [`decode`] a presented string into an [`UnverifiedWrit`] (size caps, prefix),
//! [`UnverifiedWrit::verify`] it against a [`RootKeys`] set into a [`VerifiedWrit`]
//! (signature, key id, claims), then [`VerifiedWrit::authorize`] it against
//! [`RequestFacts`] into an [`Authorization`], the only proof the gateway accepts
//! before it injects a credential.
//!
//! The gateway asks [`Verifier::check`] for the first steps: decode, verify (cached),
//! expiry on the caller's clock and revocation of every block, one definition of a valid
//! writ for the data plane and token exchange alike. [`dpop`] checks proofs of possession;
//! one-time ids (DPoP proofs, client assertions, single-use writs) go through a
//! [`ReplayGuard`] the caller implements. A tenant's [`OperatorPolicy`] checks the same
//! request facts on top of the writ.

mod approval;
mod attenuate;
mod audience;
mod blocks;
mod clock;
mod delegate;
pub mod dpop;
mod encoding;
mod error;
mod evaluation_cost;
mod explain;
mod facts;
mod grant;
mod keys;
mod mint;
mod parsed;
mod policy;
mod replay_guard;
mod revocation;
mod revocation_ids;
mod shape;
mod stated;
mod time_bound;
mod upstreams;
mod verification;
mod verifier;
mod verify;
mod verify_cache;
mod writ_text;

pub use approval::{
    APPROVAL_ID_PREFIX, ApprovalKey, ApprovalScope, ApprovalStatement, append_approval,
    canonical_json, new_approval_id, request_digest, sign_approval, valid_approval_id,
};
pub use attenuate::attenuate;
pub use audience::MAX_AUDIENCE_BYTES;
/// A root public key (Ed25519).
pub use biscuit_auth::PublicKey;
pub use clock::{Clock, ManualClock, SystemClock};
pub use delegate::Delegation;
pub use encoding::{MAX_BLOCKS, MAX_WRIT_BYTES, UnverifiedWrit, WRIT_PREFIX, decode};
pub use error::{Denial, WritError};
pub use evaluation_cost::{
    DatalogError, MAX_FACTS_PER_BLOCK, MAX_PREDICATES_PER_QUERY, MAX_WORK_PER_WRIT, REGEX_UNITS,
};
pub use explain::DeniedBy;
pub use facts::{Api, ArgumentsError, MAX_ARG_DEPTH, MAX_ARGS, RequestFacts, flatten_arguments};
pub use grant::{
    AdminGrant, ArgValue, BudgetGrant, Constraint, ConstraintRule, DatalogGrant, GRANT_TYPES,
    Grant, GrantError, HttpGrant, LlmGrant, ToolGrant, first_outside, parse_grants, validate,
};
pub use keys::{
    KeyError, KeyId, RootKeyPair, RootKeys, fingerprint, public_key_from_hex, public_key_hex,
};
pub use mint::{MintRequest, MintedWrit, mint, mint_verified};
pub use parsed::CAPACITY as PARSED_CAPACITY;
pub use policy::{
    ApprovalReason, ForbiddenConstruct, MAX_POLICY_BYTES, MAX_POLICY_CHECKS, MAX_POLICY_NAME_BYTES,
    OperatorPolicy, PolicyDenial, PolicyError, validate_policy,
};
pub use replay_guard::{OneTimeId, ReplayGuard, ReplayUnavailable};
pub use revocation::{Revocation, RevocationSet, RevocationSubject, token_id_issued_at};
pub use revocation_ids::RevocationIds;
pub use verifier::{RevocationCheck, Verifier};
pub use verify::{Authorization, VerifiedWrit, WritClaims};
pub use verify_cache::VerifyCache;
pub use writ_text::WritText;
