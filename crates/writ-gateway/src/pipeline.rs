//! The data plane: one request through the phases of DESIGN §4, in order.
//!
//! ```text
//! accept → extract → authenticate → route → inspect → authorize → limit → decision
//!        → inject → forward → meter
//! ```
//!
//! Each phase is a module with its own tests. [`handle`] composes them; a phase that
//! refuses returns a [`GatewayError`], which becomes the response in one place
//! (`error.rs`). The log line at the end runs on success and failure alike.

pub(crate) mod accept;
pub(crate) mod authenticate;
pub(crate) mod authorize;
mod decision;
pub(crate) mod extract;
#[cfg(test)]
mod fixture;
mod forward;
mod inject;
mod inspect;
mod limit;
mod meter;
mod route;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::response::Response;
use http::Request;
use writ_providers::RouteSpec;

use crate::detect::detections::{Action, Detection, Detector, Mode};
use crate::error::GatewayError;
use crate::gateway::Gateway;

/// Per-request state, passed from phase to phase.
#[derive(Debug)]
pub(crate) struct RequestCtx {
    pub(crate) route: RouteSpec,
    pub(crate) started: Instant,
    /// The acting agent: the delegate of a delegated writ, else the writ's agent.
    pub(crate) agent: Option<String>,
    /// For a delegated writ, the agents from the issuing one to the actor.
    pub(crate) delegation: Option<Vec<String>>,
    pub(crate) token_id: Option<String>,
    pub(crate) upstream: Option<String>,
    pub(crate) model: Option<String>,
    pub(crate) tenant: Option<String>,
    /// The meter phase took the call over and records it in the audit log.
    pub(crate) metered: bool,
    /// The client's address (its TCP peer).
    pub(crate) client: Option<std::net::IpAddr>,
    /// The detection that refused the request, recorded in its one audit record.
    pub(crate) detection: Option<Detection>,
    /// Strict audit: the `seq` of the request's committed `request_allowed` decision, which
    /// its outcome record names.
    pub(crate) decision: Option<u64>,
    /// Set once a decision is committed, cleared at the end of [`handle`]: if the request
    /// is dropped in between (its client went away while the upstream worked) and the
    /// meter phase has not recorded the outcome (`outcome_recorded`), dropping the
    /// context records it, so no committed decision is left without one.
    pub(crate) outcome_owed: Option<Arc<Gateway>>,
    /// Set by the meter phase once it has recorded the outcome.
    pub(crate) outcome_recorded: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for RequestCtx {
    fn drop(&mut self) {
        let Some(gw) = self.outcome_owed.take() else {
            return;
        };
        if self
            .outcome_recorded
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return;
        }
        let mut record = self.audit_record(&gw, writ_audit::Kind::RequestAllowed);
        // nginx's "client closed request": no response was sent.
        record.status = Some(499);
        record.latency_ms =
            Some(u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX));
        record.decision = Some(writ_audit::record::Decision {
            code: Some("client_closed_request".to_string()),
            ..Default::default()
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                gw.audit.record(record).await;
            });
        }
    }
}

impl RequestCtx {
    /// An audit record of `kind` about this request: who asked, through which writ and
    /// client, for which upstream, model and operation.
    pub(crate) fn audit_record(
        &self,
        gw: &Gateway,
        kind: writ_audit::Kind,
    ) -> writ_audit::AuditRecord {
        let mut record = crate::audit::end_record(self.decision, kind, gw.clock.now());
        record.tenant.clone_from(&self.tenant);
        record.agent.clone_from(&self.agent);
        record.writ = self.token_id.as_deref().map(|t| gw.audit.pseudonym(t));
        record.client = self.client.and_then(|ip| gw.audit.client_pseudonym(ip));
        record.upstream.clone_from(&self.upstream);
        record.model.clone_from(&self.model);
        record.operation = Some(self.route.operation.as_str().to_string());
        if let Some(chain) = &self.delegation {
            record
                .detail
                .get_or_insert_with(Default::default)
                .insert("delegation".into(), serde_json::json!(chain));
        }
        record
    }
}

/// Runs one data-plane request to its response.
pub(crate) async fn handle(gw: Arc<Gateway>, route: RouteSpec, req: Request<Body>) -> Response {
    let _open = gw.audit.open_request();
    let mut ctx = RequestCtx {
        route,
        started: Instant::now(),
        agent: None,
        delegation: None,
        token_id: None,
        upstream: None,
        model: None,
        tenant: None,
        metered: false,
        client: req
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip().to_canonical()),
        detection: None,
        decision: None,
        outcome_owed: None,
        outcome_recorded: Default::default(),
    };
    let outcome = run(gw.clone(), &mut ctx, req).await;
    // From here on the outcome is recorded below or was by the meter phase.
    ctx.outcome_owed = None;
    let response = match outcome {
        Ok(response) => response,
        Err(e) => {
            if !ctx.metered {
                // Refused (or failed) before the meter phase: recorded here, once.
                gw.audit.record(error_record(&gw, &ctx, &e)).await;
            }
            e.into_response_for(ctx.route.dialect())
        }
    };
    // Debug, not info: the audit log already holds one record per request, and a
    // synchronous log line cost about a sixth of a request's CPU time (bench/run profile).
    tracing::debug!(
        route = ctx.route.path,
        status = response.status().as_u16(),
        agent = ctx.agent.as_deref(),
        writ = ctx.token_id.as_deref().map(|t| gw.audit.pseudonym(t)),
        upstream = ctx.upstream.as_deref(),
        model = ctx.model.as_deref(),
        elapsed_us = ctx.started.elapsed().as_micros() as u64,
        "request"
    );
    response
}

/// The audit record of a request that ended in `error` before reaching the meter phase.
fn error_record(gw: &Gateway, ctx: &RequestCtx, error: &GatewayError) -> writ_audit::AuditRecord {
    use crate::error::{Class, Fault};
    let Class {
        status,
        code,
        fault,
        ..
    } = error.classify();
    let kind = match fault {
        // Allowed, but the upstream failed.
        Fault::Upstream => writ_audit::Kind::RequestAllowed,
        Fault::Client | Fault::Internal => writ_audit::Kind::RequestDenied,
    };
    // After a committed decision (strict mode), this is that decision's outcome.
    let mut record = ctx.audit_record(gw, kind);
    record.status = Some(status.as_u16());
    record.latency_ms = Some(u64::try_from(ctx.started.elapsed().as_millis()).unwrap_or(u64::MAX));
    let mut decision = writ_audit::record::Decision {
        code: Some(code.to_string()),
        ..Default::default()
    };
    match error {
        GatewayError::Writ(writ_token::WritError::Denied(d)) => {
            decision.check = Some(d.to_string());
        }
        GatewayError::Denied(d) => {
            decision.check = Some(d.denial.to_string());
        }
        GatewayError::RateLimited(r) => {
            decision.limit = Some(writ_audit::record::LimitHit {
                scope: r.scope.clone(),
                dimension: r.dimension.as_str().to_string(),
            });
        }
        _ => {}
    }
    if let Some(detection) = &ctx.detection {
        decision.check = Some(detection.detector.as_str().to_string());
        record
            .detail
            .get_or_insert_with(Default::default)
            .extend(detection.detail());
    }
    record.decision = Some(decision);
    record
}

async fn run(
    gw_arc: Arc<Gateway>,
    ctx: &mut RequestCtx,
    req: Request<Body>,
) -> Result<Response, GatewayError> {
    let gw = &*gw_arc;
    let (parts, body) = req.into_parts();
    // Refuse oversized bodies by their declared length before doing any work.
    accept::check_declared_length(&parts.headers, gw.max_body_bytes)?;
    accept::refuse_writ_in_url(&parts.uri)?;
    // A credential in the URL ends up in every proxy and access log on the way.
    url_credentials(gw, ctx, &parts.uri).await?;
    let presented = extract::writ(&parts.headers)?;
    // An address guessing writs is slowed down, then blocked for a while.
    if let Some(ip) = ctx.client
        && let Some(t) = gw.address_throttled(ip)
    {
        // Ignoring the back-off counts against the address.
        let t = if t.locked {
            t
        } else {
            gw.invalid_writ_from(ip).await.unwrap_or(t)
        };
        return Err(GatewayError::AuthThrottled {
            retry_after_secs: t.retry_after_secs(),
            locked: t.locked,
        });
    }
    let writ = match authenticate::verify(gw, &presented) {
        Ok(writ) => writ,
        Err(e) => {
            bearer_jwt(gw, ctx, presented.as_str()).await;
            bearer_provider_key(gw, ctx, presented.as_str()).await;
            if authenticate::only_aged(&e) {
                // Not a guess, and a client that retries at once with a fresh writ: its
                // body is read, as before expiry was checked here, so the connection
                // stays open for the retry (one left unread is closed).
                let _ = accept::read_body(body, gw.max_body_bytes).await;
            } else if let Some(ip) = ctx.client {
                gw.invalid_writ_from(ip).await;
            }
            return Err(e);
        }
    };
    let (agent, delegation) = authenticate::acting_agent(&writ);
    ctx.agent = Some(agent);
    ctx.delegation = delegation;
    ctx.tenant = Some(writ.claims().tenant.clone());
    ctx.token_id = Some(writ.claims().token_id.clone());
    let dpop_jkt = authenticate::possession(gw, &parts, &presented, &writ).await?;
    let target = route::target(gw, &ctx.route, parts.uri.path(), &parts.headers, &writ)?;
    ctx.upstream = Some(target.upstream.name.clone());
    // Only an authenticated request gets its body read.
    let body = accept::read_body(body, gw.max_body_bytes).await?;
    let mut facts = inspect::facts(&ctx.route, &target, &parts.method, &body)?;
    facts.dpop_jkt = dpop_jkt;
    ctx.model = facts.model.clone().or_else(|| facts.tool.clone());
    let authorization = authorize::check(gw, &writ, &facts).await.map_err(|e| {
        authorize::explain(gw, &writ, &facts, e, || ctx.route.output_cap_field(&body))
    })?;
    prompt_secrets(gw, ctx, &body).await?;
    // Strict audit: nothing is forwarded while the audit log cannot be written.
    if !gw.audit.may_proceed() {
        return Err(GatewayError::AuditUnavailable);
    }
    let request_bytes = body.len();
    let held = limit::reserve(gw, &writ, &target, &facts, request_bytes).await?;
    if let Err(e) = decision::commit(&gw_arc, ctx).await {
        // Nothing was sent: the reservation is given back whole.
        if let Some(held) = held {
            held.settle(writ_limits::Amounts::default(), gw.clock.now())
                .await;
        }
        return Err(e);
    }
    let remaining = held.as_ref().map(|h| h.remaining().to_vec());
    let (body, drop_usage_chunk) = inject::ask_for_stream_usage(&ctx.route, facts.stream, body);
    let sent = match send(gw, &authorization, &target, &parts, body, &presented).await {
        Ok(sent) => sent,
        Err(e) => {
            // Nothing reached the model: the reservation is given back whole.
            if let Some(held) = held {
                held.settle(writ_limits::Amounts::default(), gw.clock.now())
                    .await;
            }
            return Err(e);
        }
    };
    let info = meter::CallInfo {
        token_id: writ.claims().token_id.clone(),
        tenant: writ.claims().tenant.clone(),
        agent: ctx.agent.clone().unwrap_or_default(),
        delegation: ctx.delegation.clone(),
        upstream: target.upstream.name.clone(),
        model: facts.model.clone(),
        dialect: ctx.route.dialect(),
        request_bytes,
        drop_usage_chunk,
        held,
        decision: ctx.decision,
        outcome_recorded: ctx.outcome_recorded.clone(),
        sent: Instant::now(),
        started: ctx.started,
        operation: ctx.route.operation.as_str(),
        client: ctx.client,
        response_mode: gw
            .detections
            .mode(Detector::ResponseSecret, ctx.tenant.as_deref()),
    };
    ctx.metered = true;
    let mut response = meter::respond(gw_arc.clone(), target.upstream, info, sent).await?;
    if let Some(remaining) = remaining {
        crate::limits::write_headers(&remaining, response.headers_mut());
    }
    Ok(response)
}

/// A detection in `ctx`'s context (tenant, agent, writ, client, upstream, model).
fn detection(
    ctx: &RequestCtx,
    detector: Detector,
    action: Action,
    location: &'static str,
) -> Detection {
    let mut d = Detection::new(detector, action, location);
    d.tenant.clone_from(&ctx.tenant);
    d.agent.clone_from(&ctx.agent);
    d.token_id.clone_from(&ctx.token_id);
    d.client = ctx.client;
    d.upstream.clone_from(&ctx.upstream);
    d.model.clone_from(&ctx.model);
    d.operation = Some(ctx.route.operation.as_str().to_string());
    d
}

/// The `url_credential` detector: a credential in the path or query. It runs before the
/// writ is verified, so it takes the default mode.
async fn url_credentials(
    gw: &Gateway,
    ctx: &mut RequestCtx,
    uri: &http::Uri,
) -> Result<(), GatewayError> {
    let mode = gw.detections.mode(Detector::UrlCredential, None);
    if mode == Mode::Off {
        return Ok(());
    }
    let Some(finding) = uri
        .path_and_query()
        .and_then(|pq| writ_detect::url::check_url(pq.as_str(), &gw.scanner))
    else {
        return Ok(());
    };
    let location = match &finding.location {
        writ_detect::url::UrlLocation::QueryParam { name: Some(n), .. } => {
            format!("query parameter `{n}`")
        }
        writ_detect::url::UrlLocation::QueryParam { index, .. } => {
            format!("query parameter #{}", index + 1)
        }
        writ_detect::url::UrlLocation::PathSegment { index } => {
            format!("path segment #{}", index + 1)
        }
    };
    let rule = finding.rule.id();
    let action = if mode == Mode::Block {
        Action::Blocked
    } else {
        Action::Monitored
    };
    let mut d = detection(ctx, Detector::UrlCredential, action, "url");
    d.rules = vec![rule.to_string()];
    d.count = 1;
    if mode == Mode::Block {
        gw.detected(d.clone(), false).await;
        ctx.detection = Some(d);
        return Err(GatewayError::CredentialInUrl { location, rule });
    }
    gw.detected(d, true).await;
    Ok(())
}

/// The `weak_jwt` detector on a JWT sent where a writ belongs (a client that mixed up
/// its tokens, or one probing for a JWT verifier): the request is refused as any invalid
/// writ is, and its record names the token's weaknesses.
async fn bearer_jwt(gw: &Gateway, ctx: &mut RequestCtx, token: &str) {
    if !token.starts_with("eyJ") || gw.detections.mode(Detector::WeakJwt, None) == Mode::Off {
        return;
    }
    let findings = writ_detect::jwt::lint(
        token,
        &writ_detect::jwt::LintPolicy::default(),
        gw.clock.now(),
    );
    if findings.is_empty()
        || findings
            .iter()
            .all(|f| f.id == writ_detect::jwt::JwtCheck::Malformed)
    {
        return;
    }
    let mut d = detection(ctx, Detector::WeakJwt, Action::Blocked, "data_plane");
    d.rules = findings.iter().map(|f| f.id.as_str().to_string()).collect();
    d.rules.dedup();
    d.count = findings.len();
    gw.detected(d.clone(), false).await;
    ctx.detection = Some(d);
}

/// The `raw_provider_key` detector on a credential that is not a writ: a provider's own
/// API key (or the gateway's upstream credential) where the writ belongs. An agent holding
/// a raw key is the incident writ exists to surface; the request is refused as any invalid
/// writ is, and its record names the rule, never the key.
async fn bearer_provider_key(gw: &Gateway, ctx: &mut RequestCtx, token: &str) {
    if token.starts_with(writ_token::WRIT_PREFIX)
        || gw.detections.mode(Detector::RawProviderKey, None) == Mode::Off
    {
        return;
    }
    let mut rules: Vec<String> = gw
        .scanner
        .scan(token.as_bytes())
        .iter()
        .filter(|f| match f.rule {
            writ_detect::ScanRule::Builtin(rule) => rule.is_service_key(),
            writ_detect::ScanRule::Configured(_) => true,
        })
        .map(|f| f.rule.id().to_string())
        .collect();
    if rules.is_empty() {
        return;
    }
    rules.sort_unstable();
    rules.dedup();
    let mut d = detection(ctx, Detector::RawProviderKey, Action::Blocked, "credential");
    d.count = rules.len();
    d.rules = rules;
    gw.detected(d.clone(), false).await;
    ctx.detection = Some(d);
}

/// The `prompt_secret` detector: a secret in the request body (a prompt, a tool
/// argument) on its way to an upstream.
async fn prompt_secrets(
    gw: &Gateway,
    ctx: &mut RequestCtx,
    body: &[u8],
) -> Result<(), GatewayError> {
    let mode = gw
        .detections
        .mode(Detector::PromptSecret, ctx.tenant.as_deref());
    if mode == Mode::Off {
        return Ok(());
    }
    // Scan what the upstream reads: a JSON body's strings decoded (`sk\u002dproj…` is
    // `sk-proj…` to the provider), keys included and in place, so `"api_key": "…"`
    // pairs still match and no two strings run together; other bodies as they are.
    let findings = gw.scanner.scan(&writ_json::scan_text(body));
    if findings.is_empty() {
        return Ok(());
    }
    let mut rules: Vec<String> = findings.iter().map(|f| f.rule.id().to_string()).collect();
    rules.sort_unstable();
    rules.dedup();
    let action = if mode == Mode::Block {
        Action::Blocked
    } else {
        Action::Monitored
    };
    let mut d = detection(ctx, Detector::PromptSecret, action, "request");
    d.count = findings.len();
    d.rules = rules;
    if mode == Mode::Block {
        let rules = d.rules.join(", ");
        gw.detected(d.clone(), false).await;
        ctx.detection = Some(d);
        return Err(GatewayError::SecretInRequest { rules });
    }
    gw.detected(d, true).await;
    Ok(())
}

/// Inject and forward: the upstream's credential in, the request out.
async fn send(
    gw: &Gateway,
    authorization: &writ_token::Authorization,
    target: &route::Target<'_>,
    parts: &http::request::Parts,
    body: axum::body::Bytes,
    presented: &extract::PresentedWrit,
) -> Result<http::Response<hyper::body::Incoming>, GatewayError> {
    let access = match &target.upstream.tokens {
        Some(tokens) => Some(
            tokens
                .authorization(
                    target.upstream.client(),
                    target.upstream.timeout,
                    gw.clock.now(),
                )
                .await?,
        ),
        None => None,
    };
    let outbound = inject::prepare(
        authorization,
        target,
        parts,
        body,
        presented,
        inject::Signing {
            access,
            now: gw.clock.now(),
        },
    )?;
    forward::send(target.upstream, outbound).await
}
