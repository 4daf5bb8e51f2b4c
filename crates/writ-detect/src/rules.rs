//! The built-in secret rules: what each credential looks like, and the checks a regex
//! match must pass before it counts.
//!
//! Every pattern is an ASCII byte regex (`(?-u)`) whose longest match is bounded: the
//! stream redactor holds back as many bytes as the longest possible match, so an unbounded
//! `+` or `*` would make its memory unbounded (the [`Scanner`](crate::scanner::Scanner)
//! refuses such a rule). Where a credential can be longer than its rule's bound, the rule
//! matches, and redaction removes, its first bytes; the visible tail is useless without
//! them.
//!
//! Rules are listed in priority order: when two matches start at the same byte, the
//! earlier rule names the finding, so specific shapes (`sk-ant-…`) come before general
//! ones (`sk-…`) and the generic `password=` rule comes last.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::entropy;

/// The stable identifier of a built-in rule, as written in audit records, webhook events
/// and redaction markers (`[REDACTED:openai-api-key]`). Ids are kebab-case, unlike the
/// gateway's snake_case detector kinds (`prompt_secret`): see
/// [`ScanRule`](crate::scanner::ScanRule).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RuleId {
    /// A PEM private key block, `-----BEGIN … PRIVATE KEY-----` through its `END` line.
    PrivateKey,
    /// A JSON Web Token: three base64url segments whose header is JSON with an `alg`.
    Jwt,
    /// A writ: `writ_` and a base64url Biscuit.
    Writ,
    /// An Anthropic API or admin key, `sk-ant-api03-…` / `sk-ant-admin01-…`.
    AnthropicApiKey,
    /// An OpenAI key, `sk-…`, `sk-proj-…`, `sk-svcacct-…`, `sk-admin-…`.
    OpenaiApiKey,
    /// A Google API key, `AIza` and 35 characters.
    GoogleApiKey,
    /// An AWS access key id, `AKIA`/`ASIA`/`ABIA`/`ACCA` and 16 upper-case alphanumerics.
    AwsAccessKeyId,
    /// An AWS secret access key: 40 base64 characters assigned to `aws-secret-access-key`
    /// or `SecretAccessKey`.
    AwsSecretAccessKey,
    /// An Azure key (32 hex, 84 alphanumerics or 88 base64 characters) assigned to
    /// `api-key`, `Ocp-Apim-Subscription-Key`, `AccountKey` or `azure…key`.
    AzureKey,
    /// A GitHub token: `ghp_`, `gho_`, `ghu_`, `ghs_` or `ghr_` and 36 or more characters.
    GithubToken,
    /// A GitHub fine-grained personal access token, `github_pat_…`.
    GithubFineGrainedToken,
    /// A GitLab personal access token, `glpat-` and 20 or more characters.
    GitlabToken,
    /// A Slack token, `xoxa-`, `xoxb-`, `xoxp-`, `xoxo-`, `xoxs-` or `xoxr-`.
    SlackToken,
    /// A Slack incoming-webhook or workflow URL, whose path is the secret.
    SlackWebhook,
    /// A Stripe secret or restricted key, `sk_live_`, `rk_live_`, `sk_test_`, `rk_test_`.
    StripeKey,
    /// A `password=`/`secret=`/`token=`/`api_key=`-style assignment whose value looks
    /// random; see [`GENERIC_MIN_ENTROPY`].
    GenericSecret,
}

impl RuleId {
    /// Whether the rule finds an API key or token a service issues (OpenAI, Anthropic,
    /// Google, AWS, Azure, GitHub, GitLab, Slack, Stripe): what an agent should never hold
    /// where writ is deployed. Not private keys, JWTs, writs or generic assignments.
    pub fn is_service_key(self) -> bool {
        !matches!(
            self,
            RuleId::PrivateKey
                | RuleId::Jwt
                | RuleId::Writ
                | RuleId::SlackWebhook
                | RuleId::GenericSecret
        )
    }

    /// Every built-in rule id, in priority order.
    pub const ALL: [RuleId; 16] = [
        RuleId::PrivateKey,
        RuleId::Jwt,
        RuleId::Writ,
        RuleId::AnthropicApiKey,
        RuleId::OpenaiApiKey,
        RuleId::GoogleApiKey,
        RuleId::AwsAccessKeyId,
        RuleId::AwsSecretAccessKey,
        RuleId::AzureKey,
        RuleId::GithubToken,
        RuleId::GithubFineGrainedToken,
        RuleId::GitlabToken,
        RuleId::SlackToken,
        RuleId::SlackWebhook,
        RuleId::StripeKey,
        RuleId::GenericSecret,
    ];

    /// The stable kebab-case id, such as `openai-api-key`.
    pub const fn as_str(self) -> &'static str {
        match self {
            RuleId::PrivateKey => "private-key",
            RuleId::Jwt => "jwt",
            RuleId::Writ => "writ",
            RuleId::AnthropicApiKey => "anthropic-api-key",
            RuleId::OpenaiApiKey => "openai-api-key",
            RuleId::GoogleApiKey => "google-api-key",
            RuleId::AwsAccessKeyId => "aws-access-key-id",
            RuleId::AwsSecretAccessKey => "aws-secret-access-key",
            RuleId::AzureKey => "azure-key",
            RuleId::GithubToken => "github-token",
            RuleId::GithubFineGrainedToken => "github-fine-grained-token",
            RuleId::GitlabToken => "gitlab-token",
            RuleId::SlackToken => "slack-token",
            RuleId::SlackWebhook => "slack-webhook",
            RuleId::StripeKey => "stripe-key",
            RuleId::GenericSecret => "generic-secret",
        }
    }

    /// The rule with this stable id, if there is one.
    pub fn from_id(id: &str) -> Option<RuleId> {
        RuleId::ALL.into_iter().find(|r| r.as_str() == id)
    }
}

impl std::fmt::Display for RuleId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One kind of secret: how to find it and how to name it.
#[derive(Debug)]
pub struct Rule {
    /// Stable id.
    pub id: RuleId,
    /// Human name, for consoles and reports.
    pub name: &'static str,
    /// What replaces a match when redacting: `[REDACTED:<id>]`.
    pub redaction: &'static str,
    /// ASCII byte regex with a bounded longest match. If it has a capture group, group 1
    /// is the secret (the rest is context such as `password=`); otherwise the whole match.
    pub pattern: &'static str,
    /// Extra check on the secret bytes; a match that fails it is not a finding.
    pub validate: Option<fn(&[u8]) -> bool>,
}

/// Minimum Shannon entropy, in bits per byte, of a [`RuleId::GenericSecret`] value.
///
/// Twelve to sixteen random alphanumerics carry about 3.3–3.9 bits per byte; values that
/// people and docs write in place of secrets carry less: `abc123abc123` 2.58,
/// `hunter2hunter2` 2.81, `aaaaaaaaaaaaaaaa` 0. 3.0 sits between, so a weak but real
/// password such as `Summer2024!!` (3.08) is still caught.
pub const GENERIC_MIN_ENTROPY: f64 = 3.0;

/// Shortest value a [`RuleId::GenericSecret`] assignment must have.
pub const GENERIC_MIN_LEN: usize = 12;

/// The built-in rules, in priority order.
pub static BUILTIN: &[Rule] = &[
    Rule {
        id: RuleId::PrivateKey,
        name: "Private key (PEM)",
        redaction: "[REDACTED:private-key]",
        // The whole block when its END line follows within 8 KiB (an RSA-8192 key is
        // about 6.3 KiB); otherwise the header and the base64 body after it, which also
        // covers keys inside JSON strings with `\n` escapes. Key types are spelled out so
        // that `-----BEGIN CERTIFICATE` or `PUBLIC KEY` is no start literal, and a
        // stream need not hold back after one.
        pattern: r"(?-u)-----BEGIN (?:(?:RSA|DSA|EC|OPENSSH|ENCRYPTED|PGP|SSH2 ENCRYPTED) )?PRIVATE KEY(?: BLOCK)?-----(?:(?s:.){0,8192}?-----END [A-Z0-9 ]{0,24}PRIVATE KEY(?: BLOCK)?-----|[A-Za-z0-9+/=\s\\]{0,8192})",
        validate: None,
    },
    Rule {
        id: RuleId::Jwt,
        name: "JSON Web Token",
        redaction: "[REDACTED:jwt]",
        // The signature is optional in the pattern so that a token whose payload exceeds
        // the bound still loses its first 7 KiB (and with it its integrity).
        pattern: r"(?-u)\beyJ[A-Za-z0-9_-]{8,1024}\.[A-Za-z0-9_-]{2,6144}(?:\.[A-Za-z0-9_-]{0,1024})?",
        validate: Some(jwt_header_has_alg),
    },
    Rule {
        id: RuleId::Writ,
        name: "Writ",
        redaction: "[REDACTED:writ]",
        // writ-token accepts at most 8 KiB.
        pattern: r"(?-u)\bwrit_[A-Za-z0-9_-]{64,8187}={0,2}",
        validate: Some(has_digit_and_letter),
    },
    Rule {
        id: RuleId::AnthropicApiKey,
        name: "Anthropic API key",
        redaction: "[REDACTED:anthropic-api-key]",
        pattern: r"(?-u)\bsk-ant-(?:api|admin)[0-9]{2}-[A-Za-z0-9_-]{32,200}",
        validate: None,
    },
    Rule {
        id: RuleId::OpenaiApiKey,
        name: "OpenAI API key",
        redaction: "[REDACTED:openai-api-key]",
        pattern: r"(?-u)\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,200}",
        validate: Some(openai_body),
    },
    Rule {
        id: RuleId::GoogleApiKey,
        name: "Google API key",
        redaction: "[REDACTED:google-api-key]",
        pattern: r"(?-u)\bAIza[0-9A-Za-z_-]{35}",
        validate: None,
    },
    Rule {
        id: RuleId::AwsAccessKeyId,
        name: "AWS access key id",
        redaction: "[REDACTED:aws-access-key-id]",
        pattern: r"(?-u)\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b",
        validate: None,
    },
    Rule {
        id: RuleId::AwsSecretAccessKey,
        name: "AWS secret access key",
        redaction: "[REDACTED:aws-secret-access-key]",
        pattern: r#"(?-u)(?i:\b(?:aws[_-]?)?secret[_-]?access[_-]?key)["']?[ \t]{0,4}[:=][ \t]{0,4}["']?([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)"#,
        validate: None,
    },
    Rule {
        id: RuleId::AzureKey,
        name: "Azure key",
        redaction: "[REDACTED:azure-key]",
        pattern: r#"(?-u)(?i:\b(?:api-key|ocp-apim-subscription-key|accountkey|azure[_-]?(?:openai[_-]?)?(?:api[_-]?)?key))["']?[ \t]{0,4}[:=][ \t]{0,4}["']?([0-9a-fA-F]{32}|[A-Za-z0-9]{84}|[A-Za-z0-9+/]{86}==)(?:[^A-Za-z0-9+/=]|$)"#,
        validate: None,
    },
    Rule {
        id: RuleId::GithubToken,
        name: "GitHub token",
        redaction: "[REDACTED:github-token]",
        pattern: r"(?-u)\bgh[pousr]_[A-Za-z0-9]{36,251}\b",
        validate: None,
    },
    Rule {
        id: RuleId::GithubFineGrainedToken,
        name: "GitHub fine-grained personal access token",
        redaction: "[REDACTED:github-fine-grained-token]",
        pattern: r"(?-u)\bgithub_pat_[A-Za-z0-9_]{60,251}\b",
        validate: None,
    },
    Rule {
        id: RuleId::GitlabToken,
        name: "GitLab personal access token",
        redaction: "[REDACTED:gitlab-token]",
        pattern: r"(?-u)\bglpat-[A-Za-z0-9_-]{20,128}",
        validate: None,
    },
    Rule {
        id: RuleId::SlackToken,
        name: "Slack token",
        redaction: "[REDACTED:slack-token]",
        pattern: r"(?-u)\bxox[abposr]-[A-Za-z0-9-]{20,250}",
        validate: Some(has_digit_and_letter),
    },
    Rule {
        id: RuleId::SlackWebhook,
        name: "Slack webhook URL",
        redaction: "[REDACTED:slack-webhook]",
        pattern: r"(?-u)https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_-]{20,200}",
        validate: None,
    },
    Rule {
        id: RuleId::StripeKey,
        name: "Stripe secret key",
        redaction: "[REDACTED:stripe-key]",
        pattern: r"(?-u)\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,247}",
        validate: None,
    },
    Rule {
        id: RuleId::GenericSecret,
        name: "Secret assigned to a password/secret/token/api_key name",
        redaction: "[REDACTED:generic-secret]",
        pattern: r#"(?-u)(?i:\b(?:password|passwd|pwd|secret|client_secret|api_key|apikey|api-key|access_token|auth_token|token|private_key)\b)["']?[ \t]{0,4}[:=][ \t]{0,4}["']?([A-Za-z0-9!#%*+./:=?@^_|~-]{12,256})"#,
        validate: Some(generic_value),
    },
];

/// The built-in rule with this id.
pub fn builtin(id: RuleId) -> &'static Rule {
    // BUILTIN lists RuleId::ALL in order; a unit test keeps the two in step.
    &BUILTIN[id as usize]
}

fn has_digit_and_letter(s: &[u8]) -> bool {
    s.iter().any(u8::is_ascii_digit) && s.iter().any(u8::is_ascii_alphabetic)
}

/// Real OpenAI keys are random base64-ish text; `sk-` followed by a kebab-case word
/// list (`sk-learn-…` in prose) is not. Anthropic keys also start `sk-`: their own rule
/// names them.
fn openai_body(s: &[u8]) -> bool {
    !s.starts_with(b"sk-ant-")
        && s.iter().any(u8::is_ascii_digit)
        && s.iter().any(u8::is_ascii_uppercase)
        && s.iter().any(u8::is_ascii_lowercase)
}

/// A header that is base64url JSON naming an `alg` is what makes `eyJ….….…` a JWT
/// rather than any dotted base64.
fn jwt_header_has_alg(token: &[u8]) -> bool {
    let header = token.split(|&b| b == b'.').next().unwrap_or_default();
    let Ok(json) = URL_SAFE_NO_PAD.decode(header) else {
        return false;
    };
    match serde_json::from_slice::<serde_json::Value>(&json) {
        Ok(serde_json::Value::Object(map)) => map.get("alg").is_some_and(|a| a.is_string()),
        _ => false,
    }
}

/// Generic assignments fire on values that look random: long enough, above
/// [`GENERIC_MIN_ENTROPY`], with both digits and letters (which rules out identifiers
/// such as `request.form.get`), and not a URL.
fn generic_value(s: &[u8]) -> bool {
    s.len() >= GENERIC_MIN_LEN
        && has_digit_and_letter(s)
        && !s.windows(3).any(|w| w == b"://")
        && entropy::shannon_bits_per_byte(s) >= GENERIC_MIN_ENTROPY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_table_matches_rule_ids() {
        assert_eq!(BUILTIN.len(), RuleId::ALL.len());
        for (rule, id) in BUILTIN.iter().zip(RuleId::ALL) {
            assert_eq!(rule.id, id);
            assert_eq!(builtin(id).id, id);
            assert_eq!(rule.redaction, format!("[REDACTED:{}]", id.as_str()));
            assert_eq!(RuleId::from_id(id.as_str()), Some(id));
        }
    }

    #[test]
    fn generic_value_threshold_examples() {
        assert!(!generic_value(b"abc123abc123"));
        assert!(!generic_value(b"hunter2hunter2"));
        assert!(!generic_value(b"request.form.get"));
        assert!(!generic_value(b"https://example.com/a1"));
        assert!(generic_value(b"Summer2024!!"));
        assert!(generic_value(b"q8Zr2LmX0vTb4NcW"));
    }

    #[test]
    fn jwt_header_check() {
        // {"alg":"HS256","typ":"JWT"}
        assert!(jwt_header_has_alg(
            b"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.sig"
        ));
        // {"typ":"JWT"}
        assert!(!jwt_header_has_alg(b"eyJ0eXAiOiJKV1QifQ.e30.sig"));
        assert!(!jwt_header_has_alg(b"eyJnotbase64!.e30.sig"));
    }
}
