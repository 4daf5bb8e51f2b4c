//! The gateway's refusals on MCP routes as JSON-RPC error responses, so an MCP client
//! raises them as the error of the call it made.
//!
//! The HTTP status stays what it is on every other route (401, 403, 429, …: MCP clients
//! read the JSON-RPC error in a non-2xx body); the error's `code` is JSON-RPC's or MCP's
//! where one fits, else one of the gateway's own in the implementation-defined band
//! −32000…−32019 that MCP leaves free; `message` is the same words as on other routes, and
//! `data` carries the gateway's stable `code`, its `type`, the status and any `detail`.

use serde_json::{Map, Value, json};

use crate::error_shape::GatewayErrorReport;

/// JSON-RPC: the body is not JSON.
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC: the body is not a valid request.
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC: no such method here.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// JSON-RPC: the params are invalid.
pub const INVALID_PARAMS: i64 = -32602;
/// JSON-RPC: the receiver failed.
pub const INTERNAL_ERROR: i64 = -32603;
/// MCP 2026-07-28: headers disagree with the body.
pub const HEADER_MISMATCH: i64 = -32020;
/// MCP 2026-07-28: the protocol version is not supported.
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
/// writ: no valid writ (HTTP 401).
pub const UNAUTHENTICATED: i64 = -32010;
/// writ: the writ does not allow the call (HTTP 403).
pub const FORBIDDEN: i64 = -32011;
/// writ: a limit or throttle refused the call (HTTP 429).
pub const LIMITED: i64 = -32012;
/// writ: the MCP server (or the way to it) failed (HTTP 5xx from upstream).
pub const UPSTREAM_FAILED: i64 = -32013;
/// writ: the gateway cannot take calls now (storage, audit log, limiter).
pub const UNAVAILABLE: i64 = -32014;

/// The JSON-RPC error code for a gateway refusal.
pub fn code_for(report: &GatewayErrorReport<'_>) -> i64 {
    match (report.status, report.code) {
        (_, "header_mismatch") => HEADER_MISMATCH,
        (_, "unsupported_protocol_version") => UNSUPPORTED_PROTOCOL_VERSION,
        (_, "invalid_json" | "duplicate_key") => PARSE_ERROR,
        (_, "missing_field" | "invalid_type" | "invalid_arguments") => INVALID_PARAMS,
        (_, "unknown_method") => METHOD_NOT_FOUND,
        (401, _) => UNAUTHENTICATED,
        (403, _) => FORBIDDEN,
        (429, _) => LIMITED,
        (502 | 504, _) => UPSTREAM_FAILED,
        (503, _) => UNAVAILABLE,
        (400..=499, _) => INVALID_REQUEST,
        _ => INTERNAL_ERROR,
    }
}

/// The JSON-RPC error response for `report`, answering the request `id` (`null` when the
/// request's id was not read).
pub fn body(report: &GatewayErrorReport<'_>) -> Value {
    let mut data = Map::new();
    data.insert("status".into(), json!(report.status));
    data.insert("type".into(), json!(report.kind));
    data.insert("code".into(), json!(report.code));
    if let Some(param) = report.param {
        data.insert("param".into(), json!(param));
    }
    if let Some(detail) = report.detail {
        data.insert("detail".into(), json!(detail));
    }
    if let Some(Value::Object(extra)) = report.extra {
        for (k, v) in extra {
            data.insert(k.clone(), v.clone());
        }
    }
    json!({
        "jsonrpc": "2.0",
        "id": report.rpc_id.cloned().unwrap_or(Value::Null),
        "error": {"code": code_for(report), "message": report.message, "data": data},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report<'a>(status: u16, code: &'a str, id: Option<&'a Value>) -> GatewayErrorReport<'a> {
        GatewayErrorReport {
            status,
            kind: "permission_error",
            code,
            message: "this writ does not allow calling tool `cancel_flight`",
            param: None,
            detail: Some("check failed"),
            rpc_id: id,
            extra: None,
        }
    }

    #[test]
    fn a_denial_answers_the_request_by_its_id() {
        let id = json!(7);
        let body = body(&report(403, "grant_denied", Some(&id)));
        assert_eq!(body["jsonrpc"], "2.0");
        assert_eq!(body["id"], 7);
        assert_eq!(body["error"]["code"], FORBIDDEN);
        assert_eq!(body["error"]["data"]["code"], "grant_denied");
        assert_eq!(body["error"]["data"]["status"], 403);
        assert_eq!(body["error"]["data"]["detail"], "check failed");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("cancel_flight"))
        );
    }

    #[test]
    fn codes_follow_json_rpc_and_mcp_where_they_fit() {
        assert_eq!(body(&report(400, "invalid_json", None))["id"], Value::Null);
        for (status, code, rpc) in [
            (400, "header_mismatch", HEADER_MISMATCH),
            (
                400,
                "unsupported_protocol_version",
                UNSUPPORTED_PROTOCOL_VERSION,
            ),
            (400, "invalid_json", PARSE_ERROR),
            (400, "invalid_type", INVALID_PARAMS),
            (404, "unknown_method", METHOD_NOT_FOUND),
            (401, "missing_writ", UNAUTHENTICATED),
            (429, "rate_limit_exceeded", LIMITED),
            (502, "upstream_status", UPSTREAM_FAILED),
            (503, "audit_unavailable", UNAVAILABLE),
            (413, "body_too_large", INVALID_REQUEST),
            (500, "internal_error", INTERNAL_ERROR),
        ] {
            assert_eq!(code_for(&report(status, code, None)), rpc, "{code}");
        }
    }
}
