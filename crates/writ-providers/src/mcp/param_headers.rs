//! `Mcp-Param-{Name}` headers: tool arguments a server's `inputSchema` marks with
//! `x-mcp-header` to be mirrored into HTTP headers (MCP 2026-07-28, "Custom Headers from
//! Tool Parameters"), read from a tool definition and checked against a call's arguments.
//!
//! An annotation is honoured only where the spec allows it: on a property reached from the
//! schema root through `properties` keys alone, of type string, integer or boolean, with a
//! token name unique (ignoring case) within the tool. A tool with an invalid annotation is
//! one a client must not list, so the filter phase leaves it out.

use base64::Engine;
use http::HeaderMap;
use serde_json::Value;

use super::transport::TransportError;

/// Most annotations read from one tool.
const MAX_PARAMS: usize = 32;

/// One argument mirrored into a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamHeader {
    /// The header's name, lower case: `mcp-param-{name}`.
    pub header: String,
    /// The argument's path from the arguments' root, by property name.
    pub path: Vec<String>,
}

/// A tool definition whose `x-mcp-header` annotations break the spec's rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tool `{tool}` has an invalid x-mcp-header annotation: {why}")]
pub struct InvalidAnnotation {
    /// The tool's name.
    pub tool: String,
    /// Which rule it breaks.
    pub why: &'static str,
}

/// The annotated arguments of one tool definition (an entry of a `tools/list` answer).
pub fn of_tool(tool: &Value) -> Result<Vec<ParamHeader>, InvalidAnnotation> {
    let name = tool.get("name").and_then(Value::as_str).unwrap_or_default();
    let invalid = |why| InvalidAnnotation {
        tool: name.chars().take(128).collect(),
        why,
    };
    let mut out = Vec::new();
    let Some(schema) = tool.get("inputSchema") else {
        return Ok(out);
    };
    walk(schema, &mut Vec::new(), true, &mut out).map_err(invalid)?;
    let mut seen = std::collections::BTreeSet::new();
    for p in &out {
        if !seen.insert(p.header.clone()) {
            return Err(invalid("two annotations name the same header"));
        }
    }
    Ok(out)
}

/// Collects annotations under `schema`; `reachable` says whether the path to it is made of
/// `properties` keys only.
fn walk(
    schema: &Value,
    path: &mut Vec<String>,
    reachable: bool,
    out: &mut Vec<ParamHeader>,
) -> Result<(), &'static str> {
    let Some(obj) = schema.as_object() else {
        return Ok(());
    };
    if path.len() > 16 {
        return Err("annotated schema nests too deep");
    }
    if let Some(annotation) = obj.get("x-mcp-header") {
        let name = annotation.as_str().ok_or("the value is not a string")?;
        if !reachable || path.is_empty() {
            return Err("only a property reached through `properties` keys may be annotated");
        }
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err("the name is not an HTTP header token");
        }
        if !matches!(
            obj.get("type").and_then(Value::as_str),
            Some("string" | "integer" | "boolean")
        ) {
            return Err("only string, integer and boolean properties may be annotated");
        }
        if out.len() >= MAX_PARAMS {
            return Err("too many annotations");
        }
        out.push(ParamHeader {
            header: format!("mcp-param-{}", name.to_ascii_lowercase()),
            path: path.clone(),
        });
    }
    for (key, value) in obj {
        match key.as_str() {
            "properties" => {
                if let Some(props) = value.as_object() {
                    for (prop, sub) in props {
                        path.push(prop.clone());
                        walk(sub, path, reachable, out)?;
                        path.pop();
                    }
                }
            }
            // Instance data, never schemas: an annotation inside is not one.
            "default" | "examples" | "const" | "enum" | "x-mcp-header" => {}
            _ => {
                // Any other keyword holding schemas (items, allOf, $defs, …) breaks the chain.
                match value {
                    Value::Object(_) => walk(value, &mut path.clone(), false, out)?,
                    Value::Array(items) => {
                        for item in items {
                            walk(item, &mut path.clone(), false, out)?;
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Checks a call's `arguments` against the `Mcp-Param-*` headers its tool's annotations
/// name: a value present (and not null) must be mirrored, equal after Base64 decoding
/// (integers compared as numbers); a header without a value in the body, sent twice, or
/// holding what no header may is a mismatch.
pub fn check(
    headers: &HeaderMap,
    arguments: &Value,
    params: &[ParamHeader],
) -> Result<(), TransportError> {
    let mismatch = |why: String| TransportError::HeaderMismatch(why);
    for p in params {
        let mut values = headers.get_all(p.header.as_str()).iter();
        let sent = values.next();
        if values.next().is_some() {
            return Err(mismatch(format!(
                "the {} header is sent more than once",
                p.header
            )));
        }
        let value = p
            .path
            .iter()
            .try_fold(arguments, |v, key| v.get(key))
            .filter(|v| !v.is_null());
        match (sent, value) {
            (None, None) => {}
            (None, Some(_)) => {
                return Err(mismatch(format!(
                    "the {} header is required: the tool mirrors argument `{}` into it",
                    p.header,
                    p.path.join(".")
                )));
            }
            (Some(_), None) => {
                return Err(mismatch(format!(
                    "the {} header is sent but argument `{}` is not",
                    p.header,
                    p.path.join(".")
                )));
            }
            (Some(sent), Some(value)) => {
                let text = sent
                    .to_str()
                    .ok()
                    .filter(|t| t.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)))
                    .ok_or_else(|| {
                        mismatch(format!(
                            "the {} header holds characters no header may",
                            p.header
                        ))
                    })?;
                let text = decoded(text).ok_or_else(|| {
                    mismatch(format!(
                        "the {} header's Base64 value does not decode",
                        p.header
                    ))
                })?;
                if !agrees(&text, value) {
                    return Err(mismatch(format!(
                        "the {} header does not match argument `{}`",
                        p.header,
                        p.path.join(".")
                    )));
                }
            }
        }
    }
    Ok(())
}

/// A header value, decoded from the `=?base64?…?=` sentinel form when in it.
fn decoded(text: &str) -> Option<String> {
    match text
        .strip_prefix("=?base64?")
        .and_then(|t| t.strip_suffix("?="))
    {
        None => Some(text.to_string()),
        Some(encoded) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()
            .and_then(|b| String::from_utf8(b).ok()),
    }
}

/// Whether a header's text states the argument `value`.
fn agrees(text: &str, value: &Value) -> bool {
    match value {
        Value::String(s) => text == s,
        Value::Bool(b) => text == if *b { "true" } else { "false" },
        Value::Number(n) => match (text.parse::<f64>(), n.as_f64()) {
            (Ok(h), Some(b)) => h == b,
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sql_tool() -> Value {
        json!({"name": "execute_sql", "inputSchema": {"type": "object", "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "limit": {"type": "integer", "x-mcp-header": "Limit"},
            "query": {"type": "string"},
            "opts": {"type": "object", "properties": {"dry": {"type": "boolean", "x-mcp-header": "Dry"}}}
        }}})
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().expect("value"));
        }
        h
    }

    #[test]
    fn reads_annotations_on_reachable_primitive_properties() {
        let params = of_tool(&sql_tool()).expect("valid");
        let mut found: Vec<(String, String)> = params
            .iter()
            .map(|p| (p.header.clone(), p.path.join(".")))
            .collect();
        found.sort();
        assert_eq!(
            found,
            [
                ("mcp-param-dry".to_string(), "opts.dry".to_string()),
                ("mcp-param-limit".to_string(), "limit".to_string()),
                ("mcp-param-region".to_string(), "region".to_string()),
            ]
        );
        assert_eq!(of_tool(&json!({"name": "plain"})), Ok(vec![]));
    }

    #[test]
    fn refuses_annotations_the_spec_forbids() {
        for schema in [
            json!({"properties": {"a": {"type": "number", "x-mcp-header": "A"}}}),
            json!({"properties": {"a": {"type": "string", "x-mcp-header": "bad name"}}}),
            json!({"properties": {"a": {"type": "string", "x-mcp-header": ""}}}),
            json!({"properties": {"a": {"type": "array", "items": {"type": "string", "x-mcp-header": "A"}}}}),
            json!({"properties": {"a": {"type": "string", "x-mcp-header": "A"}, "b": {"type": "string", "x-mcp-header": "a"}}}),
            json!({"anyOf": [{"properties": {"a": {"type": "string", "x-mcp-header": "A"}}}]}),
        ] {
            let tool = json!({"name": "t", "inputSchema": schema});
            assert!(of_tool(&tool).is_err(), "{schema}");
        }
    }

    #[test]
    fn a_call_must_mirror_each_annotated_argument() {
        let params = of_tool(&sql_tool()).expect("valid");
        let args =
            json!({"region": "us-west1", "limit": 42, "query": "SELECT 1", "opts": {"dry": true}});
        let good = [
            ("mcp-param-region", "us-west1"),
            ("mcp-param-limit", "42.0"),
            ("mcp-param-dry", "true"),
        ];
        assert_eq!(check(&headers(&good), &args, &params), Ok(()));
        let encoded = [
            ("mcp-param-region", "=?base64?dXMtd2VzdDE=?="),
            ("mcp-param-limit", "42"),
            ("mcp-param-dry", "true"),
        ];
        assert_eq!(check(&headers(&encoded), &args, &params), Ok(()));
        for bad in [
            vec![
                ("mcp-param-region", "eu-west1"),
                ("mcp-param-limit", "42"),
                ("mcp-param-dry", "true"),
            ],
            vec![("mcp-param-limit", "42"), ("mcp-param-dry", "true")],
            vec![
                ("mcp-param-region", "us-west1"),
                ("mcp-param-limit", "43"),
                ("mcp-param-dry", "true"),
            ],
            vec![
                ("mcp-param-region", "us-west1"),
                ("mcp-param-region", "us-west1"),
                ("mcp-param-limit", "42"),
                ("mcp-param-dry", "true"),
            ],
        ] {
            assert!(check(&headers(&bad), &args, &params).is_err(), "{bad:?}");
        }
        // No value in the body: no header expected, and one sent is a disagreement.
        let bare = json!({"query": "SELECT 1", "region": null});
        assert_eq!(check(&HeaderMap::new(), &bare, &params), Ok(()));
        assert!(check(&headers(&[("mcp-param-region", "x")]), &bare, &params).is_err());
    }
}
