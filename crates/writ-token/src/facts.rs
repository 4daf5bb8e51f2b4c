//! Request facts: the stable vocabulary the gateway states about a request (DESIGN §2).

use std::collections::BTreeSet;
use std::time::SystemTime;

use biscuit_auth::builder::{Fact, Term, fact};
use serde_json::Value;

use crate::grant::ArgValue;
use crate::grant::canonical_int;

/// Which kind of API a request is for; grants of one kind never match requests of another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// A model API (`writ:llm`).
    Llm,
    /// A tool server (`writ:tool`).
    Tool,
    /// A plain HTTP upstream (`writ:http`).
    Http,
    /// The gateway's admin API (`writ:admin`).
    Admin,
}

impl Api {
    /// The name stated as `api(..)`.
    pub fn as_str(self) -> &'static str {
        match self {
            Api::Llm => "llm",
            Api::Tool => "tool",
            Api::Http => "http",
            Api::Admin => "admin",
        }
    }

    /// The `authorization_details` types that decide requests to this API: its own access
    /// grants, then the budgets and raw checks that constrain every request of a block.
    pub fn grant_types(self) -> &'static [&'static str] {
        match self {
            Api::Llm => &["writ:llm", "writ:budget", "writ:datalog"],
            Api::Tool => &[
                "writ:tool",
                "writ:prompt",
                "writ:resource",
                "writ:budget",
                "writ:datalog",
            ],
            Api::Http => &["writ:http", "writ:budget", "writ:datalog"],
            Api::Admin => &["writ:admin", "writ:budget", "writ:datalog"],
        }
    }
}

/// What the gateway knows about one request, stated to the authorizer as Datalog facts.
///
/// Facts come only from here, never from token blocks. The names are part of the writ
/// format: `time`, `api`, `upstream`, `operation`, `method`, `path`, `path_segment`,
/// `model`, `max_output_tokens`, `stream`, `tool`, `arg`, `arg_names`, `admin_tenant`,
/// `dpop_jkt`, `resource` (the RFC 8707 resource an MCP request is at), for MCP
/// requests `mcp_method`, `prompt` and `uri` (a resource URI the request reads), and
/// `approved_by(person, method)` when a person approved this exact request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFacts {
    /// Kind of API.
    pub api: Api,
    /// Configured upstream name the request goes to (none for the admin API).
    pub upstream: Option<String>,
    /// Operation, such as `chat`, `tool_call`, `http` or `admin`.
    pub operation: String,
    /// HTTP method, upper case.
    pub method: String,
    /// Path as sent upstream, without the query; also stated segment by segment.
    pub path: String,
    /// Model named in the request, if any.
    pub model: Option<String>,
    /// The output-token cap the request states, if any.
    pub max_output_tokens: Option<u64>,
    /// Whether the response is streamed.
    pub stream: bool,
    /// Tool called, if any.
    pub tool: Option<String>,
    /// Tool (or prompt) arguments by dotted name.
    pub args: Vec<(String, ArgValue)>,
    /// The JSON-RPC method of an MCP request (`tools/call`, `resources/read`, …).
    pub mcp_method: Option<String>,
    /// The prompt an MCP `prompts/get` asks for.
    pub prompt: Option<String>,
    /// The resource URI an MCP `resources/read` asks for.
    pub uri: Option<String>,
    /// Tenant an admin request acts on.
    pub admin_tenant: Option<String>,
    /// Thumbprint of the key that signed a valid DPoP proof for this request.
    pub dpop_jkt: Option<String>,
    /// The canonical URI of the protected resource the request is at (RFC 8707: an MCP
    /// endpoint, `<issuer>/mcp/<upstream>`), as its metadata advertises it. `None` on
    /// routes that are no such resource, where writs bound to an audience are refused.
    pub resource: Option<String>,
    /// The person who approved this exact request and how they authenticated
    /// (`approved_by(person, method)`), once the gateway verified an approval for it.
    pub approved_by: Option<(String, String)>,
}

impl RequestFacts {
    /// Facts with only the required fields set; callers fill in the rest.
    pub fn new(api: Api, operation: &str, method: &str, path: &str) -> Self {
        Self {
            api,
            upstream: None,
            operation: operation.to_string(),
            method: method.to_string(),
            path: path.to_string(),
            model: None,
            max_output_tokens: None,
            stream: false,
            tool: None,
            args: Vec::new(),
            mcp_method: None,
            prompt: None,
            uri: None,
            admin_tenant: None,
            dpop_jkt: None,
            resource: None,
            approved_by: None,
        }
    }

    /// Writes these facts into `out` as bytes that are equal exactly when the facts are:
    /// every part in a fixed order, tagged and length-prefixed. The authorization memo keeps
    /// this one contiguous buffer instead of the facts' separate strings, so a repeated
    /// request compares a few adjacent cache lines.
    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) {
        fn text(out: &mut Vec<u8>, v: &str) {
            out.extend_from_slice(&(v.len() as u64).to_le_bytes());
            out.extend_from_slice(v.as_bytes());
        }
        fn optional(out: &mut Vec<u8>, v: Option<&str>) {
            match v {
                None => out.push(0),
                Some(v) => {
                    out.push(1);
                    text(out, v);
                }
            }
        }
        out.push(self.api as u8);
        optional(out, self.upstream.as_deref());
        text(out, &self.operation);
        text(out, &self.method);
        text(out, &self.path);
        optional(out, self.model.as_deref());
        match self.max_output_tokens {
            None => out.push(0),
            Some(n) => {
                out.push(1);
                out.extend_from_slice(&n.to_le_bytes());
            }
        }
        out.push(u8::from(self.stream));
        optional(out, self.tool.as_deref());
        out.extend_from_slice(&(self.args.len() as u64).to_le_bytes());
        for (name, value) in &self.args {
            text(out, name);
            match value {
                ArgValue::Null => out.push(0),
                ArgValue::Bool(b) => out.extend_from_slice(&[1, u8::from(*b)]),
                ArgValue::Int(n) => {
                    out.push(2);
                    out.extend_from_slice(&n.to_le_bytes());
                }
                ArgValue::Str(v) => {
                    out.push(3);
                    text(out, v);
                }
            }
        }
        optional(out, self.mcp_method.as_deref());
        optional(out, self.prompt.as_deref());
        optional(out, self.uri.as_deref());
        optional(out, self.admin_tenant.as_deref());
        optional(out, self.dpop_jkt.as_deref());
        optional(out, self.resource.as_deref());
        match &self.approved_by {
            None => out.push(0),
            Some((person, method)) => {
                out.push(1);
                text(out, person);
                text(out, method);
            }
        }
    }

    /// The Datalog facts for this request at time `now`.
    pub(crate) fn to_facts(&self, now: SystemTime) -> Vec<Fact> {
        let s = |v: &str| Term::from(v);
        let mut out = vec![
            fact("time", &[Term::from(now)]),
            fact("api", &[s(self.api.as_str())]),
            fact("operation", &[s(&self.operation)]),
            fact("method", &[s(&self.method)]),
            fact("path", &[s(&self.path)]),
            fact("stream", &[Term::from(self.stream)]),
        ];
        for (i, segment) in self.path.trim_start_matches('/').split('/').enumerate() {
            let value = canonical_int(segment).map_or_else(|| s(segment), Term::from);
            out.push(fact("path_segment", &[Term::from(i as i64), value]));
        }
        let optional = [
            ("upstream", &self.upstream),
            ("model", &self.model),
            ("tool", &self.tool),
            ("mcp_method", &self.mcp_method),
            ("prompt", &self.prompt),
            ("uri", &self.uri),
            ("admin_tenant", &self.admin_tenant),
            ("dpop_jkt", &self.dpop_jkt),
            ("resource", &self.resource),
        ];
        for (name, value) in optional {
            if let Some(v) = value {
                out.push(fact(name, &[s(v)]));
            }
        }
        if let Some((person, method)) = &self.approved_by {
            out.push(fact("approved_by", &[s(person), s(method)]));
        }
        if let Some(n) = self.max_output_tokens {
            out.push(fact(
                "max_output_tokens",
                &[Term::from(i64::try_from(n).unwrap_or(i64::MAX))],
            ));
        }
        if self.api == Api::Tool {
            let mut names = BTreeSet::new();
            for (name, value) in &self.args {
                let v = match value {
                    ArgValue::Null => Term::Null,
                    ArgValue::Bool(b) => Term::from(*b),
                    ArgValue::Int(n) => Term::from(*n),
                    ArgValue::Str(x) => s(x),
                };
                out.push(fact("arg", &[s(name), v]));
                names.insert(s(name));
            }
            out.push(fact("arg_names", &[Term::Set(names)]));
        }
        out
    }
}

/// Arguments nested deeper than this are refused.
pub const MAX_ARG_DEPTH: usize = 16;
/// More leaf arguments than this are refused.
pub const MAX_ARGS: usize = 512;

/// Tool arguments could not be stated as facts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgumentsError {
    /// Arguments must be a JSON object.
    #[error("tool arguments must be a JSON object")]
    NotObject,
    /// Nested too deep or too many leaves.
    #[error("tool arguments nest deeper than {MAX_ARG_DEPTH} or hold more than {MAX_ARGS} values")]
    TooLarge,
    /// Two leaves flatten to one dotted name (`{"a.b":1}` beside `{"a":{"b":2}}`): a grant
    /// on that name would be checked against one while the tool reads the other.
    #[error("two tool arguments have the dotted name `{name}`; rename the key that contains a dot")]
    Ambiguous {
        /// The dotted name both leaves have.
        name: String,
    },
}

/// Flattens a JSON object of tool arguments to `(dotted name, value)` leaves:
/// `{"passenger":{"name":"Ada"},"legs":[{"from":"FRA"}]}` → `passenger.name`, `legs.0.from`.
/// Numbers that are not integers are stated as their JSON text.
pub fn flatten_arguments(arguments: &Value) -> Result<Vec<(String, ArgValue)>, ArgumentsError> {
    let Value::Object(map) = arguments else {
        return Err(ArgumentsError::NotObject);
    };
    let mut out = Vec::new();
    for (k, v) in map {
        flatten_into(k.clone(), v, 1, &mut out)?;
    }
    // Each name is stated once, so `arg("name", $v)` matches one value (the evaluation
    // bound relies on it too).
    let mut names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(ArgumentsError::Ambiguous {
            name: w[0].to_string(),
        });
    }
    Ok(out)
}

fn flatten_into(
    name: String,
    v: &Value,
    depth: usize,
    out: &mut Vec<(String, ArgValue)>,
) -> Result<(), ArgumentsError> {
    if depth > MAX_ARG_DEPTH || out.len() >= MAX_ARGS {
        return Err(ArgumentsError::TooLarge);
    }
    match v {
        Value::Null => out.push((name, ArgValue::Null)),
        Value::Bool(b) => out.push((name, ArgValue::Bool(*b))),
        Value::Number(n) => out.push((
            name,
            n.as_i64()
                .map_or_else(|| ArgValue::Str(n.to_string()), ArgValue::Int),
        )),
        Value::String(s) => out.push((name, ArgValue::Str(s.clone()))),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                flatten_into(format!("{name}.{i}"), item, depth + 1, out)?;
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                flatten_into(format!("{name}.{k}"), item, depth + 1, out)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_api_names_its_own_grant_type() {
        for api in [Api::Llm, Api::Tool, Api::Http, Api::Admin] {
            let types = api.grant_types();
            assert_eq!(types[0], format!("writ:{}", api.as_str()));
            assert!(types.iter().all(|t| crate::GRANT_TYPES.contains(t)));
        }
    }

    #[test]
    fn flattens_nested_arguments() {
        let args = flatten_arguments(&json!({"passenger":{"name":"Ada","age":36},"legs":[{"from":"FRA"}],"ok":true,"x":null,"f":1.5})).unwrap();
        let get = |n: &str| args.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        assert_eq!(get("passenger.name"), Some(ArgValue::Str("Ada".into())));
        assert_eq!(get("passenger.age"), Some(ArgValue::Int(36)));
        assert_eq!(get("legs.0.from"), Some(ArgValue::Str("FRA".into())));
        assert_eq!(get("ok"), Some(ArgValue::Bool(true)));
        assert_eq!(get("x"), Some(ArgValue::Null));
        assert_eq!(get("f"), Some(ArgValue::Str("1.5".into())));
    }

    #[test]
    fn refuses_non_objects_and_bombs() {
        assert_eq!(
            flatten_arguments(&json!([1])),
            Err(ArgumentsError::NotObject)
        );
        let mut deep = json!(1);
        for _ in 0..40 {
            deep = json!({ "a": deep });
        }
        assert_eq!(flatten_arguments(&deep), Err(ArgumentsError::TooLarge));
        let wide: serde_json::Map<String, Value> =
            (0..1000).map(|i| (format!("k{i}"), json!(i))).collect();
        assert_eq!(
            flatten_arguments(&Value::Object(wide)),
            Err(ArgumentsError::TooLarge)
        );
    }

    #[test]
    fn refuses_two_leaves_with_one_dotted_name() {
        // A grant on `leg.flight` must not be checked against one value while the tool
        // reads the other; likewise an array index spelled as a key.
        for args in [
            json!({"leg.flight":"LH123","leg":{"flight":"LH999"}}),
            json!({"legs":[{"f":"LH123"}],"legs.0":{"f":"LH999"}}),
        ] {
            assert!(matches!(
                flatten_arguments(&args),
                Err(ArgumentsError::Ambiguous { .. })
            ));
        }
        assert!(flatten_arguments(&json!({"leg.flight":"LH123","leg":{"date":"x"}})).is_ok());
    }

    #[test]
    fn encodings_are_equal_exactly_when_the_facts_are() {
        let base = || {
            let mut f = RequestFacts::new(Api::Tool, "tool_call", "POST", "/v1/tools/book");
            f.upstream = Some("travel".into());
            f.model = Some("gpt-4o".into());
            f.max_output_tokens = Some(100);
            f.tool = Some("book".into());
            f.args = vec![
                ("flight".into(), ArgValue::Str("LH123".into())),
                ("seats".into(), ArgValue::Int(1)),
            ];
            f
        };
        type Change = fn(&mut RequestFacts);
        let changes: &[Change] = &[
            |_| {},
            |f| f.api = Api::Http,
            |f| f.upstream = None,
            |f| f.upstream = Some(String::new()),
            |f| f.operation = "tool_cal".into(),
            |f| f.method = "GET".into(),
            // The same bytes moved from one field to the next.
            |f| {
                f.method = "POST/".into();
                f.path = "v1/tools/book".into();
            },
            |f| f.path = "/v1/tools/book/".into(),
            |f| f.model = None,
            |f| f.max_output_tokens = None,
            |f| f.max_output_tokens = Some(101),
            |f| f.stream = true,
            |f| f.tool = Some("boo".into()),
            |f| f.args[1].1 = ArgValue::Str("1".into()),
            |f| f.args[1].1 = ArgValue::Bool(true),
            |f| f.args[1].1 = ArgValue::Null,
            |f| f.args[0].0 = "flights".into(),
            |f| {
                f.args.pop();
            },
            |f| f.args.reverse(),
            |f| f.admin_tenant = Some("t".into()),
            |f| f.dpop_jkt = Some("t".into()),
            |f| f.resource = Some("t".into()),
        ];
        let variants: Vec<RequestFacts> = changes
            .iter()
            .map(|change| {
                let mut f = base();
                change(&mut f);
                f
            })
            .collect();
        for a in &variants {
            for b in &variants {
                let (mut ea, mut eb) = (Vec::new(), Vec::new());
                a.encode_into(&mut ea);
                b.encode_into(&mut eb);
                assert_eq!(a == b, ea == eb, "{a:?} against {b:?}");
            }
        }
    }
}
