//! The agent handlers of the admin API: a tenant's agents, their ceilings, lifetimes and
//! credentials (public keys; a client secret generated here and shown once).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use writ_store::{Agent, AgentCredentials, AgentKey, StoreError};
use writ_token::Grant;

use super::schema::{ErrorBody, refusal};
use super::{admin, apply, check_name, read_json, record_admin_change, tenant_admin};
use crate::error::GatewayError;
use crate::gateway::Gateway;

/// Most public keys one agent holds.
const MAX_KEYS: usize = 8;

/// An agent as the API shows it: never its secret or the secret's hash.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AgentView {
    /// Its tenant.
    tenant: String,
    /// Its name.
    name: String,
    /// The most any writ issued to it may grant.
    #[schema(value_type = Vec<Object>)]
    ceiling: Vec<Grant>,
    /// Longest lifetime of its writs, in seconds.
    max_ttl_secs: u64,
    /// Keys it signs client assertions with.
    public_keys: Vec<KeyView>,
    /// Whether it has a client secret.
    has_secret: bool,
    /// The client secret, in the answer that generated it only: store it now.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
}

/// A public key of an agent.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct KeyView {
    /// RFC 7638 thumbprint.
    thumbprint: String,
    /// `EdDSA` or `ES256`.
    alg: String,
}

/// A tenant's agents.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AgentList {
    /// By name.
    agents: Vec<AgentView>,
}

/// Body of `POST /admin/v1/tenants/{tenant}/agents`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewAgent {
    /// 1 to 64 characters of `A-Z a-z 0-9 _ . -`, unique in the tenant.
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,64}$")]
    name: String,
    /// Grants (`writ:llm`, `writ:tool`, …) bounding every writ issued to it.
    #[schema(value_type = Vec<Object>)]
    ceiling: Vec<serde_json::Value>,
    /// Longest lifetime of its writs: 1 to the gateway's `tokens.max_ttl` (the default).
    #[serde(default)]
    #[schema(minimum = 1)]
    max_ttl_secs: Option<u64>,
    /// Public keys (SubjectPublicKeyInfo PEM, Ed25519 or P-256) for `private_key_jwt`.
    #[serde(default)]
    #[schema(max_items = 8)]
    public_keys: Vec<String>,
    /// Generate a client secret, returned once in the answer.
    #[serde(default)]
    generate_secret: bool,
}

/// Body of `PUT /admin/v1/tenants/{tenant}/agents/{agent}`: what to change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AgentChange {
    /// A new ceiling.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    ceiling: Option<Vec<serde_json::Value>>,
    /// A new longest lifetime, in seconds.
    #[serde(default)]
    #[schema(minimum = 1)]
    max_ttl_secs: Option<u64>,
}

fn view(agent: &Agent, client_secret: Option<String>) -> AgentView {
    AgentView {
        tenant: agent.tenant.clone(),
        name: agent.name.clone(),
        ceiling: agent.ceiling.clone(),
        max_ttl_secs: agent.max_ttl.as_secs(),
        public_keys: agent
            .credentials
            .public_keys
            .iter()
            .map(|k| KeyView {
                thumbprint: k.thumbprint().unwrap_or_default(),
                alg: k.alg.clone(),
            })
            .collect(),
        has_secret: agent.credentials.secret_hash.is_some(),
        client_secret,
    }
}

fn invalid(reason: impl Into<String>) -> GatewayError {
    GatewayError::InvalidRequest {
        reason: reason.into(),
    }
}

/// The ceiling's grants, checked as the token endpoint reads them.
fn ceiling(grants: Vec<serde_json::Value>) -> Result<Vec<Grant>, GatewayError> {
    if grants.is_empty() {
        return Err(invalid(
            "ceiling must hold at least one grant, such as {\"type\": \"writ:llm\", \"upstream\": \"openai\"}",
        ));
    }
    let text = serde_json::Value::Array(grants).to_string();
    writ_token::parse_grants(&text).map_err(|e| invalid(format!("ceiling: {e}")))
}

/// Refuses a ceiling that would let the agent administer more than its tenant, unless the
/// caller administers every tenant: a tenant's admin cannot mint itself a wider one.
async fn check_admin_grants(
    gw: &Gateway,
    parts: &http::request::Parts,
    tenant: &str,
    ceiling: &[Grant],
) -> Result<(), GatewayError> {
    let wider = ceiling.iter().any(|g| match g {
        Grant::Admin(a) => a.tenant.as_deref() != Some(tenant),
        _ => false,
    });
    if wider && admin(gw, parts, None).await.is_err() {
        return Err(GatewayError::InvalidRequest {
            reason: format!(
                "ceiling: a writ:admin grant of this tenant's agent must name \
                 \"tenant\": \"{tenant}\"; only an admin of every tenant may give wider ones"
            ),
        });
    }
    Ok(())
}

fn max_ttl(gw: &Gateway, secs: Option<u64>) -> Result<Duration, GatewayError> {
    match secs {
        None => Ok(gw.max_ttl),
        Some(s) if s >= 1 && s <= gw.max_ttl.as_secs() => Ok(Duration::from_secs(s)),
        Some(_) => Err(invalid(format!(
            "max_ttl_secs must be 1 to the gateway's tokens.max_ttl ({}s)",
            gw.max_ttl.as_secs()
        ))),
    }
}

fn not_found(tenant: &str, agent: &str) -> GatewayError {
    StoreError::NotFound {
        what: "agent",
        name: format!("{tenant}/{agent}"),
    }
    .into()
}

fn detail(tenant: &str, agent: &str) -> serde_json::Map<String, serde_json::Value> {
    let mut detail = serde_json::Map::new();
    detail.insert("tenant".into(), json!(tenant));
    detail.insert("agent".into(), json!(agent));
    detail
}

/// A tenant's agents.
#[utoipa::path(
    get,
    path = "/admin/v1/tenants/{tenant}/agents",
    tag = "agents",
    security(("writ" = [])),
    params(("tenant" = String, Path, description = "The tenant's name.", example = "acme")),
    responses(
        (status = 200, description = "The agents.", body = AgentList),
        (status = 400, description = refusal::INVALID, body = ErrorBody),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "No tenant of this name.", body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn list(
    State(gw): State<Arc<Gateway>>,
    Path(tenant): Path<String>,
    req: Request,
) -> Response {
    let (parts, _) = req.into_parts();
    let outcome = async {
        tenant_admin(&gw, &parts, &tenant).await?;
        let agents = gw.store().agents(&tenant).await?;
        let agents = agents.iter().map(|a| view(a, None)).collect();
        Ok::<_, GatewayError>(Json(AgentList { agents }).into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// Registers an agent in the tenant.
#[utoipa::path(
    post,
    path = "/admin/v1/tenants/{tenant}/agents",
    tag = "agents",
    security(("writ" = [])),
    params(("tenant" = String, Path, description = "The tenant's name.", example = "acme")),
    request_body = NewAgent,
    responses(
        (status = 201, description = "The agent, with its client secret when one was \
            generated (shown this once).", body = AgentView),
        (status = 400, description = refusal::INVALID, body = ErrorBody),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "No tenant of this name.", body = ErrorBody),
        (status = 409, description = "An agent of this name exists in the tenant.", body = ErrorBody),
        (status = 413, description = refusal::TOO_LARGE, body = ErrorBody),
        (status = 415, description = refusal::NOT_JSON, body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn create(
    State(gw): State<Arc<Gateway>>,
    Path(tenant): Path<String>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let outcome = async {
        let by = tenant_admin(&gw, &parts, &tenant).await?;
        let new: NewAgent = read_json(&parts, body).await?;
        check_name("name", &new.name)?;
        if new.public_keys.len() > MAX_KEYS {
            return Err(invalid(format!("at most {MAX_KEYS} public_keys")));
        }
        let public_keys = new
            .public_keys
            .iter()
            .map(|pem| AgentKey::from_pem(pem).map_err(|e| invalid(format!("public_keys: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let (secret, secret_hash) = if new.generate_secret {
            let (secret, hash) = writ_store::new_client_secret();
            (Some(secret), Some(hash))
        } else {
            (None, None)
        };
        if public_keys.is_empty() && secret_hash.is_none() {
            return Err(invalid(
                "an agent needs a way to authenticate: give public_keys, or set generate_secret",
            ));
        }
        let grants = ceiling(new.ceiling)?;
        check_admin_grants(&gw, &parts, &tenant, &grants).await?;
        let agent = Agent {
            tenant: tenant.clone(),
            name: new.name,
            ceiling: grants,
            max_ttl: max_ttl(&gw, new.max_ttl_secs)?,
            credentials: AgentCredentials {
                public_keys,
                secret_hash,
            },
        };
        if !gw.store().insert_agent(&agent).await? {
            return Err(StoreError::Conflict {
                what: "agent",
                name: agent.name.clone(),
            }
            .into());
        }
        apply(&gw).await;
        record_admin_change(
            &gw,
            &by,
            "create_agent",
            StatusCode::CREATED,
            detail(&tenant, &agent.name),
        )
        .await;
        Ok::<_, GatewayError>((StatusCode::CREATED, Json(view(&agent, secret))).into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// One agent.
#[utoipa::path(
    get,
    path = "/admin/v1/tenants/{tenant}/agents/{agent}",
    tag = "agents",
    security(("writ" = [])),
    params(
        ("tenant" = String, Path, description = "The tenant's name.", example = "acme"),
        ("agent" = String, Path, description = "The agent's name.", example = "planner"),
    ),
    responses(
        (status = 200, description = "The agent.", body = AgentView),
        (status = 400, description = refusal::INVALID, body = ErrorBody),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "No such tenant or agent.", body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn get(
    State(gw): State<Arc<Gateway>>,
    Path((tenant, name)): Path<(String, String)>,
    req: Request,
) -> Response {
    let (parts, _) = req.into_parts();
    let outcome = async {
        tenant_admin(&gw, &parts, &tenant).await?;
        let agent = gw
            .store()
            .agent(&tenant, &name)
            .await?
            .ok_or_else(|| not_found(&tenant, &name))?;
        Ok::<_, GatewayError>(Json(view(&agent, None)).into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// Changes an agent's ceiling or longest writ lifetime. Writs already issued keep what
/// they hold until they expire (revoke them to cut them off).
#[utoipa::path(
    put,
    path = "/admin/v1/tenants/{tenant}/agents/{agent}",
    tag = "agents",
    security(("writ" = [])),
    params(
        ("tenant" = String, Path, description = "The tenant's name.", example = "acme"),
        ("agent" = String, Path, description = "The agent's name.", example = "planner"),
    ),
    request_body = AgentChange,
    responses(
        (status = 200, description = "The agent as changed.", body = AgentView),
        (status = 400, description = refusal::INVALID, body = ErrorBody),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "No such tenant or agent.", body = ErrorBody),
        (status = 413, description = refusal::TOO_LARGE, body = ErrorBody),
        (status = 415, description = refusal::NOT_JSON, body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn update(
    State(gw): State<Arc<Gateway>>,
    Path((tenant, name)): Path<(String, String)>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let outcome = async {
        let by = tenant_admin(&gw, &parts, &tenant).await?;
        let change: AgentChange = read_json(&parts, body).await?;
        let mut agent = gw
            .store()
            .agent(&tenant, &name)
            .await?
            .ok_or_else(|| not_found(&tenant, &name))?;
        if let Some(grants) = change.ceiling {
            let grants = ceiling(grants)?;
            check_admin_grants(&gw, &parts, &tenant, &grants).await?;
            agent.ceiling = grants;
        }
        if change.max_ttl_secs.is_some() {
            agent.max_ttl = max_ttl(&gw, change.max_ttl_secs)?;
        }
        gw.store().put_agent(&agent).await?;
        apply(&gw).await;
        record_admin_change(
            &gw,
            &by,
            "update_agent",
            StatusCode::OK,
            detail(&tenant, &name),
        )
        .await;
        Ok::<_, GatewayError>(Json(view(&agent, None)).into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// Removes an agent. Writs already issued stay valid until they expire: revoke them
/// (`POST /admin/v1/revocations`, kind `agent`) to cut them off.
#[utoipa::path(
    delete,
    path = "/admin/v1/tenants/{tenant}/agents/{agent}",
    tag = "agents",
    security(("writ" = [])),
    params(
        ("tenant" = String, Path, description = "The tenant's name.", example = "acme"),
        ("agent" = String, Path, description = "The agent's name.", example = "planner"),
    ),
    responses(
        (status = 204, description = "The agent is removed."),
        (status = 400, description = refusal::INVALID, body = ErrorBody),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "No such tenant or agent.", body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn delete(
    State(gw): State<Arc<Gateway>>,
    Path((tenant, name)): Path<(String, String)>,
    req: Request,
) -> Response {
    let (parts, _) = req.into_parts();
    let outcome = async {
        let by = tenant_admin(&gw, &parts, &tenant).await?;
        if !gw.store().remove_agent(&tenant, &name).await? {
            return Err(not_found(&tenant, &name));
        }
        apply(&gw).await;
        record_admin_change(
            &gw,
            &by,
            "delete_agent",
            StatusCode::NO_CONTENT,
            detail(&tenant, &name),
        )
        .await;
        Ok::<_, GatewayError>(StatusCode::NO_CONTENT.into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}
