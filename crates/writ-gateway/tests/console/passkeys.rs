//! Passkeys over HTTP, with a software authenticator (P-256, `none` attestation) built
//! here: enrolment links malformed, oversized, reused, replaced and expired are one 404;
//! the JSON requests refuse other content types, oversized, malformed and cross-site
//! bodies; a sign-in answered with another person's passkey, or signing another
//! ceremony's challenge, or finishing a ceremony twice, opens no session; a passkey
//! session ends when its person is removed; enrolment and sign-in are audited, never the
//! link.

use base64::Engine;
use reqwest::{Method, StatusCode};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{ACME_ADMIN, Browser, Setup};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// CBOR, the few shapes an attestation needs.
fn cbor_head(major: u8, n: u64, out: &mut Vec<u8>) {
    let major = major << 5;
    match n {
        0..=23 => out.push(major | n as u8),
        24..=0xff => out.extend([major | 24, n as u8]),
        _ => {
            out.push(major | 25);
            out.extend((n as u16).to_be_bytes());
        }
    }
}

fn cbor_int(n: i64, out: &mut Vec<u8>) {
    if n >= 0 {
        cbor_head(0, n as u64, out);
    } else {
        cbor_head(1, (-1 - n) as u64, out);
    }
}

fn cbor_bytes(b: &[u8], out: &mut Vec<u8>) {
    cbor_head(2, b.len() as u64, out);
    out.extend(b);
}

fn cbor_text(t: &str, out: &mut Vec<u8>) {
    cbor_head(3, t.len() as u64, out);
    out.extend(t.as_bytes());
}

/// One passkey held by a software authenticator.
struct SoftPasskey {
    key: EcdsaKeyPair,
    id: Vec<u8>,
    counter: u32,
    /// The flags of its sign-in answers: user present and verified, unless a test says.
    flags: u8,
}

impl SoftPasskey {
    fn new(id: u8) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        SoftPasskey {
            key,
            id: vec![id; 32],
            counter: 0,
            flags: 0x05,
        }
    }

    fn client_data(kind: &str, challenge: &str, origin: &str) -> Vec<u8> {
        json!({"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": false})
            .to_string()
            .into_bytes()
    }

    /// The answer to `navigator.credentials.create` with `options` (`publicKey`).
    fn create(&self, options: &Value, origin: &str) -> Value {
        let rp_id = options["rp"]["id"].as_str().unwrap();
        let challenge = options["challenge"].as_str().unwrap();
        let client_data = Self::client_data("webauthn.create", challenge, origin);
        let point = self.key.public_key().as_ref();
        let mut cose = Vec::new();
        cbor_head(5, 5, &mut cose);
        for (k, v) in [(1, 2), (3, -7), (-1, 1)] {
            cbor_int(k, &mut cose);
            cbor_int(v, &mut cose);
        }
        cbor_int(-2, &mut cose);
        cbor_bytes(&point[1..33], &mut cose);
        cbor_int(-3, &mut cose);
        cbor_bytes(&point[33..65], &mut cose);
        let mut auth_data = Sha256::digest(rp_id.as_bytes()).to_vec();
        auth_data.push(0x45); // user present, user verified, credential data included
        auth_data.extend(0u32.to_be_bytes());
        auth_data.extend([0u8; 16]);
        auth_data.extend((self.id.len() as u16).to_be_bytes());
        auth_data.extend(&self.id);
        auth_data.extend(cose);
        let mut attestation = Vec::new();
        cbor_head(5, 3, &mut attestation);
        cbor_text("fmt", &mut attestation);
        cbor_text("none", &mut attestation);
        cbor_text("attStmt", &mut attestation);
        cbor_head(5, 0, &mut attestation);
        cbor_text("authData", &mut attestation);
        cbor_bytes(&auth_data, &mut attestation);
        json!({
            "id": b64(&self.id), "rawId": b64(&self.id), "type": "public-key",
            "response": {
                "attestationObject": b64(&attestation),
                "clientDataJSON": b64(&client_data),
            },
        })
    }

    /// The answer to `navigator.credentials.get` signing `challenge` for `rp_id`.
    fn get(&mut self, rp_id: &str, challenge: &str, origin: &str) -> Value {
        self.counter += 1;
        let client_data = Self::client_data("webauthn.get", challenge, origin);
        let mut auth_data = Sha256::digest(rp_id.as_bytes()).to_vec();
        auth_data.push(self.flags);
        auth_data.extend(self.counter.to_be_bytes());
        let mut signed = auth_data.clone();
        signed.extend(Sha256::digest(&client_data));
        let signature = self.key.sign(&SystemRandom::new(), &signed).unwrap();
        json!({
            "id": b64(&self.id), "rawId": b64(&self.id), "type": "public-key",
            "response": {
                "authenticatorData": b64(&auth_data),
                "clientDataJSON": b64(&client_data),
                "signature": b64(signature.as_ref()),
                "userHandle": null,
            },
        })
    }
}

/// The console's origin as a browser sees it (WebAuthn's: `localhost`, not the address).
fn origin(setup: &Setup) -> String {
    writ_testkit::on_localhost(setup.gw.url("").trim_end_matches('/'))
}

/// Posts JSON as the console's script does; answers the status and JSON.
async fn script(browser: &mut Browser, path: &str, body: &Value) -> (StatusCode, Value) {
    let req = browser
        .client
        .post(browser.url(path))
        .header("content-type", "application/json")
        .header("sec-fetch-site", "same-origin")
        .body(body.to_string());
    let page = browser.send(req).await;
    let value = serde_json::from_str(&page.body).unwrap_or(Value::Null);
    (page.status, value)
}

/// A new enrolment link's path for approver `name` of `acme` (added now).
async fn approver_link(setup: &Setup, name: &str) -> String {
    let (status, body) = setup
        .admin_api(
            Method::POST,
            "/admin/v1/tenants/acme/approvers",
            json!({"name": name}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    path_of(setup, &body)
}

fn path_of(setup: &Setup, body: &Value) -> String {
    let url = body["enrol_url"].as_str().unwrap();
    url.strip_prefix(&origin(setup))
        .unwrap_or_else(|| panic!("{url}"))
        .to_string()
}

/// Enrols `key` through the link at `path`: the browser then holds a session.
async fn enrol(setup: &Setup, browser: &mut Browser, path: &str, key: &SoftPasskey) {
    let (status, begun) = script(browser, &format!("{path}/options"), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{begun}");
    let credential = key.create(&begun["options"]["publicKey"], &origin(setup));
    let finish = json!({"ceremony": begun["ceremony"], "credential": credential});
    let (status, done) = script(browser, &format!("{path}/finish"), &finish).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["next"], "/console/approvals");
    assert!(browser.cookie.is_some());
}

/// Begins a sign-in as `name` of `tenant`: the ceremony id and the challenge.
async fn begin(browser: &mut Browser, name: &str, tenant: &str) -> (String, String) {
    let who = json!({"name": name, "tenant": tenant});
    let (status, begun) = script(browser, "/console/passkey/options", &who).await;
    assert_eq!(status, StatusCode::OK, "{begun}");
    (
        begun["ceremony"].as_str().unwrap().to_string(),
        begun["options"]["publicKey"]["challenge"]
            .as_str()
            .unwrap()
            .to_string(),
    )
}

async fn finish(browser: &mut Browser, ceremony: &str, credential: Value) -> (StatusCode, Value) {
    let body = json!({"ceremony": ceremony, "credential": credential});
    script(browser, "/console/passkey/finish", &body).await
}

#[tokio::test]
async fn enrolment_links_work_once_and_fail_alike() {
    let setup = Setup::start().await;
    let path = approver_link(&setup, "alice").await;
    let mut anyone = Browser::new(&setup.gw);
    let page = anyone.get(&path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    page.assert_guarded("enrolment page");
    assert!(page.body.contains("alice, an approver of tenant acme"));
    let token = path.strip_prefix("/console/enrol/").unwrap();
    assert!(!page.body.contains(token), "the token is not in the page");

    let mut alice = Browser::new(&setup.gw);
    enrol(&setup, &mut alice, &path, &SoftPasskey::new(1)).await;
    let home = alice.get("/console/approvals").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.body.contains("alice · tenant acme"), "{}", home.body);

    // Used, replaced, expired, unknown, malformed, oversized: one refusal.
    let replaced = approver_link(&setup, "bob").await;
    let (status, body) = setup
        .admin_api(
            Method::POST,
            "/admin/v1/tenants/acme/approvers/bob/enrolment",
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let bobs = path_of(&setup, &body);
    assert_eq!(anyone.get(&replaced).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        anyone.get(&bobs).await.status,
        StatusCode::OK,
        "the newer link"
    );
    let (status, body) = setup
        .admin_api(
            Method::POST,
            "/admin/v1/tenants/acme/approvers/carol/enrolment",
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no such approver: {body}");
    let expiring = approver_link(&setup, "dave").await;
    setup
        .gw
        .clock()
        .advance(std::time::Duration::from_secs(24 * 60 * 60));
    let mut refused = Vec::new();
    for bad in [
        path.clone(),
        replaced,
        expiring,
        format!("/console/enrol/{}", "A".repeat(43)),
        "/console/enrol/short".to_string(),
        format!("/console/enrol/{}", "A".repeat(10_000)),
        format!("/console/enrol/{}%2F..", &token[..40]),
        "/console/enrol/%3Cscript%3E".to_string(),
    ] {
        let page = anyone.get(&bad).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{bad}: {}", page.body);
        page.assert_guarded("refused link");
        let (status, said) = script(&mut anyone, &format!("{bad}/options"), &json!({})).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{bad}: {said}");
        refused.push(said["error"].as_str().unwrap().to_string());
    }
    assert!(refused.iter().all(|r| r == &refused[0]), "{refused:?}");
    assert!(refused[0].contains("Ask an admin for a new link"));
    // A day on, bob's newer link has expired too.
    assert_eq!(anyone.get(&bobs).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_script_requests_refuse_what_the_script_does_not_send() {
    let setup = Setup::start().await;
    let path = approver_link(&setup, "alice").await;
    let mut b = Browser::new(&setup.gw);
    let options = format!("{path}/options");
    for target in [options.as_str(), "/console/passkey/options"] {
        let send = |content_type: &'static str, site: &'static str, body: String| {
            b.client
                .post(b.url(target))
                .header("content-type", content_type)
                .header("sec-fetch-site", site)
                .body(body)
        };
        let cases = [
            (send("text/plain", "same-origin", "{}".into()), 415),
            (
                send(
                    "application/x-www-form-urlencoded",
                    "same-origin",
                    "a=1".into(),
                ),
                415,
            ),
            (send("application/json", "cross-site", "{}".into()), 403),
            (send("application/json", "same-site", "{}".into()), 403),
            (send("application/json", "same-origin", "{".into()), 400),
            (
                send("application/json", "same-origin", r#"{"a":1,"a":2}"#.into()),
                400,
            ),
            (
                send(
                    "application/json",
                    "same-origin",
                    format!("{{\"name\":\"{}\"}}", "x".repeat(70_000)),
                ),
                413,
            ),
        ];
        for (i, (req, expected)) in cases.into_iter().enumerate() {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let said: Value = resp.json().await.unwrap_or(Value::Null);
            assert_eq!(status, expected, "{target} case {i}: {said}");
            assert!(
                said["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{said}"
            );
        }
    }
    // A ceremony begun with one link does not finish with another.
    let bobs = approver_link(&setup, "bob").await;
    let (status, begun) = script(&mut b, &format!("{path}/options"), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{begun}");
    let answer = SoftPasskey::new(5).create(&begun["options"]["publicKey"], &origin(&setup));
    let crossed = json!({"ceremony": begun["ceremony"], "credential": answer});
    let (status, said) = script(&mut b, &format!("{bobs}/finish"), &crossed).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{said}");
    assert!(b.cookie.is_none());
    assert_eq!(
        b.get(&bobs).await.status,
        StatusCode::OK,
        "bob's link is unspent"
    );
    // Hostile names and tenants are refused before the store.
    for who in [
        json!({"name": "", "tenant": "acme"}),
        json!({"name": "a".repeat(65), "tenant": "acme"}),
        json!({"name": "<script>", "tenant": "acme"}),
        json!({"name": "alice", "tenant": "a/b"}),
        json!({"name": "alice", "tenant": "acme", "extra": 1}),
        json!({"name": 7}),
    ] {
        let (status, said) = script(&mut b, "/console/passkey/options", &who).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{who}: {said}");
    }
    // Nobody of that name has a passkey.
    let who = json!({"name": "alice", "tenant": "acme"});
    let (status, said) = script(&mut b, "/console/passkey/options", &who).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{said}");
    // A finish without a ceremony begun, or with a malformed answer.
    let (status, _) = finish(&mut b, "x", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let forged = SoftPasskey::new(9).get("localhost", "AAAA", &origin(&setup));
    let (status, said) = finish(&mut b, &"A".repeat(43), forged).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{said}");
    assert!(b.cookie.is_none(), "no session");
}

#[tokio::test]
async fn only_the_person_s_passkey_signing_this_challenge_signs_in() {
    let setup = Setup::start().await;
    let origin = origin(&setup);
    let mut alice_key = SoftPasskey::new(1);
    let mut bob_key = SoftPasskey::new(2);
    for (name, key) in [("alice", &alice_key), ("bob", &bob_key)] {
        let path = approver_link(&setup, name).await;
        enrol(&setup, &mut Browser::new(&setup.gw), &path, key).await;
    }
    let mut b = Browser::new(&setup.gw);

    // Bob's passkey answering a sign-in as alice.
    let (ceremony, challenge) = begin(&mut b, "alice", "acme").await;
    let (status, said) = finish(
        &mut b,
        &ceremony,
        bob_key.get("localhost", &challenge, &origin),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{said}");
    // The ceremony is spent, even by a failure.
    let (status, _) = finish(
        &mut b,
        &ceremony,
        alice_key.get("localhost", &challenge, &origin),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Alice's passkey signing another ceremony's challenge, another origin, another RP.
    let (_first, first_challenge) = begin(&mut b, "alice", "acme").await;
    let (second, _) = begin(&mut b, "alice", "acme").await;
    let signed_first = alice_key.get("localhost", &first_challenge, &origin);
    let (status, _) = finish(&mut b, &second, signed_first).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "another ceremony's challenge"
    );
    let (third, challenge) = begin(&mut b, "alice", "acme").await;
    let elsewhere = alice_key.get("localhost", &challenge, "http://evil.example");
    assert_eq!(
        finish(&mut b, &third, elsewhere).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (fourth, challenge) = begin(&mut b, "alice", "acme").await;
    let other_rp = alice_key.get("evil.example", &challenge, &origin);
    assert_eq!(
        finish(&mut b, &fourth, other_rp).await.0,
        StatusCode::UNAUTHORIZED
    );
    // Present but not verified (no PIN, no biometric): refused.
    alice_key.flags = 0x01;
    let (fifth, challenge) = begin(&mut b, "alice", "acme").await;
    let unverified = alice_key.get("localhost", &challenge, &origin);
    assert_eq!(
        finish(&mut b, &fifth, unverified).await.0,
        StatusCode::UNAUTHORIZED
    );
    alice_key.flags = 0x05;
    assert!(b.cookie.is_none(), "no session yet");

    // Alice's own, fresh: a session, as an approver of acme.
    let (ceremony, challenge) = begin(&mut b, "alice", "acme").await;
    let (status, said) = finish(
        &mut b,
        &ceremony,
        alice_key.get("localhost", &challenge, &origin),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{said}");
    let home = b.get("/console/approvals").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.body.contains("alice · tenant acme"));
    assert_eq!(b.get("/console/agents").await.status, StatusCode::FORBIDDEN);

    // Anyone may begin a sign-in as bob, but only a few at once.
    let mut stranger = Browser::new(&setup.gw);
    for _ in 0..5 {
        begin(&mut stranger, "bob", "acme").await;
    }
    let who = json!({"name": "bob", "tenant": "acme"});
    let (status, said) = script(&mut stranger, "/console/passkey/options", &who).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{said}");
    begin(&mut stranger, "alice", "acme").await;

    // Removing alice ends her session at its next request.
    let (status, _) = setup
        .admin_api(
            Method::DELETE,
            "/admin/v1/tenants/acme/approvers/alice",
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let gone = b.get("/console/approvals").await;
    assert_eq!(gone.status, StatusCode::SEE_OTHER);
    assert_eq!(gone.location(), "/console/sign-in");
    let who = json!({"name": "alice", "tenant": "acme"});
    assert_eq!(
        script(&mut b, "/console/passkey/options", &who).await.0,
        StatusCode::UNAUTHORIZED,
        "her passkeys are gone"
    );
}

#[tokio::test]
async fn console_admins_enrol_and_sign_in_with_their_role_and_tenant() {
    let setup = Setup::start().await;
    let origin = origin(&setup);
    let (status, body) = setup
        .admin_api(Method::POST, "/admin/v1/admins", json!({"name": "root"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["role"], "admin");
    assert!(body["tenant"].is_null());
    let root_path = path_of(&setup, &body);
    let (status, body) = setup
        .admin_api(
            Method::POST,
            "/admin/v1/tenants/acme/admins",
            json!({"name": "ann"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let ann_path = path_of(&setup, &body);
    let mut root_key = SoftPasskey::new(3);
    let mut ann_key = SoftPasskey::new(4);
    enrol(&setup, &mut Browser::new(&setup.gw), &root_path, &root_key).await;
    enrol(&setup, &mut Browser::new(&setup.gw), &ann_path, &ann_key).await;

    let mut root = Browser::new(&setup.gw);
    let (ceremony, challenge) = begin(&mut root, "root", "").await;
    let answer = root_key.get("localhost", &challenge, &origin);
    assert_eq!(finish(&mut root, &ceremony, answer).await.0, StatusCode::OK);
    let agents = root.get("/console/agents").await;
    assert_eq!(
        agents.status,
        StatusCode::OK,
        "an operator sees every tenant"
    );
    assert!(agents.body.contains("globex"));

    let mut ann = Browser::new(&setup.gw);
    let (ceremony, challenge) = begin(&mut ann, "ann", "acme").await;
    let answer = ann_key.get("localhost", &challenge, &origin);
    assert_eq!(finish(&mut ann, &ceremony, answer).await.0, StatusCode::OK);
    let theirs = ann.get("/console/tenants/acme/agents").await;
    assert_eq!(theirs.status, StatusCode::OK);
    let other = ann.get("/console/tenants/globex/agents").await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);

    // Audited: enrolled and signed in, by passkey; never a link or its token.
    setup.gw.gateway().audit_checkpoint().await;
    let lines = setup.gw.gateway().audit_export().await.unwrap();
    let records: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let ops = |op: &str| {
        records
            .iter()
            .filter(|r| r["operation"] == op)
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(ops("console_passkey_enrolled").len(), 2);
    let signed_in: Vec<Value> = ops("console_sign_in")
        .into_iter()
        .filter(|r| r["detail"]["authenticated_by"] == "passkey")
        .collect();
    assert!(signed_in.len() >= 2, "{signed_in:?}");
    let token = ann_path.strip_prefix("/console/enrol/").unwrap();
    assert!(lines.iter().all(|l| !l.contains(token)), "no token audited");
}

#[tokio::test]
async fn a_tenant_admin_manages_its_own_tenant_s_people_only() {
    let setup = Setup::start().await;
    let acme = setup.gw.mint_as(ACME_ADMIN, ACME_ADMIN, 30);
    let call = |method: Method, path: &str, body: Value| {
        let req = reqwest::Client::new()
            .request(method, setup.gw.url(path))
            .bearer_auth(&acme)
            .json(&body);
        async move {
            let resp = req.send().await.unwrap();
            (
                resp.status(),
                resp.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let name = json!({"name": "ann"});
    let (status, body) = call(Method::POST, "/admin/v1/tenants/acme/admins", name.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = call(
        Method::POST,
        "/admin/v1/tenants/acme/approvers",
        name.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for (method, path) in [
        (Method::POST, "/admin/v1/admins"),
        (Method::GET, "/admin/v1/admins"),
        (Method::POST, "/admin/v1/tenants/globex/admins"),
        (Method::GET, "/admin/v1/tenants/globex/admins"),
        (Method::POST, "/admin/v1/admins/ann/enrolment"),
        (
            Method::POST,
            "/admin/v1/tenants/globex/approvers/ann/enrolment",
        ),
        (Method::DELETE, "/admin/v1/admins/ann"),
    ] {
        let (status, body) = call(method.clone(), path, name.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {body}");
    }
    let (status, body) = call(Method::GET, "/admin/v1/tenants/acme/admins", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["admins"].as_array().unwrap().len(), 1, "{body}");
    for bad in ["", "a b", "<script>", "a%2Fb"] {
        let (status, body) = call(
            Method::POST,
            "/admin/v1/tenants/acme/admins",
            json!({"name": bad}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    let (status, _) = call(
        Method::POST,
        "/admin/v1/tenants/acme/admins",
        json!({"name": "x", "role": "operator"}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "unknown fields are refused"
    );
    let (status, _) = call(
        Method::DELETE,
        "/admin/v1/tenants/acme/admins/ann",
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}
