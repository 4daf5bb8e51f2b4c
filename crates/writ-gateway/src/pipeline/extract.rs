//! Extract: find the writ in the headers official SDKs send their API key in.

use http::HeaderMap;

use crate::error::GatewayError;

/// Headers that may carry the writ, in the order they are tried: OpenAI's Bearer,
/// Anthropic's `x-api-key`, Azure's `api-key`, Gemini's `x-goog-api-key`.
pub(crate) const CREDENTIAL_HEADERS: [&str; 4] =
    ["authorization", "x-api-key", "api-key", "x-goog-api-key"];

/// The writ text a client presented. Never printed; zeroed on drop.
pub(crate) struct PresentedWrit {
    text: writ_token::WritText,
    /// Sent as `Authorization: DPoP …` (RFC 9449 §7.1).
    pub(crate) dpop_scheme: bool,
}

impl PresentedWrit {
    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }
}

impl std::fmt::Debug for PresentedWrit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PresentedWrit(..)")
    }
}

/// The first credential header that holds a non-empty value.
pub(crate) fn writ(headers: &HeaderMap) -> Result<PresentedWrit, GatewayError> {
    for name in CREDENTIAL_HEADERS {
        let Some(value) = headers.get(name) else {
            continue;
        };
        let text = value.to_str().map_err(|_| GatewayError::MissingWrit)?;
        let (token, dpop_scheme) = if name == "authorization" {
            let Some((scheme, rest)) = text.split_once(' ') else {
                return Err(GatewayError::MissingWrit);
            };
            let dpop = scheme.eq_ignore_ascii_case("dpop");
            if !dpop && !scheme.eq_ignore_ascii_case("bearer") {
                return Err(GatewayError::MissingWrit);
            }
            (rest.trim(), dpop)
        } else {
            (text.trim(), false)
        };
        if token.is_empty() {
            return Err(GatewayError::MissingWrit);
        }
        return Ok(PresentedWrit {
            text: writ_token::WritText::new(token),
            dpop_scheme,
        });
    }
    Err(GatewayError::MissingWrit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn finds_the_writ_in_each_sdk_header() {
        for name in ["x-api-key", "api-key", "x-goog-api-key"] {
            let got = writ(&headers(&[(name, "writ_abc")])).unwrap();
            assert_eq!(got.as_str(), "writ_abc");
        }
        let got = writ(&headers(&[("authorization", "bearer writ_abc")])).unwrap();
        assert_eq!(got.as_str(), "writ_abc");
    }

    #[test]
    fn refuses_missing_empty_and_other_schemes() {
        for h in [
            headers(&[]),
            headers(&[("authorization", "Bearer ")]),
            headers(&[("authorization", "Bearer")]),
            headers(&[("authorization", "Basic dXNlcjpwYXNz")]),
            headers(&[("x-api-key", "")]),
        ] {
            assert!(matches!(writ(&h), Err(GatewayError::MissingWrit)));
        }
    }

    #[test]
    fn debug_hides_the_writ() {
        let got = writ(&headers(&[("x-api-key", "writ_secret")])).unwrap();
        assert!(!format!("{got:?}").contains("writ_secret"));
    }
}
