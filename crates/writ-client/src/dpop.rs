//! DPoP (RFC 9449): the key a writ is bound to, and the proof sent with every request
//! that shows the sender holds it (`htm`, `htu`, `iat`, `jti`, and `ath` with a writ).

use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::{EncodePrivateKey, KeypairBytes};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::credential::{random_id, unix};
use crate::error::Error;

/// A DPoP key pair. A writ minted with a proof from it is useless without it. Prints no
/// key material.
pub struct DpopKey {
    key: EncodingKey,
    alg: Algorithm,
    jwk: Jwk,
}

impl DpopKey {
    /// A fresh Ed25519 key, held only in this process.
    pub fn generate() -> Result<Self, Error> {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, seed.as_mut());
        // PKCS#8 v1 (no public key member), the form jsonwebtoken derives a JWK from.
        let der = KeypairBytes {
            secret_key: *seed,
            public_key: None,
        }
        .to_pkcs8_der()
        .map_err(|_| Error::InvalidKey)?;
        Self::from_key(EncodingKey::from_ed_der(der.as_bytes()), Algorithm::EdDSA)
    }

    /// A PKCS#8 PEM Ed25519 or P-256 private key, as `openssl genpkey` writes it.
    pub fn from_pem(pem: &str) -> Result<Self, Error> {
        let pem = pem.as_bytes();
        match EncodingKey::from_ed_pem(pem) {
            Ok(key) => Self::from_key(key, Algorithm::EdDSA),
            Err(_) => Self::from_key(
                EncodingKey::from_ec_pem(pem).map_err(|_| Error::InvalidKey)?,
                Algorithm::ES256,
            ),
        }
    }

    fn from_key(key: EncodingKey, alg: Algorithm) -> Result<Self, Error> {
        let jwk = Jwk::from_encoding_key(&key, alg).map_err(|_| Error::InvalidKey)?;
        Ok(Self { key, alg, jwk })
    }

    /// A proof for one request: `method` and `url` (query and fragment are dropped, as
    /// RFC 9449 §4.2 says), and the writ it accompanies, whose hash becomes `ath`.
    pub fn proof(
        &self,
        method: &str,
        url: &str,
        writ: Option<&str>,
        now: SystemTime,
    ) -> Result<String, Error> {
        let mut header = Header::new(self.alg);
        header.typ = Some("dpop+jwt".into());
        header.jwk = Some(self.jwk.clone());
        let claims = ProofClaims {
            htm: method,
            htu: url.split(['?', '#']).next().unwrap_or(url),
            iat: unix(now),
            jti: random_id(),
            ath: writ.map(|w| URL_SAFE_NO_PAD.encode(Sha256::digest(w.as_bytes()))),
        };
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(Error::Sign)
    }
}

impl std::fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DpopKey({:?})", self.alg)
    }
}

#[derive(Serialize)]
struct ProofClaims<'a> {
    htm: &'a str,
    htu: &'a str,
    iat: u64,
    jti: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ath: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(part: &str) -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn a_proof_carries_the_public_key_and_the_request() {
        let key = DpopKey::generate().unwrap();
        let proof = key
            .proof(
                "POST",
                "http://gw/v1/chat/completions?x=1",
                Some("writ_abc"),
                SystemTime::UNIX_EPOCH,
            )
            .unwrap();
        let parts: Vec<&str> = proof.split('.').collect();
        let (header, claims) = (decode(parts[0]), decode(parts[1]));
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "EdDSA");
        assert_eq!(header["jwk"]["kty"], "OKP");
        assert!(header["jwk"].get("d").is_none(), "{header}");
        assert_eq!(claims["htm"], "POST");
        assert_eq!(claims["htu"], "http://gw/v1/chat/completions");
        let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(b"writ_abc"));
        assert_eq!(claims["ath"], ath);
        let again = key
            .proof("POST", "http://gw/", None, SystemTime::UNIX_EPOCH)
            .unwrap();
        assert_ne!(
            decode(again.split('.').nth(1).unwrap())["jti"],
            claims["jti"]
        );
    }
}
