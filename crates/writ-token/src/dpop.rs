//! DPoP (RFC 9449): a proof that the caller holds a private key, checked and reduced to
//! the key's JWK thumbprint (RFC 7638). A writ bound to a thumbprint (`cnf_jkt`) is useless
//! without a fresh proof signed by that key, so a stolen writ alone does nothing.
//!
//! [`verify_proof`] checks a proof itself and is pure; [`check_proof`] also records its
//! `jti` through a [`ReplayGuard`], so each proof is accepted once; [`possession`] applies
//! a writ's binding on the data plane. The caller reads the `DPoP` header and the clock.

mod proof;

pub use proof::{IAT_WINDOW, MAX_PROOF_BYTES, Proof, verify_proof};

use std::time::SystemTime;

use crate::replay_guard::{OneTimeId, ReplayGuard, ReplayUnavailable};
use crate::verify::VerifiedWrit;

/// Algorithms accepted, for `WWW-Authenticate: DPoP algs=…`.
pub const ALGS: &str = "ES256 EdDSA";

/// What a proof must match. No `Debug`: it holds the presented writ.
#[derive(Clone, Copy)]
pub struct Expected<'a> {
    /// HTTP method of the request.
    pub method: &'a str,
    /// The request URL without query and fragment, as this server's public URL.
    pub url: &'a str,
    /// The access token presented with the proof (its hash must be `ath`); `None` at the
    /// token endpoint.
    pub access_token: Option<&'a str>,
    /// The caller's clock, for the `iat` window.
    pub now: SystemTime,
}

/// Why a DPoP proof was refused; its `Display` is the message returned to the client
/// (it names the failed check, never the proof or the writ).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DpopError {
    /// The `DPoP` header is not visible ASCII.
    #[error("DPoP header is not text")]
    HeaderNotText,
    /// More than one `DPoP` header was sent.
    #[error("send exactly one DPoP proof")]
    SeveralProofs,
    /// A writ bound to a key was sent with the `Bearer` scheme.
    #[error("this writ is bound to a key: send it as Authorization: DPoP with a DPoP proof")]
    BearerForBoundWrit,
    /// A writ bound to a key came without a proof.
    #[error("this writ is bound to a key: a DPoP proof is required")]
    Missing,
    /// The proof is larger than [`MAX_PROOF_BYTES`].
    #[error("DPoP proof too large")]
    TooLarge,
    /// The proof is not a compact JWT.
    #[error("DPoP proof is not a JWT")]
    NotJwt,
    /// The proof's header is not base64url JSON.
    #[error("DPoP proof header is malformed")]
    MalformedHeader,
    /// The header's `typ` is not `dpop+jwt`.
    #[error("DPoP proof typ must be dpop+jwt")]
    WrongTyp,
    /// The header's `alg` is not one of [`ALGS`].
    #[error("DPoP proof alg must be ES256 or EdDSA")]
    WrongAlg,
    /// The header carries no `jwk`.
    #[error("DPoP proof header has no jwk")]
    NoJwk,
    /// The `jwk` has private-key members.
    #[error("DPoP proof jwk contains a private key")]
    PrivateKey,
    /// A `jwk` member is missing, empty, too long or not base64url.
    #[error("DPoP proof jwk is malformed")]
    MalformedJwk,
    /// The `jwk` coordinates are not a P-256 key.
    #[error("DPoP proof jwk is not a P-256 key")]
    NotP256,
    /// The `jwk` is not an Ed25519 key.
    #[error("DPoP proof jwk is not an Ed25519 key")]
    NotEd25519,
    /// The `jwk` is an Ed25519 key of small order: proofs that verify under it can be made
    /// without any private key, so it binds nothing.
    #[error(
        "DPoP proof jwk is an Ed25519 key of small order, which binds nothing: generate a new key pair"
    )]
    WeakKey,
    /// The `jwk`'s key type or curve is not the one `alg` names.
    #[error("DPoP proof jwk does not match its alg")]
    KeyAlgMismatch,
    /// The signature does not verify with the `jwk`.
    #[error("DPoP proof signature does not verify")]
    BadSignature,
    /// `htm` is not the request's method.
    #[error("DPoP proof htm does not match the request method")]
    HtmMismatch,
    /// `htu` is not the request's URL.
    #[error("DPoP proof htu does not match the request URL")]
    HtuMismatch,
    /// `iat` is absent or not a number.
    #[error("DPoP proof has no iat")]
    NoIat,
    /// `iat` is further than [`IAT_WINDOW`] from now.
    #[error("DPoP proof iat is outside the accepted window")]
    IatOutsideWindow,
    /// `ath` is not the hash of the access token sent with the proof.
    #[error("DPoP proof ath does not match the access token")]
    AthMismatch,
    /// `jti` is absent, empty or too long.
    #[error("DPoP proof needs a jti")]
    NoJti,
    /// This proof's `jti` was accepted before (by any instance sharing the replay store).
    #[error("DPoP proof was already used")]
    Replayed,
    /// The proof is signed by another key than the writ's `cnf_jkt`.
    #[error("the DPoP proof is signed by another key than the writ is bound to")]
    JktMismatch,
}

/// Why a proof was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofRefusal {
    /// The proof is invalid, or was already used: the client's to fix.
    #[error(transparent)]
    Invalid(#[from] DpopError),
    /// The replay store could not be asked whether it was used: the request is refused
    /// (fail closed) and may be retried with a fresh proof.
    #[error("the DPoP proof could not be checked for replay")]
    ReplayUnavailable,
}

impl From<ReplayUnavailable> for ProofRefusal {
    fn from(_: ReplayUnavailable) -> Self {
        Self::ReplayUnavailable
    }
}

/// Verifies a DPoP proof and records its `jti` through `replay`: returns the thumbprint of
/// its key the first time, [`DpopError::Replayed`] on every later try (on any instance
/// sharing the replay store), [`ProofRefusal::ReplayUnavailable`] when `replay` cannot
/// tell. A proof that fails [`verify_proof`] is refused without touching `replay`.
pub async fn check_proof<R: ReplayGuard + ?Sized>(
    proof: &str,
    expected: &Expected<'_>,
    replay: &R,
) -> Result<String, ProofRefusal> {
    let proof = verify_proof(proof, expected)?;
    let id = OneTimeId::DpopProof {
        thumbprint: &proof.thumbprint,
        jti: &proof.jti,
    };
    if replay
        .first_use(id, proof.replayable_until, expected.now)
        .await?
    {
        Ok(proof.thumbprint)
    } else {
        Err(DpopError::Replayed.into())
    }
}

/// Proof of possession on the data plane: checks `proof` when one is sent, and demands one
/// when `writ` is bound to a key (`cnf_jkt`). `dpop_scheme` says whether the writ came as
/// `Authorization: DPoP`, which a bound writ requires.
///
/// Returns the proven key's thumbprint (`None` without a proof, for an unbound writ), to
/// be stated to the authorizer as `dpop_jkt(..)` so a holder can also bind a writ offline
/// with `check if dpop_jkt("…")`. Refuses with [`DpopError::BearerForBoundWrit`],
/// [`DpopError::Missing`], any refusal of [`check_proof`], or [`DpopError::JktMismatch`]
/// when the proof's key is not the one the writ is bound to.
pub async fn possession<R: ReplayGuard + ?Sized>(
    writ: &VerifiedWrit,
    dpop_scheme: bool,
    proof: Option<&str>,
    expected: &Expected<'_>,
    replay: &R,
) -> Result<Option<String>, ProofRefusal> {
    let bound = writ.claims().cnf_jkt.as_deref();
    if bound.is_some() && !dpop_scheme {
        return Err(DpopError::BearerForBoundWrit.into());
    }
    let Some(proof) = proof else {
        return match bound {
            Some(_) => Err(DpopError::Missing.into()),
            None => Ok(None),
        };
    };
    let jkt = check_proof(proof, expected, replay).await?;
    if bound.is_some_and(|b| b != jkt) {
        return Err(DpopError::JktMismatch.into());
    }
    Ok(Some(jkt))
}

#[cfg(test)]
mod tests;
