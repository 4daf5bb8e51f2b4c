//! Vertex AI: Gemini's wire format under `/{version}/projects/{project}/locations/{location}/
//! publishers/google/models/{model}:{action}`, authenticated with a short-lived OAuth access
//! token that the gateway obtains from a service-account key: it signs an RS256 JWT
//! assertion (RFC 7523) and exchanges it at the account's token URI.
//!
//! This module is the pure part: paths, the service-account file, the assertion, and the
//! token response. Fetching and caching the token is the gateway's.

use std::time::{Duration, SystemTime};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Deserialize;
use serde_json::Value;

use crate::secret::UpstreamSecret;

/// The OAuth scope Vertex AI needs.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Google's token URI, used when the key file names none.
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// `grant_type` of a JWT-bearer exchange.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Lifetime asked for in the assertion (Google's maximum).
const ASSERTION_TTL: Duration = Duration::from_secs(3600);

/// What a Vertex path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VertexPath {
    /// GCP project id or number.
    pub project: String,
    /// Region, such as `us-central1`, or `global`.
    pub location: String,
    /// Model id, such as `gemini-2.0-flash`.
    pub model: String,
    /// `streamGenerateContent` rather than `generateContent`.
    pub stream: bool,
}

/// Parses `/v1/projects/p/locations/l/publishers/google/models/m:generateContent` (also
/// `v1beta1`). Only Google's own models: other publishers use other wire formats.
pub fn parse_path(path: &str) -> Option<VertexPath> {
    let rest = path
        .strip_prefix("/v1/")
        .or_else(|| path.strip_prefix("/v1beta1/"))?;
    let parts: Vec<&str> = rest.split('/').collect();
    let [
        "projects",
        project,
        "locations",
        location,
        "publishers",
        "google",
        "models",
        model_action,
    ] = parts.as_slice()
    else {
        return None;
    };
    let (model, action) = model_action.rsplit_once(':')?;
    let stream = match action {
        "generateContent" => false,
        "streamGenerateContent" => true,
        _ => return None,
    };
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
    };
    (name_ok(project) && name_ok(location) && name_ok(model)).then(|| VertexPath {
        project: project.to_string(),
        location: location.to_string(),
        model: model.to_string(),
        stream,
    })
}

/// The service endpoint of a location.
pub fn default_base_url(location: &str) -> String {
    if location == "global" {
        "https://aiplatform.googleapis.com".to_string()
    } else {
        format!("https://{location}-aiplatform.googleapis.com")
    }
}

/// A service-account key, as downloaded from Google Cloud. The private key is never printed.
#[derive(Clone)]
pub struct ServiceAccount {
    /// The account's e-mail: the assertion's issuer.
    pub client_email: String,
    /// The key's id, sent as the JWT `kid`.
    pub private_key_id: Option<String>,
    /// Where the assertion is exchanged.
    pub token_uri: String,
    /// The project the account belongs to.
    pub project_id: Option<String>,
    key: EncodingKey,
    pem: UpstreamSecret,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("private_key_id", &self.private_key_id)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

/// Why a service-account key was refused. Never quotes the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceAccountError {
    /// Not JSON, or a field is missing or mistyped.
    #[error("not a service-account key file: {0}")]
    Malformed(String),
    /// `type` is not `service_account`.
    #[error("the key file's type is `{0}`, expected `service_account`")]
    WrongType(String),
    /// `private_key` is not an RSA private key in PEM.
    #[error("private_key is not an RSA private key in PEM")]
    BadKey,
    /// A key appears twice in one object: which copy counts would depend on the parser.
    #[error("the key file has the key `{0}` more than once; keep one")]
    DuplicateKey(writ_json::KeyPath),
}

#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: String,
    client_email: String,
    private_key: String,
    private_key_id: Option<String>,
    token_uri: Option<String>,
    project_id: Option<String>,
}

impl ServiceAccount {
    /// Reads a service-account key file's JSON.
    /// Strict: a key repeated in any object is refused.
    pub fn from_json(text: &str) -> Result<Self, ServiceAccountError> {
        let file: KeyFile = writ_json::from_str(text).map_err(|e| match e {
            writ_json::JsonError::DuplicateKey { path } => ServiceAccountError::DuplicateKey(path),
            writ_json::JsonError::TooDeep => {
                ServiceAccountError::Malformed("nested too deep".to_string())
            }
            // serde's message can quote a value; keep only where and what kind of error.
            writ_json::JsonError::Syntax(e) | writ_json::JsonError::Shape(e) => {
                ServiceAccountError::Malformed(format!(
                    "{:?} at line {} column {}",
                    e.classify(),
                    e.line(),
                    e.column()
                ))
            }
        })?;
        if file.kind != "service_account" {
            return Err(ServiceAccountError::WrongType(file.kind));
        }
        let key = EncodingKey::from_rsa_pem(file.private_key.as_bytes())
            .map_err(|_| ServiceAccountError::BadKey)?;
        Ok(Self {
            client_email: file.client_email,
            private_key_id: file.private_key_id,
            token_uri: file
                .token_uri
                .unwrap_or_else(|| DEFAULT_TOKEN_URI.to_string()),
            project_id: file.project_id,
            key,
            pem: UpstreamSecret::new(file.private_key),
        })
    }

    /// The private key's PEM, to scrub it from anything an upstream echoes.
    pub fn private_key_pem(&self) -> &UpstreamSecret {
        &self.pem
    }

    /// The signed assertion for `token_uri` at `now` (RFC 7523 §3).
    pub fn assertion(&self, token_uri: &str, now: SystemTime) -> Result<String, AssertionError> {
        let iat = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_err(|_| AssertionError)?
            .as_secs();
        let claims = serde_json::json!({
            "iss": self.client_email,
            "scope": SCOPE,
            "aud": token_uri,
            "iat": iat,
            "exp": iat + ASSERTION_TTL.as_secs(),
        });
        let mut header = Header::new(Algorithm::RS256);
        header.kid = self.private_key_id.clone();
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|_| AssertionError)
    }
}

/// The assertion could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("could not sign the service-account assertion")]
pub struct AssertionError;

/// An access token and how long it lives.
#[derive(Debug, Clone)]
pub struct AccessToken {
    /// The bearer token.
    pub token: UpstreamSecret,
    /// Its lifetime from when it was issued.
    pub expires_in: Duration,
}

/// Why a token response was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("token endpoint response is not a usable bearer token: {0}")]
pub struct TokenResponseError(&'static str);

/// Reads a successful token response: `access_token`, `expires_in`, `token_type: Bearer`.
pub fn parse_token_response(body: &[u8]) -> Result<AccessToken, TokenResponseError> {
    let v: Value = serde_json::from_slice(body).map_err(|_| TokenResponseError("not JSON"))?;
    let token = v
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty() && t.len() <= 4096 && t.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or(TokenResponseError("no printable access_token"))?;
    let kind = v
        .get("token_type")
        .and_then(Value::as_str)
        .unwrap_or("Bearer");
    if !kind.eq_ignore_ascii_case("bearer") {
        return Err(TokenResponseError("token_type is not Bearer"));
    }
    let expires_in = v
        .get("expires_in")
        .and_then(Value::as_u64)
        .filter(|s| (1..=86_400).contains(s))
        .ok_or(TokenResponseError("expires_in missing or out of range"))?;
    Ok(AccessToken {
        token: UpstreamSecret::new(token.to_string()),
        expires_in: Duration::from_secs(expires_in),
    })
}

/// When to fetch a new token: five minutes before expiry, or halfway for short lives.
pub fn refresh_after(expires_in: Duration) -> Duration {
    let margin = Duration::from_secs(300).min(expires_in / 2);
    expires_in - margin
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths() {
        assert_eq!(
            parse_path(
                "/v1/projects/my-proj/locations/us-central1/publishers/google/models/gemini-2.0-flash:streamGenerateContent"
            ),
            Some(VertexPath {
                project: "my-proj".into(),
                location: "us-central1".into(),
                model: "gemini-2.0-flash".into(),
                stream: true,
            })
        );
        for bad in [
            "/v1/projects/p/locations/l/publishers/anthropic/models/claude:rawPredict",
            "/v1/projects/p/locations/l/publishers/google/models/m:predict",
            "/v1/projects/p/locations/l/publishers/google/models/m",
            "/v1/projects/p/locations/l/publishers/google/models/a/b:generateContent",
            "/v1/projects//locations/l/publishers/google/models/m:generateContent",
            "/v1/projects/p%2F/locations/l/publishers/google/models/m:generateContent",
            "/v2/projects/p/locations/l/publishers/google/models/m:generateContent",
        ] {
            assert_eq!(parse_path(bad), None, "{bad}");
        }
        assert_eq!(
            default_base_url("europe-west4"),
            "https://europe-west4-aiplatform.googleapis.com"
        );
    }

    #[test]
    fn refuses_bad_key_files_without_quoting_them() {
        for (text, want) in [
            ("not json", "Malformed"),
            (
                r#"{"type":"authorized_user","client_email":"a","private_key":"k"}"#,
                "WrongType",
            ),
            (
                r#"{"type":"service_account","client_email":"a","private_key":"-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n"}"#,
                "BadKey",
            ),
            (
                r#"{"type":"service_account","private_key":"zzz-secret"}"#,
                "Malformed",
            ),
            (
                r#"{"type":"service_account","client_email":"a","private_key":"zzz-secret","universe_domain":"a","universe_domain":"b"}"#,
                "DuplicateKey",
            ),
        ] {
            let err = ServiceAccount::from_json(text).unwrap_err();
            assert!(format!("{err:?}").starts_with(want), "{text}: {err:?}");
            assert!(!err.to_string().contains("c2VjcmV0") && !err.to_string().contains("zzz"));
        }
    }

    #[test]
    fn reads_token_responses() {
        let t = parse_token_response(
            br#"{"access_token":"ya29.abc","expires_in":3599,"token_type":"Bearer"}"#,
        )
        .unwrap();
        assert_eq!(
            (t.token.expose(), t.expires_in.as_secs()),
            ("ya29.abc", 3599)
        );
        for bad in [
            &b"<html>"[..],
            br#"{"expires_in":3599}"#,
            br#"{"access_token":"a b","expires_in":3599}"#,
            br#"{"access_token":"a","expires_in":0}"#,
            br#"{"access_token":"a","expires_in":3599,"token_type":"mac"}"#,
        ] {
            assert!(parse_token_response(bad).is_err());
        }
        assert_eq!(refresh_after(Duration::from_secs(3600)).as_secs(), 3300);
        assert_eq!(refresh_after(Duration::from_secs(60)).as_secs(), 30);
    }
}
