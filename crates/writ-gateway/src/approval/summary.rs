//! What the person deciding an approval is shown: exactly what will happen (upstream,
//! operation, model or tool, arguments), with secrets redacted, as inert data.
//!
//! The summary is JSON: text from the request (arguments, paths) stays text, never markup,
//! whatever it holds (`<script>`, terminal escapes); those who show it escape it for their
//! medium (the CLI escapes control characters, the console HTML). Every string is scanned
//! for secrets and each found is replaced by its redaction; long strings are cut. The
//! digest the approval binds to covers the whole request, not this summary; the summary's
//! own digest is recorded with each decision, so the record says what the person saw.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use writ_detect::Scanner;
use writ_token::{ArgValue, RequestFacts, canonical_json};

/// Longest string shown, in characters; longer ones are cut and say how much was left out.
const MAX_SHOWN_CHARS: usize = 500;
/// Most arguments shown; the rest are counted.
const MAX_SHOWN_ARGS: usize = 64;

/// Who asks, and why the request waits.
pub(crate) struct Asker<'a> {
    pub(crate) tenant: &'a str,
    pub(crate) agent: &'a str,
    pub(crate) reason: &'a str,
}

/// The summary of the request `facts` describe, with every string passed through
/// `scanners` (each secret found replaced by its redaction) and cut to a readable length.
/// A request without tool arguments (a model call, a plain HTTP call) also shows the start
/// of its `body`, as the upstream reads it (JSON escapes decoded).
pub(crate) fn of_request(
    facts: &RequestFacts,
    body: &[u8],
    asker: &Asker<'_>,
    scanners: &[&Scanner],
) -> Value {
    let shown = |text: &str| Value::String(shown(text, scanners));
    let mut out = Map::new();
    out.insert("tenant".into(), shown(asker.tenant));
    out.insert("agent".into(), shown(asker.agent));
    out.insert("reason".into(), shown(asker.reason));
    if let Some(u) = &facts.upstream {
        out.insert("upstream".into(), shown(u));
    }
    out.insert("operation".into(), shown(&facts.operation));
    out.insert("method".into(), shown(&facts.method));
    out.insert("path".into(), shown(&facts.path));
    for (name, value) in [
        ("model", &facts.model),
        ("tool", &facts.tool),
        ("mcp_method", &facts.mcp_method),
        ("prompt", &facts.prompt),
        ("uri", &facts.uri),
    ] {
        if let Some(v) = value {
            out.insert(name.into(), shown(v));
        }
    }
    if let Some(n) = facts.max_output_tokens {
        out.insert("max_output_tokens".into(), json!(n));
    }
    if facts.stream {
        out.insert("stream".into(), json!(true));
    }
    if !facts.args.is_empty() {
        let mut args = Map::new();
        for (name, value) in facts.args.iter().take(MAX_SHOWN_ARGS) {
            let value = match value {
                ArgValue::Null => Value::Null,
                ArgValue::Bool(b) => json!(b),
                ArgValue::Int(n) => json!(n),
                ArgValue::Str(s) => shown(s),
            };
            args.insert(self::shown(name, scanners), value);
        }
        out.insert("arguments".into(), Value::Object(args));
        if facts.args.len() > MAX_SHOWN_ARGS {
            out.insert(
                "arguments_not_shown".into(),
                json!(facts.args.len() - MAX_SHOWN_ARGS),
            );
        }
    }
    if facts.args.is_empty() && !body.is_empty() {
        let text = writ_json::scan_text(body);
        out.insert("body".into(), shown(&String::from_utf8_lossy(&text)));
    }
    Value::Object(out)
}

/// `value` with every string in it (keys included) passed through `scanners` and cut as
/// summaries' strings are: for summaries built from other JSON (a mint's grants).
pub(crate) fn redacted(value: Value, scanners: &[&Scanner]) -> Value {
    match value {
        Value::String(text) => Value::String(shown(&text, scanners)),
        Value::Array(items) => {
            Value::Array(items.into_iter().map(|v| redacted(v, scanners)).collect())
        }
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (shown(&k, scanners), redacted(v, scanners)))
                .collect(),
        ),
        other => other,
    }
}

/// SHA-256 (hex) of `summary`'s canonical JSON: what a decision record says was shown.
pub(crate) fn digest(summary: &Value) -> String {
    let mut bytes = Vec::new();
    canonical_json(summary, &mut bytes);
    hex::encode(Sha256::digest(&bytes))
}

/// `text` with every secret the scanners find replaced by its redaction, cut to
/// [`MAX_SHOWN_CHARS`] characters.
fn shown(text: &str, scanners: &[&Scanner]) -> String {
    let mut text = text.to_string();
    for scanner in scanners {
        let findings = scanner.scan(text.as_bytes());
        if findings.is_empty() {
            continue;
        }
        let mut redacted = String::with_capacity(text.len());
        let mut at = 0;
        for f in findings {
            // Findings are on char boundaries of valid UTF-8 (the scanner matches ASCII
            // tokens); a finding that is not is skipped rather than splitting a character.
            let (Some(before), Some(_)) = (text.get(at..f.start), text.get(f.start..f.end)) else {
                continue;
            };
            redacted.push_str(before);
            redacted.push_str(scanner.redaction(f.rule));
            at = f.end;
        }
        redacted.push_str(text.get(at..).unwrap_or_default());
        text = redacted;
    }
    let chars = text.chars().count();
    if chars > MAX_SHOWN_CHARS {
        let cut: String = text.chars().take(MAX_SHOWN_CHARS).collect();
        return format!("{cut}… ({} more characters)", chars - MAX_SHOWN_CHARS);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use writ_token::Api;

    fn pay(amount: ArgValue, note: &str) -> RequestFacts {
        let mut f = RequestFacts::new(Api::Tool, "tool_call", "POST", "/mcp/pay");
        f.upstream = Some("pay".into());
        f.tool = Some("pay".into());
        f.args = vec![
            ("amount".into(), amount),
            ("note".into(), ArgValue::Str(note.into())),
        ];
        f
    }

    const ASKER: Asker<'static> = Asker {
        tenant: "acme",
        agent: "bot",
        reason: "payments over 100",
    };

    #[test]
    fn a_summary_says_what_will_happen() {
        let scanner = Scanner::builtin().expect("builtin rules");
        let s = of_request(&pay(ArgValue::Int(250), "rent"), b"{}", &ASKER, &[&scanner]);
        assert_eq!(s["upstream"], "pay");
        assert_eq!(s["tool"], "pay");
        assert_eq!(s["arguments"]["amount"], 250);
        assert_eq!(s["arguments"]["note"], "rent");
        assert_eq!(s["reason"], "payments over 100");
        assert_eq!(s["agent"], "bot");
    }

    #[test]
    fn secrets_in_arguments_are_redacted_and_markup_stays_text() {
        let scanner = Scanner::builtin().expect("builtin rules");
        let hostile = "<script>alert(1)</script>\u{1b}[2J key AKIAIOSFODNN7EXAMPLE\r\n";
        let s = of_request(&pay(ArgValue::Int(1), hostile), b"", &ASKER, &[&scanner]);
        let note = s["arguments"]["note"].as_str().expect("a string");
        assert!(!note.contains("AKIAIOSFODNN7EXAMPLE"), "{note}");
        // Text stays text: JSON carries it escaped, and nothing is interpreted here.
        assert!(note.starts_with("<script>alert(1)</script>\u{1b}[2J"));
        let wire = serde_json::to_string(&s).expect("serializes");
        assert!(
            !wire.contains('\u{1b}'),
            "control characters are escaped in JSON"
        );
    }

    #[test]
    fn long_strings_and_many_arguments_are_cut() {
        let mut f = pay(ArgValue::Int(1), &"é".repeat(10_000));
        for i in 0..100 {
            f.args.push((format!("extra{i}"), ArgValue::Int(i)));
        }
        let s = of_request(&f, b"", &ASKER, &[]);
        let note = s["arguments"]["note"].as_str().expect("a string");
        assert!(note.ends_with("(9500 more characters)"), "{note}");
        assert_eq!(
            s["arguments"].as_object().map(Map::len),
            Some(MAX_SHOWN_ARGS)
        );
        assert_eq!(s["arguments_not_shown"], 102 - MAX_SHOWN_ARGS);
    }

    #[test]
    fn a_model_call_shows_the_start_of_its_body_redacted() {
        let scanner = Scanner::builtin().expect("builtin rules");
        let mut f = RequestFacts::new(Api::Llm, "chat", "POST", "/v1/chat/completions");
        f.model = Some("gpt-4o".into());
        let body = br#"{"model":"gpt-4o","messages":[{"role":"user","content":"wire it with AKIA\u0049OSFODNN7EXAMPLE"}]}"#;
        let s = of_request(&f, body, &ASKER, &[&scanner]);
        let shown = s["body"].as_str().expect("the body");
        assert!(shown.contains("\"content\":\"wire it with "), "{shown}");
        assert!(
            !shown.contains("OSFODNN7EXAMPLE"),
            "decoded, then redacted: {shown}"
        );
        // Tool calls show their arguments instead.
        let t = of_request(&pay(ArgValue::Int(1), "x"), body, &ASKER, &[]);
        assert!(t.get("body").is_none());
    }

    #[test]
    fn json_summaries_are_redacted_at_every_depth() {
        let scanner = Scanner::builtin().expect("builtin rules");
        let grants = json!({"grants": [{"type": "writ:tool", "arguments": {"key": "AKIAIOSFODNN7EXAMPLE", "n": 3}}]});
        let shown = redacted(grants, &[&scanner]);
        let text = shown.to_string();
        assert!(!text.contains("AKIAIOSFODNN7EXAMPLE"), "{text}");
        assert_eq!(shown["grants"][0]["arguments"]["n"], 3);
        assert_eq!(shown["grants"][0]["type"], "writ:tool");
    }

    #[test]
    fn the_digest_does_not_depend_on_key_order() {
        let a = json!({"b": 1, "a": {"d": 2, "c": 3}});
        let b = json!({"a": {"c": 3, "d": 2}, "b": 1});
        assert_eq!(digest(&a), digest(&b));
        assert_ne!(digest(&a), digest(&json!({"b": 2})));
    }
}
