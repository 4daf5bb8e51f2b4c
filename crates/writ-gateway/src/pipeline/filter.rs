//! Filter: an MCP list answer (`tools/list`, `prompts/list`, `resources/list`,
//! `resources/templates/list`) cut to the entries the writ may use, before it is redacted
//! and passed back. An agent is shown only what it can call.
//!
//! Each entry is asked of the writ itself, as the request it stands for: a tool with
//! `operation("tool_listed")` (which a `writ:tool` grant allows for its tool, whatever the
//! arguments), a prompt with `operation("prompt_listed")`, a resource as the
//! `resources/read` of its URI. The answers are side-effect free (no single-use writ is
//! spent) and bounded: an entry whose check could cost more than the inline bound is left
//! out rather than evaluated. A tool is also left out when its `x-mcp-header` annotations
//! break the spec's rules; the annotations of the tools listed are remembered, and each
//! call's `Mcp-Param-*` headers are held to them.

use std::sync::Arc;

use axum::body::Bytes;
use http::header;
use writ_providers::is_event_stream;
use writ_providers::mcp::list::{self, ListKind};
use writ_providers::mcp::param_headers;
use writ_token::{RequestFacts, VerifiedWrit};

use super::authorize::INLINE_WORK;
use super::redact::Unredacted;
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::upstream::client::Upstream;

/// `answer` with the entries of a `kind` list the writ may not use removed; an answer that
/// is not a list passes unchanged. `facts` are the list request's.
pub(crate) fn list_answer(
    gw: &Gateway,
    upstream: &Upstream,
    writ: &Arc<VerifiedWrit>,
    facts: &RequestFacts,
    kind: Option<ListKind>,
    answer: Unredacted,
) -> Result<Unredacted, GatewayError> {
    let Some(kind) = kind else {
        return Ok(answer);
    };
    let Unredacted::Whole(mut parts, bytes) = answer else {
        // The meter reads a list's answer whole; an unfiltered stream never passes.
        return Err(GatewayError::Internal(
            "an MCP list answer was not read whole",
        ));
    };
    if !parts.status.is_success() || bytes.is_empty() {
        return Ok(Unredacted::Whole(parts, bytes));
    }
    let event_stream = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_event_stream);
    let now = gw.clock.now();
    let mut keep = |name: &str, entry: &serde_json::Value| {
        if kind != ListKind::Tools {
            return may_use(writ, facts, kind, name, now);
        }
        // A tool whose x-mcp-header annotations break the spec is not listed (clients must
        // drop it); the annotations of one that is are checked on its calls.
        match param_headers::of_tool(entry) {
            Ok(params) if may_use(writ, facts, kind, name, now) => {
                upstream.mcp_params.learn(name, params);
                true
            }
            Ok(_) => false,
            Err(e) => {
                tracing::debug!(error = %e, "MCP tool left out of a list");
                false
            }
        }
    };
    let filtered = list::filter(kind, &bytes, event_stream, &mut keep).map_err(|e| {
        tracing::warn!(upstream = facts.upstream.as_deref(), error = %e, "MCP list answer refused");
        GatewayError::UpstreamInvalid
    })?;
    tracing::debug!(
        list = kind.method(),
        kept = filtered.kept,
        removed = filtered.removed,
        "MCP list filtered"
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Ok(Unredacted::Whole(parts, Bytes::from(filtered.body)))
}

/// Whether the writ allows using the entry `name` of a `kind` list, asked as the request
/// the entry stands for.
fn may_use(
    writ: &VerifiedWrit,
    list_facts: &RequestFacts,
    kind: ListKind,
    name: &str,
    now: std::time::SystemTime,
) -> bool {
    let base = |operation: &str, method: &str| RequestFacts {
        upstream: list_facts.upstream.clone(),
        mcp_method: Some(method.to_string()),
        dpop_jkt: list_facts.dpop_jkt.clone(),
        resource: list_facts.resource.clone(),
        ..RequestFacts::new(list_facts.api, operation, &list_facts.method, "/")
    };
    let facts = match kind {
        // A name the gateway would refuse to call is not shown either.
        ListKind::Tools if writ_providers::mcp::is_safe_name(name) => RequestFacts {
            tool: Some(name.to_string()),
            ..base("tool_listed", "tools/call")
        },
        ListKind::Prompts if writ_providers::mcp::is_safe_name(name) => RequestFacts {
            prompt: Some(name.to_string()),
            ..base("prompt_listed", "prompts/get")
        },
        ListKind::Resources => RequestFacts {
            uri: Some(name.to_string()),
            ..base("resource_read", "resources/read")
        },
        ListKind::ResourceTemplates => RequestFacts {
            uri: Some(name.to_string()),
            ..base("resource_template_listed", "resources/read")
        },
        ListKind::Tools | ListKind::Prompts => return false,
    };
    matches!(writ.authorize_within(&facts, now, INLINE_WORK), Ok(Some(_)))
}
