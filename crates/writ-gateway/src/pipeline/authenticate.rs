//! Authenticate: verify the writ's signatures once, then serve it from the cache.

use std::sync::Arc;

use writ_token::{VerifiedWrit, WritError};

use crate::dpop;
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::pipeline::extract::PresentedWrit;
use crate::writ_cache::WritCache;

/// The verified writ for the presented text.
pub(crate) fn verify(
    gw: &Gateway,
    presented: &PresentedWrit,
) -> Result<Arc<VerifiedWrit>, GatewayError> {
    // Size and prefix first: an oversized credential is never hashed or parsed.
    let unverified = writ_token::decode(presented.as_str())?;
    let key = WritCache::key(presented.as_str());
    let verified = match gw.writs.get(&key, gw.clock.now()) {
        Some(hit) => hit,
        None => {
            let verified = Arc::new(unverified.verify(&gw.keys().trusted)?);
            gw.writs.insert(key, verified.clone(), gw.clock.now());
            verified
        }
    };
    // Checked on every request, cached or not: a revocation applies to the next request.
    if gw.is_revoked(&verified) {
        return Err(WritError::Revoked.into());
    }
    Ok(verified)
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

/// Checks a DPoP proof when one is sent, and demands one when the writ is bound to a key.
/// Returns the proven key's thumbprint, stated to the authorizer as `dpop_jkt(..)` so a
/// holder can also bind a writ offline with `check if dpop_jkt("…")`.
pub(crate) async fn possession(
    gw: &Gateway,
    parts: &http::request::Parts,
    presented: &PresentedWrit,
    writ: &VerifiedWrit,
) -> Result<Option<String>, GatewayError> {
    let mut proofs = parts.headers.get_all("dpop").iter();
    let proof = match (proofs.next(), proofs.next()) {
        (None, _) => None,
        (Some(p), None) => Some(p.to_str().map_err(|_| GatewayError::Dpop {
            reason: "DPoP header is not text",
        })?),
        (Some(_), Some(_)) => {
            return Err(GatewayError::Dpop {
                reason: "send exactly one DPoP proof",
            });
        }
    };
    let bound = writ.claims().cnf_jkt.as_deref();
    if bound.is_some() && !presented.dpop_scheme {
        return Err(GatewayError::Dpop {
            reason: "this writ is bound to a key: send it as Authorization: DPoP with a DPoP proof",
        });
    }
    let Some(proof) = proof else {
        return match bound {
            Some(_) => Err(GatewayError::Dpop {
                reason: "this writ is bound to a key: a DPoP proof is required",
            }),
            None => Ok(None),
        };
    };
    let url = format!("{}{}", gw.issuer(), parts.uri.path());
    let expected = dpop::Expected {
        method: parts.method.as_str(),
        url: &url,
        access_token: Some(presented.as_str()),
        now: gw.clock.now(),
    };
    let jkt = dpop::verify_once(proof, &expected, &gw.replay)
        .await
        .map_err(|e| match e {
            dpop::Refusal::Invalid(e) => GatewayError::Dpop { reason: e.0 },
            dpop::Refusal::ReplayUnavailable => GatewayError::LimiterUnavailable,
        })?;
    if bound.is_some_and(|b| b != jkt) {
        return Err(GatewayError::Dpop {
            reason: "the DPoP proof is signed by another key than the writ is bound to",
        });
    }
    Ok(Some(jkt))
}
