//! DPoP (RFC 9449): a proof that the caller holds a private key, checked and reduced to
//! the key's JWK thumbprint (RFC 7638). A writ bound to a thumbprint (`cnf_jkt`) is useless
//! without a fresh proof signed by that key, so a stolen writ alone does nothing.
//!
//! [`verify`] checks the proof itself and touches no state; [`verify_once`] also records
//! its `jti` in the replay store (the limiter backend, shared by every instance with
//! Redis), so each proof is accepted once.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use sha2::{Digest, Sha256};

use writ_limits::ReplayKind;

use crate::limits::replay::Replay;

/// Largest proof accepted.
const MAX_PROOF_BYTES: usize = 4096;
/// How far a proof's `iat` may be from now (RFC 9449 §11.1 leaves it to the server).
const IAT_WINDOW: Duration = Duration::from_secs(60);
/// JWK members that only a private key has.
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
/// Algorithms accepted, for `WWW-Authenticate: DPoP algs=…`.
pub(crate) const ALGS: &str = "ES256 EdDSA";

/// What the proof must match.
pub(crate) struct Expected<'a> {
    /// HTTP method of the request.
    pub(crate) method: &'a str,
    /// The request URL without query and fragment, as this server's public URL.
    pub(crate) url: &'a str,
    /// The access token presented with the proof (its hash must be `ath`); `None` at the
    /// token endpoint.
    pub(crate) access_token: Option<&'a str>,
    pub(crate) now: SystemTime,
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
    /// `iat` is further than the accepted window from now.
    #[error("DPoP proof iat is outside the accepted window")]
    IatOutsideWindow,
    /// `ath` is not the hash of the access token sent with the proof.
    #[error("DPoP proof ath does not match the access token")]
    AthMismatch,
    /// `jti` is absent, empty or too long.
    #[error("DPoP proof needs a jti")]
    NoJti,
    /// This proof's `jti` was accepted before (on any instance sharing the replay store).
    #[error("DPoP proof was already used")]
    Replayed,
    /// The proof is signed by another key than the writ's `cnf.jkt`.
    #[error("the DPoP proof is signed by another key than the writ is bound to")]
    JktMismatch,
}

/// Why a proof was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    /// The proof is invalid, or was already used: the client's to fix.
    #[error(transparent)]
    Invalid(#[from] DpopError),
    /// The replay store could not be asked whether it was used: the request is refused
    /// (fail closed) and may be retried with a fresh proof.
    #[error("the DPoP proof could not be checked for replay")]
    ReplayUnavailable,
}

/// A proof that verified, before its replay check.
#[derive(Debug)]
pub(crate) struct Proof {
    /// RFC 7638 thumbprint of the proof's key.
    pub(crate) thumbprint: String,
    jti: String,
    /// Until when the proof could verify, so until when its `jti` must be remembered.
    replayable_until: SystemTime,
}

/// Verifies a DPoP proof and records its `jti` as used: returns the thumbprint of its key
/// the first time, [`Refusal::Invalid`] ([`DpopError::Replayed`]) on every later try, on any
/// instance sharing the replay store.
pub(crate) async fn verify_once(
    proof: &str,
    expected: &Expected<'_>,
    replay: &Replay,
) -> Result<String, Refusal> {
    let proof = verify(proof, expected)?;
    match replay
        .first_use(
            ReplayKind::DpopProof,
            &[&proof.thumbprint, &proof.jti],
            proof.replayable_until,
            expected.now,
        )
        .await
    {
        Ok(true) => Ok(proof.thumbprint),
        Ok(false) => Err(DpopError::Replayed.into()),
        Err(_) => Err(Refusal::ReplayUnavailable),
    }
}

/// Verifies a DPoP proof: everything but whether it was used before.
pub(crate) fn verify(proof: &str, expected: &Expected<'_>) -> Result<Proof, DpopError> {
    if proof.len() > MAX_PROOF_BYTES {
        return Err(DpopError::TooLarge);
    }
    let header_b64 = proof.split('.').next().ok_or(DpopError::NotJwt)?;
    let header: Value = URL_SAFE_NO_PAD
        .decode(header_b64)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(DpopError::MalformedHeader)?;
    if header["typ"] != "dpop+jwt" {
        return Err(DpopError::WrongTyp);
    }
    let alg = match header["alg"].as_str() {
        Some("ES256") => Algorithm::ES256,
        Some("EdDSA") => Algorithm::EdDSA,
        _ => return Err(DpopError::WrongAlg),
    };
    let jwk = header["jwk"].as_object().ok_or(DpopError::NoJwk)?;
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err(DpopError::PrivateKey);
    }
    let member = |name: &str| -> Result<&str, DpopError> {
        jwk.get(name)
            .and_then(Value::as_str)
            .filter(|v| {
                !v.is_empty()
                    && v.len() <= 128
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
            .ok_or(DpopError::MalformedJwk)
    };
    let (key, thumbprint_input) = match (jwk.get("kty").and_then(Value::as_str), alg) {
        (Some("EC"), Algorithm::ES256)
            if jwk.get("crv").and_then(Value::as_str) == Some("P-256") =>
        {
            let (x, y) = (member("x")?, member("y")?);
            let key = DecodingKey::from_ec_components(x, y).map_err(|_| DpopError::NotP256)?;
            (
                key,
                format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#),
            )
        }
        (Some("OKP"), Algorithm::EdDSA)
            if jwk.get("crv").and_then(Value::as_str) == Some("Ed25519") =>
        {
            let x = member("x")?;
            let key = DecodingKey::from_ed_components(x).map_err(|_| DpopError::NotEd25519)?;
            (key, format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#))
        }
        _ => return Err(DpopError::KeyAlgMismatch),
    };
    let mut validation = Validation::new(alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<Value>(proof, &key, &validation)
        .map_err(|_| DpopError::BadSignature)?
        .claims;
    if claims["htm"].as_str() != Some(expected.method) {
        return Err(DpopError::HtmMismatch);
    }
    if claims["htu"].as_str().map(strip_query) != Some(expected.url) {
        return Err(DpopError::HtuMismatch);
    }
    let iat = claims["iat"].as_u64().ok_or(DpopError::NoIat)?;
    // Any number the client chose: checked, never added blindly (an overflow panics).
    // Not later than the window first, so adding the window to `iat` cannot overflow.
    let iat = UNIX_EPOCH
        .checked_add(Duration::from_secs(iat))
        .filter(|iat| *iat <= expected.now + IAT_WINDOW && *iat + IAT_WINDOW >= expected.now)
        .ok_or(DpopError::IatOutsideWindow)?;
    if let Some(token) = expected.access_token {
        let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()));
        if claims["ath"].as_str() != Some(ath.as_str()) {
            return Err(DpopError::AthMismatch);
        }
    }
    let jti = claims["jti"]
        .as_str()
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or(DpopError::NoJti)?;
    Ok(Proof {
        thumbprint: URL_SAFE_NO_PAD.encode(Sha256::digest(thumbprint_input.as_bytes())),
        jti: jti.to_string(),
        // Accepted while `iat` is within the window of now: up to a window after `iat`.
        replayable_until: iat + IAT_WINDOW,
    })
}

fn strip_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use writ_testkit::DpopKey;

    const URL: &str = "https://writ.test/v1/chat/completions";

    fn proof(key: &DpopKey, iat: Value) -> String {
        key.sign(
            &json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": key.jwk()}),
            &json!({"htm": "POST", "htu": URL, "iat": iat, "jti": "j-1"}),
        )
    }

    #[test]
    fn a_proof_verifies_to_its_key_and_an_iat_beyond_any_time_is_refused() {
        let key = DpopKey::new();
        let now_secs = 1_800_000_000;
        let expected = Expected {
            method: "POST",
            url: URL,
            access_token: None,
            now: UNIX_EPOCH + Duration::from_secs(now_secs),
        };
        let verified = verify(&proof(&key, json!(now_secs - 59)), &expected).unwrap();
        assert_eq!(verified.thumbprint, key.thumbprint());
        assert_eq!(verified.jti, "j-1");
        assert_eq!(
            verified.replayable_until,
            UNIX_EPOCH + Duration::from_secs(now_secs + 1)
        );
        for iat in [
            json!(now_secs - 61),
            json!(now_secs + 61),
            json!(u64::MAX),
            json!(i64::MAX as u64 - 30),
        ] {
            assert_eq!(
                verify(&proof(&key, iat.clone()), &expected).unwrap_err(),
                DpopError::IatOutsideWindow,
                "iat {iat}"
            );
        }
    }

    #[test]
    fn each_failed_check_is_refused_with_its_own_variant() {
        let key = DpopKey::new();
        let now_secs = 1_800_000_000u64;
        let expected = Expected {
            method: "POST",
            url: URL,
            access_token: Some("the-writ"),
            now: UNIX_EPOCH + Duration::from_secs(now_secs),
        };
        let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(b"the-writ"));
        let header = json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": key.jwk()});
        let claims = json!({"htm": "POST", "htu": URL, "iat": now_secs, "jti": "j", "ath": ath});
        let with = |patch: &dyn Fn(&mut Value, &mut Value)| {
            let (mut h, mut c) = (header.clone(), claims.clone());
            patch(&mut h, &mut c);
            verify(&key.sign(&h, &c), &expected).map(|p| p.thumbprint)
        };
        assert_eq!(with(&|_, _| {}), Ok(key.thumbprint()));
        type Patch<'a> = &'a dyn Fn(&mut Value, &mut Value);
        let cases: [(Patch<'_>, DpopError); 9] = [
            (&|h, _| h["typ"] = json!("JWT"), DpopError::WrongTyp),
            (&|h, _| h["alg"] = json!("HS256"), DpopError::WrongAlg),
            (&|h, _| h["alg"] = json!("ES256"), DpopError::KeyAlgMismatch),
            (
                &|h, _| h["jwk"]["d"] = json!("secret"),
                DpopError::PrivateKey,
            ),
            (
                &|h, _| h["jwk"]["x"] = json!("a b"),
                DpopError::MalformedJwk,
            ),
            (&|_, c| c["htm"] = json!("GET"), DpopError::HtmMismatch),
            (
                &|_, c| c["htu"] = json!("https://evil.test/v1/chat/completions"),
                DpopError::HtuMismatch,
            ),
            (&|_, c| c["ath"] = json!("AAAA"), DpopError::AthMismatch),
            (&|_, c| c["jti"] = json!(""), DpopError::NoJti),
        ];
        for (i, (patch, want)) in cases.into_iter().enumerate() {
            assert_eq!(with(patch), Err(want), "case {i}");
        }
        let other = DpopKey::new();
        let forged = format!(
            "{}.{}",
            key.sign(&header, &claims).rsplit_once('.').unwrap().0,
            other.sign(&header, &claims).rsplit_once('.').unwrap().1
        );
        assert_eq!(
            verify(&forged, &expected).unwrap_err(),
            DpopError::BadSignature
        );
        assert_eq!(
            verify(&"a".repeat(MAX_PROOF_BYTES + 1), &expected).unwrap_err(),
            DpopError::TooLarge
        );
        assert_eq!(
            verify("%%.x.y", &expected).unwrap_err(),
            DpopError::MalformedHeader
        );
        assert_eq!(
            DpopError::Replayed.to_string(),
            "DPoP proof was already used",
            "the message clients see is unchanged"
        );
    }
}
