//! Authorize: every block of the writ, checked against the request facts at `now`.
//!
//! Every evaluation is bounded before it runs (`writ_token::VerifiedWrit::evaluation_work`:
//! a few milliseconds of one core at most). One that could take more than
//! [`INLINE_WORK`] runs on the blocking pool, one such evaluation at a time, so a holder
//! who appended costly checks to a writ waits behind its own kind and never holds up the
//! requests a serving thread has in hand.
//!
//! A denial is explained ([`explain`]): what was asked, who can lift the refusal, and,
//! when the output cap refused it, the largest cap the writ allows, found by asking the
//! writ itself (a few more bounded evaluations, only for denied requests).

pub(crate) mod costly;
pub(crate) mod policy;
pub(crate) mod prompt_secret;

use std::sync::Arc;

use writ_token::{Authorization, RequestFacts, VerifiedWrit};

use crate::error::{DeniedRequest, GatewayError};
use crate::gateway::Gateway;

/// Units of work (about 10 ns each) an evaluation may cost and still run on the serving
/// thread: about 0.2 ms. Writs the gateway mints evaluate in a few thousand.
pub(crate) const INLINE_WORK: u64 = 20_000;

/// Authorizes a data-plane request: on this thread when the evaluation is cheap, on the
/// blocking pool (one at a time) when it could be costly.
pub(crate) async fn check(
    gw: &Gateway,
    writ: &Arc<VerifiedWrit>,
    facts: &RequestFacts,
) -> Result<Authorization, GatewayError> {
    let now = gw.clock.now();
    let authorization = match writ.authorize_within(facts, now, INLINE_WORK)? {
        Some(authorization) => authorization,
        None => {
            let permit = gw
                .costly_evaluations
                .0
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| GatewayError::Internal("costly evaluations closed"))?;
            let (writ, facts) = (writ.clone(), facts.clone());
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                writ.authorize(&facts, now)
            })
            .await
            .map_err(|_| GatewayError::Internal("authorization task failed"))??
        }
    };
    single_use(gw, writ, now).await?;
    Ok(authorization)
}

/// Authorizes on this thread (bounded like every evaluation): for the admin API, whose
/// writs the operator issues.
pub(crate) async fn check_inline(
    gw: &Gateway,
    writ: &VerifiedWrit,
    facts: &RequestFacts,
) -> Result<Authorization, GatewayError> {
    let now = gw.clock.now();
    let authorization = writ.authorize(facts, now)?;
    single_use(gw, writ, now).await?;
    Ok(authorization)
}

/// Turns a data-plane denial into one the sender can act on; other errors pass through.
/// `cap_field` names the request field that states the output cap in the caller's API.
pub(crate) fn explain(
    gw: &Gateway,
    writ: &VerifiedWrit,
    facts: &RequestFacts,
    error: GatewayError,
    cap_field: impl FnOnce() -> &'static str,
) -> GatewayError {
    let GatewayError::Writ(writ_token::WritError::Denied(denial)) = error else {
        return error;
    };
    let cap = writ
        .largest_output_cap(&denial, facts, gw.clock.now(), INLINE_WORK)
        .map(|max| (max, cap_field()));
    GatewayError::Denied(Box::new(DeniedRequest {
        denial,
        asked: asked(facts),
        cap,
    }))
}

/// What a request asked for, in words, from its facts. Names chosen by the client are
/// quoted, cut short and stripped of control characters.
fn asked(facts: &RequestFacts) -> String {
    let quote = |s: &str| {
        let clean: String = s.chars().filter(|c| !c.is_control()).take(80).collect();
        format!("`{clean}`")
    };
    let on = facts
        .upstream
        .as_deref()
        .map(|u| format!(" on upstream {}", quote(u)))
        .unwrap_or_default();
    match (&facts.tool, &facts.model) {
        (Some(tool), _) => format!("tool {}{on}", quote(tool)),
        (None, Some(model)) => format!("{} with model {}{on}", facts.operation, quote(model)),
        (None, None) if facts.operation == "http" => {
            format!("{} {}{on}", facts.method, quote(&facts.path))
        }
        (None, None) => format!("{}{on}", facts.operation),
    }
}

/// Records a single-use writ's id as used: refuses it if it was, on any instance sharing
/// the limiter backend, and refuses (fail closed) when that cannot be told.
async fn single_use(
    gw: &Gateway,
    writ: &VerifiedWrit,
    now: std::time::SystemTime,
) -> Result<(), GatewayError> {
    // Recorded only once the request is allowed, so a refused attempt does not use it up.
    let claims = writ.claims();
    if !claims.single_use {
        return Ok(());
    }
    let id = writ_token::OneTimeId::SingleUse {
        token_id: &claims.token_id,
    };
    match writ_token::ReplayGuard::first_use(&gw.replay, id, claims.expires_at, now).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(GatewayError::AlreadyUsed),
        Err(_) => Err(GatewayError::LimiterUnavailable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::fixture::Fixture;
    use writ_token::Api;

    #[test]
    fn a_denied_request_is_described_by_what_it_asked() {
        let mut facts = RequestFacts::new(Api::Llm, "chat", "POST", "/v1/chat/completions");
        facts.upstream = Some("openai".into());
        facts.model = Some("gpt-4o\n".into());
        assert_eq!(
            asked(&facts),
            "chat with model `gpt-4o` on upstream `openai`"
        );
        facts.tool = Some("book_flight".into());
        assert_eq!(asked(&facts), "tool `book_flight` on upstream `openai`");
        let mut http = RequestFacts::new(Api::Http, "http", "DELETE", "/v1/bookings/1");
        http.upstream = Some("travel".into());
        assert_eq!(asked(&http), "DELETE `/v1/bookings/1` on upstream `travel`");
    }

    fn chat(model: &str) -> RequestFacts {
        RequestFacts {
            upstream: Some("openai".into()),
            model: Some(model.into()),
            ..RequestFacts::new(Api::Llm, "chat", "POST", "/v1/chat/completions")
        }
    }

    const GPT_4O: &str = r#"{"type":"writ:llm","upstream":"openai","models":["gpt-4o"]}"#;

    #[tokio::test]
    async fn allows_what_the_writ_grants_and_denies_the_rest() {
        let f = Fixture::start("").await;
        let writ = f.verified(&f.mint(GPT_4O, None));
        let allowed = check(&f.gw, &writ, &chat("gpt-4o")).await.unwrap();
        assert_eq!(allowed.token_id(), writ.claims().token_id);
        assert!(matches!(
            check(&f.gw, &writ, &chat("gpt-4o-mini")).await,
            Err(GatewayError::Writ(writ_token::WritError::Denied(_)))
        ));
        assert!(check_inline(&f.gw, &writ, &chat("gpt-4o")).await.is_ok());
    }

    #[tokio::test]
    async fn a_single_use_writ_is_used_up_only_by_an_allowed_request() {
        let f = Fixture::start("").await;
        let once =
            r#"{"type":"writ:llm","upstream":"openai","models":["gpt-4o"],"single_use":true}"#;
        let writ = f.verified(&f.mint(once, None));
        assert!(matches!(
            check(&f.gw, &writ, &chat("other")).await,
            Err(GatewayError::Writ(writ_token::WritError::Denied(_)))
        ));
        assert!(check(&f.gw, &writ, &chat("gpt-4o")).await.is_ok());
        assert!(matches!(
            check(&f.gw, &writ, &chat("gpt-4o")).await,
            Err(GatewayError::AlreadyUsed)
        ));
        assert!(matches!(
            check_inline(&f.gw, &writ, &chat("gpt-4o")).await,
            Err(GatewayError::AlreadyUsed)
        ));
    }

    #[tokio::test]
    async fn a_denial_is_explained_with_the_largest_cap_and_other_errors_pass() {
        let f = Fixture::start("").await;
        let capped = r#"{"type":"writ:llm","upstream":"openai","max_output_tokens":100}"#;
        let writ = f.verified(&f.mint(capped, None));
        let mut facts = chat("gpt-4o");
        facts.max_output_tokens = Some(500);
        let denied = check(&f.gw, &writ, &facts).await.unwrap_err();
        let explained = explain(&f.gw, &writ, &facts, denied, || "max_tokens");
        let GatewayError::Denied(denied) = explained else {
            panic!("not explained: {explained:?}");
        };
        assert_eq!(
            denied.asked,
            "chat with model `gpt-4o` on upstream `openai`"
        );
        assert_eq!(denied.cap, Some((100, "max_tokens")));
        let passed = explain(&f.gw, &writ, &facts, GatewayError::AlreadyUsed, || {
            unreachable!("only a denial names its cap field")
        });
        assert!(matches!(passed, GatewayError::AlreadyUsed));
    }
}
