//! Tenant policies: the operator's Datalog checks on every data-plane request of a tenant,
//! applied on top of the writ's own (issue 22). The policies are compiled once per snapshot
//! of the tenant's state; here they are only checked.

use std::time::SystemTime;

use writ_token::{OperatorPolicy, RequestFacts};

use crate::error::{GatewayError, PolicyRefusal};

/// Checks `facts` against the tenant's policies at `now`: `Ok` when the tenant has none or
/// every check passes, otherwise a 403 `denied_by_policy` naming the policy, its failed
/// check and who can change it. A policy too costly to evaluate for the request, or whose
/// evaluation hits a run limit, denies (fail closed). Costs nothing for a tenant without
/// policies.
pub(crate) fn check(
    policy: Option<&OperatorPolicy>,
    facts: &RequestFacts,
    now: SystemTime,
) -> Result<(), GatewayError> {
    let Some(policy) = policy else {
        return Ok(());
    };
    policy.check(facts, now).map_err(|denial| {
        GatewayError::DeniedByPolicy(Box::new(PolicyRefusal {
            denial,
            tenant: policy.tenant().map(str::to_string),
        }))
    })
}

/// Checks `facts` against the policies `tenant` holds in `snapshot`, the request's (see
/// [`check`]). Policies that could not be compiled refuse every request of the tenant
/// (fail closed) until a tenant admin fixes them.
pub(crate) fn check_tenant(
    gw: &crate::gateway::Gateway,
    snapshot: &crate::tenancy::Snapshot,
    tenant: &str,
    facts: &RequestFacts,
) -> Result<(), GatewayError> {
    match snapshot.policy(tenant) {
        None => Ok(()),
        Some(Ok(policy)) => check(Some(policy), facts, gw.clock.now()),
        Some(Err(_)) => Err(GatewayError::Internal(
            "this tenant's policies could not be compiled; a tenant admin can list and fix \
             them: `writ policy list --tenant <tenant>`",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use writ_token::Api;

    fn chat(model: &str) -> RequestFacts {
        let mut f = RequestFacts::new(Api::Llm, "chat", "POST", "/v1/chat/completions");
        f.upstream = Some("openai".to_string());
        f.model = Some(model.to_string());
        f
    }

    /// 2026-12-06T00:00:00Z.
    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_796_515_200)
    }

    fn no_gpt4() -> OperatorPolicy {
        OperatorPolicy::compile(&[("no-gpt4", "reject if model(\"gpt-4\");")])
            .expect("policy compiles")
            .with_tenant("acme")
    }

    #[test]
    fn no_policy_and_a_passing_policy_allow() {
        let now = now();
        assert!(check(None, &chat("gpt-4"), now).is_ok());
        assert!(check(Some(&no_gpt4()), &chat("gpt-4o-mini"), now).is_ok());
    }

    #[tokio::test]
    async fn a_failed_check_is_a_403_naming_the_policy_and_who_can_change_it() {
        let error =
            check(Some(&no_gpt4()), &chat("gpt-4"), now()).expect_err("the policy denies gpt-4");
        let class = error.classify();
        assert_eq!(
            (class.status, class.kind, class.code),
            (
                StatusCode::FORBIDDEN,
                "permission_error",
                "denied_by_policy"
            )
        );
        let response = axum::response::IntoResponse::into_response(error);
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
            .await
            .expect("body");
        let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON body");
        assert_eq!(body["error"]["type"], "permission_error");
        assert_eq!(body["error"]["code"], "denied_by_policy");
        assert_eq!(
            body["error"]["message"],
            "Denied by tenant policy `no-gpt4`: reject if model(\"gpt-4\"); a tenant admin can \
             change it: `writ policy show no-gpt4 --tenant acme`."
        );
    }

    #[test]
    fn a_denial_no_one_policy_is_to_blame_for_points_to_the_list() {
        let refusal = PolicyRefusal {
            denial: writ_token::PolicyDenial::RunLimit,
            tenant: Some("acme".to_string()),
        };
        let message = GatewayError::DeniedByPolicy(Box::new(refusal)).to_string();
        assert!(
            message.contains("fail closed")
                && message.ends_with("`writ policy list --tenant acme`"),
            "{message}"
        );
    }
}
