//! Error bodies in each API family's own shape, so that the official SDK of the family a
//! route speaks raises its own typed error for errors the gateway itself produces.
//!
//! - OpenAI, Azure OpenAI and plain HTTP routes: `{"error":{"message","type","code",
//!   "param"}}`.
//! - MCP: a JSON-RPC error response answering the request's id (`mcp::rpc_error`).
//! - Anthropic: `{"type":"error","error":{"type","message"}}`, the type one of Anthropic's
//!   names (`authentication_error`, `permission_error`, `rate_limit_error`, …).
//! - Gemini and Vertex AI: Google's `{"error":{"code","message","status","details"}}`, the
//!   status a `google.rpc.Code` name (`PERMISSION_DENIED`, …).
//! - Bedrock: AWS's `{"message","__type"}`, the type an exception name
//!   (`AccessDeniedException`, …).
//!
//! The gateway's stable `code` (and the `detail` when there is one) travels in every
//! shape: as extra fields of Anthropic's and AWS's `error` objects, which their SDKs ignore
//! but keep, and as a `google.rpc.ErrorInfo` in Google's `details`, where Google itself
//! puts machine-readable reasons.

use serde_json::{Map, Value, json};

use crate::route::{Dialect, Wire};

/// An error the gateway produced, before it is shaped for a family.
#[derive(Debug, Clone, Copy)]
pub struct GatewayErrorReport<'a> {
    /// The HTTP status.
    pub status: u16,
    /// OpenAI's error `type` (`authentication_error`, `invalid_request_error`, …).
    pub kind: &'a str,
    /// The gateway's stable error code (`grant_denied`, `upstream_auth_failed`, …).
    pub code: &'a str,
    /// What happened and what to do next, in words. Never a secret.
    pub message: &'a str,
    /// The request field the error is about.
    pub param: Option<&'a str>,
    /// The precise cause for a person reading the body (the failed check of a denial).
    pub detail: Option<&'a str>,
    /// The JSON-RPC id of the request refused, on MCP routes.
    pub rpc_id: Option<&'a Value>,
    /// More machine-readable fields (an object): MCP's `error.data` (the versions an
    /// unsupported-version refusal names, the approval a held request waits for); fields
    /// of the `error` object in OpenAI's, Anthropic's and AWS's shapes; JSON text in the
    /// `ErrorInfo` metadata of Google's.
    pub extra: Option<&'a Value>,
}

impl Dialect {
    /// The JSON body of `report` in this dialect's error shape.
    pub fn error_body(self, report: &GatewayErrorReport<'_>) -> Value {
        match self.0 {
            Wire::Anthropic => anthropic(report),
            Wire::Gemini | Wire::Vertex => google(report),
            Wire::Bedrock => aws(report),
            Wire::Mcp => crate::mcp::rpc_error::body(report),
            Wire::OpenAi | Wire::Azure | Wire::Http => openai(report),
        }
    }

    /// Whether an upstream of this family answering `status` refused the credential the
    /// gateway injected (a bad or revoked provider key), rather than the request itself.
    /// Model APIs answer 401 and 403 only about the key or its account; a plain HTTP or
    /// tool upstream may answer 403 about the resource, so only its 401 counts.
    pub fn credential_refused(self, status: u16) -> bool {
        match self.0 {
            Wire::Mcp | Wire::Http => status == 401,
            _ => status == 401 || status == 403,
        }
    }
}

fn openai(r: &GatewayErrorReport<'_>) -> Value {
    let mut error = json!({"message": r.message, "type": r.kind, "code": r.code, "param": r.param});
    if let (Some(detail), Some(obj)) = (r.detail, error.as_object_mut()) {
        obj.insert("detail".into(), json!(detail));
    }
    if let Some(obj) = error.as_object_mut() {
        add_extra(obj, r.extra);
    }
    json!({ "error": error })
}

/// Adds the fields of `extra` (an object) to `into`, leaving the shape's own fields be.
fn add_extra(into: &mut Map<String, Value>, extra: Option<&Value>) {
    if let Some(Value::Object(fields)) = extra {
        for (k, v) in fields {
            into.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
}

/// Anthropic's error type for a status (docs.anthropic.com, "Errors"); its SDKs pick the
/// exception class by status, and the type names the same cause.
fn anthropic_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

fn anthropic(r: &GatewayErrorReport<'_>) -> Value {
    let mut error = Map::new();
    error.insert("type".into(), json!(anthropic_type(r.status)));
    error.insert("message".into(), json!(r.message));
    error.insert("code".into(), json!(r.code));
    if let Some(param) = r.param {
        error.insert("param".into(), json!(param));
    }
    if let Some(detail) = r.detail {
        error.insert("detail".into(), json!(detail));
    }
    add_extra(&mut error, r.extra);
    json!({"type": "error", "error": error})
}

/// The `google.rpc.Code` name Google's APIs answer with for a status.
fn google_status(status: u16) -> &'static str {
    match status {
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        400..=499 => "INVALID_ARGUMENT",
        501 => "UNIMPLEMENTED",
        502 | 503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    }
}

fn google(r: &GatewayErrorReport<'_>) -> Value {
    let mut metadata = Map::new();
    metadata.insert("code".into(), json!(r.code));
    if let Some(param) = r.param {
        metadata.insert("param".into(), json!(param));
    }
    if let Some(detail) = r.detail {
        metadata.insert("detail".into(), json!(detail));
    }
    // ErrorInfo metadata maps strings to strings.
    if let Some(Value::Object(fields)) = r.extra {
        for (k, v) in fields {
            metadata
                .entry(k.clone())
                .or_insert_with(|| json!(v.to_string()));
        }
    }
    json!({"error": {
        "code": r.status,
        "message": r.message,
        "status": google_status(r.status),
        "details": [{
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": r.code.to_ascii_uppercase(),
            "domain": "writ",
            "metadata": metadata,
        }],
    }})
}

/// The exception name Bedrock Runtime answers with for a status.
fn aws_type(status: u16) -> &'static str {
    match status {
        401 | 403 => "AccessDeniedException",
        404 => "ResourceNotFoundException",
        429 => "ThrottlingException",
        400..=499 => "ValidationException",
        502 | 503 => "ServiceUnavailableException",
        504 => "ModelTimeoutException",
        _ => "InternalServerException",
    }
}

fn aws(r: &GatewayErrorReport<'_>) -> Value {
    let mut body = Map::new();
    body.insert("__type".into(), json!(aws_type(r.status)));
    body.insert("message".into(), json!(r.message));
    body.insert("code".into(), json!(r.code));
    if let Some(detail) = r.detail {
        body.insert("detail".into(), json!(detail));
    }
    add_extra(&mut body, r.extra);
    Value::Object(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(status: u16) -> GatewayErrorReport<'static> {
        GatewayErrorReport {
            status,
            kind: "permission_error",
            code: "grant_denied",
            message: "no",
            param: None,
            detail: Some("block 1: check"),
            rpc_id: None,
            extra: None,
        }
    }

    #[test]
    fn each_family_answers_in_its_own_shape_and_keeps_the_code() {
        let r = report(403);
        let openai = Dialect(Wire::OpenAi).error_body(&r);
        assert_eq!(openai["error"]["type"], "permission_error");
        assert_eq!(openai["error"]["code"], "grant_denied");
        assert_eq!(openai["error"]["detail"], "block 1: check");
        let anthropic = Dialect(Wire::Anthropic).error_body(&r);
        assert_eq!(anthropic["type"], "error");
        assert_eq!(anthropic["error"]["type"], "permission_error");
        assert_eq!(anthropic["error"]["code"], "grant_denied");
        for family in [Dialect(Wire::Gemini), Dialect(Wire::Vertex)] {
            let google = family.error_body(&r);
            assert_eq!(google["error"]["code"], 403);
            assert_eq!(google["error"]["status"], "PERMISSION_DENIED");
            assert_eq!(
                google["error"]["details"][0]["metadata"]["code"],
                "grant_denied"
            );
        }
        let aws = Dialect(Wire::Bedrock).error_body(&r);
        assert_eq!(aws["__type"], "AccessDeniedException");
        assert_eq!(aws["code"], "grant_denied");
        let mcp = Dialect(Wire::Mcp).error_body(&r);
        assert_eq!(mcp["jsonrpc"], "2.0");
        assert_eq!(mcp["error"]["data"]["code"], "grant_denied");
    }

    #[test]
    fn statuses_map_to_each_family_names() {
        for (status, anthropic, google) in [
            (400, "invalid_request_error", "INVALID_ARGUMENT"),
            (401, "authentication_error", "UNAUTHENTICATED"),
            (403, "permission_error", "PERMISSION_DENIED"),
            (404, "not_found_error", "NOT_FOUND"),
            (413, "request_too_large", "INVALID_ARGUMENT"),
            (429, "rate_limit_error", "RESOURCE_EXHAUSTED"),
            (500, "api_error", "INTERNAL"),
            (502, "api_error", "UNAVAILABLE"),
            (504, "api_error", "DEADLINE_EXCEEDED"),
        ] {
            assert_eq!(anthropic_type(status), anthropic, "{status}");
            assert_eq!(google_status(status), google, "{status}");
        }
    }

    #[test]
    fn a_plain_upstream_403_is_about_the_resource_not_the_key() {
        assert!(Dialect(Wire::OpenAi).credential_refused(403));
        assert!(Dialect(Wire::Anthropic).credential_refused(401));
        assert!(Dialect(Wire::Http).credential_refused(401));
        assert!(!Dialect(Wire::Http).credential_refused(403));
        assert!(!Dialect(Wire::Mcp).credential_refused(404));
        assert!(!Dialect(Wire::Gemini).credential_refused(429));
    }
}
