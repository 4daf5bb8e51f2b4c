//! Authenticate: the presented writ is valid by `writ-token`'s one definition
//! ([`writ_token::Verifier::check`]: size and prefix, signatures verified once then
//! cached, revocation of every block, expiry on the gateway's clock), and a proof of
//! possession is checked when one is sent or the writ is bound to a key.

use std::sync::Arc;

use writ_token::dpop::{self, DpopError, ProofRefusal};
use writ_token::{VerifiedWrit, WritError};

pub(crate) mod misplaced_credential;
pub(crate) mod throttle;

use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::pipeline::RequestCtx;
use crate::pipeline::extract::PresentedWrit;

/// The verified writ for `presented`, with who acts with it noted in `ctx`. A credential
/// that does not verify counts against its client's address — unless it only aged out
/// ([`only_aged`]): that is no guess — and the detectors of misplaced credentials (a JWT,
/// a provider's key) say what it was.
pub(crate) async fn writ(
    gw: &Gateway,
    ctx: &mut RequestCtx,
    presented: &PresentedWrit,
) -> Result<Arc<VerifiedWrit>, GatewayError> {
    let writ = match verify(gw, presented) {
        Ok(writ) => writ,
        Err(e) => {
            misplaced_credential::check(gw, ctx, presented.as_str()).await;
            if !only_aged(&e) {
                throttle::failed(gw, ctx).await;
            }
            return Err(e);
        }
    };
    let (agent, delegation) = acting_agent(&writ);
    ctx.id.agent = Some(agent);
    ctx.id.delegation = delegation;
    ctx.id.tenant = Some(writ.claims().tenant.clone());
    ctx.id.set_writ(writ.claims().token_id.clone());
    Ok(writ)
}

/// The verified writ for the presented text, valid now: refused with the
/// [`WritError`] `Verifier::check` names (too large, not a writ, a bad signature or an
/// untrusted key, revoked, expired).
pub(crate) fn verify(
    gw: &Gateway,
    presented: &PresentedWrit,
) -> Result<Arc<VerifiedWrit>, GatewayError> {
    let keys = gw.keys();
    Ok(gw
        .writs
        .check(presented.as_str(), &keys.trusted, gw.clock.now(), gw)?)
}

/// Whether a refusal by [`verify`] is only that the writ aged out ([`WritError::Expired`]):
/// its signature verified, so it is not a guess to count against the address, and the
/// client is expected to retry at once with a fresh writ.
pub(crate) fn only_aged(e: &GatewayError) -> bool {
    matches!(e, GatewayError::Writ(WritError::Expired { .. }))
}

/// Who acts with `writ`, for audit: the agent it was last delegated to (by a signed
/// token-exchange block), else the agent it was issued to; and, for a delegated writ, the
/// chain from the issuing agent to the actor. Agents of the writ's tenant are named alone,
/// others as `tenant/agent`.
pub(crate) fn acting_agent(writ: &VerifiedWrit) -> (String, Option<Vec<String>>) {
    let tenant = writ.claims().tenant.as_str();
    let name = |(t, a): (&str, &str)| {
        if t == tenant {
            a.to_string()
        } else {
            format!("{t}/{a}")
        }
    };
    let (t, a) = writ.acting_agent();
    let actor = name((t, a));
    let delegates: Vec<String> = writ.delegates().map(name).collect();
    if delegates.is_empty() {
        return (actor, None);
    }
    let mut chain = Vec::with_capacity(delegates.len() + 1);
    chain.push(writ.claims().agent.clone());
    chain.extend(delegates);
    (actor, Some(chain))
}

/// The one `DPoP` header of a request, if any: refused when there are several
/// ([`DpopError::SeveralProofs`]) or it is not text ([`DpopError::HeaderNotText`]).
pub(crate) fn dpop_header(headers: &http::HeaderMap) -> Result<Option<&str>, DpopError> {
    let mut proofs = headers.get_all("dpop").iter();
    match (proofs.next(), proofs.next()) {
        (None, _) => Ok(None),
        (Some(p), None) => p.to_str().map(Some).map_err(|_| DpopError::HeaderNotText),
        (Some(_), Some(_)) => Err(DpopError::SeveralProofs),
    }
}

/// Checks a DPoP proof when one is sent, and demands one when the writ is bound to a key
/// ([`writ_token::dpop::possession`]), recording the proof's `jti` in the limiter backend.
/// Returns the proven key's thumbprint, stated to the authorizer as `dpop_jkt(..)`.
/// Refused with [`GatewayError::Dpop`], or [`GatewayError::LimiterUnavailable`] when the
/// replay store cannot tell whether the proof was used (fail closed).
pub(crate) async fn possession(
    gw: &Gateway,
    parts: &http::request::Parts,
    presented: &PresentedWrit,
    writ: &VerifiedWrit,
) -> Result<Option<String>, GatewayError> {
    let proof = dpop_header(&parts.headers).map_err(GatewayError::Dpop)?;
    // Only a proof is checked against the URL: most requests send none, and need not
    // pay for formatting it.
    let url = match proof {
        Some(_) => format!("{}{}", gw.issuer(), parts.uri.path()),
        None => String::new(),
    };
    let expected = dpop::Expected {
        method: parts.method.as_str(),
        url: &url,
        access_token: Some(presented.as_str()),
        now: gw.clock.now(),
    };
    dpop::possession(writ, presented.dpop_scheme, proof, &expected, &gw.replay)
        .await
        .map_err(|e| match e {
            ProofRefusal::Invalid(e) => GatewayError::Dpop(e),
            ProofRefusal::ReplayUnavailable => GatewayError::LimiterUnavailable,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::extract;
    use crate::pipeline::fixture::Fixture;
    use http::HeaderValue;

    const LLM: &str = r#"{"type":"writ:llm","upstream":"openai"}"#;

    fn presented(authorization: &str) -> PresentedWrit {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(authorization).unwrap(),
        );
        extract::writ(&headers).unwrap()
    }

    fn parts(dpop: &[&str]) -> http::request::Parts {
        let mut request = http::Request::post("/v1/chat/completions");
        for proof in dpop {
            request = request.header("dpop", *proof);
        }
        request.body(()).unwrap().into_parts().0
    }

    #[tokio::test]
    async fn verifies_once_then_serves_the_cache_and_checks_revocation_every_time() {
        let f = Fixture::start("").await;
        let writ = presented(&format!("Bearer {}", f.mint(LLM, None)));
        let first = verify(&f.gw, &writ).unwrap();
        assert_eq!(first.claims().agent, "demo");
        let second = verify(&f.gw, &writ).unwrap();
        assert!(
            first.same_verification(&second),
            "the second use is a cache hit"
        );
        f.gw.apply_shared_revocation(&writ_token::Revocation::TokenId {
            token_id: first.claims().token_id.clone(),
        });
        assert!(matches!(
            verify(&f.gw, &writ),
            Err(GatewayError::Writ(WritError::Revoked))
        ));
    }

    #[tokio::test]
    async fn refuses_what_is_not_a_writ_of_this_gateway() {
        let f = Fixture::start("").await;
        assert!(matches!(
            verify(&f.gw, &presented("Bearer sk-not-a-writ")),
            Err(GatewayError::Writ(WritError::MissingPrefix))
        ));
        let foreign = writ_token::RootKeyPair::generate(writ_token::KeyId(77));
        let grants = writ_token::parse_grants(LLM).unwrap();
        let req = writ_token::MintRequest {
            tenant: "default",
            agent: "demo",
            ceiling: &grants,
            grants: &grants,
            ttl: std::time::Duration::from_secs(30),
            max_ttl: std::time::Duration::from_secs(30),
            now: crate::pipeline::fixture::t0(),
            cnf_jkt: None,
            audience: None,
        };
        let other = writ_token::mint(&foreign, &req).unwrap().0;
        assert!(matches!(
            verify(&f.gw, &presented(&format!("Bearer {other}"))),
            Err(GatewayError::Writ(WritError::UnknownKeyId {
                kid: Some(77)
            }))
        ));
    }

    #[test]
    fn only_an_expired_writ_is_refused_as_aged() {
        let expired = GatewayError::Writ(WritError::Expired {
            at: crate::pipeline::fixture::t0(),
        });
        assert!(only_aged(&expired));
        assert!(!only_aged(&GatewayError::Writ(WritError::BadSignature)));
        assert!(!only_aged(&GatewayError::Writ(WritError::Revoked)));
    }

    #[test]
    fn one_dpop_header_at_most_and_as_text() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(dpop_header(&headers), Ok(None));
        headers.insert("dpop", HeaderValue::from_static("a.b.c"));
        assert_eq!(dpop_header(&headers), Ok(Some("a.b.c")));
        headers.append("dpop", HeaderValue::from_static("d.e.f"));
        assert_eq!(dpop_header(&headers), Err(DpopError::SeveralProofs));
        let mut headers = http::HeaderMap::new();
        headers.insert("dpop", HeaderValue::from_bytes(b"\xff").unwrap());
        assert_eq!(dpop_header(&headers), Err(DpopError::HeaderNotText));
    }

    #[tokio::test]
    async fn an_undelegated_writ_acts_as_its_own_agent() {
        let f = Fixture::start("").await;
        let writ = f.verified(&f.mint(LLM, None));
        assert_eq!(acting_agent(&writ), ("demo".to_string(), None));
    }

    #[tokio::test]
    async fn possession_is_optional_for_an_unbound_writ_and_one_proof_at_most() {
        let f = Fixture::start("").await;
        let text = f.mint(LLM, None);
        let writ = f.verified(&text);
        let bearer = presented(&format!("Bearer {text}"));
        assert_eq!(
            possession(&f.gw, &parts(&[]), &bearer, &writ)
                .await
                .unwrap(),
            None
        );
        assert!(matches!(
            possession(&f.gw, &parts(&["a.b.c", "d.e.f"]), &bearer, &writ).await,
            Err(GatewayError::Dpop(DpopError::SeveralProofs))
        ));
        assert!(matches!(
            possession(&f.gw, &parts(&["not-a-jwt"]), &bearer, &writ).await,
            Err(GatewayError::Dpop(DpopError::MalformedHeader))
        ));
    }

    #[tokio::test]
    async fn a_bound_writ_demands_the_dpop_scheme_and_a_proof() {
        let f = Fixture::start("").await;
        let jkt = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
        let text = f.mint(LLM, Some(jkt));
        let writ = f.verified(&text);
        assert!(matches!(
            possession(
                &f.gw,
                &parts(&[]),
                &presented(&format!("Bearer {text}")),
                &writ
            )
            .await,
            Err(GatewayError::Dpop(DpopError::BearerForBoundWrit))
        ));
        assert!(matches!(
            possession(
                &f.gw,
                &parts(&[]),
                &presented(&format!("DPoP {text}")),
                &writ
            )
            .await,
            Err(GatewayError::Dpop(DpopError::Missing))
        ));
    }
}
