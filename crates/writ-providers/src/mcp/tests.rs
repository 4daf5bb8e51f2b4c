//! Reading JSON-RPC messages: each method's request, and every malformed shape refused.

use super::*;
use serde_json::json;

fn request(body: &[u8]) -> McpRequest {
    inspect(body).expect("message").request
}

#[test]
fn reads_each_method_as_what_it_asks_for() {
    let call = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"book_flight","arguments":{"flight":"LH123"}}}"#;
    let m = inspect(call).expect("message");
    assert_eq!(m.id, Some(json!(1)));
    assert_eq!(m.method.as_deref(), Some("tools/call"));
    assert_eq!(m.name(), Some("book_flight"));
    assert_eq!(
        m.request,
        McpRequest::ToolCall {
            tool: "book_flight".into(),
            arguments: json!({"flight": "LH123"})
        }
    );
    assert_eq!(
        request(
            br#"{"jsonrpc":"2.0","id":"r","method":"resources/read","params":{"uri":"file:///a"}}"#
        ),
        McpRequest::ResourceRead {
            uri: "file:///a".into()
        }
    );
    assert_eq!(
        request(br#"{"jsonrpc":"2.0","id":2,"method":"prompts/get","params":{"name":"p","arguments":{"x":"1"}}}"#),
        McpRequest::PromptGet {
            name: "p".into(),
            arguments: json!({"x": "1"})
        }
    );
    assert_eq!(
        request(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#),
        McpRequest::List(list::ListKind::Tools)
    );
    for session in [
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"server/discover"}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        r#"{"jsonrpc":"2.0","id":"s-1","result":{"roots":[]}}"#,
    ] {
        assert_eq!(
            request(session.as_bytes()),
            McpRequest::Session,
            "{session}"
        );
    }
    assert_eq!(
        request(br#"{"jsonrpc":"2.0","id":1,"method":"completion/complete"}"#),
        McpRequest::Completion
    );
    assert_eq!(
        request(
            br#"{"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"uri":"x:1"}}"#
        ),
        McpRequest::ResourceWatch { uri: "x:1".into() }
    );
    assert_eq!(
        request(br#"{"jsonrpc":"2.0","id":1,"method":"tasks/cancel"}"#),
        McpRequest::Other("tasks/cancel".into())
    );
}

#[test]
fn reads_the_version_a_modern_request_states() {
    let m = inspect(
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#,
    )
    .expect("message");
    assert_eq!(m.meta_version.as_deref(), Some(MODERN_VERSION));
    let notification =
        inspect(br#"{"jsonrpc":"2.0","method":"notifications/x"}"#).expect("message");
    assert!(!notification.is_request());
}

#[test]
fn reads_trace_context_from_meta_and_ignores_what_is_no_string_or_too_long() {
    let m = inspect(
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","tracestate":"rojo=1"}}}"#,
    )
    .expect("message");
    assert_eq!(
        m.meta_traceparent.as_deref(),
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    );
    assert_eq!(m.meta_tracestate.as_deref(), Some("rojo=1"));
    let long = "a".repeat(MAX_META_TRACE + 1);
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{{"_meta":{{"traceparent":7,"tracestate":"{long}"}}}}}}"#
    );
    let m = inspect(body.as_bytes()).expect("trace context is optional: never refused");
    assert!(m.meta_traceparent.is_none() && m.meta_tracestate.is_none());
}

#[test]
fn refuses_malformed_messages() {
    let wrong = |body: &[u8]| match inspect(body) {
        Err(InspectError::WrongType { field, .. }) => Some(field),
        _ => None,
    };
    // A batch is refused as such, not read as its first request.
    assert_eq!(wrong(b"[]"), Some("body"));
    assert_eq!(
        wrong(br#" [{"jsonrpc":"2.0","method":"tools/call"}]"#),
        Some("body")
    );
    assert_eq!(wrong(br#"{"id":1,"method":"ping"}"#), Some("jsonrpc"));
    assert_eq!(
        wrong(br#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#),
        Some("jsonrpc")
    );
    assert_eq!(
        inspect(br#"{"jsonrpc":"2.0","id":1}"#),
        Err(InspectError::MissingField("method"))
    );
    assert_eq!(
        wrong(br#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#),
        Some("id")
    );
    assert_eq!(
        wrong(br#"{"jsonrpc":"2.0","id":[1],"method":"ping"}"#),
        Some("id")
    );
    assert_eq!(
        wrong(br#"{"jsonrpc":"2.0","id":1,"method":"ping","params":[]}"#),
        Some("params")
    );
    assert_eq!(
        inspect(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#),
        Err(InspectError::MissingField("params.name"))
    );
    assert_eq!(
        wrong(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5}}"#),
        Some("params.name")
    );
    assert_eq!(
        wrong(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":[1]}}"#),
        Some("params.arguments")
    );
    assert_eq!(
        wrong(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":7}}}"#),
        Some("params._meta.io.modelcontextprotocol/protocolVersion")
    );
    assert_eq!(inspect(b"nope"), Err(InspectError::NotJson));
    // The same key twice: the gateway and the server could read different calls.
    assert!(matches!(
        inspect(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{"f":"LH123","f":"LH999"}}}"#),
        Err(InspectError::DuplicateKey { .. })
    ));
}

#[test]
fn names_outside_the_tool_name_alphabet_are_refused() {
    for name in [
        "b\u{043e}\u{043e}k_flight", // Cyrillic o
        "book\u{200b}_flight",       // zero-width space
        "book_flight\u{0000}",
        "book flight",
        "",
        &"a".repeat(129),
    ] {
        let body = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":name}});
        let body = serde_json::to_vec(&body).expect("json");
        assert!(
            matches!(
                inspect(&body),
                Err(InspectError::WrongType {
                    field: "params.name",
                    ..
                })
            ),
            "{name:?}"
        );
    }
    assert!(is_safe_name("admin.tools-list_v2"));
    assert!(is_safe_name(&"a".repeat(128)));
}
