//! Per-operation cost of the writ lifecycle: mint, verify (cold), authorize — evaluated
//! (each call different facts than the last, so the Datalog authorizer runs) and repeated
//! (the same facts again, answered from the writ's memo of its last allow).
//! The `bounded` group times the most costly Datalog a holder can append for each shape
//! of attack, sized to the largest the evaluation bound accepts: the bound's worth in
//! time. Run with `cargo bench -p writ-token`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use writ_token::{
    Api, KeyId, MintRequest, RequestFacts, RootKeyPair, RootKeys, decode, mint, parse_grants,
};

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn bench(c: &mut Criterion) {
    let key = RootKeyPair::generate(KeyId(1));
    let mut keys = RootKeys::new();
    keys.insert(key.kid(), key.public());
    let ceiling = parse_grants(r#"{"type":"writ:llm","upstream":"openai"}"#).unwrap();
    let grants = parse_grants(
        r#"{"type":"writ:llm","upstream":"openai","actions":["chat"],"models":["gpt-4o-mini"],"max_output_tokens":1000}"#,
    )
    .unwrap();
    let req = MintRequest {
        tenant: "default",
        agent: "demo",
        ceiling: &ceiling,
        grants: &grants,
        ttl: Duration::from_secs(30),
        max_ttl: Duration::from_secs(30),
        now: t0(),
        cnf_jkt: None,
        audience: None,
    };
    c.bench_function("mint", |b| b.iter(|| mint(&key, black_box(&req)).unwrap()));

    let (writ, _) = mint(&key, &req).unwrap();
    c.bench_function("verify (cold: parse, signatures, claims)", |b| {
        b.iter(|| decode(black_box(&writ)).unwrap().verify(&keys).unwrap())
    });

    // The floor under a first use that must parse the writ again: the same parse with
    // and without checking its signatures (Ed25519: one verification per block, and the
    // last block's key against the secret the text carries).
    let text = writ.trim_start_matches("writ_");
    let root = key.public();
    c.bench_function("parse, signatures checked (biscuit)", |b| {
        b.iter(|| biscuit_auth::Biscuit::from_base64(black_box(text), root).unwrap())
    });
    c.bench_function("parse, signatures unchecked (biscuit)", |b| {
        b.iter(|| biscuit_auth::UnverifiedBiscuit::from_base64(black_box(text)).unwrap())
    });
    // What each reading of a token's protobuf blocks (evaluation-cost shapes, time bound,
    // claims) decodes before it reads anything.
    let sealed = biscuit_auth::Biscuit::from_base64(text, root)
        .unwrap()
        .to_vec()
        .unwrap();
    c.bench_function("decode blocks (protobuf)", |b| {
        b.iter(|| {
            use prost::Message;
            let container =
                biscuit_auth::format::schema::Biscuit::decode(black_box(&sealed[..])).unwrap();
            std::iter::once(&container.authority)
                .chain(&container.blocks)
                .map(|signed| {
                    biscuit_auth::format::schema::Block::decode(signed.block.as_slice())
                        .unwrap()
                        .facts
                        .len()
                })
                .sum::<usize>()
        })
    });

    // The Ed25519 floor: a mint makes two next-key pairs and two block signatures (and,
    // with `private_key_jwt`, verifies the client's assertion once); a first use that has
    // to parse the writ again verifies one signature per block and derives the last
    // block's public key from the secret the text carries (a key pair's cost).
    let signer = biscuit_auth::KeyPair::new();
    let message = [7u8; 256];
    let signature = signer.sign(&message).unwrap();
    let public = signer.public();
    c.bench_function("ed25519: key pair", |b| b.iter(biscuit_auth::KeyPair::new));
    c.bench_function("ed25519: sign", |b| {
        b.iter(|| signer.sign(black_box(&message)).unwrap())
    });
    c.bench_function("ed25519: verify (strict, as a block's)", |b| {
        b.iter(|| {
            public
                .verify_signature(black_box(&message), &signature)
                .unwrap()
        })
    });

    let verified = decode(&writ).unwrap().verify(&keys).unwrap();
    let facts = RequestFacts {
        upstream: Some("openai".into()),
        model: Some("gpt-4o-mini".into()),
        max_output_tokens: Some(500),
        ..RequestFacts::new(Api::Llm, "chat", "POST", "/v1/chat/completions")
    };
    let other = RequestFacts {
        max_output_tokens: Some(400),
        ..facts.clone()
    };
    let mut flip = false;
    c.bench_function("authorize (evaluated)", |b| {
        b.iter(|| {
            flip = !flip;
            let f = if flip { &facts } else { &other };
            verified.authorize(black_box(f), t0()).unwrap()
        })
    });
    c.bench_function("authorize (repeated)", |b| {
        b.iter(|| verified.authorize(black_box(&facts), t0()).unwrap())
    });
    // A refused request, repeated: answered from the writ's memo of its last refusal.
    let refused = RequestFacts {
        model: Some("gpt-4o".into()),
        ..facts.clone()
    };
    c.bench_function("authorize (refused, repeated)", |b| {
        b.iter(|| verified.authorize(black_box(&refused), t0()).unwrap_err())
    });

    // A DPoP proof (EdDSA) as each request of a writ bound to a key carries one: against
    // the bare signature check above, what reading and checking the proof adds.
    let proof = dpop_proof(&signer);
    let expected = writ_token::dpop::Expected {
        method: "POST",
        url: "https://writ.test/v1/chat/completions",
        access_token: None,
        now: t0(),
    };
    c.bench_function("dpop: verify proof (EdDSA)", |b| {
        b.iter(|| writ_token::dpop::verify_proof(black_box(&proof), &expected).unwrap())
    });
}

/// A DPoP proof for `POST https://writ.test/v1/chat/completions` at `t0`, signed by `key`.
fn dpop_proof(key: &biscuit_auth::KeyPair) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let x = URL_SAFE_NO_PAD.encode(key.public().to_bytes());
    let header = serde_json::json!({"typ": "dpop+jwt", "alg": "EdDSA",
        "jwk": {"kty": "OKP", "crv": "Ed25519", "x": x}});
    let claims = serde_json::json!({"htm": "POST", "htu": "https://writ.test/v1/chat/completions",
        "iat": 1_800_000_000u64, "jti": "bench"});
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = key.sign(message.as_bytes()).unwrap();
    format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

/// One shape of costly Datalog, appended by a holder: the block's source for size `k`, and
/// the request it is evaluated for.
struct Attack {
    name: &'static str,
    block: fn(usize) -> String,
    request: fn() -> RequestFacts,
}

fn chat() -> RequestFacts {
    RequestFacts {
        upstream: Some("openai".into()),
        model: Some("gpt-4o-mini".into()),
        ..RequestFacts::new(Api::Llm, "chat", "POST", "/v1/chat/completions")
    }
}

fn tool_call() -> RequestFacts {
    RequestFacts {
        upstream: Some("openai".into()),
        tool: Some("t".into()),
        args: (0..16)
            .map(|i| {
                (
                    format!("a{i}"),
                    writ_token::ArgValue::Str("ab".repeat(1024)),
                )
            })
            .collect(),
        ..RequestFacts::new(Api::Tool, "tool_call", "POST", "/mcp/openai")
    }
}

fn set(k: usize) -> String {
    (0..k).map(|i| i.to_string()).collect::<Vec<_>>().join(",")
}

const ATTACKS: &[Attack] = &[
    Attack {
        name: "join of three over stated facts",
        block: |k| {
            let facts: String = (0..k.min(32)).map(|i| format!("n({i});")).collect();
            format!("{facts} check if n($a), n($b), n($c), $a + $b + $c == -1;")
        },
        request: chat,
    },
    Attack {
        name: "closures nested three deep",
        block: |k| {
            let s = set(k);
            format!(
                "check if {{{s}}}.all($x -> {{{s}}}.all($y -> {{{s}}}.all($z -> $x + $y + $z == -1)));"
            )
        },
        request: chat,
    },
    Attack {
        name: "regex per argument",
        block: |k| format!("check if arg($n, $v), $v.matches(\"^(ab|ba|a|b){{1,{k}}}$\");"),
        request: tool_call,
    },
    Attack {
        name: "string search per argument pair",
        block: |k| {
            format!(
                "check if arg($n, $v), arg($m, $w), $n != $m, {{{}}}.any($i -> $v.contains($w));",
                set(k)
            )
        },
        request: tool_call,
    },
];

/// The largest `k` in `1..=max` whose block the bound accepts for its request.
fn largest_accepted(
    writ: &str,
    keys: &RootKeys,
    attack: &Attack,
    max: usize,
) -> Option<(usize, writ_token::VerifiedWrit)> {
    let accepted = |k: usize| {
        let body = writ.strip_prefix("writ_").unwrap();
        let token = biscuit_auth::UnverifiedBiscuit::from_base64(body).unwrap();
        let block = biscuit_auth::builder::BlockBuilder::new()
            .code((attack.block)(k))
            .unwrap();
        let appended = format!("writ_{}", token.append(block).unwrap().to_base64().unwrap());
        let verified = decode(&appended).ok()?.verify(keys).ok()?;
        match verified.authorize(&(attack.request)(), t0()) {
            Err(writ_token::WritError::Datalog(_)) => None,
            _ => Some(verified),
        }
    };
    let (mut lo, mut hi) = (1, max);
    accepted(lo)?;
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if accepted(mid).is_some() {
            lo = mid
        } else {
            hi = mid - 1
        }
    }
    accepted(lo).map(|v| (lo, v))
}

fn bounded(c: &mut Criterion) {
    let key = RootKeyPair::generate(KeyId(1));
    let mut keys = RootKeys::new();
    keys.insert(key.kid(), key.public());
    let grants = parse_grants(
        r#"[{"type":"writ:llm","upstream":"openai"},{"type":"writ:tool","upstream":"openai","tool":"t","additional_arguments":true}]"#,
    )
    .unwrap();
    let req = MintRequest {
        tenant: "default",
        agent: "demo",
        ceiling: &grants,
        grants: &grants,
        ttl: Duration::from_secs(30),
        max_ttl: Duration::from_secs(30),
        now: t0(),
        cnf_jkt: None,
        audience: None,
    };
    let (writ, _) = mint(&key, &req).unwrap();
    let mut group = c.benchmark_group("bounded");
    group.sample_size(10);
    for attack in ATTACKS {
        let Some((k, verified)) = largest_accepted(&writ, &keys, attack, 4096) else {
            eprintln!("{}: refused at every size", attack.name);
            continue;
        };
        let request = (attack.request)();
        group.bench_function(format!("{} (k = {k})", attack.name), |b| {
            b.iter(|| verified.authorize(black_box(&request), t0()))
        });
    }
    group.finish();
}

criterion_group!(benches, bench, bounded);
criterion_main!(benches);
