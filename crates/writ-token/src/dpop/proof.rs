//! One DPoP proof, checked on its own: the compact JWT's header (`typ`, `alg`, a public
//! `jwk`), its signature by that key, and its claims (`htm`, `htu`, `iat` window, `ath`,
//! `jti`). Pure: the time is the caller's, and replay is [`super::check_proof`]'s.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{DpopError, Expected};

/// Largest proof accepted, in bytes.
pub const MAX_PROOF_BYTES: usize = 4096;
/// How far a proof's `iat` may be from now (RFC 9449 §11.1 leaves it to the server).
pub const IAT_WINDOW: Duration = Duration::from_secs(60);
/// JWK members that only a private key has.
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// A proof that verified, before its replay check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// RFC 7638 thumbprint of the proof's key.
    pub thumbprint: String,
    /// The proof's `jti`, accepted once.
    pub jti: String,
    /// Until when the proof could verify, so until when its `jti` must be remembered.
    pub replayable_until: SystemTime,
}

/// Verifies a DPoP proof against what the request must match: everything but whether it
/// was used before. Returns the proof's key thumbprint, `jti` and how long it stays
/// replayable; refuses with the [`DpopError`] naming the first failed check.
pub fn verify_proof(proof: &str, expected: &Expected<'_>) -> Result<Proof, DpopError> {
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
    // A P-256 coordinate and an Ed25519 key are 32 bytes: 43 base64url characters. Checked
    // here, since the JWT library slices an Ed25519 key to 32 bytes and panics on fewer.
    let coordinate = |name: &str| -> Result<&str, DpopError> {
        member(name).and_then(|v| {
            if v.len() == 43 {
                Ok(v)
            } else {
                Err(DpopError::MalformedJwk)
            }
        })
    };
    let (key, thumbprint_input) = match (jwk.get("kty").and_then(Value::as_str), alg) {
        (Some("EC"), Algorithm::ES256)
            if jwk.get("crv").and_then(Value::as_str) == Some("P-256") =>
        {
            let (x, y) = (coordinate("x")?, coordinate("y")?);
            let key = DecodingKey::from_ec_components(x, y).map_err(|_| DpopError::NotP256)?;
            (
                key,
                format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#),
            )
        }
        (Some("OKP"), Algorithm::EdDSA)
            if jwk.get("crv").and_then(Value::as_str) == Some("Ed25519") =>
        {
            let x = coordinate("x")?;
            // A key of small order would let anyone make a proof for a writ bound to it.
            let point = URL_SAFE_NO_PAD
                .decode(x)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or(DpopError::NotEd25519)?;
            match ed25519_dalek::VerifyingKey::from_bytes(&point) {
                Err(_) => return Err(DpopError::NotEd25519),
                Ok(k) if k.is_weak() => return Err(DpopError::WeakKey),
                Ok(_) => {}
            }
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
