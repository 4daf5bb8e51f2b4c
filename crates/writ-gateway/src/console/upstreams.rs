//! The upstreams pages: each upstream a tenant can use (declared in `writ.toml`, shared
//! through the admin API, or the tenant's own) with its kind, base URL, how its credential
//! is injected, and the credential's versions by fingerprint — which is active, when each
//! was added, activated and retired. Never a secret: only fingerprints (the first 8 hex
//! digits of a SHA-256) leave the vault. Admins only; a tenant's admin reaches their own
//! tenant only.

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::HeaderMap;
use writ_providers::Provider;
use writ_store::CredentialVersion;

use super::refusal::Refusal;
use super::state::Console;
use super::view::{Frame, html, inert, rfc3339};
use crate::error::Unavailable;
use crate::tenancy::Resolved;

/// The operator's list of tenants, each linking to its upstreams.
#[derive(Template)]
#[template(path = "console/upstreams_index.html")]
struct UpstreamTenantsPage {
    frame: Frame,
    tenants: Vec<String>,
}

/// A tenant's upstreams.
#[derive(Template)]
#[template(path = "console/upstreams.html")]
struct UpstreamsPage {
    frame: Frame,
    tenant: String,
    upstreams: Vec<UpstreamItem>,
}

/// One upstream as a tenant sees it. Every text is the gateway's own, a valid name or a
/// parsed URL, except `problem` and the versions' `by` (made inert).
struct UpstreamItem {
    name: String,
    /// `openai`, `mcp`, …
    kind: String,
    /// Where it is defined: `writ.toml`, shared, or this tenant's own.
    origin: &'static str,
    /// Where requests go; empty when it cannot serve this tenant now.
    base_url: String,
    /// How the credential reaches it, in words.
    injection: String,
    /// Why it cannot serve this tenant now, when it cannot.
    problem: Option<String>,
    /// The credential `writ.toml` holds for it, by fingerprint, when that one is in use.
    file_credential: Option<String>,
    /// The tenant's stored versions, newest first.
    versions: Vec<VersionItem>,
}

/// One stored credential version.
struct VersionItem {
    version: u32,
    fingerprint: String,
    /// `active`, `retired` or `kept` (neither: a roll back away).
    state: &'static str,
    added: String,
    activated: String,
    retired: String,
    /// Who added it.
    by: String,
}

/// The path of a tenant's upstreams page.
fn upstreams_path(tenant: &str) -> String {
    format!("/console/tenants/{tenant}/upstreams")
}

/// `GET /console/upstreams`: a tenant's admin goes to their tenant's upstreams; the
/// operator picks a tenant.
pub(crate) async fn index(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let outcome = async {
        let session = console.admin_page_session(&headers).await?;
        if let Some(tenant) = &session.tenant {
            return Ok(Redirect::to(&upstreams_path(tenant)).into_response());
        }
        let tenants = console.tenant_names().await?;
        Ok::<_, Refusal>(html(UpstreamTenantsPage {
            frame: Frame::signed_in("Upstreams", &session),
            tenants,
        }))
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /console/tenants/{tenant}/upstreams`: every upstream the tenant can use, with
/// its credential's fingerprints.
pub(crate) async fn list(
    State(console): State<Arc<Console>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    let outcome = async {
        let session = console.admin_page_session(&headers).await?;
        if !(crate::config::valid_name(&tenant) && session.reaches(&tenant)) {
            return Err(Refusal::NotFound);
        }
        let upstreams = tenant_upstreams(&console, &tenant).await?;
        Ok::<_, Refusal>(html(UpstreamsPage {
            frame: Frame::signed_in("Upstreams", &session),
            tenant,
            upstreams,
        }))
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// Every upstream `tenant` can use, by name.
async fn tenant_upstreams(console: &Console, tenant: &str) -> Result<Vec<UpstreamItem>, Refusal> {
    let gw = &console.gw;
    let store = gw.store();
    let mut origins: BTreeMap<String, (&'static str, Option<String>)> = BTreeMap::new();
    for (name, kind) in gw.upstreams() {
        origins.insert(
            name.to_string(),
            ("writ.toml", Some(kind.as_str().to_string())),
        );
    }
    for record in store.upstreams(None).await? {
        origins.insert(record.name, ("shared", Some(record.kind)));
    }
    for record in store.upstreams(Some(tenant)).await? {
        origins.insert(record.name, ("this tenant's own", Some(record.kind)));
    }
    let mut versions: BTreeMap<String, Vec<CredentialVersion>> = BTreeMap::new();
    for version in store.tenant_credentials(tenant).await? {
        versions
            .entry(version.upstream.clone())
            .or_default()
            .push(version);
    }
    let snapshot = gw.tenancy.snapshot();
    let mut items = Vec::with_capacity(origins.len());
    for (name, (origin, kind)) in origins {
        let mut item = UpstreamItem {
            kind: kind.unwrap_or_default(),
            origin,
            base_url: String::new(),
            injection: String::new(),
            problem: None,
            file_credential: None,
            versions: versions
                .remove(&name)
                .unwrap_or_default()
                .into_iter()
                .rev()
                .map(version_item)
                .collect(),
            name,
        };
        match snapshot.resolve(tenant, &item.name) {
            Resolved::Upstream(upstream) => {
                item.kind = upstream.provider.kind().as_str().to_string();
                // A server the gateway starts has no URL (its `base` is a placeholder).
                if upstream.provider.launch().is_none() {
                    item.base_url = upstream.base.clone();
                }
                item.injection = injection(&upstream.provider);
                if upstream.tenant_credential.is_none() {
                    let prints: Vec<String> = upstream
                        .provider
                        .secrets()
                        .iter()
                        .map(writ_providers::UpstreamSecret::fingerprint)
                        .collect();
                    item.file_credential = Some(if prints.is_empty() {
                        "none".to_string()
                    } else {
                        prints.join(", ")
                    });
                }
            }
            Resolved::Unavailable(why) => {
                item.problem = Some(inert(&match why {
                    Unavailable::NoCredential => format!(
                        "no credential is stored for this tenant: add one with \
                         `writ secret set {} --tenant {tenant}`",
                        item.name
                    ),
                    Unavailable::Invalid(reason) => reason,
                }));
            }
            Resolved::Unknown => continue,
        }
        items.push(item);
    }
    Ok(items)
}

fn version_item(v: CredentialVersion) -> VersionItem {
    let when = |t: Option<u64>| t.map(rfc3339).unwrap_or_default();
    VersionItem {
        version: v.version,
        state: if v.active {
            "active"
        } else if v.retired_at.is_some() {
            "retired"
        } else {
            "kept"
        },
        added: rfc3339(v.created_at),
        activated: when(v.activated_at),
        retired: when(v.retired_at),
        by: v.created_by.as_deref().map(inert).unwrap_or_default(),
        fingerprint: v.fingerprint,
    }
}

/// How `provider`'s credential reaches the upstream, in words: which headers or query
/// parameter carry it, or how requests are signed. Names only, never a value.
fn injection(provider: &Provider) -> String {
    let headers: Vec<&str> = provider
        .credential_headers()
        .iter()
        .map(|(name, _)| name.as_str())
        .collect();
    if !headers.is_empty() {
        return format!("in the {} header", headers.join(" and "));
    }
    if let Some((prefix, _)) = provider.credential_param() {
        return format!("in the {} query parameter", prefix.trim_end_matches('='));
    }
    if provider.access_token_account().is_some() {
        return "an access token from its service account, in the authorization header".to_string();
    }
    if provider.launch().is_some() {
        return "in the environment of the server the gateway starts".to_string();
    }
    if provider.kind() == writ_providers::ProviderKind::Bedrock {
        return "an AWS SigV4 signature of each request".to_string();
    }
    "none: requests go without a credential".to_string()
}
