//! The data plane: one request through the phases of DESIGN §4, in order.
//!
//! ```text
//! accept → extract → authenticate → route → inspect → authorize → inject → forward → meter
//! ```
//!
//! Each phase is a module with its own tests. [`handle`] composes them; a phase that
//! refuses returns a [`GatewayError`], which becomes the response in one place
//! (`error.rs`). The log line at the end runs on success and failure alike.

pub(crate) mod accept;
pub(crate) mod authenticate;
pub(crate) mod authorize;
pub(crate) mod extract;
mod forward;
mod inject;
mod inspect;
mod meter;
mod route;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::Request;
use writ_providers::RouteSpec;

use crate::error::GatewayError;
use crate::gateway::Gateway;

/// Per-request state, passed from phase to phase.
#[derive(Debug)]
pub(crate) struct RequestCtx {
    pub(crate) route: RouteSpec,
    pub(crate) started: Instant,
    pub(crate) agent: Option<String>,
    pub(crate) token_id: Option<String>,
    pub(crate) upstream: Option<String>,
    pub(crate) model: Option<String>,
}

/// Runs one data-plane request to its response.
pub(crate) async fn handle(gw: Arc<Gateway>, route: RouteSpec, req: Request<Body>) -> Response {
    let mut ctx = RequestCtx {
        route,
        started: Instant::now(),
        agent: None,
        token_id: None,
        upstream: None,
        model: None,
    };
    let outcome = run(gw.clone(), &mut ctx, req).await;
    let response = match outcome {
        Ok(response) => response,
        Err(e) => e.into_response(),
    };
    tracing::info!(
        route = ctx.route.path,
        status = response.status().as_u16(),
        agent = ctx.agent.as_deref(),
        token_id = ctx.token_id.as_deref(),
        upstream = ctx.upstream.as_deref(),
        model = ctx.model.as_deref(),
        elapsed_us = ctx.started.elapsed().as_micros() as u64,
        "request"
    );
    response
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
    let presented = extract::writ(&parts.headers)?;
    let writ = authenticate::verify(gw, &presented)?;
    ctx.agent = Some(writ.claims().agent.clone());
    ctx.token_id = Some(writ.claims().token_id.clone());
    let dpop_jkt = authenticate::possession(gw, &parts, &presented, &writ)?;
    let target = route::target(gw, &ctx.route, parts.uri.path(), &parts.headers)?;
    ctx.upstream = Some(target.upstream.name.clone());
    // Only an authenticated request gets its body read.
    let body = accept::read_body(body, gw.max_body_bytes).await?;
    let mut facts = inspect::facts(&ctx.route, &target, &parts.method, &body)?;
    facts.dpop_jkt = dpop_jkt;
    ctx.model = facts.model.clone().or_else(|| facts.tool.clone());
    let authorization = authorize::check(gw, &writ, &facts)?;
    let request_bytes = body.len();
    let (body, drop_usage_chunk) = inject::ask_for_stream_usage(&ctx.route, body);
    let outbound = inject::prepare(&authorization, &target, &parts, body, &presented)?;
    let response = forward::send(target.upstream, outbound).await?;
    let info = meter::CallInfo {
        token_id: writ.claims().token_id.clone(),
        tenant: writ.claims().tenant.clone(),
        agent: writ.claims().agent.clone(),
        upstream: target.upstream.name.clone(),
        model: facts.model.clone(),
        family: ctx.route.family,
        request_bytes,
        drop_usage_chunk,
    };
    meter::respond(gw_arc.clone(), target.upstream, info, response).await
}
