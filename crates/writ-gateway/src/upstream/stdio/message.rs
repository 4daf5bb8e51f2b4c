//! The JSON-RPC messages between clients, the gateway and a started server: a client's
//! request given a gateway-unique id (and its own id given back on the answer), a line
//! of the server's output read for what it is, and the messages the gateway writes itself
//! (its `initialize` handshake, cancellations, answers to the server's requests).
//!
//! Many clients share one server, and two of them may well both use id 1: the server
//! sees only ids the gateway chose, so an answer can reach only the call it answers.

use serde_json::{Map, Value, json};

/// The protocol revision the gateway asks for in its handshake: the newest one with an
/// `initialize` handshake. A server that speaks another answers with its own.
pub(super) const HANDSHAKE_VERSION: &str = "2025-11-25";

/// JSON-RPC's "method not found".
const METHOD_NOT_FOUND: i64 = -32601;

/// Why a client's message cannot be passed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum MessageError {
    /// The body is not one JSON object.
    #[error("the body is not a JSON-RPC message object")]
    NotAnObject,
    /// The id is neither a string nor an integer (JSON-RPC as MCP uses it).
    #[error("`id` must be a string or an integer")]
    BadId,
}

/// A client's message, as the gateway handles it for a started server.
#[derive(Debug, PartialEq)]
pub(super) enum ClientMessage {
    /// A request to pass on: the client's own id, and the request as one line that
    /// carries the gateway's id instead.
    Request { id: Value, line: Vec<u8> },
    /// `initialize`: answered from the gateway's own handshake with the server, which
    /// another client's `initialize` must not reset.
    Initialize { id: Value },
    /// A notification, or a response to a server's request: nothing is passed on (the
    /// server's requests are answered by the gateway, and one client's notification, such
    /// as `notifications/initialized` or a cancellation naming its own id, means nothing in
    /// the session the server shares among all clients).
    Accepted,
}

/// Reads a client's message and, for a request, gives it the gateway's id `gid`.
pub(super) fn read_client(body: &[u8], gid: u64) -> Result<ClientMessage, MessageError> {
    let mut message: Map<String, Value> =
        serde_json::from_slice(body).map_err(|_| MessageError::NotAnObject)?;
    let Some(id) = message.remove("id") else {
        return Ok(ClientMessage::Accepted);
    };
    let id_ok = id.is_string() || id.as_i64().is_some() || id.as_u64().is_some();
    if !id_ok {
        return Err(MessageError::BadId);
    }
    match message.get("method") {
        None => Ok(ClientMessage::Accepted),
        Some(Value::String(m)) if m == "initialize" => Ok(ClientMessage::Initialize { id }),
        Some(_) => {
            message.insert("id".to_string(), Value::from(gid));
            // Compact JSON has no raw newline: control characters in strings are escaped.
            let line = serde_json::to_vec(&message).map_err(|_| MessageError::NotAnObject)?;
            Ok(ClientMessage::Request { id, line })
        }
    }
}

/// The answer to a client: the server's answer with the client's id put back.
pub(super) fn restore(mut answer: Map<String, Value>, id: Value) -> Vec<u8> {
    answer.insert("id".to_string(), id);
    // A map of JSON values always serializes.
    serde_json::to_vec(&answer).unwrap_or_default()
}

/// One line of the server's output.
#[derive(Debug, PartialEq)]
pub(super) enum ServerMessage {
    /// An answer (result or error) to the gateway's request `gid`.
    Answer {
        gid: u64,
        message: Map<String, Value>,
    },
    /// A request from the server (sampling, elicitation, roots, ping), which must be
    /// answered or the server may wait for ever.
    Request { id: Value, method: String },
    /// A notification (a log line, progress, a list that changed).
    Notification { method: String },
    /// An answer whose id the gateway cannot have sent.
    Stray,
    /// Not a JSON-RPC message.
    Garbage,
}

/// Reads one line of the server's output.
pub(super) fn read_server(line: &[u8]) -> ServerMessage {
    let Ok(message) = serde_json::from_slice::<Map<String, Value>>(line) else {
        return ServerMessage::Garbage;
    };
    let method = match message.get("method") {
        Some(Value::String(m)) => Some(m.clone()),
        Some(_) => return ServerMessage::Garbage,
        None => None,
    };
    match (message.get("id"), method) {
        (Some(id), Some(method)) => ServerMessage::Request {
            id: id.clone(),
            method,
        },
        (None, Some(method)) => ServerMessage::Notification { method },
        (Some(id), None) if message.contains_key("result") || message.contains_key("error") => {
            match id.as_u64() {
                Some(gid) => ServerMessage::Answer { gid, message },
                None => ServerMessage::Stray,
            }
        }
        _ => ServerMessage::Garbage,
    }
}

/// The gateway's answer to the server's request: `ping` is answered, anything else
/// (sampling, elicitation, roots) is refused as a method the gateway does not offer, so
/// the server does not wait for an answer that would never come.
pub(super) fn answer_server_request(id: &Value, method: &str) -> Vec<u8> {
    let answer = if method == "ping" {
        json!({"jsonrpc": "2.0", "id": id, "result": {}})
    } else {
        json!({"jsonrpc": "2.0", "id": id, "error": {
            "code": METHOD_NOT_FOUND,
            "message": format!("{method} is not available: the server runs behind the writ gateway, which has no client to ask"),
        }})
    };
    answer.to_string().into_bytes()
}

/// The gateway's `initialize` request, as the server's one client.
pub(super) fn initialize_request(gid: u64) -> Vec<u8> {
    json!({"jsonrpc": "2.0", "id": gid, "method": "initialize", "params": {
        "protocolVersion": HANDSHAKE_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "writ-gateway", "version": env!("CARGO_PKG_VERSION")},
    }})
    .to_string()
    .into_bytes()
}

/// The notification that ends the handshake.
pub(super) fn initialized_notification() -> Vec<u8> {
    br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_vec()
}

/// Tells the server the gateway no longer waits for the answer to `gid`.
pub(super) fn cancelled(gid: u64) -> Vec<u8> {
    json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {
        "requestId": gid,
        "reason": "the gateway's client stopped waiting",
    }})
    .to_string()
    .into_bytes()
}

/// How the server answered the gateway's `initialize`.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Handshake {
    /// Its `InitializeResult`: every client's `initialize` is answered with it.
    Accepted(Value),
    /// Its error (a server that speaks only revisions without the handshake): clients'
    /// `initialize` get the same error, and their other requests still go through.
    Refused(Value),
}

impl Handshake {
    /// Reads the server's answer to the gateway's `initialize`.
    pub(super) fn from_answer(mut answer: Map<String, Value>) -> Self {
        match answer.remove("result") {
            Some(result) => Handshake::Accepted(result),
            None => Handshake::Refused(answer.remove("error").unwrap_or(Value::Null)),
        }
    }

    /// The answer to a client's `initialize` whose id is `id`.
    pub(super) fn answer(&self, id: Value) -> Vec<u8> {
        match self {
            Handshake::Accepted(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
            Handshake::Refused(error) => json!({"jsonrpc": "2.0", "id": id, "error": error}),
        }
        .to_string()
        .into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).expect("JSON")
    }

    #[test]
    fn a_request_carries_the_gateway_id_and_its_answer_the_client_id() {
        let body = br#"{"jsonrpc":"2.0","id":"abc","method":"tools/call","params":{"name":"t","arguments":{"x":"a\nb"}}}"#;
        let ClientMessage::Request { id, line } = read_client(body, 41).expect("a request") else {
            panic!("not a request");
        };
        assert_eq!(id, json!("abc"));
        assert!(
            !line.contains(&b'\n'),
            "one line: {}",
            String::from_utf8_lossy(&line)
        );
        let sent = parse(&line);
        assert_eq!(sent["id"], json!(41));
        assert_eq!(sent["params"]["arguments"]["x"], "a\nb");
        assert_eq!(sent["method"], "tools/call");

        let ServerMessage::Answer { gid, message } =
            read_server(br#"{"jsonrpc":"2.0","id":41,"result":{"content":[]}}"#)
        else {
            panic!("not an answer");
        };
        assert_eq!(gid, 41);
        let back = parse(&restore(message, id));
        assert_eq!(
            back,
            json!({"jsonrpc": "2.0", "id": "abc", "result": {"content": []}})
        );
    }

    #[test]
    fn two_clients_with_the_same_id_send_different_ids() {
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
        let line = |gid| match read_client(body, gid) {
            Ok(ClientMessage::Request { id, line }) => (id, parse(&line)["id"].clone()),
            other => panic!("{other:?}"),
        };
        let (a, b) = (line(7), line(8));
        assert_eq!((a.0.clone(), b.0.clone()), (json!(1), json!(1)));
        assert_ne!(a.1, b.1);
    }

    #[test]
    fn initialize_notifications_and_responses_are_not_passed_on() {
        assert_eq!(
            read_client(
                br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}"#,
                1
            ),
            Ok(ClientMessage::Initialize { id: json!(0) })
        );
        for body in [
            &br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#[..],
            br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}"#,
            br#"{"jsonrpc":"2.0","id":"srv-1","result":{}}"#,
        ] {
            assert_eq!(read_client(body, 1), Ok(ClientMessage::Accepted));
        }
    }

    #[test]
    fn malformed_client_messages_are_refused() {
        assert_eq!(read_client(b"[1]", 1), Err(MessageError::NotAnObject));
        assert_eq!(read_client(b"nope", 1), Err(MessageError::NotAnObject));
        for id in ["null", "1.5", "{}", "[1]", "true"] {
            let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
            assert_eq!(
                read_client(body.as_bytes(), 1),
                Err(MessageError::BadId),
                "{id}"
            );
        }
    }

    #[test]
    fn server_lines_are_told_apart() {
        assert!(matches!(
            read_server(br#"{"jsonrpc":"2.0","id":"s1","method":"sampling/createMessage","params":{}}"#),
            ServerMessage::Request { method, .. } if method == "sampling/createMessage"
        ));
        assert!(matches!(
            read_server(br#"{"jsonrpc":"2.0","method":"notifications/message","params":{}}"#),
            ServerMessage::Notification { method } if method == "notifications/message"
        ));
        assert_eq!(
            read_server(br#"{"jsonrpc":"2.0","id":"x","result":{}}"#),
            ServerMessage::Stray
        );
        assert_eq!(
            read_server(br#"{"jsonrpc":"2.0","id":-1,"error":{}}"#),
            ServerMessage::Stray
        );
        for garbage in [
            &b"hello"[..],
            b"[1,2]",
            b"{}",
            br#"{"id":1}"#,
            br#"{"method":5}"#,
            b"\xff\xfe",
        ] {
            assert_eq!(read_server(garbage), ServerMessage::Garbage, "{garbage:?}");
        }
    }

    #[test]
    fn the_server_requests_are_answered_so_it_never_waits() {
        let refused = parse(&answer_server_request(&json!("r1"), "roots/list"));
        assert_eq!(refused["id"], "r1");
        assert_eq!(refused["error"]["code"], METHOD_NOT_FOUND);
        let pong = parse(&answer_server_request(&json!(3), "ping"));
        assert_eq!(pong, json!({"jsonrpc": "2.0", "id": 3, "result": {}}));
    }

    #[test]
    fn clients_initialize_is_answered_from_the_handshake() {
        let answer = |text: &[u8]| match read_server(text) {
            ServerMessage::Answer { message, .. } => Handshake::from_answer(message),
            other => panic!("{other:?}"),
        };
        let accepted = answer(br#"{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-11-25","capabilities":{}}}"#);
        let reply = parse(&accepted.answer(json!("c-9")));
        assert_eq!(reply["id"], "c-9");
        assert_eq!(reply["result"]["protocolVersion"], "2025-11-25");
        let refused =
            answer(br#"{"jsonrpc":"2.0","id":0,"error":{"code":-32022,"message":"modern only"}}"#);
        let reply = parse(&refused.answer(json!(5)));
        assert_eq!(reply["error"]["code"], -32022);
        let request = parse(&initialize_request(0));
        assert_eq!(request["params"]["protocolVersion"], HANDSHAKE_VERSION);
        assert_eq!(parse(&cancelled(12))["params"]["requestId"], 12);
    }
}
