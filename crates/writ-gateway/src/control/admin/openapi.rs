//! The admin API's OpenAPI 3.1 document, generated from the handlers' route documents
//! and their request and answer types, served at `GET /admin/v1/openapi.json`.

use std::sync::LazyLock;

use axum::Json;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::schema::{ErrorBody, refusal};
use super::{
    admins, agents, approvals, approvers, audit, credentials, keys, limits, policies, revocations,
    tenants, unlock, upstreams, usage,
};

/// The document, with the bearer scheme admin writs are presented under (`writ`).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "writ admin API",
        description = "Manage a writ gateway: tenants, agents, upstreams, credentials, \
            policies, limits, approvers and approvals, console admins and their enrolment links, revocations, root keys, usage, audit records and detections. Every route but this document's takes an admin writ (a writ \
            holding a `writ:admin` grant) as `Authorization: Bearer <writ>`; a writ whose \
            grant names one tenant acts on that tenant only. The approval routes also take an \
            approver token (`Authorization: Bearer wap_…`), for its tenant's approvals. Refusals carry \
            `{\"error\":{\"message\",\"type\",\"code\",\"param\"}}`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        revocations::post,
        revocations::list,
        revocations::lift,
        keys::rotate,
        keys::reload,
        keys::retire,
        unlock::unlock_client,
        usage::calls,
        usage::counters,
        audit::records,
        audit::detections,
        tenants::list,
        tenants::create,
        tenants::get,
        tenants::delete,
        agents::list,
        agents::create,
        agents::get,
        agents::update,
        agents::delete,
        policies::list,
        policies::put,
        policies::get,
        policies::delete,
        limits::list,
        limits::put,
        limits::get,
        limits::delete,
        upstreams::list_shared,
        upstreams::create_shared,
        upstreams::get_shared,
        upstreams::update_shared,
        upstreams::delete_shared,
        upstreams::list_tenant,
        upstreams::create_tenant,
        upstreams::get_tenant,
        upstreams::update_tenant,
        upstreams::delete_tenant,
        credentials::list,
        credentials::add,
        credentials::activate,
        credentials::retire,
        credentials::rewrap,
        approvers::create,
        approvers::list,
        approvers::delete,
        approvers::enrol,
        admins::create_every,
        admins::list_every,
        admins::delete_every,
        admins::enrol_every,
        admins::create_tenant,
        admins::list_tenant,
        admins::delete_tenant,
        admins::enrol_tenant,
        approvals::list,
        approvals::get,
        approvals::approve,
        approvals::deny,
        document,
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerWrit),
    tags(
        (name = "revocations", description = "Cut writs off, and lift agent and tenant revocations."),
        (name = "keys", description = "The root keys writs are signed with."),
        (name = "clients", description = "Token endpoint clients."),
        (name = "usage", description = "What calls consumed, and the limit counters."),
        (name = "audit", description = "The audit log and the detections in it."),
        (name = "tenants", description = "Tenants: what agents, upstreams, credentials, policies and limits belong to."),
        (name = "agents", description = "A tenant's agents: who may be issued writs, and the most they may hold."),
        (name = "policies", description = "A tenant's Datalog checks, applied to each of its requests."),
        (name = "limits", description = "A tenant's limits: `[[limit]]` tables applying to it alone."),
        (name = "upstreams", description = "Upstreams created through the API: shared, or a tenant's own."),
        (name = "credentials", description = "A tenant's secrets for upstreams: write-only, versioned, sealed in the vault."),
        (name = "approvals", description = "Requests held for a person's approval, their decision, and the approvers who decide them."),
        (name = "console", description = "The people who sign in to the console as admins with a passkey, and their one-time enrolment links."),
        (name = "meta", description = "This document."),
    )
)]
pub(crate) struct AdminApi;

/// Adds the `writ` security scheme: an admin writ as a bearer token.
struct BearerWrit;

impl Modify for BearerWrit {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "writ",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("writ")
                    .description(Some(
                        "An admin writ (`writ_…`, holding a `writ:admin` grant).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "approver",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("wap")
                    .description(Some(
                        "An approver token (`wap_…`), for the approval routes of its tenant.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document, built once.
static DOCUMENT: LazyLock<serde_json::Value> = LazyLock::new(|| {
    serde_json::to_value(AdminApi::openapi()).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the admin API document does not serialize");
        serde_json::Value::Null
    })
});

/// This OpenAPI 3.1 document. No writ needed: it holds no secret.
#[utoipa::path(
    get,
    path = "/admin/v1/openapi.json",
    tag = "meta",
    security(()),
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of the admin API.",
            body = Object, content_type = "application/json"),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
    )
)]
pub(super) async fn document() -> Response {
    Json(&*DOCUMENT).into_response()
}

#[cfg(test)]
mod tests {
    use super::AdminApi;
    use utoipa::OpenApi;

    /// Every admin route is in the document, each authenticated one under the bearer
    /// scheme and answering the error body for its refusals.
    #[test]
    fn the_document_covers_every_admin_route() {
        let doc = serde_json::to_value(AdminApi::openapi()).expect("serializes");
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().expect("paths");
        // Every path the router serves under /admin/v1 is documented, and no other.
        let router = include_str!("../admin.rs");
        let served: std::collections::BTreeSet<&str> = router
            .split('"')
            .filter(|s| s.starts_with("/admin/v1/"))
            .collect();
        let documented: std::collections::BTreeSet<&str> =
            paths.keys().map(String::as_str).collect();
        assert_eq!(served, documented);
        assert!(served.len() >= 27, "{served:?}");
        assert_eq!(
            doc["components"]["securitySchemes"]["writ"]["scheme"],
            "bearer"
        );
        for (path, item) in paths {
            for (method, op) in item.as_object().expect("path item") {
                let responses = op["responses"].as_object().expect("responses");
                if path != "/admin/v1/openapi.json" {
                    assert_eq!(
                        op["security"][0]["writ"],
                        serde_json::json!([]),
                        "{method} {path}"
                    );
                    assert!(
                        responses.contains_key("401"),
                        "{method} {path} documents 401"
                    );
                }
                assert!(
                    responses.contains_key("403"),
                    "{method} {path} documents 403"
                );
                for (status, response) in responses {
                    if status.starts_with('4') || status.starts_with('5') {
                        assert_eq!(
                            response["content"]["application/json"]["schema"]["$ref"],
                            "#/components/schemas/ErrorBody",
                            "{method} {path} {status}"
                        );
                    }
                }
            }
        }
    }
}
