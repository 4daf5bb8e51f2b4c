//! What the linter expects of tokens: size, lifetime, clock skew, trusted key URLs,
//! understood `crit` extensions, and which issuers and keys sign asymmetrically.

use std::time::Duration;

/// Default [`LintPolicy::max_token_bytes`]: 8 KiB, the header size many servers accept.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Which tokens a rule of the policy is about, by `iss` claim and `kid` header. A `None`
/// field matches anything, so `KeySelector::default()` matches every token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeySelector {
    /// The `iss` claim, exactly.
    pub issuer: Option<String>,
    /// The `kid` header, exactly.
    pub kid: Option<String>,
}

impl KeySelector {
    pub(crate) fn matches(&self, issuer: Option<&str>, kid: Option<&str>) -> bool {
        let field = |want: &Option<String>, got: Option<&str>| {
            want.as_deref().is_none_or(|w| got == Some(w))
        };
        field(&self.issuer, issuer) && field(&self.kid, kid)
    }
}

/// The linter's expectations. `Default` suits tokens presented to the gateway.
#[derive(Clone, Debug)]
pub struct LintPolicy {
    /// Tokens longer than this are reported, and not tried against weak secrets.
    pub max_token_bytes: usize,
    /// Longest acceptable time from `now` to `exp`. Default 24 hours.
    pub max_lifetime: Duration,
    /// How far `iat`/`nbf` may be ahead of `now`. Default 60 seconds.
    pub clock_skew: Duration,
    /// URLs a `jku` or `x5u` header may point to: an entry matches the URL exactly, or,
    /// if it ends with `/`, as a prefix. Only `https` URLs are ever allowed. Default none.
    pub allowed_key_urls: Vec<String>,
    /// `crit` extensions the verifier understands. Default none.
    pub understood_crit: Vec<String>,
    /// Issuers/keys that sign with an asymmetric algorithm (RS*, PS*, ES*, EdDSA): an HMAC
    /// token for one of them is algorithm confusion. Default none.
    pub asymmetric_keys: Vec<KeySelector>,
    /// PEM public keys the verifier holds. An HMAC signature that verifies with one of
    /// them as the secret is the classic RS256→HS256 forgery.
    pub public_keys_pem: Vec<String>,
    /// Secrets to guess besides the bundled list, such as the ones in your own examples.
    pub extra_weak_secrets: Vec<String>,
}

impl Default for LintPolicy {
    fn default() -> Self {
        LintPolicy {
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            max_lifetime: Duration::from_secs(24 * 3600),
            clock_skew: Duration::from_secs(60),
            allowed_key_urls: Vec::new(),
            understood_crit: Vec::new(),
            asymmetric_keys: Vec::new(),
            public_keys_pem: Vec::new(),
            extra_weak_secrets: Vec::new(),
        }
    }
}
