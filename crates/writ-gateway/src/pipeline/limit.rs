//! Limit: reserve an estimate of the request on every applicable limit, all or nothing,
//! before anything is sent upstream. The meter phase settles it with the actual usage.
//!
//! The estimate: one request; input tokens from the body's size (about four bytes a
//! token, the same heuristic as unmetered calls); output tokens from the request's cap, or
//! the configured default; the cost of both at the model's price.

use writ_limits::{Amounts, Subject};
use writ_providers::{Usage, estimate_tokens};
use writ_token::{Api, RequestFacts, VerifiedWrit};

use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::limits::{Held, WritBudgets};
use crate::pipeline::route::Target;

/// Reserves the request's estimate on every limit of `limits` (the request's snapshot's)
/// that applies to it, writ budgets included; `None` when none does. A refusal is `RateLimited` naming the limit; a
/// failing limiter backend fails closed (`LimiterUnavailable`) unless configured to fall
/// back to local limits.
pub(crate) async fn reserve(
    gw: &Gateway,
    limits: &[writ_limits::LimitSpec],
    writ: &VerifiedWrit,
    target: &Target,
    facts: &RequestFacts,
    request_bytes: usize,
) -> Result<Option<Held>, GatewayError> {
    let claims = writ.claims();
    let subject = Subject {
        tenant: &claims.tenant,
        agent: &claims.agent,
        writ: &claims.token_id,
        upstream: &target.upstream.name,
        model: facts.model.as_deref(),
    };
    let estimate = estimate(gw, facts, request_bytes);
    let budgets = WritBudgets {
        usd_micros: claims.budget_usd_micros,
        tokens: claims.budget_tokens,
        expires_at: claims.expires_at,
    };
    gw.limits
        .reserve(limits, &subject, estimate, &budgets, gw.clock.now())
        .await
}

/// Gives a reservation back whole: nothing reached the upstream.
pub(crate) fn give_back(held: Option<Held>) {
    if let Some(held) = held {
        held.settle(Amounts::default());
    }
}

fn estimate(gw: &Gateway, facts: &RequestFacts, request_bytes: usize) -> Amounts {
    if facts.api != Api::Llm {
        return Amounts {
            requests: 1,
            ..Amounts::default()
        };
    }
    let usage = Usage {
        input_tokens: estimate_tokens(request_bytes as u64),
        output_tokens: facts
            .max_output_tokens
            .unwrap_or(gw.limits.default_output_tokens),
        cached_input_tokens: 0,
    };
    let cost = facts
        .model
        .as_deref()
        .and_then(|m| gw.pricing.cost_usd_micros(m, &usage))
        .unwrap_or(0);
    Amounts {
        requests: 1,
        input_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
        cost_usd_micros: cost,
        compute_ms: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::fixture::Fixture;

    const CONFIG: &str = "[limiter]\ndefault_output_tokens = 300\n\
         [upstreams.openai]\nkind = \"openai\"\napi_key = \"sk-test-0123456789\"\n";

    fn chat(model: &str, cap: Option<u64>) -> RequestFacts {
        RequestFacts {
            upstream: Some("openai".into()),
            model: Some(model.into()),
            max_output_tokens: cap,
            ..RequestFacts::new(Api::Llm, "chat", "POST", "/v1/chat/completions")
        }
    }

    #[tokio::test]
    async fn a_model_call_is_estimated_from_its_size_cap_and_price() {
        let f = Fixture::start(CONFIG).await;
        let capped = estimate(&f.gw, &chat("gpt-4o", Some(64)), 4000);
        let usage = Usage {
            input_tokens: estimate_tokens(4000),
            output_tokens: 64,
            cached_input_tokens: 0,
        };
        let price = f.gw.pricing.cost_usd_micros("gpt-4o", &usage).unwrap();
        assert!(price > 0);
        assert_eq!(
            (capped.requests, capped.input_tokens, capped.output_tokens),
            (1, usage.input_tokens, 64)
        );
        assert_eq!(capped.cost_usd_micros, price);
        // No cap in the request: the configured default; no known price: no cost.
        let uncapped = estimate(&f.gw, &chat("a-model-without-a-price", None), 4000);
        assert_eq!((uncapped.output_tokens, uncapped.cost_usd_micros), (300, 0));
    }

    #[tokio::test]
    async fn other_calls_count_as_one_request_only() {
        let f = Fixture::start(CONFIG).await;
        let tool = RequestFacts::new(Api::Tool, "tool_call", "POST", "/");
        let estimate = estimate(&f.gw, &tool, 1_000_000);
        assert_eq!(
            estimate,
            Amounts {
                requests: 1,
                ..Amounts::default()
            }
        );
    }

    #[tokio::test]
    async fn the_estimate_is_reserved_against_the_writs_own_budget() {
        let f = Fixture::start(CONFIG).await;
        let target = Target {
            upstream: f.gw.tenancy.declared().upstreams["openai"].clone(),
            path: "/v1/chat/completions".into(),
        };
        let unlimited = f.verified(&f.mint(r#"{"type":"writ:llm","upstream":"openai"}"#, None));
        let held = reserve(
            &f.gw,
            &f.gw.tenancy.snapshot().limits,
            &unlimited,
            &target,
            &chat("gpt-4o", Some(10)),
            40,
        )
        .await;
        assert!(matches!(held, Ok(None)), "no limit applies");
        let budgeted = f.verified(&f.mint(
            r#"[{"type":"writ:llm","upstream":"openai"},{"type":"writ:budget","tokens":100}]"#,
            None,
        ));
        let held = reserve(
            &f.gw,
            &f.gw.tenancy.snapshot().limits,
            &budgeted,
            &target,
            &chat("gpt-4o", Some(10)),
            40,
        )
        .await;
        assert!(matches!(held, Ok(Some(_))));
        let over = reserve(
            &f.gw,
            &f.gw.tenancy.snapshot().limits,
            &budgeted,
            &target,
            &chat("gpt-4o", Some(500)),
            40,
        )
        .await;
        assert!(matches!(over, Err(GatewayError::RateLimited(_))));
    }
}
