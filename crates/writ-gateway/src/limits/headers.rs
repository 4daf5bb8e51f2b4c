//! The rate-limit headers of a response: what is left of the tightest limits on an
//! answered call, and which limit refused a 429 and when to retry.

use std::time::Duration;

use bytes::Bytes;
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
    let mut out = Values::default();
    if let Some(r) = tightest(&|d| d == Dimension::Requests) {
        out.number(LIMIT_REQUESTS, r.limit);
        out.number(REMAINING_REQUESTS, r.remaining);
        out.value(RESET_REQUESTS, |text| push_reset(text, r.reset));
    }
    if let Some(r) = tightest(&|d| {
        matches!(
            d,
            Dimension::Tokens | Dimension::InputTokens | Dimension::OutputTokens
        )
    }) {
        out.number(LIMIT_TOKENS, r.limit);
        out.number(REMAINING_TOKENS, r.remaining);
        out.value(RESET_TOKENS, |text| push_reset(text, r.reset));
    }
    if !remaining.is_empty() {
        // `"requests";q=100;w=60` and `"requests";r=7;t=2`, one per limit.
        let list = |text: &mut String, item: &dyn Fn(&Remaining) -> (&str, u64, &str, u64)| {
            for (i, r) in remaining.iter().enumerate() {
                if i > 0 {
                    text.push_str(", ");
                }
                let (first, a, second, b) = item(r);
                text.push('"');
                text.push_str(r.dimension.as_str());
                text.push_str(first);
                push_number(text, a, 1);
                text.push_str(second);
                push_number(text, b, 1);
            }
        };
        out.value(RATELIMIT_POLICY, |text| {
            list(text, &|r| ("\";q=", r.limit, ";w=", r.window_secs));
        });
        out.value(RATELIMIT, |text| {
            // Whole seconds, rounded up.
            list(text, &|r| {
                let reset = r.reset.as_secs() + u64::from(r.reset.subsec_nanos() > 0);
                ("\";r=", r.remaining, ";t=", reset)
            });
        });
    }
    out.insert_into(headers);
}

/// Header values written side by side into one text, each then taken as a slice of it:
/// one allocation for all of a response's limit headers (they go on every limited
/// response) instead of one or two each.
#[derive(Default)]
struct Values {
    text: String,
    ends: Vec<(HeaderName, usize)>,
}

impl Values {
    /// Writes `name`'s value with `write`.
    fn value(&mut self, name: HeaderName, write: impl FnOnce(&mut String)) {
        write(&mut self.text);
        self.ends.push((name, self.text.len()));
    }

    fn number(&mut self, name: HeaderName, n: u64) {
        self.value(name, |text| push_number(text, n, 1));
    }

    /// Sets every value written (each replacing what `headers` held under its name).
    fn insert_into(self, headers: &mut HeaderMap) {
        let all = Bytes::from(self.text);
        let mut start = 0;
        for (name, end) in self.ends {
            // Digits, ASCII names and punctuation: always a valid value.
            if let Ok(v) = HeaderValue::from_maybe_shared(all.slice(start..end)) {
                headers.insert(name, v);
            }
            start = end;
        }
    }
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
fn push_reset(out: &mut String, d: Duration) {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if ms < 1000 {
        push_number(out, ms, 1);
        out.push_str("ms");
        return;
    }
    let (minutes, rest_ms) = (ms / 60_000, ms % 60_000);
    if minutes > 0 {
        push_number(out, minutes, 1);
        out.push('m');
    }
    let (secs, millis) = (rest_ms / 1000, rest_ms % 1000);
    push_number(out, secs, 1);
    if millis != 0 {
        out.push('.');
        push_number(out, millis, 3);
    }
    out.push('s');
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn reset_text(d: Duration) -> String {
        let mut out = String::new();
        push_reset(&mut out, d);
        out
    }

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
    fn the_upstreams_own_limit_headers_are_replaced_each_by_its_own_value() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-ratelimit-remaining-tokens",
            HeaderValue::from_static("999999"),
        );
        h.append("ratelimit", HeaderValue::from_static("upstream"));
        h.append("ratelimit", HeaderValue::from_static("upstream-again"));
        write_headers(
            &[Remaining {
                dimension: Dimension::InputTokens,
                limit: 80,
                remaining: 12,
                reset: Duration::from_millis(61_005),
                window_secs: 60,
            }],
            &mut h,
        );
        let mut all: Vec<(String, String)> = h
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        all.sort();
        let mut want = [
            ("ratelimit", r#""input_tokens";r=12;t=62"#),
            ("ratelimit-policy", r#""input_tokens";q=80;w=60"#),
            ("x-ratelimit-limit-tokens", "80"),
            ("x-ratelimit-remaining-tokens", "12"),
            ("x-ratelimit-reset-tokens", "1m1.005s"),
        ]
        .map(|(n, v)| (n.to_string(), v.to_string()));
        want.sort();
        assert_eq!(all, want);
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
