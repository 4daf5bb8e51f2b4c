//! Client authentication at the token endpoint: `private_key_jwt` (RFC 7523) or a client
//! secret (HTTP Basic or form), each checked against the registered agent.

use std::time::{Duration, UNIX_EPOCH};

use base64::Engine;
use http::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use writ_store::{Agent, burn_secret_check};

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, LazyLock, Mutex};

use writ_detect::jwt::{JwtCheck, KeySelector, LintPolicy};
use writ_token::{OneTimeId, ReplayGuard};

use super::oauth_error::OAuthError;
use crate::detect::detections::{Action, Detection, Detector, Mode};
use crate::gateway::Gateway;

/// The assertion type RFC 7523 defines for `client_assertion_type`.
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The client authentication methods accepted (RFC 8414 names), as metadata lists them.
pub(crate) const AUTH_METHODS: [&str; 3] = [
    "private_key_jwt",
    "client_secret_basic",
    "client_secret_post",
];
/// The algorithms a client assertion may be signed with: the key types agents register.
pub(crate) const ASSERTION_ALGS: [&str; 2] = ["EdDSA", "ES256"];
/// Leeway for clock skew on `exp`, `nbf` and `iat`.
const LEEWAY: Duration = Duration::from_secs(30);
/// An assertion may live at most this long: longer ones are replayable for too long.
const MAX_ASSERTION_LIFETIME: Duration = Duration::from_secs(3600);
/// Largest assertion accepted.
const MAX_ASSERTION_BYTES: usize = 8 * 1024;

#[derive(Debug, Deserialize)]
struct AssertionClaims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Audience>,
    exp: Option<u64>,
    nbf: Option<u64>,
    iat: Option<u64>,
    jti: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// Looks up an agent by client id: `agent` in the default tenant, or `tenant/agent`; held
/// in memory until the store changes (see `Tenancy::agent`).
pub(crate) async fn find_agent(
    gw: &Gateway,
    client_id: &str,
) -> Result<Option<Arc<Agent>>, OAuthError> {
    let (tenant, name) = match client_id.split_once('/') {
        Some((t, n)) => (t, n),
        None => (gw.tenant.as_str(), client_id),
    };
    if name.is_empty() || name.len() > 128 || tenant.len() > 128 {
        return Ok(None);
    }
    gw.tenancy.agent(tenant, name).await.map_err(|e| {
        tracing::error!(error = %e, "agent registry unavailable");
        OAuthError::server("agent registry unavailable")
    })
}

/// The client id and secret of an HTTP Basic `Authorization` header (RFC 6749 §2.3.1:
/// both form-url-encoded before base64).
pub(crate) fn basic_credentials(
    headers: &HeaderMap,
) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = || OAuthError::invalid_client("malformed Basic credentials", true);
    let text = value.to_str().map_err(|_| bad())?;
    let Some((scheme, b64)) = text.split_once(' ') else {
        return Err(bad());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_client(
            "only Basic client authentication is accepted in the Authorization header",
            true,
        ));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    let unescape = |s: &str| -> Result<String, OAuthError> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(&format!("v={s}")).map_err(|_| bad())?;
        Ok(pairs.into_iter().next().map(|(_, v)| v).unwrap_or_default())
    };
    Ok(Some((unescape(id)?, unescape(secret)?)))
}

/// Checks a client secret; unknown clients cost the same time as a wrong secret.
pub(crate) async fn by_secret(
    gw: &Gateway,
    client_id: &str,
    secret: &str,
    basic: bool,
) -> Result<Arc<Agent>, OAuthError> {
    let agent = find_agent(gw, client_id).await?;
    let ok = match &agent {
        Some(a) => a.credentials.verify_secret(secret),
        None => {
            burn_secret_check(secret);
            false
        }
    };
    match agent {
        Some(a) if ok => Ok(a),
        _ => Err(OAuthError::invalid_client(
            "client authentication failed",
            basic,
        )),
    }
}

/// A client assertion as sent, read once: its header and claims as they claim to be,
/// before any signature is checked. The brute-force guard, the `weak_jwt` detector and
/// verification all work from this one reading.
pub(crate) struct Assertion<'a> {
    text: &'a str,
    header: Option<jsonwebtoken::Header>,
    claims: Option<AssertionClaims>,
    /// The `sub` alone, when the claims as a whole do not parse.
    bare_subject: Option<String>,
}

impl<'a> Assertion<'a> {
    /// Reads `text`'s header and claims; either is `None` if it does not parse.
    pub(crate) fn read(text: &'a str) -> Self {
        #[derive(Deserialize)]
        struct Sub {
            sub: Option<String>,
        }
        let claims: Option<AssertionClaims> =
            jsonwebtoken::dangerous::insecure_decode_claims(text).ok();
        let bare_subject = match claims {
            Some(_) => None,
            None => jsonwebtoken::dangerous::insecure_decode_claims::<Sub>(text)
                .ok()
                .and_then(|s| s.sub),
        };
        Self {
            text,
            header: jsonwebtoken::decode_header(text).ok(),
            claims,
            bare_subject,
        }
    }

    /// The client id the assertion's claims name (their `sub`), unverified; `None` if
    /// the claims do not parse.
    pub(crate) fn subject(&self) -> Option<&str> {
        self.claims.as_ref()?.sub.as_deref()
    }

    /// The client id the assertion claims to be from, for the brute-force guard: its
    /// `sub`, read alone if the claims as a whole do not parse.
    pub(crate) fn claimed(&self) -> Option<&str> {
        self.subject().or(self.bare_subject.as_deref())
    }
}

/// Verifies a client assertion (RFC 7523 §3): signed by a key registered for the agent it
/// names, `iss` = `sub` = client id, `aud` this server (its issuer, or `token_url`, the
/// token endpoint's URL), unexpired, and its `jti` unused.
pub(crate) async fn by_assertion(
    gw: &Gateway,
    assertion: &Assertion<'_>,
    client_id: Option<&str>,
    client: Option<IpAddr>,
    token_url: &str,
) -> Result<Arc<Agent>, OAuthError> {
    let invalid = |why: &str| OAuthError::invalid_client(why, false);
    // The agent it names, looked up once: its keys serve the detector and verification.
    let named = match assertion.subject() {
        Some(sub) => find_agent(gw, sub).await,
        None => Ok(None),
    };
    let named_keys = named.as_ref().ok().and_then(Option::as_deref);
    lint_assertion(gw, assertion.text, named_keys, client).await?;
    if assertion.text.len() > MAX_ASSERTION_BYTES {
        return Err(invalid("assertion too large"));
    }
    let header = assertion
        .header
        .as_ref()
        .ok_or_else(|| invalid("assertion is not a JWT"))?;
    let alg = match header.alg {
        Algorithm::EdDSA => "EdDSA",
        Algorithm::ES256 => "ES256",
        // `none` never parses as an Algorithm; HMAC and RSA are not registered key types.
        _ => return Err(invalid("assertion algorithm must be EdDSA or ES256")),
    };
    if header.jwk.is_some() || header.jku.is_some() || header.x5u.is_some() {
        return Err(invalid("assertion must not carry or point to its own key"));
    }
    // Read who it claims to be, then verify the signature with that agent's keys.
    let claims = assertion
        .claims
        .as_ref()
        .ok_or_else(|| invalid("assertion claims are malformed"))?;
    let subject = claims
        .sub
        .as_deref()
        .ok_or_else(|| invalid("assertion has no sub"))?;
    if client_id.is_some_and(|c| c != subject) {
        return Err(invalid("client_id does not match the assertion's sub"));
    }
    let agent = named?.ok_or_else(|| invalid("client authentication failed"))?;
    let verified = agent
        .credentials
        .public_keys
        .iter()
        .filter(|k| k.alg == alg)
        .any(|k| signed_by(assertion.text, header.alg, &k.pem));
    if !verified {
        return Err(invalid("client authentication failed"));
    }
    // The claims read above are the ones signed: the signature covers the header and
    // claims exactly as they were read.
    check_claims(gw, claims, subject, token_url).await?;
    Ok(agent)
}

/// Whether the compact JWS `text` is signed with `alg` by the public key `pem`. EdDSA
/// assertions (RFC 8037) are verified with the key read once per key: the signature over
/// the header and claims as sent, `S` canonical, and a small-order key verifying nothing
/// (with one, anyone can make a signature that verifies); ES256 ones by `jsonwebtoken`.
fn signed_by(text: &str, alg: Algorithm, pem: &str) -> bool {
    use ed25519_dalek::Verifier;
    if alg == Algorithm::EdDSA {
        let Some(key) = ed25519_key(pem) else {
            return false;
        };
        let Some((message, signature)) = text.rsplit_once('.') else {
            return false;
        };
        let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(signature)
            .ok()
            .and_then(|s| ed25519_dalek::Signature::from_slice(&s).ok());
        return signature.is_some_and(|s| key.verify(message.as_bytes(), &s).is_ok());
    }
    let Ok(key) = DecodingKey::from_ec_pem(pem.as_bytes()) else {
        return false;
    };
    let mut validation = Validation::new(alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    jsonwebtoken::decode::<serde::de::IgnoredAny>(text, &key, &validation).is_ok()
}

/// Ed25519 keys read from agents' PEMs, by PEM. Reading one (the PEM, the DER, and the
/// point's decompression, about 8 µs) costs about a quarter of the verification it serves.
static ED25519_KEYS: LazyLock<Mutex<HashMap<String, ed25519_dalek::VerifyingKey>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Most keys held; past this, all are let go (a memo of a pure function, never a source of
/// truth: losing it costs a reading).
const ED25519_KEYS_HELD: usize = 4096;

/// The Ed25519 key of a SubjectPublicKeyInfo PEM, `None` if it is not one or is of small
/// order (weak: signatures that verify under it can be made without its private key).
fn ed25519_key(pem: &str) -> Option<ed25519_dalek::VerifyingKey> {
    use ed25519_dalek::pkcs8::DecodePublicKey;
    if let Some(key) = ED25519_KEYS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(pem)
    {
        return Some(*key);
    }
    let key = ed25519_dalek::VerifyingKey::from_public_key_pem(pem)
        .ok()
        .filter(|k| !k.is_weak())?;
    let mut held = ED25519_KEYS.lock().unwrap_or_else(|p| p.into_inner());
    if held.len() >= ED25519_KEYS_HELD {
        held.clear();
    }
    held.insert(pem.to_string(), key);
    Some(key)
}

/// The `weak_jwt` detector on a client assertion, before anything else is done with it:
/// in `block` mode any weakness the linter finds refuses the assertion, naming the
/// checks; in `monitor` mode it is recorded and verification goes on.
async fn lint_assertion(
    gw: &Gateway,
    assertion: &str,
    named: Option<&Agent>,
    client: Option<IpAddr>,
) -> Result<(), OAuthError> {
    let mode = gw.detections.mode(Detector::WeakJwt, None);
    if mode == Mode::Off {
        return Ok(());
    }
    // The keys registered for the agent it names: an HMAC made with one of them as the
    // secret is the RS/HS confusion forgery.
    let public_keys_pem = named
        .map(|a| {
            a.credentials
                .public_keys
                .iter()
                .map(|k| k.pem.clone())
                .collect()
        })
        .unwrap_or_default();
    let policy = LintPolicy {
        max_token_bytes: MAX_ASSERTION_BYTES,
        max_lifetime: MAX_ASSERTION_LIFETIME,
        clock_skew: LEEWAY,
        // Agents sign with EdDSA or ES256 only: any HMAC assertion is confusion.
        asymmetric_keys: vec![KeySelector::default()],
        public_keys_pem,
        ..LintPolicy::default()
    };
    let findings = writ_detect::jwt::lint(assertion, &policy, gw.clock.now());
    // Not a JWT at all is an ordinary malformed request, answered below.
    if findings.is_empty() || findings.iter().all(|f| f.id == JwtCheck::Malformed) {
        return Ok(());
    }
    let mut checks: Vec<&str> = findings.iter().map(|f| f.id.as_str()).collect();
    checks.dedup();
    let action = if mode == Mode::Block {
        Action::Blocked
    } else {
        Action::Monitored
    };
    let mut detection = Detection::new(Detector::WeakJwt, action, "token_endpoint");
    detection.rules = checks.iter().map(|c| (*c).to_string()).collect();
    detection.count = findings.len();
    detection.client = client;
    detection.operation = Some("mint".to_string());
    gw.detected(detection, true).await;
    if mode == Mode::Block {
        return Err(OAuthError::invalid_client(
            &format!(
                "client assertion rejected as a weak JWT: {}",
                checks.join(", ")
            ),
            false,
        ));
    }
    Ok(())
}

async fn check_claims(
    gw: &Gateway,
    c: &AssertionClaims,
    subject: &str,
    token_url: &str,
) -> Result<(), OAuthError> {
    let invalid = |why: &str| OAuthError::invalid_client(why, false);
    let now = gw.clock.now();
    // A time no clock can reach (u64::MAX seconds) is refused as "too far in the future",
    // never added into an overflow.
    let far = now + MAX_ASSERTION_LIFETIME + LEEWAY + LEEWAY;
    let secs = |t: u64| {
        UNIX_EPOCH
            .checked_add(Duration::from_secs(t))
            .unwrap_or(far)
    };
    if c.iss.as_deref() != Some(subject) || c.sub.as_deref() != Some(subject) {
        return Err(invalid("assertion iss and sub must both be the client id"));
    }
    let issuer = gw.issuer();
    let aud_ok = match &c.aud {
        Some(Audience::One(a)) => *a == issuer || *a == token_url,
        Some(Audience::Many(list)) => list.iter().any(|a| *a == issuer || *a == token_url),
        None => false,
    };
    if !aud_ok {
        return Err(invalid("assertion aud is not this server"));
    }
    let exp = c
        .exp
        .map(secs)
        .ok_or_else(|| invalid("assertion has no exp"))?;
    if exp + LEEWAY < now {
        return Err(invalid("assertion expired"));
    }
    if exp > now + MAX_ASSERTION_LIFETIME + LEEWAY {
        return Err(invalid(
            "assertion exp is too far in the future (at most one hour)",
        ));
    }
    if c.nbf.map(secs).is_some_and(|nbf| nbf > now + LEEWAY)
        || c.iat.map(secs).is_some_and(|iat| iat > now + LEEWAY)
    {
        return Err(invalid("assertion is not valid yet"));
    }
    let jti = c
        .jti
        .as_deref()
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or_else(|| invalid("assertion needs a jti"))?;
    // Recorded in the limiter backend: with Redis, an assertion used on one instance is
    // refused on every other.
    let id = OneTimeId::Assertion {
        client: subject,
        jti,
    };
    match gw.replay.first_use(id, exp + LEEWAY, now).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(invalid("assertion jti was already used")),
        Err(_) => Err(OAuthError::server(
            "the client assertion cannot be checked for replay now (limit backend unavailable); retry shortly with a new assertion",
        )),
    }
}
