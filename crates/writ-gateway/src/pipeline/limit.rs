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

pub(crate) async fn reserve(
    gw: &Gateway,
    writ: &VerifiedWrit,
    target: &Target<'_>,
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
        .reserve(&subject, estimate, &budgets, gw.clock.now())
        .await
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
