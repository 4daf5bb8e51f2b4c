//! Cost of one client-secret check at the token endpoint: a secret stored as writ stores it
//! now (salted HMAC-SHA-256), against an Argon2id hash as earlier versions stored it (the
//! baseline, measured in the same run), right and wrong. Run with
//! `cargo bench -p writ-store --bench client_secret`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use argon2::{Argon2, PasswordHasher};
use criterion::{Criterion, criterion_group, criterion_main};
use writ_store::{AgentCredentials, new_client_secret};

fn credentials(hash: String) -> AgentCredentials {
    AgentCredentials {
        public_keys: Vec::new(),
        secret_hash: Some(hash),
    }
}

fn bench(c: &mut Criterion) {
    let (secret, hash) = new_client_secret();
    let now = credentials(hash);
    let legacy = credentials(
        Argon2::default()
            .hash_password_with_salt(secret.as_bytes(), b"0123456789abcdef")
            .unwrap()
            .to_string(),
    );
    assert!(now.verify_secret(&secret) && legacy.verify_secret(&secret));
    let mut g = c.benchmark_group("client_secret");
    g.bench_function("hmac_right", |b| {
        b.iter(|| black_box(now.verify_secret(black_box(&secret))))
    });
    g.bench_function("hmac_wrong", |b| {
        b.iter(|| black_box(now.verify_secret(black_box("wcs_wrong"))))
    });
    g.sample_size(10);
    g.bench_function("argon2id_right_baseline", |b| {
        b.iter(|| black_box(legacy.verify_secret(black_box(&secret))))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
