//! `Agent`: a registered principal that may be issued writs, and how it proves who it is.

use std::time::Duration;

use argon2::{Argon2, PasswordVerifier};
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

/// Public keys for `private_key_jwt` and/or a client secret, stored only as a salted hash.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentCredentials {
    /// Keys the agent signs client assertions with.
    #[serde(default)]
    pub public_keys: Vec<AgentKey>,
    /// The client secret's stored form (see [`new_client_secret`]); never the secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_hash: Option<String>,
}

impl std::fmt::Debug for AgentCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentCredentials")
            .field("public_keys", &self.public_keys)
            .field(
                "secret",
                &self.secret_hash.as_ref().map(|_| "<secret hash>"),
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

/// A key file that cannot serve as an agent's key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UnsupportedKey {
    /// Not an Ed25519 or P-256 public key.
    #[error("not an Ed25519 or P-256 (ES256) public key in PEM (-----BEGIN PUBLIC KEY-----)")]
    Unreadable,
    /// An Ed25519 key of small order: signatures that verify under it can be made without
    /// any private key.
    #[error(
        "an Ed25519 public key of small order, under which anyone can make a signature that verifies: generate a new key pair"
    )]
    SmallOrder,
}

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
            .ok_or(UnsupportedKey::Unreadable)?
            .split_whitespace()
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| UnsupportedKey::Unreadable)?;
        let has = |oid: &[u8]| der.windows(oid.len()).any(|w| w == oid);
        let alg = if has(ED25519_OID) && der.len() == 44 {
            let point = der.get(12..).and_then(|x| <[u8; 32]>::try_from(x).ok());
            let key = point.and_then(|x| ed25519_dalek::VerifyingKey::from_bytes(&x).ok());
            match key {
                None => return Err(UnsupportedKey::Unreadable),
                Some(key) if key.is_weak() => return Err(UnsupportedKey::SmallOrder),
                Some(_) => {}
            }
            "EdDSA"
        } else if has(EC_OID) && has(P256_OID) && der.len() == 91 {
            "ES256"
        } else {
            return Err(UnsupportedKey::Unreadable);
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
                .map_err(|_| UnsupportedKey::Unreadable)
        })?;
        // The key is the tail of the SubjectPublicKeyInfo: 32 bytes for Ed25519, an
        // uncompressed point (0x04 ‖ x ‖ y) for P-256; `from_pem` checked the lengths.
        let jwk = match self.alg.as_str() {
            "EdDSA" => {
                let x = der
                    .get(der.len() - 32..)
                    .ok_or(UnsupportedKey::Unreadable)?;
                format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, b64(x))
            }
            "ES256" => {
                let point = der
                    .get(der.len() - 65..)
                    .ok_or(UnsupportedKey::Unreadable)?;
                let (x, y) = point[1..].split_at(32);
                format!(
                    r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                    b64(x),
                    b64(y)
                )
            }
            _ => return Err(UnsupportedKey::Unreadable),
        };
        Ok(b64(&sha2::Sha256::digest(jwk.as_bytes())))
    }
}

/// A new random client secret (shown once) and its stored form, `$writ-hmac-sha256$`
/// followed by a random salt and HMAC-SHA-256 of the secret keyed with it (base64url).
///
/// The secret is 256 random bits, so a slow password hash would buy nothing against
/// guessing it (2^256 guesses whatever each costs), while Argon2id (19 MiB and tens of
/// milliseconds per check) made every client-secret authentication at the token endpoint,
/// right or wrong, cost more than the mint itself, and gave a caller presenting wrong
/// secrets a lever on the gateway's CPU and memory. Argon2id hashes stored by earlier
/// versions are still verified (`verify_secret`); rotating the secret stores the new form.
pub fn new_client_secret() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = format!(
        "wcs_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    (secret.clone(), hash_secret(&secret))
}

/// The prefix of a generated secret's stored form (see [`new_client_secret`]).
const SECRET_SCHEME: &str = "$writ-hmac-sha256$";

fn hash_secret(secret: &str) -> String {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &salt);
    let tag = ring::hmac::sign(&key, secret.as_bytes());
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{SECRET_SCHEME}{}${}",
        b64.encode(salt),
        b64.encode(tag.as_ref())
    )
}

/// Whether `secret` matches a stored form: the HMAC form, compared in constant time, or an
/// Argon2id PHC string stored by an earlier version. Anything else matches nothing.
fn secret_matches(secret: &str, stored: &str) -> bool {
    let Some(rest) = stored.strip_prefix(SECRET_SCHEME) else {
        return stored.starts_with("$argon2")
            && Argon2::default()
                .verify_password(secret.as_bytes(), stored)
                .is_ok();
    };
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let Some((salt, tag)) = rest.split_once('$') else {
        return false;
    };
    let (Ok(salt), Ok(tag)) = (b64.decode(salt), b64.decode(tag)) else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &salt);
    ring::hmac::verify(&key, secret.as_bytes(), &tag).is_ok()
}

/// A fixed stored form checked when no agent matches, so an unknown client takes as long
/// to refuse as a wrong secret (no timing oracle for agent names).
static DUMMY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

impl AgentCredentials {
    /// Whether `secret` is this agent's client secret.
    pub fn verify_secret(&self, secret: &str) -> bool {
        match &self.secret_hash {
            Some(hash) => secret_matches(secret, hash),
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
    let _ = secret_matches(secret, hash);
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
        assert_eq!(
            AgentKey::from_pem("garbage"),
            Err(UnsupportedKey::Unreadable)
        );
        let private = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----";
        assert_eq!(AgentKey::from_pem(private), Err(UnsupportedKey::Unreadable));
    }

    #[test]
    fn ed25519_keys_of_small_order_or_off_the_curve_are_refused() {
        use base64::Engine;
        let pem = |x: [u8; 32]| {
            let mut der = hex::decode("302a300506032b6570032100").unwrap();
            der.extend(x);
            format!(
                "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
                base64::engine::general_purpose::STANDARD.encode(der)
            )
        };
        // The identity point: order 1.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(
            AgentKey::from_pem(&pem(identity)),
            Err(UnsupportedKey::SmallOrder)
        );
        assert!(
            UnsupportedKey::SmallOrder
                .to_string()
                .contains("new key pair")
        );
        // y = 2 is on no point of the curve.
        let mut off_curve = [0u8; 32];
        off_curve[0] = 2;
        assert_eq!(
            AgentKey::from_pem(&pem(off_curve)),
            Err(UnsupportedKey::Unreadable)
        );
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
        assert!(hash.starts_with("$writ-hmac-sha256$"));
        let shown = format!("{creds:?}");
        assert!(!shown.contains(&hash) && !shown.contains(&secret));
        assert!(!AgentCredentials::default().verify_secret(&secret));
        // Salted: the same secret is stored differently each time.
        assert_ne!(hash_secret(&secret), hash_secret(&secret));
    }

    #[test]
    fn argon2id_hashes_of_earlier_versions_still_verify() {
        use argon2::PasswordHasher;
        let secret = "wcs_stored-by-an-earlier-version";
        let legacy = Argon2::default()
            .hash_password_with_salt(secret.as_bytes(), b"0123456789abcdef")
            .unwrap()
            .to_string();
        let creds = AgentCredentials {
            public_keys: vec![],
            secret_hash: Some(legacy),
        };
        assert!(creds.verify_secret(secret));
        assert!(!creds.verify_secret("wcs_wrong"));
    }

    #[test]
    fn a_stored_form_that_is_not_one_matches_nothing() {
        let (secret, hash) = new_client_secret();
        let (salt_and_tag, _) = hash.rsplit_once('$').unwrap();
        for stored in [
            String::new(),
            "$writ-hmac-sha256$".into(),
            "$writ-hmac-sha256$$".into(),
            format!("{salt_and_tag}$"),
            format!("{salt_and_tag}$!!!"),
            format!("{hash}A"),
            hash.replace("$writ-hmac-sha256$", "$writ-hmac-sha512$"),
            "$argon2id$garbage".into(),
            secret.clone(),
        ] {
            assert!(!secret_matches(&secret, &stored), "{stored}");
        }
        assert!(secret_matches(&secret, &hash));
    }
}
