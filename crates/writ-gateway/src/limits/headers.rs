//! The rate-limit headers of a response: what is left of the tightest limits on an
//! answered call, and which limit refused a 429 and when to retry.

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use writ_limits::model::push_number;
use writ_limits::{Dimension, Refusal, Remaining};

const LIMIT_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-limit-requests");
const REMAINING_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-requests");
const RESET_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-reset-requests");
const LIMIT_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-limit-tokens");
const REMAINING_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-tokens");
const RESET_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-reset-tokens");
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
const RETRY_AFTER: HeaderName = HeaderName::from_static("retry-after");

/// The tightest remaining of each kind, as `x-ratelimit-*` (OpenAI) and `RateLimit-Policy`
/// / `RateLimit` (IETF draft) headers.
pub(crate) fn write_headers(remaining: &[Remaining], headers: &mut HeaderMap) {
    let tightest = |want: &dyn Fn(Dimension) -> bool| {
        remaining
            .iter()
            .filter(|r| want(r.dimension))
            .min_by_key(|r| r.remaining)
    };
    if let Some(r) = tightest(&|d| d == Dimension::Requests) {
        headers.insert(LIMIT_REQUESTS, HeaderValue::from(r.limit));
        headers.insert(REMAINING_REQUESTS, HeaderValue::from(r.remaining));
        set(headers, RESET_REQUESTS, reset_text(r.reset));
    }
    if let Some(r) = tightest(&|d| {
        matches!(
            d,
            Dimension::Tokens | Dimension::InputTokens | Dimension::OutputTokens
        )
    }) {
        headers.insert(LIMIT_TOKENS, HeaderValue::from(r.limit));
        headers.insert(REMAINING_TOKENS, HeaderValue::from(r.remaining));
        set(headers, RESET_TOKENS, reset_text(r.reset));
    }
    if remaining.is_empty() {
        return;
    }
    let mut policy = String::with_capacity(40 * remaining.len());
    let mut state = String::with_capacity(40 * remaining.len());
    for (i, r) in remaining.iter().enumerate() {
        if i > 0 {
            policy.push_str(", ");
            state.push_str(", ");
        }
        let name = r.dimension.as_str();
        // Whole seconds, rounded up.
        let reset = r.reset.as_secs() + u64::from(r.reset.subsec_nanos() > 0);
        // `"requests";q=100;w=60` and `"requests";r=7;t=2`
        for (out, first, a, second, b) in [
            (&mut policy, "\";q=", r.limit, ";w=", r.window_secs),
            (&mut state, "\";r=", r.remaining, ";t=", reset),
        ] {
            out.push('"');
            out.push_str(name);
            out.push_str(first);
            push_number(out, a, 1);
            out.push_str(second);
            push_number(out, b, 1);
        }
    }
    set(headers, RATELIMIT_POLICY, policy);
    set(headers, RATELIMIT, state);
}

/// Headers of a 429: `Retry-After` in whole seconds (at least 1) and the refused limit.
pub(crate) fn refusal_headers(refusal: &Refusal, headers: &mut HeaderMap) {
    let secs = refusal.retry_after.as_secs_f64().ceil().max(1.0) as u64;
    headers.insert(RETRY_AFTER, HeaderValue::from(secs));
    write_headers(
        &[Remaining {
            dimension: refusal.dimension,
            limit: refusal.limit,
            remaining: 0,
            reset: refusal.retry_after,
            window_secs: refusal.window_secs,
        }],
        headers,
    );
}

/// OpenAI's duration format for reset headers: `1s`, `6m0s`, `20ms`. These headers go on
/// every limited response, so numbers are pushed as digits (`write!` cost several times as
/// much).
fn reset_text(d: Duration) -> String {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let mut out = String::with_capacity(12);
    if ms < 1000 {
        push_number(&mut out, ms, 1);
        out.push_str("ms");
        return out;
    }
    let (minutes, rest_ms) = (ms / 60_000, ms % 60_000);
    if minutes > 0 {
        push_number(&mut out, minutes, 1);
        out.push('m');
    }
    let (secs, millis) = (rest_ms / 1000, rest_ms % 1000);
    push_number(&mut out, secs, 1);
    if millis != 0 {
        out.push('.');
        push_number(&mut out, millis, 3);
    }
    out.push('s');
    out
}

fn set(headers: &mut HeaderMap, name: HeaderName, value: String) {
    if let Ok(v) = HeaderValue::try_from(value) {
        headers.insert(name, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_resets_as_openai_does() {
        assert_eq!(reset_text(Duration::from_millis(20)), "20ms");
        assert_eq!(reset_text(Duration::from_secs(1)), "1s");
        assert_eq!(reset_text(Duration::from_secs(360)), "6m0s");
        assert_eq!(reset_text(Duration::from_millis(1500)), "1.500s");
        assert_eq!(reset_text(Duration::from_millis(61_005)), "1m1.005s");
        assert_eq!(reset_text(Duration::from_secs(120)), "2m0s");
        assert_eq!(reset_text(Duration::from_micros(1_999_600)), "1.999s");
        assert_eq!(reset_text(Duration::from_micros(999_999)), "999ms");
        assert_eq!(reset_text(Duration::ZERO), "0ms");
    }

    #[test]
    fn every_limit_is_in_the_ietf_headers_and_the_tightest_in_openais() {
        let mut h = HeaderMap::new();
        write_headers(
            &[
                Remaining {
                    dimension: Dimension::Requests,
                    limit: 100,
                    remaining: 7,
                    reset: Duration::from_millis(1500),
                    window_secs: 60,
                },
                Remaining {
                    dimension: Dimension::Tokens,
                    limit: 5000,
                    remaining: 4000,
                    reset: Duration::from_secs(3600),
                    window_secs: 86_400,
                },
                Remaining {
                    dimension: Dimension::Requests,
                    limit: 10,
                    remaining: 3,
                    reset: Duration::from_millis(200),
                    window_secs: 1,
                },
            ],
            &mut h,
        );
        let get = |n: &str| h.get(n).unwrap().to_str().unwrap().to_string();
        assert_eq!(get("x-ratelimit-limit-requests"), "10");
        assert_eq!(get("x-ratelimit-remaining-requests"), "3");
        assert_eq!(get("x-ratelimit-reset-requests"), "200ms");
        assert_eq!(get("x-ratelimit-limit-tokens"), "5000");
        assert_eq!(get("x-ratelimit-remaining-tokens"), "4000");
        assert_eq!(get("x-ratelimit-reset-tokens"), "60m0s");
        assert_eq!(
            get("ratelimit-policy"),
            r#""requests";q=100;w=60, "tokens";q=5000;w=86400, "requests";q=10;w=1"#
        );
        assert_eq!(
            get("ratelimit"),
            r#""requests";r=7;t=2, "tokens";r=4000;t=3600, "requests";r=3;t=1"#
        );
        let mut none = HeaderMap::new();
        write_headers(&[], &mut none);
        assert!(none.is_empty());
    }

    #[test]
    fn refusals_say_when_to_retry() {
        let mut h = HeaderMap::new();
        refusal_headers(
            &Refusal {
                scope: "agent=a".into(),
                dimension: Dimension::Requests,
                limit: 10,
                retry_after: Duration::from_millis(200),
                window_secs: 60,
                amount: 1,
                too_large: false,
            },
            &mut h,
        );
        assert_eq!(h["retry-after"], "1");
        assert_eq!(h["x-ratelimit-remaining-requests"], "0");
        assert_eq!(h["ratelimit-policy"], "\"requests\";q=10;w=60");
        assert_eq!(h["ratelimit"], "\"requests\";r=0;t=1");
    }
}
