//! How the agent proves who it is at the token endpoint: a `private_key_jwt` assertion
//! (RFC 7523) signed with its Ed25519 or P-256 key, or its client secret.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::error::Error;

/// The RFC 7523 `client_assertion_type`.
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// How long an assertion is valid: long enough for one request, short enough that a
/// copy is useless soon (the gateway also accepts each `jti` once).
const ASSERTION_LIFETIME: Duration = Duration::from_secs(60);

/// An agent's credential. Prints no key material.
pub struct ClientCredential(Kind);

enum Kind {
    Key { key: EncodingKey, alg: Algorithm },
    Secret(Zeroizing<String>),
}

impl ClientCredential {
    /// A PKCS#8 PEM private key, Ed25519 (signs `EdDSA` assertions) or P-256 (`ES256`): the
    /// key whose public half is registered with `writ agent add --public-key`.
    pub fn private_key_pem(pem: &str) -> Result<Self, Error> {
        let pem = pem.as_bytes();
        let (key, alg) = match EncodingKey::from_ed_pem(pem) {
            Ok(key) => (key, Algorithm::EdDSA),
            Err(_) => (
                EncodingKey::from_ec_pem(pem).map_err(|_| Error::InvalidKey)?,
                Algorithm::ES256,
            ),
        };
        Ok(Self(Kind::Key { key, alg }))
    }

    /// A client secret, as `writ agent add --generate-secret` printed it.
    pub fn secret(secret: impl Into<String>) -> Self {
        Self(Kind::Secret(Zeroizing::new(secret.into())))
    }

    /// The form fields that authenticate `client_id` to `token_url` at `now`.
    pub(crate) fn form_fields(
        &self,
        client_id: &str,
        token_url: &str,
        now: SystemTime,
    ) -> Result<Vec<(&'static str, Zeroizing<String>)>, Error> {
        match &self.0 {
            Kind::Secret(secret) => Ok(vec![("client_secret", secret.clone())]),
            Kind::Key { key, alg } => {
                let iat = unix(now);
                let claims = AssertionClaims {
                    iss: client_id,
                    sub: client_id,
                    aud: token_url,
                    iat,
                    exp: iat + ASSERTION_LIFETIME.as_secs(),
                    jti: random_id(),
                };
                let assertion =
                    jsonwebtoken::encode(&Header::new(*alg), &claims, key).map_err(Error::Sign)?;
                Ok(vec![
                    ("client_assertion_type", Zeroizing::new(JWT_BEARER.into())),
                    ("client_assertion", Zeroizing::new(assertion)),
                ])
            }
        }
    }
}

impl std::fmt::Debug for ClientCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Kind::Key { alg, .. } => write!(f, "ClientCredential::PrivateKey({alg:?})"),
            Kind::Secret(_) => f.write_str("ClientCredential::Secret(..)"),
        }
    }
}

#[derive(Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
    jti: String,
}

/// Unix seconds of `t`.
pub(crate) fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// 128 random bits, hex: a `jti` no one else will use.
pub(crate) fn random_id() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_a_pkcs8_ed25519_or_p256_key() {
        for pem in [
            "",
            "not a key",
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        ] {
            assert!(matches!(
                ClientCredential::private_key_pem(pem),
                Err(Error::InvalidKey)
            ));
        }
    }

    #[test]
    fn debug_shows_no_secret() {
        let c = ClientCredential::secret("s3cret-value");
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
