//! `POST /oauth2/token`: where agents get writs (DESIGN §3).
//!
//! Form-encoded requests; errors in the shape of RFC 6749 §5.2. Two grant types:
//! `client_credentials` (the agent authenticates with `private_key_jwt` or its client
//! secret and asks for grants in `authorization_details`, RFC 9396), and token exchange
//! (RFC 8693: a sub-agent presents a writ as `subject_token` and its own assertion as
//! `actor_token`, and gets a narrower writ).
//!
//! Either may name a `resource` (RFC 8707), an MCP endpoint of this gateway: the writ is
//! then bound to it (its audience) and refused everywhere else. Without
//! `authorization_details`, as MCP's own SDKs ask, a resource implies the agent's ceiling
//! grants for it.
//!
//! A writ the tenant's approval rules hold is not minted: the answer is CIBA's
//! `authorization_pending` with an `auth_req_id`, and the agent polls with the CIBA grant
//! type (OpenID CIBA Core 1.0, poll mode) until a person decides (see [`ciba`]).

mod audience;
mod ciba;
mod client_auth;
mod issue;
mod mint_approval;
mod oauth_error;
mod scope;

pub(crate) use client_auth::{ASSERTION_ALGS, AUTH_METHODS};
pub(crate) use oauth_error::{OAuthError, OAuthErrorCode};

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::header;
use serde::Deserialize;
use serde_json::json;
use writ_store::ApprovalRecord;
use writ_token::{Delegation, Grant, VerifiedWrit, WritError, first_outside, parse_grants};

use self::audience::Resource;
use self::client_auth::Assertion;
use self::issue::{ACCESS_TOKEN_TYPE, audit_mint, issued};
use self::mint_approval::{CIBA_GRANT_TYPE, MintPlan, SubjectRef};

use crate::detect::brute_force;
use crate::gateway::Gateway;
use crate::pipeline::accept;

/// Where the token endpoint is served, under the issuer.
pub(crate) const PATH: &str = "/oauth2/token";
/// Where the authorization endpoint would be, under the issuer: see [`authorize`].
pub(crate) const AUTHORIZE_PATH: &str = "/oauth2/authorize";
const CLIENT_CREDENTIALS: &str = "client_credentials";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The grant types [`token`] accepts, as metadata lists them.
pub(crate) const GRANT_TYPES: [&str; 3] = [CLIENT_CREDENTIALS, TOKEN_EXCHANGE, CIBA_GRANT_TYPE];
const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
/// Largest token request body.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// The token request's parameters. A parameter sent twice is refused (RFC 6749 §3.2).
#[derive(Debug, Default, Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
    authorization_details: Option<String>,
    expires_in: Option<String>,
    subject_token: Option<String>,
    subject_token_type: Option<String>,
    actor_token: Option<String>,
    actor_token_type: Option<String>,
    requested_token_type: Option<String>,
    resource: Option<String>,
    scope: Option<String>,
    auth_req_id: Option<String>,
}

pub(crate) async fn token(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    // Counted as a request being served, as a data-plane one is: while others are, its
    // strict record goes to the writer, which commits concurrent mints' records together.
    let _open = gw.audit.open_request();
    let answer = handle(&gw, req).await;
    let outcome = answer.as_ref().err().map_or("issued", |e| e.code.as_str());
    gw.metrics.mint(outcome);
    answer.unwrap_or_else(IntoResponse::into_response)
}

/// `/oauth2/authorize`: always `unsupported_response_type` (400). Agents authenticate
/// themselves at the token endpoint and no person is asked, so there is no authorization
/// endpoint; it is named in the metadata only because MCP's Python SDK refuses
/// authorization-server metadata without one (RFC 8414 does not require it here).
pub(crate) async fn authorize() -> Response {
    OAuthError::new(
        OAuthErrorCode::UnsupportedResponseType,
        "writ has no authorization endpoint: get a writ at the token endpoint with client_credentials",
    )
    .into_response()
}

async fn handle(gw: &Gateway, req: Request) -> Result<Response, OAuthError> {
    let (parts, body) = req.into_parts();
    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    if parts.uri.query().is_some() {
        return Err(OAuthError::invalid_request(
            "parameters belong in the body, not the URL",
        ));
    }
    accept::check_declared_length(&parts.headers, MAX_FORM_BYTES)
        .map_err(|_| OAuthError::invalid_request("request too large"))?;
    let bytes = accept::read_body(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| OAuthError::invalid_request("request too large or unreadable"))?;
    let form: TokenForm = serde_urlencoded::from_bytes(&bytes)
        .map_err(|e| OAuthError::invalid_request(format!("malformed form: {e}")))?;
    match form.grant_type.as_deref() {
        Some(CLIENT_CREDENTIALS) => client_credentials(gw, &parts, form).await,
        Some(TOKEN_EXCHANGE) => token_exchange(gw, &parts, form).await,
        Some(CIBA_GRANT_TYPE) => ciba_poll(gw, &parts, form).await,
        Some(_) => Err(OAuthError::new(
            OAuthErrorCode::UnsupportedGrantType,
            format!("grant_type must be one of {}", GRANT_TYPES.join(", ")),
        )),
        None => Err(OAuthError::invalid_request("grant_type is required")),
    }
}

/// This endpoint's URL under the issuer: the `htu` of its DPoP proofs, and an `aud` client
/// assertions may name.
fn endpoint_url(gw: &Gateway) -> String {
    format!("{}{PATH}", gw.issuer())
}

/// The client's address (its TCP peer), when the server recorded it.
fn client_ip(req: &http::request::Parts) -> Option<std::net::IpAddr> {
    req.extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_canonical())
}

/// Authenticates the client by exactly one method, under the brute-force guard.
async fn authenticate(
    gw: &Gateway,
    req: &http::request::Parts,
    form: &TokenForm,
) -> Result<Arc<writ_store::Agent>, OAuthError> {
    // An assertion is read once, for the guard's client id and for its verification.
    let assertion = form.client_assertion.as_deref().map(Assertion::read);
    let claimed = claimed_client_id(&req.headers, form, assertion.as_ref());
    let attempt = authenticate_once(gw, req, form, assertion.as_ref());
    let result = guarded(gw, req, claimed.clone(), attempt).await;
    if let Err(e) = &result
        && (e.is_failed_authentication() || e.retry_after.is_some())
    {
        audit_failed_authentication(gw, req, claimed.as_deref(), e).await;
    }
    result
}

/// One `request_denied` record per failed (or throttled) client authentication. The
/// claimed client id is unverified, so it goes in `detail.claimed_client` (cut to 64
/// characters), never in `agent`.
async fn audit_failed_authentication(
    gw: &Gateway,
    req: &http::request::Parts,
    claimed: Option<&str>,
    e: &OAuthError,
) {
    let mut record = crate::audit::record_at(writ_audit::Kind::RequestDenied, gw.clock.now());
    record.client = client_ip(req).and_then(|ip| gw.audit.client_pseudonym(ip));
    record.operation = Some("token".to_string());
    record.status = Some(e.code.status().as_u16());
    record.decision = Some(writ_audit::Decision {
        code: Some(e.code.as_str().to_string()),
        ..Default::default()
    });
    let mut detail = serde_json::Map::new();
    if let Some(id) = claimed {
        let cut: String = id.chars().take(64).collect();
        detail.insert("claimed_client".into(), json!(cut));
    }
    detail.insert("reason".into(), json!(e.description));
    record.detail = Some(detail);
    gw.audit.record(record).await;
}

/// The client id a request claims, before anything is verified: from HTTP Basic, the
/// form, or the `sub` of an assertion.
fn claimed_client_id(
    headers: &http::HeaderMap,
    form: &TokenForm,
    assertion: Option<&Assertion<'_>>,
) -> Option<String> {
    if let Ok(Some((id, _))) = client_auth::basic_credentials(headers) {
        return Some(id);
    }
    if let Some(id) = &form.client_id {
        return Some(id.clone());
    }
    assertion.and_then(Assertion::claimed).map(str::to_string)
}

/// Runs a client authentication under the brute-force guard: refused with 429 while the
/// claimed client id at this address, or the address, is backing off or locked out; a failure is counted
/// against both; a success clears the client id's count.
async fn guarded(
    gw: &Gateway,
    req: &http::request::Parts,
    claimed: Option<String>,
    attempt: impl std::future::Future<Output = Result<Arc<writ_store::Agent>, OAuthError>>,
) -> Result<Arc<writ_store::Agent>, OAuthError> {
    use crate::detect::brute_force::StrikeKey;
    let client = client_ip(req);
    // Ids longer than any real one are counted under one key, so junk cannot grow the
    // backend without bound.
    let claimed = claimed.map(|id| {
        if id.len() > 257 {
            "<overlong>".to_string()
        } else {
            id
        }
    });
    let mut keys = Vec::with_capacity(2);
    if let Some(id) = &claimed {
        keys.push(StrikeKey::Client {
            id: id.clone(),
            from: client,
        });
    }
    if let Some(ip) = client {
        keys.push(StrikeKey::TokenAddress(ip));
    }
    if let Some(throttled) = brute_force::strikes_check(gw, &keys).await {
        // Ignoring the back-off counts as a failure; a lock-out does not grow.
        let throttled = if throttled.locked {
            throttled
        } else {
            brute_force::strikes_record(gw, &keys, "token_endpoint", client)
                .await
                .unwrap_or(throttled)
        };
        return Err(OAuthError::throttled(throttled));
    }
    let result = attempt.await;
    match &result {
        Err(e) if e.is_failed_authentication() => {
            brute_force::strikes_record(gw, &keys, "token_endpoint", client).await;
        }
        Ok(_) => {
            if let Some(id) = claimed {
                brute_force::strikes_clear(gw, &StrikeKey::Client { id, from: client }).await;
            }
        }
        Err(_) => {}
    }
    result
}

/// Authenticates the client by exactly one method.
async fn authenticate_once(
    gw: &Gateway,
    req: &http::request::Parts,
    form: &TokenForm,
    assertion: Option<&Assertion<'_>>,
) -> Result<Arc<writ_store::Agent>, OAuthError> {
    let basic = client_auth::basic_credentials(&req.headers)?;
    let methods = usize::from(basic.is_some())
        + usize::from(form.client_secret.is_some())
        + usize::from(form.client_assertion.is_some());
    if methods > 1 {
        return Err(OAuthError::invalid_request(
            "use exactly one client authentication method",
        ));
    }
    if let Some((id, secret)) = basic {
        if form.client_id.as_ref().is_some_and(|c| *c != id) {
            return Err(OAuthError::invalid_request(
                "client_id does not match the Basic credentials",
            ));
        }
        return client_auth::by_secret(gw, &id, &secret, true).await;
    }
    if let Some(secret) = &form.client_secret {
        let id = form.client_id.as_deref().ok_or_else(|| {
            OAuthError::invalid_request("client_id is required with client_secret")
        })?;
        return client_auth::by_secret(gw, id, secret, false).await;
    }
    if let Some(assertion) = assertion {
        if form.client_assertion_type.as_deref() != Some(client_auth::JWT_BEARER) {
            return Err(OAuthError::invalid_request(format!(
                "client_assertion_type must be {}",
                client_auth::JWT_BEARER
            )));
        }
        let url = endpoint_url(gw);
        return client_auth::by_assertion(
            gw,
            assertion,
            form.client_id.as_deref(),
            client_ip(req),
            &url,
        )
        .await;
    }
    Err(OAuthError::invalid_client(
        "client authentication is required",
        false,
    ))
}

/// The grants to issue to `agent`: those asked for in `authorization_details` (all for
/// `resource`'s upstream when a resource is named, and within the agent's ceiling), or
/// without them the ceiling's grants for `resource`.
fn requested_grants(
    form: &TokenForm,
    agent: &writ_store::Agent,
    resource: Option<&Resource>,
) -> Result<Vec<Grant>, OAuthError> {
    let Some(details) = form.authorization_details.as_deref() else {
        return match resource {
            Some(resource) => audience::ceiling_grants(agent, resource),
            None => Err(OAuthError::invalid_request(
                "authorization_details or resource is required: say which grants you need, or which MCP resource (its URI) the writ is for",
            )),
        };
    };
    let grants = parse_grants(details).map_err(|e| OAuthError::invalid_details(e.to_string()))?;
    if !grants.iter().any(Grant::is_access) {
        return Err(OAuthError::invalid_details(
            "at least one access grant is required",
        ));
    }
    if let Some(resource) = resource {
        audience::grants_for(&grants, resource)?;
    }
    if let Some(i) = first_outside(&grants, &agent.ceiling) {
        return Err(OAuthError::invalid_details(format!(
            "authorization_details[{i}] is beyond what agent `{}` may be granted",
            agent.name
        )));
    }
    Ok(grants)
}

/// The lifetime to issue: `expires_in` if asked (never above `max`), else `max`.
fn lifetime(form: &TokenForm, max: Duration) -> Result<Duration, OAuthError> {
    match form.expires_in.as_deref() {
        None => Ok(max),
        Some(s) => {
            let secs: u64 = s.parse().map_err(|_| {
                OAuthError::invalid_request("expires_in must be a number of seconds")
            })?;
            if secs == 0 || secs > max.as_secs() {
                return Err(OAuthError::invalid_request(format!(
                    "expires_in must be between 1 and {}",
                    max.as_secs()
                )));
            }
            Ok(Duration::from_secs(secs))
        }
    }
}

/// Verifies a DPoP proof sent to the token endpoint (RFC 9449 §5) with `writ-token`'s
/// proof checks, its `jti` recorded in the limiter backend: the writ is then bound to the
/// proof's key. `None` without a proof.
async fn dpop_binding(
    gw: &Gateway,
    headers: &http::HeaderMap,
) -> Result<Option<String>, OAuthError> {
    let proof = crate::pipeline::authenticate::dpop_header(headers)
        .map_err(|e| OAuthError::dpop_refused(e.into()))?;
    let Some(proof) = proof else {
        return Ok(None);
    };
    let url = endpoint_url(gw);
    let expected = writ_token::dpop::Expected {
        method: "POST",
        url: &url,
        access_token: None,
        now: gw.clock.now(),
    };
    writ_token::dpop::check_proof(proof, &expected, &gw.replay)
        .await
        .map(Some)
        .map_err(OAuthError::dpop_refused)
}

/// Refuses an authenticated client whose agent (or tenant) is revoked: it gets no new
/// writ until the revocation is lifted. Checked after authentication, so the answer tells
/// nothing to whoever does not hold the agent's credentials, and outside the brute-force
/// guard, since the credentials were right. The refusal is an audit record.
async fn refuse_revoked(
    gw: &Gateway,
    agent: &writ_store::Agent,
    operation: &str,
) -> Result<(), OAuthError> {
    if !gw.refuses_agent(&agent.tenant, &agent.name) {
        return Ok(());
    }
    tracing::info!(agent = %agent.name, tenant = %agent.tenant, "token request of a revoked agent refused");
    let mut record = crate::audit::record_at(writ_audit::Kind::RequestDenied, gw.clock.now());
    record.tenant = Some(agent.tenant.clone());
    record.agent = Some(agent.name.clone());
    record.operation = Some(operation.to_string());
    record.status = Some(401);
    record.decision = Some(writ_audit::record::Decision {
        check: Some("agent_revoked".to_string()),
        code: Some(OAuthErrorCode::InvalidClient.as_str().to_string()),
        ..Default::default()
    });
    gw.audit.record(record).await;
    Err(OAuthError::invalid_client("agent revoked", false))
}

async fn client_credentials(
    gw: &Gateway,
    req: &http::request::Parts,
    form: TokenForm,
) -> Result<Response, OAuthError> {
    // What is asked for is checked first: naming a resource that does not exist tells
    // nothing the public metadata does not.
    let scope = scope::requested(form.scope.as_deref())?;
    let resource = audience::requested(gw, form.resource.as_deref())?;
    let agent = authenticate(gw, req, &form).await?;
    refuse_revoked(gw, &agent, CLIENT_CREDENTIALS).await?;
    let jkt = dpop_binding(gw, &req.headers).await?;
    let grants = requested_grants(&form, &agent, resource.as_ref())?;
    let ttl = lifetime(&form, agent.max_ttl.min(gw.max_ttl))?;
    let plan = MintPlan {
        grant_type: CLIENT_CREDENTIALS.to_string(),
        tenant: agent.tenant.clone(),
        agent: agent.name.clone(),
        grants,
        ttl_secs: ttl.as_secs(),
        audience: resource.map(|r| r.uri),
        cnf_jkt: jkt,
        scope: scope.map(str::to_string),
        subject: None,
    };
    mint_approval::hold(gw, &plan, None).await?;
    issue::minted(gw, &agent, &plan, None).await
}

async fn token_exchange(
    gw: &Gateway,
    req: &http::request::Parts,
    form: TokenForm,
) -> Result<Response, OAuthError> {
    let scope = scope::requested(form.scope.as_deref())?;
    let resource = audience::requested(gw, form.resource.as_deref())?;
    let subject = form
        .subject_token
        .as_deref()
        .ok_or_else(|| OAuthError::invalid_request("subject_token is required"))?;
    if form.subject_token_type.as_deref() != Some(ACCESS_TOKEN_TYPE) {
        return Err(OAuthError::invalid_request(format!(
            "subject_token_type must be {ACCESS_TOKEN_TYPE}"
        )));
    }
    if form
        .requested_token_type
        .as_deref()
        .is_some_and(|t| t != ACCESS_TOKEN_TYPE)
    {
        return Err(OAuthError::invalid_request(format!(
            "requested_token_type must be {ACCESS_TOKEN_TYPE}"
        )));
    }
    // The actor (the sub-agent) authenticates with its own assertion, as actor_token or as
    // the usual client authentication.
    let actor = match (&form.actor_token, &form.client_assertion) {
        (Some(token), None) => {
            if form.actor_token_type.as_deref() != Some(JWT_TOKEN_TYPE) {
                return Err(OAuthError::invalid_request(format!(
                    "actor_token_type must be {JWT_TOKEN_TYPE}"
                )));
            }
            let token = Assertion::read(token);
            let url = endpoint_url(gw);
            client_auth::by_assertion(gw, &token, form.client_id.as_deref(), client_ip(req), &url)
                .await?
        }
        (None, _) => authenticate(gw, req, &form).await?,
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request(
                "send the actor's assertion once",
            ));
        }
    };
    refuse_revoked(gw, &actor, "token_exchange").await?;
    let grants = requested_grants(&form, &actor, resource.as_ref())?;
    let now = gw.clock.now();
    let keys = gw.keys();
    // The same definition of a valid writ as the data plane's.
    let verified = gw
        .writs
        .check(subject, &keys.trusted, now, gw)
        .map_err(|e| OAuthError::subject_refused(&e))?;
    // A delegated writ keeps its subject's audience: it may add one, never change it.
    let audience = match (&verified.claims().audience, &resource) {
        (Some(current), Some(asked)) if *current != asked.uri => {
            return Err(OAuthError::invalid_target(format!(
                "subject_token is for {current}; a writ delegated from it cannot be for another resource"
            )));
        }
        (Some(current), _) => Some(current.clone()),
        (None, asked) => asked.as_ref().map(|r| r.uri.clone()),
    };
    let ttl = lifetime(&form, actor.max_ttl.min(gw.max_ttl))?;
    let claims = verified.claims();
    let plan = MintPlan {
        grant_type: "token_exchange".to_string(),
        tenant: actor.tenant.clone(),
        agent: actor.name.clone(),
        grants,
        ttl_secs: ttl.as_secs(),
        audience,
        cnf_jkt: claims.cnf_jkt.clone(),
        scope: scope.map(str::to_string),
        subject: Some(SubjectRef::of(
            subject,
            format!("{}/{}", claims.tenant, claims.agent),
        )),
    };
    mint_approval::hold(gw, &plan, Some(verified.claims().expires_at)).await?;
    issue_delegated(gw, &actor, &verified, &plan, None).await
}

/// Delegates the writ `plan` states from `verified` to `actor`; for an approved exchange
/// (`approval`), with the approval block appended and the approval used, once.
async fn issue_delegated(
    gw: &Gateway,
    actor: &writ_store::Agent,
    verified: &VerifiedWrit,
    plan: &MintPlan,
    approval: Option<&ApprovalRecord>,
) -> Result<Response, OAuthError> {
    let now = gw.clock.now();
    let keys = gw.keys();
    let ttl = Duration::from_secs(plan.ttl_secs);
    let writ = verified
        .delegate(&Delegation {
            grants: &plan.grants,
            actor_ceiling: &actor.ceiling,
            delegated_to: &format!("{}/{}", actor.tenant, actor.name),
            expires_at: now + ttl,
            signer: &keys.signing,
            audience: plan.audience.as_deref(),
        })
        .map_err(|e| match e {
            WritError::TooManyBlocks { .. } => OAuthError::invalid_grant(e.to_string()),
            WritError::AudienceConflict { .. } => OAuthError::invalid_target(e.to_string()),
            other => OAuthError::invalid_details(other.to_string()),
        })?;
    let writ = match approval {
        Some(record) => {
            let sealed = ciba::seal(gw, record, &writ)?;
            ciba::use_once(gw, record, &verified.claims().token_id).await?;
            sealed
        }
        None => writ,
    };
    let remaining = verified
        .claims()
        .expires_at
        .duration_since(now)
        .unwrap_or_default();
    tracing::debug!(actor = %actor.name, writ = %gw.audit.pseudonym(&verified.claims().token_id), "writ delegated");
    let detail = json!({
        "grants": plan.grants,
        "ttl_secs": ttl.as_secs(),
        "delegated_from": gw.audit.pseudonym(&verified.claims().token_id),
        "delegator": format!("{}/{}", verified.claims().tenant, verified.claims().agent),
        "resource": plan.audience,
        "approval": approval.map(|r| &r.id),
    });
    audit_mint(
        gw,
        &actor.tenant,
        &actor.name,
        &verified.claims().token_id,
        "token_exchange",
        detail,
    )
    .await?;
    // A delegated writ keeps its subject's binding, if any.
    let bound = verified.claims().cnf_jkt.is_some();
    Ok(issued(
        writ,
        ttl.min(remaining + Duration::from_secs(1)),
        &plan.grants,
        true,
        bound,
        plan.scope.as_deref(),
    ))
}

/// The CIBA poll (`grant_type=urn:openid:params:grant-type:ciba`): the same client as
/// asked, with its `auth_req_id`. Once a person approved, issues the writ held for it,
/// within the agent's ceiling and maximum lifetime as of now (a writ from a token
/// exchange only with the same `subject_token`, still valid, presented again).
async fn ciba_poll(
    gw: &Gateway,
    req: &http::request::Parts,
    form: TokenForm,
) -> Result<Response, OAuthError> {
    let id = ciba::auth_req_id(form.auth_req_id.as_deref())?;
    let agent = authenticate(gw, req, &form).await?;
    refuse_revoked(gw, &agent, "ciba").await?;
    let (record, mut plan) = ciba::approved(gw, &agent, id).await?;
    if let Some(i) = first_outside(&plan.grants, &agent.ceiling) {
        return Err(OAuthError::invalid_grant(format!(
            "the approved authorization_details[{i}] is no longer within what agent `{}` may be granted: ask for the writ again",
            agent.name
        )));
    }
    plan.ttl_secs = plan
        .ttl_secs
        .min(agent.max_ttl.min(gw.max_ttl).as_secs())
        .max(1);
    let Some(subject_ref) = &plan.subject else {
        if let Some(jkt) = dpop_binding(gw, &req.headers).await?
            && plan.cnf_jkt.as_deref() != Some(jkt.as_str())
        {
            return Err(OAuthError::invalid_grant(
                "the DPoP proof is of another key than the approved request is bound to: poll with the same key, or without a proof",
            ));
        }
        return issue::minted(gw, &agent, &plan, Some(&record)).await;
    };
    let subject = form.subject_token.as_deref().ok_or_else(|| {
        OAuthError::invalid_request(
            "this approval is for a token exchange: send the same subject_token with the poll",
        )
    })?;
    if SubjectRef::digest_of(subject) != subject_ref.digest {
        return Err(OAuthError::invalid_grant(
            "subject_token is not the writ the approved token exchange delegates from",
        ));
    }
    let verified = gw
        .writs
        .check(subject, &gw.keys().trusted, gw.clock.now(), gw)
        .map_err(|e| OAuthError::subject_refused(&e))?;
    issue_delegated(gw, &agent, &verified, &plan, Some(&record)).await
}
