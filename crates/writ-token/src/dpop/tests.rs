//! Proof checks with a key of the test's own and an in-memory replay guard.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use biscuit_auth::{Algorithm as KeyAlg, KeyPair};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::*;
use crate::{KeyId, MintRequest, RootKeyPair, RootKeys, decode, mint, parse_grants};

const URL: &str = "https://writ.test/v1/chat/completions";
const NOW: u64 = 1_800_000_000;

/// An Ed25519 key a client proves possession of.
struct TestKey(KeyPair);

impl TestKey {
    fn new() -> Self {
        Self(KeyPair::new_with_algorithm(KeyAlg::Ed25519))
    }

    fn jwk(&self) -> Value {
        json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(self.0.public().to_bytes())})
    }

    fn thumbprint(&self) -> String {
        let x = URL_SAFE_NO_PAD.encode(self.0.public().to_bytes());
        let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }

    /// Any header and claims, signed by this key.
    fn sign(&self, header: &Value, claims: &Value) -> String {
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let pem = self.0.to_private_key_pem().unwrap();
        let key = EncodingKey::from_ed_pem(pem.as_bytes()).unwrap();
        let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::EdDSA);
        format!("{message}.{}", signature.unwrap())
    }

    /// A valid proof for `POST URL` with `jti`, issued at `iat`.
    fn proof(&self, iat: Value, jti: &str, writ: Option<&str>) -> String {
        let mut claims = json!({"htm": "POST", "htu": URL, "iat": iat, "jti": jti});
        if let Some(writ) = writ {
            claims["ath"] = json!(URL_SAFE_NO_PAD.encode(Sha256::digest(writ.as_bytes())));
        }
        self.sign(
            &json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": self.jwk()}),
            &claims,
        )
    }
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn expected(access_token: Option<&str>) -> Expected<'_> {
    Expected {
        method: "POST",
        url: URL,
        access_token,
        now: at(NOW),
    }
}

/// One-time ids in memory; `down` answers every question with [`ReplayUnavailable`].
#[derive(Default)]
struct MemoryGuard {
    seen: Mutex<HashMap<String, SystemTime>>,
    down: bool,
}

impl ReplayGuard for MemoryGuard {
    async fn first_use(
        &self,
        id: OneTimeId<'_>,
        last_valid: SystemTime,
        now: SystemTime,
    ) -> Result<bool, ReplayUnavailable> {
        if self.down {
            return Err(ReplayUnavailable);
        }
        let mut seen = self.seen.lock().unwrap();
        seen.retain(|_, until| *until >= now);
        Ok(seen.insert(format!("{id:?}"), last_valid).is_none())
    }
}

/// The output of a future that never waits (the in-memory guard's).
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("an in-memory replay guard never waits"),
    }
}

/// A verified writ, bound to `cnf_jkt` if given, and its text.
fn writ(cnf_jkt: Option<&str>) -> (String, VerifiedWrit) {
    let key = RootKeyPair::generate(KeyId(1));
    let mut trusted = RootKeys::new();
    trusted.insert(key.kid(), key.public());
    let grants = parse_grants(r#"{"type":"writ:llm","upstream":"u"}"#).unwrap();
    let req = MintRequest {
        tenant: "t",
        agent: "a",
        ceiling: &grants,
        grants: &grants,
        ttl: Duration::from_secs(30),
        max_ttl: Duration::from_secs(30),
        now: at(NOW),
        cnf_jkt,
        audience: None,
    };
    let text = mint(&key, &req).unwrap().0;
    let verified = decode(&text).unwrap().verify(&trusted).unwrap();
    (text, verified)
}

#[test]
fn a_proof_verifies_to_its_key_and_an_iat_beyond_any_time_is_refused() {
    let key = TestKey::new();
    let expected = expected(None);
    let verified = verify_proof(&key.proof(json!(NOW - 59), "j-1", None), &expected).unwrap();
    assert_eq!(verified.thumbprint, key.thumbprint());
    assert_eq!(verified.jti, "j-1");
    assert_eq!(verified.replayable_until, at(NOW + 1));
    for iat in [
        json!(NOW - 61),
        json!(NOW + 61),
        json!(u64::MAX),
        json!(i64::MAX as u64 - 30),
    ] {
        assert_eq!(
            verify_proof(&key.proof(iat.clone(), "j-1", None), &expected).unwrap_err(),
            DpopError::IatOutsideWindow,
            "iat {iat}"
        );
    }
}

#[test]
fn each_failed_check_is_refused_with_its_own_variant() {
    let key = TestKey::new();
    let expected = expected(Some("the-writ"));
    let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(b"the-writ"));
    let header = json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": key.jwk()});
    let claims = json!({"htm": "POST", "htu": URL, "iat": NOW, "jti": "j", "ath": ath});
    let with = |patch: &dyn Fn(&mut Value, &mut Value)| {
        let (mut h, mut c) = (header.clone(), claims.clone());
        patch(&mut h, &mut c);
        verify_proof(&key.sign(&h, &c), &expected).map(|p| p.thumbprint)
    };
    assert_eq!(with(&|_, _| {}), Ok(key.thumbprint()));
    type Patch<'a> = &'a dyn Fn(&mut Value, &mut Value);
    let cases: [(Patch<'_>, DpopError); 11] = [
        (&|h, _| h["typ"] = json!("JWT"), DpopError::WrongTyp),
        (&|h, _| h["alg"] = json!("HS256"), DpopError::WrongAlg),
        (&|h, _| h["alg"] = json!("ES256"), DpopError::KeyAlgMismatch),
        (&|h, _| h["jwk"] = json!("key"), DpopError::NoJwk),
        (
            &|h, _| h["jwk"]["d"] = json!("secret"),
            DpopError::PrivateKey,
        ),
        (
            &|h, _| h["jwk"]["x"] = json!("a b"),
            DpopError::MalformedJwk,
        ),
        (&|_, c| c["htm"] = json!("GET"), DpopError::HtmMismatch),
        (
            &|_, c| c["htu"] = json!("https://evil.test/v1/chat/completions"),
            DpopError::HtuMismatch,
        ),
        (&|_, c| c["iat"] = json!("now"), DpopError::NoIat),
        (&|_, c| c["ath"] = json!("AAAA"), DpopError::AthMismatch),
        (&|_, c| c["jti"] = json!(""), DpopError::NoJti),
    ];
    for (i, (patch, want)) in cases.into_iter().enumerate() {
        assert_eq!(with(patch), Err(want), "case {i}");
    }
    // Found by fuzzing (dpop_proof): a key shorter than 32 bytes made the JWT library panic.
    for x in [
        "A".repeat(27),
        "A".repeat(42),
        "A".repeat(44),
        "A".repeat(128),
    ] {
        assert_eq!(
            with(&|h, _| h["jwk"]["x"] = json!(x)),
            Err(DpopError::MalformedJwk),
            "an Ed25519 key of {} characters",
            x.len()
        );
    }
    let other = TestKey::new();
    let forged = format!(
        "{}.{}",
        key.sign(&header, &claims).rsplit_once('.').unwrap().0,
        other.sign(&header, &claims).rsplit_once('.').unwrap().1
    );
    assert_eq!(
        verify_proof(&forged, &expected).unwrap_err(),
        DpopError::BadSignature
    );
    assert_eq!(
        verify_proof(&"a".repeat(MAX_PROOF_BYTES + 1), &expected).unwrap_err(),
        DpopError::TooLarge
    );
    assert_eq!(
        verify_proof("%%.x.y", &expected).unwrap_err(),
        DpopError::MalformedHeader
    );
    assert_eq!(
        DpopError::Replayed.to_string(),
        "DPoP proof was already used",
        "the message clients see is unchanged"
    );
}

/// An EdDSA proof is verified over its header and claims exactly as sent: any change after
/// signing, a token that is not three base64url segments, signed claims that are not a JSON
/// object, and a header the JWT library cannot read (a member twice, a JWK member of the
/// wrong type) are refused as a bad signature.
#[test]
fn an_eddsa_proof_changed_after_signing_is_refused() {
    let key = TestKey::new();
    let expected = expected(None);
    let proof = key.proof(json!(NOW), "j", None);
    assert_eq!(
        verify_proof(&proof, &expected).map(|p| p.thumbprint),
        Ok(key.thumbprint())
    );
    let parts: Vec<&str> = proof.split('.').collect();
    let other = key.proof(json!(NOW), "other", None);
    let other_claims = other.split('.').nth(1).unwrap();
    let mut signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    signature[5] ^= 1;
    let flipped = URL_SAFE_NO_PAD.encode(&signature);
    // S + L: the same signature with a non-canonical scalar.
    let mut s_plus_l = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    let l: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut carry = 0u16;
    for (b, l) in s_plus_l[32..].iter_mut().zip(l) {
        let sum = u16::from(*b) + u16::from(l) + carry;
        *b = sum as u8;
        carry = sum >> 8;
    }
    let s_plus_l = URL_SAFE_NO_PAD.encode(&s_plus_l);
    let header = json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": key.jwk()}).to_string();
    let changed = [
        format!("{}.{other_claims}.{}", parts[0], parts[2]),
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(format!("{header} ")),
            parts[1],
            parts[2]
        ),
        format!("{}.{}.{flipped}", parts[0], parts[1]),
        format!("{}.{}.{s_plus_l}", parts[0], parts[1]),
        format!("{}.{}.{}=", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}", parts[0], parts[1], &parts[2][..80]),
        format!("{}.{}.{}.{}", parts[0], parts[1], parts[1], parts[2]),
        format!("{}.{}", parts[0], parts[2]),
        format!("{}.{}.", parts[0], parts[1]),
    ];
    for (i, bad) in changed.iter().enumerate() {
        assert_eq!(
            verify_proof(bad, &expected).unwrap_err(),
            DpopError::BadSignature,
            "case {i}"
        );
    }
    // Signed, but not JSON, and JSON that is not an object.
    let header_value = json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": key.jwk()});
    let signed_raw = |payload: &[u8]| {
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header_value.to_string()),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let pem = key.0.to_private_key_pem().unwrap();
        let signing = EncodingKey::from_ed_pem(pem.as_bytes()).unwrap();
        let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &signing, Algorithm::EdDSA);
        format!("{message}.{}", signature.unwrap())
    };
    for payload in [&b"{"[..], b"", b"\xff"] {
        assert_eq!(
            verify_proof(&signed_raw(payload), &expected).unwrap_err(),
            DpopError::BadSignature
        );
    }
    assert_eq!(
        verify_proof(&key.sign(&header_value, &json!([1])), &expected).unwrap_err(),
        DpopError::BadSignature
    );
    // A header with a member twice (the last one as written here is the valid one), or a
    // JWK member of the wrong type, as the JWT library refused them.
    let header_text = json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": key.jwk()}).to_string();
    for header in [
        header_text.replacen('{', r#"{"typ":"JWT","#, 1),
        header_text.replacen(r#""crv""#, r#""use":5,"crv""#, 1),
    ] {
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&header),
            URL_SAFE_NO_PAD
                .encode(json!({"htm": "POST", "htu": URL, "iat": NOW, "jti": "j"}).to_string())
        );
        let pem = key.0.to_private_key_pem().unwrap();
        let signing = EncodingKey::from_ed_pem(pem.as_bytes()).unwrap();
        let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &signing, Algorithm::EdDSA);
        let proof = format!("{message}.{}", signature.unwrap());
        assert_eq!(
            verify_proof(&proof, &expected).unwrap_err(),
            DpopError::BadSignature,
            "{header}"
        );
    }
    // The untouched proof still verifies after all of that.
    assert!(verify_proof(&proof, &expected).is_ok());
}

/// A proof under the identity point (an Ed25519 key of order 1), "signed" with no private
/// key at all: `R = [s]B` with `s = 1` verifies for any message under that key, so a writ
/// bound to it would be usable by anyone holding it. Refused for its key.
#[test]
fn a_proof_under_a_key_of_small_order_is_refused() {
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let x = URL_SAFE_NO_PAD.encode(identity);
    let header = json!({"typ": "dpop+jwt", "alg": "EdDSA",
        "jwk": {"kty": "OKP", "crv": "Ed25519", "x": x}});
    let claims = json!({"htm": "POST", "htu": URL, "iat": NOW, "jti": "weak"});
    // R: the base point's encoding, 0x58 then 31 bytes of 0x66; S = 1.
    let mut signature = vec![0x58u8];
    signature.extend([0x66u8; 31]);
    signature.push(1);
    signature.extend([0u8; 31]);
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let proof = format!(
        "{}.{}.{}",
        b64(&header),
        b64(&claims),
        URL_SAFE_NO_PAD.encode(&signature)
    );
    assert_eq!(
        verify_proof(&proof, &expected(None)).unwrap_err(),
        DpopError::WeakKey
    );
}

#[test]
fn a_proof_is_accepted_once_and_refused_when_replay_cannot_be_told() {
    let key = TestKey::new();
    let guard = MemoryGuard::default();
    let proof = key.proof(json!(NOW), "j-1", None);
    let expected = expected(None);
    assert_eq!(
        ready(check_proof(&proof, &expected, &guard)),
        Ok(key.thumbprint())
    );
    assert_eq!(
        ready(check_proof(&proof, &expected, &guard)),
        Err(ProofRefusal::Invalid(DpopError::Replayed))
    );
    // Another key may use the same jti: ids are scoped by the key.
    let other = TestKey::new();
    let theirs = other.proof(json!(NOW), "j-1", None);
    assert!(ready(check_proof(&theirs, &expected, &guard)).is_ok());
    let down = MemoryGuard {
        down: true,
        ..MemoryGuard::default()
    };
    assert_eq!(
        ready(check_proof(&proof, &expected, &down)),
        Err(ProofRefusal::ReplayUnavailable)
    );
    // An invalid proof is refused before the guard is asked.
    assert_eq!(
        ready(check_proof("%%.x.y", &expected, &down)),
        Err(ProofRefusal::Invalid(DpopError::MalformedHeader))
    );
}

#[test]
fn an_unbound_writ_needs_no_proof_and_a_bound_one_its_own_key_by_the_dpop_scheme() {
    let key = TestKey::new();
    let guard = MemoryGuard::default();
    let (text, unbound) = writ(None);
    let expected = expected(Some(&text));
    assert_eq!(
        ready(possession(&unbound, false, None, &expected, &guard)),
        Ok(None)
    );
    let proof = key.proof(json!(NOW), "j-1", Some(&text));
    assert_eq!(
        ready(possession(&unbound, false, Some(&proof), &expected, &guard)),
        Ok(Some(key.thumbprint())),
        "a proof sent with an unbound writ is checked and stated"
    );

    let (text, bound) = writ(Some(&key.thumbprint()));
    let expected = self::expected(Some(&text));
    let proof = |jti| key.proof(json!(NOW), jti, Some(&text));
    let refused = |dpop_scheme, proof: Option<&str>| {
        ready(possession(&bound, dpop_scheme, proof, &expected, &guard))
    };
    assert_eq!(
        refused(false, Some(&proof("j-2"))),
        Err(DpopError::BearerForBoundWrit.into())
    );
    assert_eq!(refused(true, None), Err(DpopError::Missing.into()));
    let stranger = TestKey::new().proof(json!(NOW), "j-3", Some(&text));
    assert_eq!(
        refused(true, Some(&stranger)),
        Err(DpopError::JktMismatch.into())
    );
    assert_eq!(
        refused(true, Some(&proof("j-4"))),
        Ok(Some(key.thumbprint()))
    );
    assert_eq!(
        refused(true, Some(&proof("j-4"))),
        Err(DpopError::Replayed.into())
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Untrusted bytes of any shape are refused, never a panic.
        #[test]
        fn any_text_is_refused(text in "[A-Za-z0-9_.=-]{0,300}|.{0,300}") {
            prop_assert!(verify_proof(&text, &expected(None)).is_err());
        }

        /// Any `iat` a client signs is accepted exactly within the window of now, with no
        /// overflow however large.
        #[test]
        fn any_iat_is_judged_by_the_window(iat in prop_oneof![any::<u64>(), (NOW - 120)..(NOW + 120)]) {
            let key = TestKey::new();
            let judged = verify_proof(&key.proof(json!(iat), "j", None), &expected(None));
            let within = iat.abs_diff(NOW) <= IAT_WINDOW.as_secs();
            prop_assert_eq!(judged.is_ok(), within, "iat {}", iat);
            if !within {
                prop_assert_eq!(judged.unwrap_err(), DpopError::IatOutsideWindow);
            }
        }
    }
}
