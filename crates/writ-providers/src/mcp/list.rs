//! List answers (`tools/list`, `resources/list`, `prompts/list`, …) filtered to the
//! entries a writ may use, whether the server answered with one JSON object or an SSE
//! stream ending in the response.
//!
//! The filtered answer is written anew by the gateway, so the client reads exactly what
//! was filtered: a repeated key in the server's answer cannot show the client an entry
//! the gateway did not see.

use serde_json::Value;

use crate::sse::SseParser;

/// Which list a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    /// `tools/list`.
    Tools,
    /// `prompts/list`.
    Prompts,
    /// `resources/list`.
    Resources,
    /// `resources/templates/list`.
    ResourceTemplates,
}

impl ListKind {
    /// The list a method asks for, if it is one.
    pub fn of_method(method: &str) -> Option<Self> {
        match method {
            "tools/list" => Some(Self::Tools),
            "prompts/list" => Some(Self::Prompts),
            "resources/list" => Some(Self::Resources),
            "resources/templates/list" => Some(Self::ResourceTemplates),
            _ => None,
        }
    }

    /// The method's name.
    pub fn method(self) -> &'static str {
        match self {
            Self::Tools => "tools/list",
            Self::Prompts => "prompts/list",
            Self::Resources => "resources/list",
            Self::ResourceTemplates => "resources/templates/list",
        }
    }

    /// The key of the result's array of entries.
    fn items_key(self) -> &'static str {
        match self {
            Self::Tools => "tools",
            Self::Prompts => "prompts",
            Self::Resources => "resources",
            Self::ResourceTemplates => "resourceTemplates",
        }
    }

    /// The key of an entry that names it.
    fn name_key(self) -> &'static str {
        match self {
            Self::Tools | Self::Prompts => "name",
            Self::Resources => "uri",
            Self::ResourceTemplates => "uriTemplate",
        }
    }
}

/// Most entries one list answer may hold: each is asked of the writ, so a hostile server
/// cannot make the gateway evaluate without bound (MCP lists paginate long before this).
pub const MAX_ENTRIES: usize = 10_000;

/// A list answer that cannot be filtered, so it is not passed on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    /// The answer (or an event of the stream) is not a JSON-RPC message.
    #[error("the MCP server's list answer is not JSON-RPC")]
    Malformed,
    /// The stream ended without the response.
    #[error("the MCP server's list answer ended without a response")]
    NoResponse,
    /// More entries than [`MAX_ENTRIES`].
    #[error("the MCP server's list answer has more than {MAX_ENTRIES} entries")]
    TooMany,
}

/// What filtering kept and removed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Filtered {
    /// The answer to send on.
    pub body: Vec<u8>,
    /// How many entries were kept.
    pub kept: usize,
    /// How many entries were removed.
    pub removed: usize,
}

/// Filters a list answer of `kind`: entries for which `keep` (given the entry's name and
/// the entry) says no are removed, and so are entries without a string name. `event_stream` says the server answered with SSE;
/// events other than the response (progress, log messages) pass unchanged, and an error
/// response passes unchanged.
pub fn filter(
    kind: ListKind,
    body: &[u8],
    event_stream: bool,
    keep: &mut dyn FnMut(&str, &Value) -> bool,
) -> Result<Filtered, ListError> {
    if !event_stream {
        let mut message: Value = serde_json::from_slice(body).map_err(|_| ListError::Malformed)?;
        let (kept, removed) = filter_message(kind, &mut message, keep)?;
        return Ok(Filtered {
            body: serde_json::to_vec(&message).map_err(|_| ListError::Malformed)?,
            kept,
            removed,
        });
    }
    let mut parser = SseParser::new();
    let mut events = parser.push(body);
    events.extend(parser.finish());
    let mut out = Filtered::default();
    let mut answered = false;
    for event in events {
        let mut message: Value = match serde_json::from_str(&event.data) {
            Ok(m) => m,
            Err(_) if event.data.is_empty() => {
                out.body.extend_from_slice(&event.raw);
                continue;
            }
            Err(_) => return Err(ListError::Malformed),
        };
        if message.get("result").is_none() && message.get("error").is_none() {
            // A notification about the request: passed on as it came.
            out.body.extend_from_slice(&event.raw);
            continue;
        }
        let (kept, removed) = filter_message(kind, &mut message, keep)?;
        out.kept += kept;
        out.removed += removed;
        answered = true;
        let data = serde_json::to_string(&message).map_err(|_| ListError::Malformed)?;
        if !event.event.is_empty() {
            out.body
                .extend_from_slice(format!("event: {}\n", event.event).as_bytes());
        }
        if let Some(id) = &event.id {
            out.body.extend_from_slice(format!("id: {id}\n").as_bytes());
        }
        out.body
            .extend_from_slice(format!("data: {data}\n\n").as_bytes());
    }
    if !answered {
        return Err(ListError::NoResponse);
    }
    Ok(out)
}

/// Filters the entries of one JSON-RPC response in place; an error response is left as is.
fn filter_message(
    kind: ListKind,
    message: &mut Value,
    keep: &mut dyn FnMut(&str, &Value) -> bool,
) -> Result<(usize, usize), ListError> {
    if message.get("error").is_some() {
        return Ok((0, 0));
    }
    let items = message
        .get_mut("result")
        .and_then(|r| r.get_mut(kind.items_key()))
        .and_then(Value::as_array_mut)
        .ok_or(ListError::Malformed)?;
    let before = items.len();
    if before > MAX_ENTRIES {
        return Err(ListError::TooMany);
    }
    items.retain(|entry| {
        entry
            .get(kind.name_key())
            .and_then(Value::as_str)
            .is_some_and(|name| keep(name, entry))
    });
    Ok((items.len(), before - items.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(body: &[u8]) -> Vec<String> {
        let v: Value = serde_json::from_slice(body).expect("json");
        v["result"]["tools"]
            .as_array()
            .expect("tools")
            .iter()
            .map(|t| t["name"].as_str().expect("name").to_string())
            .collect()
    }

    #[test]
    fn keeps_only_what_the_predicate_allows() {
        let answer = json!({"jsonrpc":"2.0","id":1,"result":{"tools":[
            {"name":"book_flight","inputSchema":{}},
            {"name":"cancel_flight","inputSchema":{}},
            {"inputSchema":{}},
            {"name":7}
        ],"nextCursor":"c2"}});
        let body = serde_json::to_vec(&answer).expect("json");
        let out = filter(ListKind::Tools, &body, false, &mut |n, _| {
            n == "book_flight"
        })
        .expect("filtered");
        assert_eq!(names(&out.body), ["book_flight"]);
        assert_eq!((out.kept, out.removed), (1, 3));
        let v: Value = serde_json::from_slice(&out.body).expect("json");
        assert_eq!(v["result"]["nextCursor"], "c2");
        assert_eq!(v["id"], 1);
    }

    #[test]
    fn filters_the_response_event_of_a_stream_and_passes_the_rest() {
        let body = concat!(
            ": keep-alive\n\n",
            "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n",
            "event: message\nid: 7\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"a\"},{\"name\":\"b\"}]}}\n\n"
        );
        let out =
            filter(ListKind::Tools, body.as_bytes(), true, &mut |n, _| n == "b").expect("filtered");
        let text = String::from_utf8(out.body).expect("utf-8");
        assert!(text.contains("notifications/progress"), "{text}");
        assert!(text.contains("id: 7\n"), "{text}");
        assert!(text.contains(r#""tools":[{"name":"b"}]"#), "{text}");
        assert!(!text.contains(r#""name":"a""#), "{text}");
        assert_eq!((out.kept, out.removed), (1, 1));
    }

    #[test]
    fn an_error_answer_passes_and_garbage_is_refused() {
        let error = br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"no"}}"#;
        let out = filter(ListKind::Prompts, error, false, &mut |_, _| true).expect("passes");
        assert_eq!(out.kept + out.removed, 0);
        assert_eq!(
            filter(ListKind::Tools, b"not json", false, &mut |_, _| true),
            Err(ListError::Malformed)
        );
        assert_eq!(
            filter(
                ListKind::Tools,
                br#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
                false,
                &mut |_, _| true
            ),
            Err(ListError::Malformed)
        );
        assert_eq!(
            filter(
                ListKind::Tools,
                b"data: {\"jsonrpc\":\"2.0\",\"method\":\"x\"}\n\n",
                true,
                &mut |_, _| true
            ),
            Err(ListError::NoResponse)
        );
    }

    #[test]
    fn a_repeated_key_is_resolved_once_for_gateway_and_client() {
        // serde keeps the last `tools`; the client gets only what was filtered.
        let body = br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"evil"}],"tools":[{"name":"a"}]}}"#;
        let out = filter(ListKind::Tools, body, false, &mut |n, _| n == "a").expect("filtered");
        assert_eq!(names(&out.body), ["a"]);
        assert!(!String::from_utf8_lossy(&out.body).contains("evil"));
    }

    #[test]
    fn an_endless_list_is_refused_before_it_is_evaluated() {
        let tools: Vec<Value> = (0..=MAX_ENTRIES)
            .map(|i| json!({"name": format!("t{i}")}))
            .collect();
        let body = serde_json::to_vec(&json!({"jsonrpc":"2.0","id":1,"result":{"tools":tools}}))
            .expect("json");
        let mut asked = 0;
        let out = filter(ListKind::Tools, &body, false, &mut |_, _| {
            asked += 1;
            true
        });
        assert_eq!((out, asked), (Err(ListError::TooMany), 0));
    }

    #[test]
    fn each_kind_names_its_entries() {
        let resources = br#"{"jsonrpc":"2.0","id":1,"result":{"resources":[{"uri":"file:///a"},{"uri":"file:///b"}]}}"#;
        let out = filter(ListKind::Resources, resources, false, &mut |u, _| {
            u == "file:///a"
        })
        .expect("filtered");
        assert_eq!((out.kept, out.removed), (1, 1));
        let templates = br#"{"jsonrpc":"2.0","id":1,"result":{"resourceTemplates":[{"uriTemplate":"file:///{x}"}]}}"#;
        let out = filter(
            ListKind::ResourceTemplates,
            templates,
            false,
            &mut |_, _| false,
        )
        .expect("filtered");
        assert_eq!((out.kept, out.removed), (0, 1));
        for kind in [
            ListKind::Tools,
            ListKind::Prompts,
            ListKind::Resources,
            ListKind::ResourceTemplates,
        ] {
            assert_eq!(ListKind::of_method(kind.method()), Some(kind));
        }
    }
}
