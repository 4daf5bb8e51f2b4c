//! Inspect: read the request facts (model, output cap, stream) from the body.

use axum::body::Bytes;
use http::request::Parts;
use writ_providers::{ApiFamily, RouteSpec, openai};
use writ_token::{Api, RequestFacts};

use crate::error::GatewayError;
use crate::upstream::Upstream;

pub(crate) fn facts(
    route: &RouteSpec,
    upstream: &Upstream,
    parts: &Parts,
    body: &Bytes,
) -> Result<RequestFacts, GatewayError> {
    let inspected = match route.family {
        ApiFamily::OpenAi => openai::inspect(route.operation, body)?,
    };
    Ok(RequestFacts {
        upstream: Some(upstream.name.clone()),
        model: inspected.model,
        max_output_tokens: inspected.max_output_tokens,
        stream: inspected.stream,
        ..RequestFacts::new(
            Api::Llm,
            route.operation.as_str(),
            parts.method.as_str(),
            parts.uri.path(),
        )
    })
}
