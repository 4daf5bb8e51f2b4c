//! Writes the seed corpora of the fuzz targets from real examples: writs minted with the
//! fixed fuzzing key, grants, provider request bodies, SSE and event-stream captures,
//! secrets-bearing text, JWTs, DPoP proofs signed by a fixed key, MCP messages.
//!
//! `cargo run -p writ-fuzz --example seed_corpus -- fuzz/corpus` (config seeds are the
//! `writ init` template and the docs' examples, copied by hand; see docs/fuzzing.md).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use serde_json::json;
use sha2::{Digest, Sha256};
use writ_fuzz::{FIXED_NOW, fixed_root_key};
use writ_providers::ROUTES;
use writ_token::{MintRequest, attenuate, mint, parse_grants};

fn main() {
    let root = PathBuf::from(std::env::args().nth(1).unwrap_or("fuzz/corpus".into()));
    writ_decode(&root.join("writ_decode"));
    grant_datalog(&root.join("grant_datalog"));
    provider_facts(&root.join("provider_facts"));
    sse_meter(&root.join("sse_meter"));
    bedrock(&root.join("bedrock_eventstream_meter"));
    stream_redactor(&root.join("stream_redactor"));
    jwt_lint(&root.join("jwt_lint"));
    dpop_proof(&root.join("dpop_proof"));
    mcp_inspect(&root.join("mcp_inspect"));
}

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
}

const GRANTS: &[&str] = &[
    r#"{"type":"writ:llm","upstream":"demo"}"#,
    r#"{"type":"writ:llm","upstream":"demo","actions":["chat"],"models":["gpt-4o-mini"],"max_output_tokens":512}"#,
    r#"[{"type":"writ:llm","upstream":"demo","single_use":true},{"type":"writ:budget","usd_micros":100000,"tokens":5000}]"#,
    r#"{"type":"writ:tool","upstream":"travel","tool":"book_flight","arguments":{"to":{"one_of":["LIS","OPO"]},"passengers":{"min":1,"max":4},"class":"economy","note":{"prefix":"trip-"}},"additional_arguments":false}"#,
    r#"{"type":"writ:prompt","upstream":"travel","prompt":"summarize","arguments":{"lang":"en"}}"#,
    r#"{"type":"writ:resource","upstream":"travel","uri":{"prefix":"file:///docs/"}}"#,
    r#"{"type":"writ:http","upstream":"crm","methods":["GET","PUT"],"path":"/v1/contacts/{id}","params":{"id":{"min":1,"max":1000}}}"#,
    r#"{"type":"writ:admin","tenant":"default"}"#,
    r#"[{"type":"writ:llm","upstream":"demo"},{"type":"writ:datalog","code":"check if time($t), $t <= 2030-01-01T00:00:00Z;"}]"#,
    r#"[{"type":"writ:llm","upstream":"demo"},{"type":"writ:datalog","code":"check if model($m), $m.starts_with(\"gpt-\");"}]"#,
    r#"[{"type":"writ:tool","upstream":"t","tool":"x","arguments":{"a.b.0":{"max":3}}},{"type":"writ:http","upstream":"h","path":"/a/{b}/c"}]"#,
    r#"{"type":"writ:budget","tokens":10}"#,
];

fn writ_decode(dir: &Path) {
    let key = fixed_root_key();
    let now = UNIX_EPOCH + Duration::from_secs(FIXED_NOW - 60);
    let mut n = 0;
    for (i, grants) in GRANTS.iter().enumerate() {
        let Ok(grants) = parse_grants(grants) else {
            continue;
        };
        for (jkt, audience) in [
            (None, None),
            (Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"), None),
            (None, Some("https://writ.test/mcp/travel")),
        ] {
            let req = MintRequest {
                tenant: "default",
                agent: "fuzz",
                ceiling: &grants,
                grants: &grants,
                ttl: Duration::from_secs(3600),
                max_ttl: Duration::from_secs(3600),
                now,
                cnf_jkt: jkt,
                audience,
            };
            let Ok((writ, _)) = mint(&key, &req) else {
                continue;
            };
            n += 1;
            write(dir, &format!("writ-{i}-{n}"), &writ);
            let raw = URL_SAFE.decode(writ.trim_start_matches("writ_")).unwrap();
            write(dir, &format!("raw-{i}-{n}"), &raw);
            if let Ok(narrow) = attenuate(&writ, &grants) {
                let raw = URL_SAFE.decode(narrow.trim_start_matches("writ_")).unwrap();
                write(dir, &format!("narrowed-{i}-{n}"), &raw);
            }
        }
    }
    // A holder's block of raw Datalog, appended offline.
    let grants = parse_grants(GRANTS[1]).unwrap();
    let req = MintRequest {
        tenant: "default",
        agent: "fuzz",
        ceiling: &grants,
        grants: &grants,
        ttl: Duration::from_secs(3600),
        max_ttl: Duration::from_secs(3600),
        now,
        cnf_jkt: None,
        audience: None,
    };
    let (writ, _) = mint(&key, &req).unwrap();
    let token =
        biscuit_auth::UnverifiedBiscuit::from_base64(writ.trim_start_matches("writ_")).unwrap();
    for (i, code) in [
        "budget_tokens(10); single_use(true); check if model($m), [\"gpt-4o-mini\"].contains($m);",
        "check if path($p), $p.matches(\"^/v1/(chat|embeddings)\");",
        "check if arg($n, $v), arg_names($s), $s.all($x -> $x.length() < 10);",
    ]
    .iter()
    .enumerate()
    {
        let block = biscuit_auth::builder::BlockBuilder::new()
            .code(*code)
            .unwrap();
        let appended = token.clone().append(block).unwrap();
        write(
            dir,
            &format!("holder-block-{i}"),
            appended.to_vec().unwrap(),
        );
    }
    write(dir, "text-empty", "writ_");
    write(dir, "text-junk", "writ_AAAA====");
}

fn grant_datalog(dir: &Path) {
    for (i, g) in GRANTS.iter().enumerate() {
        write(dir, &format!("grant-{i}"), g);
    }
    write(
        dir,
        "dup-key",
        r#"{"type":"writ:llm","upstream":"a","upstream":"b"}"#,
    );
    write(
        dir,
        "rules",
        r#"[{"type":"writ:llm","upstream":"demo"},{"type":"writ:datalog","code":"p($x) <- model($x); check if p(\"a\");"}]"#,
    );
}

fn provider_facts(dir: &Path) {
    let chat = json!({"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":64,"stream":true,"stream_options":{"include_usage":false}});
    let responses = json!({"model":"gpt-4o","input":"hi","max_output_tokens":32,"stream":false});
    let embeddings = json!({"model":"text-embedding-3-small","input":["a","b"]});
    let messages = json!({"model":"claude-3-5-haiku","max_tokens":100,"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"stream":true});
    let gemini = json!({"contents":[{"role":"user","parts":[{"text":"hi"}]}],"generationConfig":{"maxOutputTokens":50}});
    let converse = json!({"messages":[{"role":"user","content":[{"text":"hi"}]}],"inferenceConfig":{"maxTokens":20}});
    let invoke = json!({"prompt":"hi","max_gen_len":30,"textGenerationConfig":{"maxTokenCount":5}});
    let mcp = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"book_flight","arguments":{"to":"LIS","passengers":2}}});
    for (i, route) in ROUTES.iter().enumerate() {
        let body = match route.path {
            "/v1/chat/completions" => &chat,
            "/v1/responses" => &responses,
            "/v1/embeddings" | "/openai/deployments/{deployment}/embeddings" => &embeddings,
            "/v1/messages" | "/v1/messages/count_tokens" => &messages,
            p if p.contains("model_action") => &gemini,
            "/openai/deployments/{deployment}/chat/completions" => &chat,
            p if p.ends_with("converse") || p.ends_with("converse-stream") => &converse,
            p if p.starts_with("/model/") => &invoke,
            "/mcp/{upstream}" => &mcp,
            _ => &json!({"any":"thing"}),
        };
        let mut seed = vec![i as u8, b'\n'];
        seed.extend(serde_json::to_vec(body).unwrap());
        write(dir, &format!("route-{i}"), seed);
    }
}

fn sse_meter(dir: &Path) {
    let openai = "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"}}]}\n\n\
data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n\
data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11,\"prompt_tokens_details\":{\"cached_tokens\":4}}}\n\n\
data: [DONE]\n\n";
    let responses = "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\n\n\
event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":1,\"input_tokens_details\":{\"cached_tokens\":0}}}}\n\n";
    let anthropic = "event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":12,\"output_tokens\":1,\"cache_read_input_tokens\":3}}}\r\n\r\n\
event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\r\n\r\n\
: ping\r\n\r\n\
event: message_delta\r\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":6}}\r\n\r\n";
    let gemini = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi there\"}]}}]}\r\r\
data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"!\"}]}}],\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":4,\"cachedContentTokenCount\":1}}\r\r";
    let mcp = "id: 7\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"ok\"}]}}\n\n";
    let routes: Vec<&str> = ROUTES
        .iter()
        .filter(|r| !r.path.starts_with("/model/"))
        .map(|r| r.path)
        .collect();
    let index = |p: &str| routes.iter().position(|r| *r == p).unwrap() as u8;
    for (name, route, body) in [
        ("openai", "/v1/chat/completions", openai),
        ("responses", "/v1/responses", responses),
        ("anthropic", "/v1/messages", anthropic),
        ("gemini", "/v1beta/models/{*model_action}", gemini),
        (
            "azure",
            "/openai/deployments/{deployment}/chat/completions",
            openai,
        ),
        ("mcp", "/mcp/{upstream}", mcp),
    ] {
        for drop in [0u8, 1] {
            let mut seed = vec![(index(route) << 1) | drop];
            seed.extend_from_slice(body.as_bytes());
            write(dir, &format!("{name}-{drop}"), seed);
        }
    }
}

fn bedrock(dir: &Path) {
    use writ_providers::bedrock::event_frame;
    let mut converse = Vec::new();
    converse.extend(event_frame(
        "messageStart",
        br#"{"role":"assistant"}"#.to_vec(),
    ));
    converse.extend(event_frame(
        "contentBlockDelta",
        br#"{"contentBlockIndex":0,"delta":{"text":"Hello there"}}"#.to_vec(),
    ));
    converse.extend(event_frame(
        "messageStop",
        br#"{"stopReason":"end_turn"}"#.to_vec(),
    ));
    converse.extend(event_frame(
        "metadata",
        br#"{"usage":{"inputTokens":11,"outputTokens":3,"totalTokens":14,"cacheReadInputTokens":2},"metrics":{"latencyMs":5}}"#.to_vec(),
    ));
    let inner = json!({"delta":{"text":"Hi"},"amazon-bedrock-invocationMetrics":{"inputTokenCount":7,"outputTokenCount":2}});
    let chunk = json!({"bytes": STANDARD.encode(inner.to_string())});
    let mut invoke = event_frame("chunk", chunk.to_string().into_bytes());
    let inner = json!({"generation":"Hello"});
    let chunk = json!({"bytes": STANDARD.encode(inner.to_string())});
    invoke.extend(event_frame("chunk", chunk.to_string().into_bytes()));
    for (i, body) in [converse, invoke].into_iter().enumerate() {
        for selector in 0..4u8 {
            let mut seed = vec![selector];
            seed.extend(&body);
            write(dir, &format!("stream-{i}-{selector}"), seed);
        }
    }
}

fn stream_redactor(dir: &Path) {
    let positives = include_str!("../../writ-detect/tests/corpus/positives.txt");
    let negatives = include_str!("../../writ-detect/tests/corpus/negatives.txt");
    for (name, text) in [("pos", positives), ("neg", negatives)] {
        for (i, line) in text.lines().filter(|l| !l.starts_with('#')).enumerate() {
            let line = line.split_once('\t').map_or(line, |(_, t)| t);
            let line = line
                .replace(['«', '»'], "")
                .replace("\\n", "\n")
                .replace("\\\\", "\\");
            write(dir, &format!("{name}-{i}"), line);
        }
    }
    write(
        dir,
        "configured",
        "upstream key fz~Secret~0001~Q7ab then ~pw~9 and fz~Secret~0001~Q7 cut short ~pw~9~pw~9",
    );
}

/// JWTs: weak HMAC secrets, `alg: none`, odd headers, claims out of bounds.
fn jwt_lint(dir: &Path) {
    let enc = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let hs = |header: serde_json::Value, claims: serde_json::Value, secret: &[u8]| {
        let key = jsonwebtoken::EncodingKey::from_secret(secret);
        let input = format!("{}.{}", enc(header), enc(claims));
        let sig =
            jsonwebtoken::crypto::sign(input.as_bytes(), &key, jsonwebtoken::Algorithm::HS256)
                .unwrap();
        format!("{input}.{sig}")
    };
    let now = FIXED_NOW;
    let claims = json!({"sub":"u1","iss":"https://issuer.example.com","iat":now,"exp":now + 600});
    let seeds = [
        hs(
            json!({"alg":"HS256","typ":"JWT"}),
            claims.clone(),
            b"secret",
        ),
        hs(
            json!({"alg":"HS256","typ":"JWT"}),
            claims.clone(),
            b"fuzz-weak-secret",
        ),
        hs(
            json!({"alg":"HS256","kid":"../../etc/passwd"}),
            json!({"exp": now + 86400 * 30}),
            b"k-0123456789abcdef0123456789abcdef",
        ),
        hs(
            json!({"alg":"HS256","kid":"x' OR '1'='1","jku":"http://evil.example/keys","crit":["exp2"]}),
            json!({"nbf": now + 3600}),
            b"x",
        ),
        format!("{}.{}.", enc(json!({"alg":"none"})), enc(claims.clone())),
        format!(
            "{}.{}.c2ln",
            enc(
                json!({"alg":"RS256","x5u":"https://keys.example.com/k.pem","jwk":{"kty":"RSA","n":"AQAB","e":"AQAB"}})
            ),
            enc(claims.clone())
        ),
        format!(
            "{}.{}.c2ln",
            enc(json!({"alg":"ES256","crit":["b64"],"b64":false})),
            enc(json!({"exp":"soon"}))
        ),
        "eyJhbGciOiJIUzI1NiJ9.not-json.c2ln".to_string(),
        "a.b".to_string(),
    ];
    for (i, s) in seeds.iter().enumerate() {
        write(dir, &format!("jwt-{i}"), s);
    }
}

/// Proofs signed by a fixed Ed25519 key for `POST` at the target's URL, `iat` now.
fn dpop_proof(dir: &Path) {
    let private =
        biscuit_auth::PrivateKey::from_bytes(&[7u8; 32], biscuit_auth::Algorithm::Ed25519).unwrap();
    let pair = biscuit_auth::KeyPair::from(&private);
    let x = URL_SAFE_NO_PAD.encode(pair.public().to_bytes());
    let pem = pair.to_private_key_pem().unwrap();
    let key = jsonwebtoken::EncodingKey::from_ed_pem(pem.as_bytes()).unwrap();
    let sign = |header: serde_json::Value, claims: serde_json::Value| {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig =
            jsonwebtoken::crypto::sign(input.as_bytes(), &key, jsonwebtoken::Algorithm::EdDSA)
                .unwrap();
        format!("{input}.{sig}")
    };
    let header = json!({"typ":"dpop+jwt","alg":"EdDSA","jwk":{"kty":"OKP","crv":"Ed25519","x":x}});
    let url = "https://writ.test/v1/chat/completions";
    let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(b"writ_fuzz-access-token"));
    let seeds = [
        sign(
            header.clone(),
            json!({"htm":"POST","htu":url,"iat":FIXED_NOW,"jti":"j-1"}),
        ),
        sign(
            header.clone(),
            json!({"htm":"POST","htu":url,"iat":FIXED_NOW - 30,"jti":"j-2","ath":ath}),
        ),
        sign(
            header.clone(),
            json!({"htm":"GET","htu":url,"iat":FIXED_NOW,"jti":"j-3"}),
        ),
        sign(
            json!({"typ":"dpop+jwt","alg":"ES256","jwk":{"kty":"EC","crv":"P-256","x":x,"y":x}}),
            json!({"htm":"POST","htu":url,"iat":FIXED_NOW,"jti":"j-4"}),
        ),
        sign(
            json!({"typ":"dpop+jwt","alg":"EdDSA","jwk":{"kty":"OKP","crv":"Ed25519","x":x,"d":x}}),
            json!({"htm":"POST","htu":url,"iat":FIXED_NOW,"jti":"j-5"}),
        ),
    ];
    for (i, s) in seeds.iter().enumerate() {
        write(dir, &format!("proof-{i}"), s);
    }
}

fn mcp_inspect(dir: &Path) {
    let seeds = [
        json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}),
        json!({"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"book_flight","arguments":{"to":"LIS","legs":[{"from":"OPO"}],"passengers":2,"vip":false,"note":null}}}),
        json!({"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"file:///docs/a.md"}}),
        json!({"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{"name":"summarize","arguments":{"lang":"en"}}}),
        json!({"jsonrpc":"2.0","id":4,"method":"tools/list","params":{"cursor":"c1"}}),
        json!({"jsonrpc":"2.0","id":5,"method":"resources/subscribe","params":{"uri":"file:///x"}}),
        json!({"jsonrpc":"2.0","id":6,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"p"},"argument":{"name":"a","value":"b"}}}),
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
        json!({"jsonrpc":"2.0","id":7,"result":{}}),
        json!({"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"x","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}),
        json!({"jsonrpc":"2.0","id":9,"method":"custom/thing"}),
    ];
    for (i, s) in seeds.iter().enumerate() {
        write(dir, &format!("msg-{i}"), s.to_string());
    }
    write(
        dir,
        "batch",
        r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#,
    );
}
