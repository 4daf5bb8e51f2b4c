//! `Agent`: a registered principal that may be issued writs, and how it proves who it is.

use std::time::Duration;

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use writ_token::Grant;

/// A registered agent: who it is, how it authenticates, and the most it may be granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// Tenant the agent belongs to.
    pub tenant: String,
    /// Agent name, unique within the tenant.
    pub name: String,
    /// The ceiling: every writ issued to this agent is bounded by these grants.
    pub ceiling: Vec<Grant>,
    /// Longest lifetime of a writ issued to this agent.
    pub max_ttl: Duration,
    /// How the agent authenticates at the token endpoint.
    pub credentials: AgentCredentials,
}

/// Public keys for `private_key_jwt` and/or a client secret, stored only as an Argon2 hash.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentCredentials {
    /// Keys the agent signs client assertions with.
    #[serde(default)]
    pub public_keys: Vec<AgentKey>,
    /// Argon2id hash (PHC string) of the client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_hash: Option<String>,
}

impl std::fmt::Debug for AgentCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentCredentials")
            .field("public_keys", &self.public_keys)
            .field(
                "secret",
                &self.secret_hash.as_ref().map(|_| "<argon2 hash>"),
            )
            .finish()
    }
}

/// An agent's public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentKey {
    /// JWS algorithm the key verifies: `EdDSA` (Ed25519) or `ES256` (P-256).
    pub alg: String,
    /// The key as SubjectPublicKeyInfo PEM.
    pub pem: String,
}

/// A key file is not an Ed25519 or P-256 public key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not an Ed25519 or P-256 (ES256) public key in PEM (-----BEGIN PUBLIC KEY-----)")]
pub struct UnsupportedKey;

/// DER of the algorithm identifiers: Ed25519 (1.3.101.112); P-256 (1.2.840.10045.2.1 with
/// prime256v1, 1.2.840.10045.3.1.7).
const ED25519_OID: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
const EC_OID: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

impl AgentKey {
    /// Reads a public key PEM and names its algorithm. Private keys are refused.
    pub fn from_pem(pem: &str) -> Result<Self, UnsupportedKey> {
        let body: String = pem
            .trim()
            .strip_prefix("-----BEGIN PUBLIC KEY-----")
            .and_then(|s| s.strip_suffix("-----END PUBLIC KEY-----"))
            .ok_or(UnsupportedKey)?
            .split_whitespace()
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| UnsupportedKey)?;
        let has = |oid: &[u8]| der.windows(oid.len()).any(|w| w == oid);
        let alg = if has(ED25519_OID) && der.len() == 44 {
            "EdDSA"
        } else if has(EC_OID) && has(P256_OID) && der.len() == 91 {
            "ES256"
        } else {
            return Err(UnsupportedKey);
        };
        Ok(Self {
            alg: alg.to_string(),
            pem: pem.trim().to_string(),
        })
    }

    /// The key's JWK thumbprint (RFC 7638: SHA-256 of the required members in
    /// lexicographic order, base64url), as `jkt` values and `writ agent show` name it.
    pub fn thumbprint(&self) -> Result<String, UnsupportedKey> {
        use sha2::Digest;
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let der = Self::from_pem(&self.pem).and_then(|_| {
            let body: String = self
                .pem
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .collect();
            base64::engine::general_purpose::STANDARD
                .decode(body.trim())
                .map_err(|_| UnsupportedKey)
        })?;
        // The key is the tail of the SubjectPublicKeyInfo: 32 bytes for Ed25519, an
        // uncompressed point (0x04 ‖ x ‖ y) for P-256; `from_pem` checked the lengths.
        let jwk = match self.alg.as_str() {
            "EdDSA" => {
                let x = der.get(der.len() - 32..).ok_or(UnsupportedKey)?;
                format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, b64(x))
            }
            "ES256" => {
                let point = der.get(der.len() - 65..).ok_or(UnsupportedKey)?;
                let (x, y) = point[1..].split_at(32);
                format!(
                    r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                    b64(x),
                    b64(y)
                )
            }
            _ => return Err(UnsupportedKey),
        };
        Ok(b64(&sha2::Sha256::digest(jwk.as_bytes())))
    }
}

/// A new random client secret (shown once) and its Argon2id hash (stored).
pub fn new_client_secret() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = format!(
        "wcs_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    (secret.clone(), hash_secret(&secret))
}

fn hash_secret(secret: &str) -> String {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    Argon2::default()
        .hash_password_with_salt(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .unwrap_or_default()
}

/// A fixed hash checked when no agent matches, so an unknown client takes as long to
/// refuse as a wrong secret (no timing oracle for agent names).
static DUMMY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

impl AgentCredentials {
    /// Whether `secret` is this agent's client secret.
    pub fn verify_secret(&self, secret: &str) -> bool {
        match &self.secret_hash {
            Some(hash) => Argon2::default()
                .verify_password(secret.as_bytes(), hash.as_str())
                .is_ok(),
            None => {
                burn_secret_check(secret);
                false
            }
        }
    }
}

/// Spends the time of one secret check, for refusals that have no hash to check.
pub fn burn_secret_check(secret: &str) {
    let hash = DUMMY_HASH.get_or_init(|| hash_secret("writ-dummy-secret"));
    let _ = Argon2::default().verify_password(secret.as_bytes(), hash.as_str());
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----";
    const EC_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEVs/o5+uQbTjL3chynL4wXgUg2R9\nq9UU8I5mEovUf86QZ7kOBIjJwqnzD1omageEHWwHdBO6B+dFabmdT9POxg==\n-----END PUBLIC KEY-----";

    #[test]
    fn reads_supported_keys_only() {
        assert_eq!(AgentKey::from_pem(ED_PEM).unwrap().alg, "EdDSA");
        assert_eq!(AgentKey::from_pem(EC_PEM).unwrap().alg, "ES256");
        assert_eq!(AgentKey::from_pem("garbage"), Err(UnsupportedKey));
        let private = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----";
        assert_eq!(AgentKey::from_pem(private), Err(UnsupportedKey));
    }

    #[test]
    fn thumbprints_follow_rfc_7638() {
        // RFC 8037 appendix A.3: the thumbprint of its Ed25519 example key.
        let rfc8037 = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n-----END PUBLIC KEY-----";
        assert_eq!(
            AgentKey::from_pem(rfc8037).unwrap().thumbprint().unwrap(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
        let ec = AgentKey::from_pem(EC_PEM).unwrap().thumbprint().unwrap();
        assert_eq!(ec.len(), 43);
        assert_ne!(
            ec,
            AgentKey::from_pem(ED_PEM).unwrap().thumbprint().unwrap()
        );
    }

    #[test]
    fn secrets_verify_and_never_print() {
        let (secret, hash) = new_client_secret();
        let creds = AgentCredentials {
            public_keys: vec![],
            secret_hash: Some(hash.clone()),
        };
        assert!(creds.verify_secret(&secret));
        assert!(!creds.verify_secret("wcs_wrong"));
        assert!(hash.starts_with("$argon2id$"));
        let shown = format!("{creds:?}");
        assert!(!shown.contains(&hash) && !shown.contains(&secret));
        assert!(!AgentCredentials::default().verify_secret(&secret));
    }
}
