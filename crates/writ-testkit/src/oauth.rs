//! OAuth test peers: agents with real key pairs that sign client assertions, and DPoP keys
//! that sign proofs, built by hand so tests can also build every malformed variant.

use std::time::{Duration, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use biscuit_auth::{Algorithm as KeyAlg, KeyPair};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use writ_store::{Agent, AgentCredentials, AgentKey, new_client_secret};

use crate::TestGateway;

/// An agent registered with the gateway, holding its private key.
pub struct OAuthClient {
    /// Client id (agent name).
    pub name: String,
    private_pem: String,
    alg: Algorithm,
}

impl OAuthClient {
    /// Registers agent `name` with `ceiling` (JSON), a fresh Ed25519 (or P-256 when `es256`)
    /// key and a client secret; returns the client and the secret.
    pub async fn register(
        gw: &TestGateway,
        name: &str,
        ceiling: &str,
        es256: bool,
    ) -> (Self, String) {
        let pair = KeyPair::new_with_algorithm(if es256 {
            KeyAlg::Secp256r1
        } else {
            KeyAlg::Ed25519
        });
        let public_pem = pair.public().to_pem().expect("public PEM");
        let (secret, hash) = new_client_secret();
        let agent = Agent {
            tenant: "default".into(),
            name: name.into(),
            ceiling: writ_token::parse_grants(ceiling).expect("ceiling"),
            max_ttl: Duration::from_secs(30),
            credentials: AgentCredentials {
                public_keys: vec![AgentKey::from_pem(&public_pem).expect("supported key")],
                secret_hash: Some(hash),
            },
        };
        gw.gateway()
            .store()
            .put_agent(&agent)
            .await
            .expect("register agent");
        // Applied now, as the admin API applies a change (else within a poll interval).
        gw.gateway().reload().await.expect("reload");
        let client = Self {
            name: name.into(),
            private_pem: pair.to_private_key_pem().expect("private PEM").to_string(),
            alg: if es256 {
                Algorithm::ES256
            } else {
                Algorithm::EdDSA
            },
        };
        (client, secret)
    }

    /// The private key (PKCS#8 PEM), for clients outside Rust (an SDK under test) that
    /// sign their own assertions.
    pub fn private_key_pem(&self) -> &str {
        &self.private_pem
    }

    /// The same key, claiming another client id: a forgery.
    pub fn impersonating(self, name: &str) -> Self {
        Self {
            name: name.into(),
            ..self
        }
    }

    /// The claims of a valid assertion for `gw` with this `jti`.
    pub fn claims(&self, gw: &TestGateway, jti: &str) -> Value {
        let now = unix_now(gw);
        json!({"iss": self.name, "sub": self.name, "aud": gw.url("/oauth2/token"), "exp": now + 60, "iat": now, "jti": jti})
    }

    /// A valid client assertion.
    pub fn assertion(&self, gw: &TestGateway, jti: &str) -> String {
        self.assertion_with(&jsonwebtoken::Header::new(self.alg), &self.claims(gw, jti))
    }

    /// An assertion with the given header and claims, signed by this client's key.
    pub fn assertion_with(&self, header: &jsonwebtoken::Header, claims: &Value) -> String {
        let key = match self.alg {
            Algorithm::EdDSA => EncodingKey::from_ed_pem(self.private_pem.as_bytes()),
            _ => EncodingKey::from_ec_pem(self.private_pem.as_bytes()),
        }
        .expect("encoding key");
        jsonwebtoken::encode(header, claims, &key).expect("sign assertion")
    }
}

/// The gateway clock in Unix seconds.
pub fn unix_now(gw: &TestGateway) -> u64 {
    writ_token::Clock::now(gw.clock())
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// An Ed25519 key a client proves possession of with DPoP proofs.
pub struct DpopKey {
    pair: KeyPair,
}

impl Default for DpopKey {
    fn default() -> Self {
        Self::new()
    }
}

impl DpopKey {
    /// A fresh key.
    pub fn new() -> Self {
        Self {
            pair: KeyPair::new_with_algorithm(KeyAlg::Ed25519),
        }
    }

    /// The public JWK.
    pub fn jwk(&self) -> Value {
        json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(self.pair.public().to_bytes())})
    }

    /// The RFC 7638 thumbprint of the public JWK.
    pub fn thumbprint(&self) -> String {
        let jwk = self.jwk();
        let canonical = format!(
            r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
            jwk["x"].as_str().unwrap_or_default()
        );
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }

    /// A valid proof for `method` and `url` at the gateway's current time; with `writ`, `ath`
    /// is its hash.
    pub fn proof(
        &self,
        gw: &TestGateway,
        method: &str,
        url: &str,
        writ: Option<&str>,
        jti: &str,
    ) -> String {
        let mut claims = json!({"htm": method, "htu": url, "iat": unix_now(gw), "jti": jti});
        if let Some(writ) = writ {
            claims["ath"] = json!(URL_SAFE_NO_PAD.encode(Sha256::digest(writ.as_bytes())));
        }
        self.sign(
            &json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": self.jwk()}),
            &claims,
        )
    }

    /// Any header and claims, signed by this key: for building malformed proofs.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let pem = self.pair.to_private_key_pem().expect("private PEM");
        let key = EncodingKey::from_ed_pem(pem.as_bytes()).expect("encoding key");
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::EdDSA).expect("sign");
        format!("{message}.{signature}")
    }

    /// The private scalar, as a hostile client would leak it in a `jwk`.
    pub fn private_d(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.pair.private().to_bytes().as_slice())
    }
}
