//! A tenant's credential applied to an upstream's settings: which fields a credential
//! supplies for each kind, the settings with those fields replaced by the credential
//! (held literally, never `${env:…}`-expanded), and the check of settings that carry no
//! credential yet (an upstream created through the admin API).

use std::convert::Infallible;
use std::path::Path;

use super::config::{BuildError, ConfigSource, ProviderConfig, RawSecret};
use crate::route::ProviderKind;

/// Why a credential cannot be applied to an upstream. Messages say what shape is
/// expected and never quote the credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// The upstream is an MCP server the gateway starts (`command`): its credentials are
    /// its environment, written in `writ.toml`.
    #[error(
        "an MCP server the gateway starts (`command`) takes no stored credential: its credentials are in its env in writ.toml"
    )]
    Launched,
    /// The upstream's kind is not one this build knows.
    #[error("unknown kind (expected {})", ProviderKind::NAMES)]
    UnknownKind,
    /// A Bedrock credential is not the JSON object it must be.
    #[error(
        "a bedrock credential is a JSON object {{\"aws_access_key_id\": \"…\", \"aws_secret_access_key\": \"…\", \"aws_session_token\": \"…\" (optional)}}: {0}"
    )]
    AwsShape(AwsShapeProblem),
    /// The credential was applied but its value is refused as the field it fills.
    #[error("refused as `{field}`: {problem}")]
    Refused {
        /// The field the credential fills (`api_key`, `aws_secret_access_key`,
        /// `service_account_json`).
        field: &'static str,
        /// What is wrong with the value.
        problem: super::config::FieldProblem,
    },
}

/// What is wrong with a Bedrock credential's JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AwsShapeProblem {
    /// Not JSON, not an object, a key repeated, or a value that is not a string.
    #[error("it is not such an object of strings (each key once)")]
    NotObject,
    /// A key other than the three.
    #[error("it has a key other than these three")]
    UnknownKey,
    /// `aws_access_key_id` or `aws_secret_access_key` is absent.
    #[error("aws_access_key_id and aws_secret_access_key are required")]
    Missing,
}

/// A Bedrock credential as stored: strict, every key known, each value a string.
struct AwsCredentialJson {
    access_key_id: RawSecret,
    secret_access_key: RawSecret,
    session_token: Option<RawSecret>,
}

impl AwsCredentialJson {
    fn parse(secret: &str) -> Result<Self, AwsShapeProblem> {
        const KEYS: [&str; 3] = [
            "aws_access_key_id",
            "aws_secret_access_key",
            "aws_session_token",
        ];
        // Read as a map of values: serde's own messages would quote a key or a value.
        // Strings are moved, not copied, into the literals that zeroize them.
        let mut map: std::collections::BTreeMap<String, serde_json::Value> =
            writ_json::from_str(secret).map_err(|_| AwsShapeProblem::NotObject)?;
        if map.keys().any(|k| !KEYS.contains(&k.as_str())) {
            return Err(AwsShapeProblem::UnknownKey);
        }
        let mut take = |key: &str| match map.remove(key) {
            None => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(RawSecret::literal(s))),
            Some(_) => Err(AwsShapeProblem::NotObject),
        };
        let access_key_id = take("aws_access_key_id")?;
        let secret_access_key = take("aws_secret_access_key")?;
        let session_token = take("aws_session_token")?;
        match (access_key_id, secret_access_key) {
            (Some(access_key_id), Some(secret_access_key)) => Ok(Self {
                access_key_id,
                secret_access_key,
                session_token,
            }),
            _ => Err(AwsShapeProblem::Missing),
        }
    }
}

/// The credential a settings check stands in: well formed for its field, never sent.
const PLACEHOLDER_KEY: &str = "writ-placeholder-credential";
const PLACEHOLDER_AWS: &str = r#"{"aws_access_key_id":"AKIDPLACEHOLDER","aws_secret_access_key":"writ-placeholder-credential"}"#;

impl ProviderConfig {
    /// The kind these settings are for; `None` for a kind this build does not know.
    pub fn kind(&self) -> Option<ProviderKind> {
        Some(match self {
            ProviderConfig::OpenAi(_) => ProviderKind::OpenAi,
            ProviderConfig::Anthropic(_) => ProviderKind::Anthropic,
            ProviderConfig::Gemini(_) => ProviderKind::Gemini,
            ProviderConfig::Azure(_) => ProviderKind::Azure,
            ProviderConfig::Bedrock(_) => ProviderKind::Bedrock,
            ProviderConfig::Vertex(_) => ProviderKind::Vertex,
            ProviderConfig::Mcp(_) => ProviderKind::Mcp,
            ProviderConfig::Http(_) => ProviderKind::Http,
            ProviderConfig::Unknown => return None,
        })
    }

    /// Whether these settings describe an MCP server the gateway starts (`command`).
    pub fn is_launched(&self) -> bool {
        matches!(self, ProviderConfig::Mcp(c) if c.command.is_some())
    }

    /// The fields a credential supplies for this kind, which [`Self::with_credential`]
    /// replaces: each holds a secret or names one (`aws_access_key_id` travels with its
    /// secret key; `service_account_file` points at a key). Empty for a server the
    /// gateway starts and for an unknown kind, which take no credential.
    pub fn credential_fields(&self) -> &'static [&'static str] {
        match self {
            ProviderConfig::OpenAi(_)
            | ProviderConfig::Anthropic(_)
            | ProviderConfig::Gemini(_)
            | ProviderConfig::Azure(_)
            | ProviderConfig::Http(_) => &["api_key"],
            ProviderConfig::Mcp(c) if c.command.is_none() => &["api_key"],
            ProviderConfig::Mcp(_) | ProviderConfig::Unknown => &[],
            ProviderConfig::Bedrock(_) => &[
                "aws_access_key_id",
                "aws_secret_access_key",
                "aws_session_token",
            ],
            ProviderConfig::Vertex(_) => &["service_account_json", "service_account_file"],
        }
    }

    /// A copy whose credential fields hold `secret` literally: never `${env:…}`-expanded,
    /// so a secret holding `${env:HOME}` reaches the upstream byte for byte. Per kind:
    /// `api_key` (openai, anthropic, gemini, azure, http, an MCP server reached over the
    /// network); for bedrock `secret` is the JSON object
    /// `{"aws_access_key_id", "aws_secret_access_key", "aws_session_token"?}` (no other
    /// key), replacing all three fields; for vertex the service-account key's JSON,
    /// replacing `service_account_file` and `service_account_json`. Refused for a server
    /// the gateway starts and for an unknown kind. The value itself is checked when the
    /// copy is built ([`ProviderConfig::build`]); see [`CredentialError::Refused`].
    pub fn with_credential(&self, secret: &str) -> Result<ProviderConfig, CredentialError> {
        let key = || Some(RawSecret::literal(secret));
        let mut out = self.clone();
        match &mut out {
            ProviderConfig::Unknown => return Err(CredentialError::UnknownKind),
            ProviderConfig::Mcp(c) if c.command.is_some() => {
                return Err(CredentialError::Launched);
            }
            ProviderConfig::OpenAi(c) => c.api_key = key(),
            ProviderConfig::Anthropic(c) | ProviderConfig::Gemini(c) => c.api_key = key(),
            ProviderConfig::Azure(c) => c.api_key = key(),
            ProviderConfig::Http(c) => c.api_key = key(),
            ProviderConfig::Mcp(c) => c.api_key = key(),
            ProviderConfig::Bedrock(c) => {
                let aws = AwsCredentialJson::parse(secret).map_err(CredentialError::AwsShape)?;
                c.aws_access_key_id = Some(aws.access_key_id);
                c.aws_secret_access_key = Some(aws.secret_access_key);
                c.aws_session_token = aws.session_token;
            }
            ProviderConfig::Vertex(c) => {
                c.service_account_file = None;
                c.service_account_json = key();
            }
        }
        Ok(out)
    }

    /// A copy with every `${env:…}` reference [`Self::build`] would resolve resolved through
    /// `source` and a key file read (into `service_account_json`): secrets become literals
    /// and other fields plain text, so the copy builds alike with a source that expands
    /// nothing, again and again, with or without [`Self::with_credential`], and never
    /// reads the environment or a file after load. A server the gateway starts is copied
    /// as written (its environment's references mark the secrets it scrubs; it takes no
    /// credential). Fails with the source's error (an unset variable, an unreadable file).
    pub fn resolved<S: ConfigSource>(&self, source: &S) -> Result<ProviderConfig, S::Error> {
        let secret = |field: &'static str, v: &Option<RawSecret>| match v {
            Some(raw) if !raw.is_literal() => source
                .expand(field, raw.expose())
                .map(|text| Some(RawSecret::literal(text))),
            v => Ok(v.clone()),
        };
        let plain = |field: &'static str, v: &Option<String>| {
            v.as_deref().map(|t| source.expand(field, t)).transpose()
        };
        let mut out = self.clone();
        match &mut out {
            ProviderConfig::Unknown => {}
            ProviderConfig::Mcp(c) if c.command.is_some() => {}
            ProviderConfig::OpenAi(c) => c.api_key = secret("api_key", &c.api_key)?,
            ProviderConfig::Anthropic(c) | ProviderConfig::Gemini(c) => {
                c.api_key = secret("api_key", &c.api_key)?;
            }
            ProviderConfig::Azure(c) => c.api_key = secret("api_key", &c.api_key)?,
            ProviderConfig::Http(c) => c.api_key = secret("api_key", &c.api_key)?,
            ProviderConfig::Mcp(c) => c.api_key = secret("api_key", &c.api_key)?,
            ProviderConfig::Bedrock(c) => {
                c.region = plain("region", &c.region)?;
                c.aws_access_key_id = secret("aws_access_key_id", &c.aws_access_key_id)?;
                c.aws_secret_access_key =
                    secret("aws_secret_access_key", &c.aws_secret_access_key)?;
                c.aws_session_token = secret("aws_session_token", &c.aws_session_token)?;
            }
            ProviderConfig::Vertex(c) => {
                c.token_uri = plain("token_uri", &c.token_uri)?;
                c.service_account_json = secret("service_account_json", &c.service_account_json)?;
                // Both set is refused by the build, which must still see both.
                if c.service_account_json.is_none()
                    && let Some(path) = c.service_account_file.take()
                {
                    let text = source.read_file("service_account_file", &path)?;
                    c.service_account_json = Some(RawSecret::literal(text));
                }
            }
        }
        Ok(out)
    }

    /// Checks settings that carry no credential (an upstream created through the admin
    /// API): builds them with a placeholder credential of the kind's shape, expanding
    /// nothing and reading no file, and reports the first problem that is the settings'
    /// own. Problems of the credential's fields are left to the build with the real one
    /// (for vertex, the project may come from the key, so it is checked only if given).
    pub fn check_settings(&self) -> Result<(), BuildError<Infallible>> {
        let placeholder = match self {
            ProviderConfig::Bedrock(_) => PLACEHOLDER_AWS,
            _ => PLACEHOLDER_KEY,
        };
        let with = match self.with_credential(placeholder) {
            Ok(with) => with,
            // Started servers are refused by the caller; build says what else is wrong.
            Err(_) => self.clone(),
        };
        match with.build(&Verbatim) {
            Ok(_) => Ok(()),
            Err(BuildError::Invalid { field, .. }) if self.credential_fields().contains(&field) => {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// A source that expands nothing and reads no file: values are used as written.
struct Verbatim;

impl ConfigSource for Verbatim {
    type Error = Infallible;

    fn expand(&self, _: &'static str, value: &str) -> Result<String, Infallible> {
        Ok(value.to_string())
    }

    /// Never reached: the placeholder replaces every file field. An empty text would be
    /// refused as a key file, which is a credential field's problem.
    fn read_file(&self, _: &'static str, _: &Path) -> Result<String, Infallible> {
        Ok(String::new())
    }
}

#[cfg(test)]
mod tests;
