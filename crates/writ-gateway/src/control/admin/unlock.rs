//! The unlock handler of the admin API: clears a client id's failed authentications and
//! lock-outs at the token endpoint.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::schema::{ErrorBody, refusal};
use super::{admin, read_json};
use crate::detect::brute_force;
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::pipeline::{authenticate, extract};

/// Body of `POST /admin/v1/unlock`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Unlock {
    /// The client id as the token endpoint sees it (`agent` or `tenant/agent`).
    #[schema(min_length = 1, max_length = 257)]
    client_id: String,
    /// An address whose own count to clear too (admins of every tenant only).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = "ip")]
    address: Option<std::net::IpAddr>,
}

/// What an unlock cleared.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Unlocked {
    /// The client id unlocked.
    unlocked: String,
    /// How many addresses it had failed from (their counts for it are cleared).
    addresses: usize,
}

/// Clears a client id's failed authentications and lock-outs at the token endpoint, from
/// every address, on every instance sharing the limiter backend. Audited. An admin of the
/// client's tenant may; clearing an address's own count takes an admin of every tenant.
#[utoipa::path(
    post,
    path = "/admin/v1/unlock",
    tag = "clients",
    security(("writ" = [])),
    request_body = Unlock,
    responses(
        (status = 200, description = "The client is unlocked.", body = Unlocked),
        (status = 400, description = refusal::INVALID, body = ErrorBody),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 413, description = refusal::TOO_LARGE, body = ErrorBody),
        (status = 415, description = refusal::NOT_JSON, body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn unlock_client(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let outcome = async {
        // Authenticate before reading the body; authorize once it names the tenant.
        let presented = extract::writ(&parts.headers)?;
        authenticate::verify(&gw, &presented)?;
        let Unlock { client_id, address } = read_json(&parts, body).await?;
        if client_id.is_empty() || client_id.len() > 257 || client_id.chars().any(char::is_control)
        {
            return Err(GatewayError::InvalidRequest {
                reason: "client_id must be 1 to 257 characters, without control characters"
                    .to_string(),
            });
        }
        let tenant = client_id
            .split_once('/')
            .map_or(gw.tenant.as_str(), |(tenant, _)| tenant);
        let by = admin(&gw, &parts, Some(tenant)).await?;
        // An address's count covers every tenant's clients tried from it: only an admin of
        // every tenant clears it along with the client's.
        let every_tenant = match (admin(&gw, &parts, None).await, address) {
            (Err(e), Some(_)) => return Err(e),
            (every, _) => every.is_ok(),
        };
        let addresses = brute_force::strikes_unlock_client(&gw, &client_id, every_tenant, address)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "unlock: limit backend unavailable");
                GatewayError::LimiterUnavailable
            })?;
        let mut record = crate::audit::record_at(writ_audit::Kind::AdminChange, gw.clock.now());
        record.tenant = Some(tenant.to_string());
        record.agent = Some(by.agent().to_string());
        record.operation = Some("unlock_client".to_string());
        record.status = Some(200);
        let mut detail = serde_json::Map::new();
        detail.insert("client_id".into(), json!(client_id));
        // Addresses are pseudonymized as in every record (when so configured).
        let from: Vec<String> = addresses
            .iter()
            .filter_map(|ip| gw.audit.client_pseudonym(*ip))
            .collect();
        detail.insert("addresses".into(), json!(from));
        record.detail = Some(detail);
        gw.audit.record(record).await;
        tracing::warn!(
            admin = by.agent(),
            client_id,
            addresses = addresses.len(),
            "client unlocked"
        );
        Ok::<_, GatewayError>(
            Json(Unlocked {
                addresses: addresses.len(),
                unlocked: client_id,
            })
            .into_response(),
        )
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}
