//! docs/audit.md's example record is a real one: the record this gateway writes for the
//! request the document describes (a 429 on a tenant's token limit), with only the values
//! that differ from run to run (instance, time, writ and client pseudonyms, chain link,
//! latency) taken as they are in the document. Run with `WRIT_BLESS=1` to write a fresh
//! record into the document.
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use writ_testkit::{MockUpstream, TestGateway};

const KEY: &str = "sk-upstream-audit-doc-0123456789";
const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/audit.md");
/// Fields whose values change with every run.
const VOLATILE: [&str; 6] = ["instance", "time", "writ", "client", "prev", "latency_ms"];

/// The example record in docs/audit.md: the one line of the first ```json block.
fn documented(doc: &str) -> (usize, String) {
    let start = doc
        .find("```json\n")
        .expect("docs/audit.md has a json example")
        + 8;
    let end = start + doc[start..].find('\n').unwrap();
    (start, doc[start..end].to_string())
}

fn without_volatile(line: &str) -> Value {
    let mut v: Value = serde_json::from_str(line).unwrap();
    for field in VOLATILE {
        if let Some(x) = v.get_mut(field) {
            *x = json!("…");
        }
    }
    v
}

#[tokio::test]
async fn the_documented_record_is_what_the_gateway_writes() {
    let upstream = MockUpstream::start(KEY).await;
    let gw = TestGateway::start(&format!(
        "[[limit]]\nscope = \"tenant\"\ndimension = \"tokens\"\nper = \"minute\"\nlimit = 10\n\n\
         [upstreams.openai]\nkind = \"openai\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        upstream.base_url()
    ))
    .await;
    let grant = r#"{"type":"writ:llm","upstream":"openai","models":["gpt-4o"]}"#;
    let writ = gw.mint_in("acme", grant, grant, 30);
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&writ)
        .json(&json!({"model": "gpt-4o", "max_tokens": 50,
            "messages": [{"role": "user", "content": "Summarise the ticket"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    gw.gateway().audit_checkpoint().await;
    let lines = gw.gateway().audit_export().await.unwrap();
    let real = lines
        .iter()
        .find(|l| l.contains("\"kind\":\"request_denied\""))
        .expect("the refusal is recorded")
        .clone();

    let doc = std::fs::read_to_string(DOC).unwrap();
    let (at, example) = documented(&doc);
    if std::env::var_os("WRIT_BLESS").is_some() {
        let fresh = format!("{}{real}{}", &doc[..at], &doc[at + example.len()..]);
        std::fs::write(DOC, fresh).unwrap();
        return;
    }
    assert_eq!(
        without_volatile(&example),
        without_volatile(&real),
        "docs/audit.md's example differs from the record the gateway writes; \
         regenerate it with WRIT_BLESS=1 cargo test -p writ-gateway --test audit_doc\n\
         documented: {example}\nwritten:    {real}"
    );
    // The document shows a record's exact bytes: canonical field order and encoding.
    let parsed = writ_audit::AuditRecord::from_line(&example).unwrap();
    assert_eq!(parsed.to_line(), example);
}
