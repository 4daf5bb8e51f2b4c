//! The data plane: one request through the phases of DESIGN §4, in order.
//!
//! ```text
//! accept → extract → authenticate → route → inspect → authorize → approve → limit
//!        → decision → inject → forward → meter → filter → redact → audit
//! ```
//!
//! MCP routes add the Streamable HTTP transport's own checks: `Origin` before anything
//! (`origin.rs`), and the `Mcp-Session-Id` bound to the agent after authorize and once
//! the upstream answered (`mcp_session.rs`).
//!
//! Each phase is a module with its own tests; [`run`] calls them in order, one call per
//! phase. A phase that refuses returns a [`GatewayError`], which becomes the response in
//! one place (`error.rs`), with the OAuth challenge of `challenge.rs` on routes whose
//! clients discover their authorization server from the resource (MCP). Everything the
//! phases learn about who asks for what goes into the [`RequestCtx`]'s `Identity`, from
//! which detections and the audit record are built.
//! The audit phase runs exactly once for every request, whatever its outcome.

pub(crate) mod accept;
mod audit;
pub(crate) mod authenticate;
pub(crate) mod authorize;
pub(crate) mod challenge;
mod ctx;
mod decision;
pub(crate) mod extract;
mod filter;
#[cfg(test)]
pub(crate) mod fixture;
mod forward;
mod identity;
mod inject;
mod inspect;
mod limit;
mod mcp_session;
mod meter;
pub(crate) mod origin;
mod redact;
mod route;

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use http::Request;
use writ_providers::RouteSpec;

use self::audit::{Answer, Ending};
pub(crate) use self::ctx::RequestCtx;
use crate::approval::request as approval;
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::traces::Phase;

/// Runs one data-plane request to its response, and writes its audit record (or hands it
/// to a streamed response, whose end writes it).
pub(crate) async fn handle(gw: Arc<Gateway>, route: RouteSpec, req: Request<Body>) -> Response {
    let _open = gw.audit.open_request();
    let client = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_canonical());
    let mut ctx = RequestCtx::new(&gw, route, client);
    ctx.trace_begin(&gw, req.method(), req.headers());
    // Clients of a discoverable resource (MCP) learn from a refusal where to get a writ.
    let metadata_url = challenge::metadata_url(&gw, &ctx.route, req.uri().path());
    // On the heap: the phases' state is some 6.5 KiB, and inline it made this future
    // 8 KiB, copied whole each time the router wraps and boxes it (8 000 of callgrind's
    // instructions a request; too little to show in CPU time on the bench VM).
    let outcome = Box::pin(run(&gw, &mut ctx, req)).await;
    if let Some(due) = ctx.audit.take() {
        let ending = match &outcome {
            Ok(response) => Ending::Answered(
                ctx.answer
                    .get_or_insert(Answer::unmeasured(response.status())),
            ),
            Err(error) => Ending::Failed {
                error,
                detection: ctx.detection.as_ref(),
                answer: ctx.answer.as_ref(),
            },
        };
        due.write(&ctx.id, ending).await;
    }
    let response = outcome.unwrap_or_else(|e| {
        let rpc_id = ctx.mcp.as_ref().and_then(|call| call.id.as_ref());
        challenge::refusal(e, ctx.route.dialect(), metadata_url.as_deref(), rpc_id)
    });
    // Debug, not info: the audit log already holds one record per request, and a
    // synchronous log line cost about a sixth of a request's CPU time (bench/run profile).
    tracing::debug!(
        route = ctx.route.path,
        status = response.status().as_u16(),
        agent = ctx.id.agent.as_deref(),
        writ = ctx.id.pseudonyms(&gw).0.as_deref(),
        upstream = ctx.id.upstream.as_deref(),
        model = ctx.id.model.as_deref(),
        elapsed_us = ctx.started.elapsed().as_micros() as u64,
        "request"
    );
    response
}

/// The phases, in order; the first that refuses ends the request.
async fn run(
    gw_arc: &Arc<Gateway>,
    ctx: &mut RequestCtx,
    req: Request<Body>,
) -> Result<Response, GatewayError> {
    let gw = &**gw_arc;
    let (parts, body) = req.into_parts();
    // Accept: an oversized body is refused by its declared length before any work.
    accept::check_declared_length(&parts.headers, gw.max_body_bytes)?;
    // A writ in the URL is refused whatever it is: URLs are logged everywhere.
    accept::refuse_writ_in_url(&parts.uri)?;
    // A credential in the URL ends up in every proxy and access log on the way.
    accept::url_credential::check(gw, ctx, &parts.uri).await?;
    // MCP: a web page of another site may not drive an MCP endpoint (DNS rebinding).
    origin::check(gw, &ctx.route, &parts.headers)?;
    ctx.phase(Some(Phase::Authenticate));
    // Extract: the writ, from whichever header the caller's SDK puts its key in.
    let presented = extract::writ(&parts.headers)?;
    // An address guessing writs is slowed down, then blocked for a while.
    authenticate::throttle::check(gw, ctx).await?;
    // Authenticate: signature (cached), expiry, revocation of every block.
    let writ = match authenticate::writ(gw, ctx, &presented).await {
        Ok(writ) => writ,
        Err(e) if authenticate::only_aged(&e) => {
            // An aged-out writ is no guess, and its client retries at once with a fresh
            // one: its body is read so the connection stays open for that retry.
            let _ = accept::read_body(body, gw.max_body_bytes).await;
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    // A writ bound to a key is good only with a fresh proof of that key.
    let dpop_jkt = authenticate::possession(gw, &parts, &presented, &writ).await?;
    ctx.phase(None);
    // Route: which upstream serves the request, by path and by the writ's grants.
    let target = route::target(
        &ctx.snapshot,
        &ctx.route,
        parts.uri.path(),
        &parts.headers,
        &writ,
    )?;
    ctx.id.upstream = Some(target.upstream.name.clone());
    // Only an authenticated request gets its body read.
    let body = accept::read_body(body, gw.max_body_bytes).await?;
    // Inspect: what the request asks for, as the facts the writ's checks read.
    // (An MCP client's DELETE, ending its session, has no body: session upkeep.)
    let ending = mcp_session::ending_facts(&ctx.route, &target, &parts.method, &body)?;
    let (mut facts, mcp) = match ending {
        Some(facts) => (facts, None),
        None => inspect::facts(&ctx.route, &target, &parts.method, &body)?,
    };
    if let Some(message) = &mcp {
        // MCP: a client without a `traceparent` header may name its span in `_meta`.
        ctx.trace_mcp(message);
        // MCP: headers that mirror the body must agree with it.
        inspect::mcp::check(gw, ctx, &target.upstream, &parts.headers, message, &facts)?;
    }
    facts.dpop_jkt = dpop_jkt;
    // A writ bound to an audience is good only at that resource (RFC 8707).
    facts.resource = challenge::resource_uri(gw, &ctx.route, parts.uri.path());
    ctx.id.model = facts.model.clone().or_else(|| facts.tool.clone());
    ctx.phase(Some(Phase::Authorize));
    // A retry's approval: given for this writ and this exact request, it states who
    // approved (`approved_by`) for the writ's checks and the policies to read.
    let asked = approval::Asked {
        path_and_query: parts.uri.path_and_query().map_or("/", |p| p.as_str()),
        body: &body,
    };
    let approved = approval::presented(gw, &writ, &parts.headers, &mut facts, &asked).await?;
    // Authorize: the writ's checks and the operator's policies; a denial names the check.
    let authorization = authorize::check(gw, &writ, &facts).await.map_err(|e| {
        authorize::explain(gw, &writ, &facts, e, || ctx.route.output_cap_field(&body))
    })?;
    authorize::policy::check_tenant(gw, &ctx.snapshot, authorization.tenant(), &facts)?;
    // Approve: a request an approval rule matches waits for a person; an approval lets
    // its request through once.
    approval::check(gw, &ctx.snapshot, &writ, &facts, approved, &asked).await?;
    // Only authorized requests cost a scan for secrets on their way out.
    authorize::prompt_secret::check(gw, ctx, &body).await?;
    // MCP: a session id must name a session the upstream gave this same agent.
    let session = mcp_session::check(
        gw,
        &ctx.route,
        &target,
        &parts.method,
        &parts.headers,
        &writ,
    )
    .await?;
    ctx.phase(Some(Phase::Limit));
    // Strict audit: nothing is forwarded while the audit log cannot be written.
    decision::may_proceed(gw)?;
    // Limit: every applicable limit reserved at once, all or nothing.
    let request_bytes = body.len();
    // Decision: in strict audit, on record before anything is sent (with limits in
    // Redis, committed while the reservation is on its way).
    let held = decision::reserve_and_commit(gw, ctx, &writ, &target, &facts, request_bytes).await?;
    let remaining = held.as_ref().map(|h| h.remaining().to_vec());
    // Inject and forward: the upstream's credential in, the writ out, the request sent.
    let (body, drop_usage_chunk) = inject::ask_for_stream_usage(&ctx.route, facts.stream, body);
    let trace = ctx.trace_upstream(target.upstream.provider.kind());
    let sent_at = std::time::Instant::now();
    let sent = match send(gw, &authorization, &target, &parts, body, &presented, trace).await {
        Ok(sent) => sent,
        Err(e) => {
            // Nothing reached the model: the reservation is given back whole.
            limit::give_back(held);
            return Err(e);
        }
    };
    // MCP: a session the upstream assigned is bound to this agent before the client sees
    // its id; one that ended is forgotten.
    let settled = mcp_session::settle(gw, session.as_ref(), sent.status(), sent.headers());
    if let Err(e) = settled.await {
        limit::give_back(held);
        return Err(e);
    }
    let list = ctx.mcp.as_ref().and_then(|call| call.list);
    let call = meter::CallInfo {
        dialect: ctx.route.dialect(),
        whole: list.is_some(),
        request_bytes,
        drop_usage_chunk,
        held,
        sent: sent_at,
    };
    // Meter: what the call used and cost, settled against its reservation.
    let answer = meter::read(gw_arc, ctx, &target.upstream, call, sent).await?;
    // The call's span ends with a body read whole; a stream's, when the stream ends.
    ctx.phase(None);
    // Filter: an MCP list answer cut to what the writ may use.
    let answer = filter::list_answer(gw, &target.upstream, &writ, &facts, list, answer)?;
    // Redact: secrets out of what goes back, per chunk for a stream.
    let mut response = redact::response(gw, ctx, answer).await?;
    if let Some(remaining) = remaining {
        crate::limits::headers::write_headers(&remaining, response.headers_mut());
    }
    Ok(response)
}

/// Inject and forward: the upstream's credential in, the request out.
async fn send(
    gw: &Gateway,
    authorization: &writ_token::Authorization,
    target: &route::Target,
    parts: &http::request::Parts,
    body: axum::body::Bytes,
    presented: &extract::PresentedWrit,
    trace: Option<crate::traces::Outgoing>,
) -> Result<http::Response<forward::UpstreamBody>, GatewayError> {
    // A server the gateway started holds its credentials in its environment: nothing is
    // injected, and the message goes down its stdin.
    if let Some(server) = &target.upstream.stdio {
        return forward::stdio(&target.upstream, server, &body).await;
    }
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
            trace,
        },
    )?;
    forward::send(&target.upstream, outbound).await
}
