//! SigV4 signing against the AWS Signature Version 4 test suite (tests/vectors/sigv4).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use writ_providers::UpstreamSecret;
use writ_providers::sigv4::{AwsCredentials, Signer, Unsigned, sign_request};

fn check(case: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/sigv4")
        .join(case);
    let context: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("context.json")).unwrap()).unwrap();
    let request = std::fs::read_to_string(dir.join("request.txt")).unwrap();
    let expected = std::fs::read_to_string(dir.join("header-signature.txt")).unwrap();
    let (head, body) = request.split_once("\n\n").unwrap_or((&request, ""));
    let mut lines = head.lines();
    let mut start = lines.next().unwrap().split(' ');
    let (method, path) = (start.next().unwrap(), start.next().unwrap());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .filter(|(k, _)| k != "x-amz-date")
        .collect();
    let host = headers.iter().find(|(k, _)| k == "host").unwrap().1.clone();
    let creds = &context["credentials"];
    let credentials = AwsCredentials {
        access_key_id: creds["access_key_id"].as_str().unwrap().into(),
        secret_access_key: UpstreamSecret::new(creds["secret_access_key"].as_str().unwrap()),
        session_token: creds["token"].as_str().map(UpstreamSecret::new),
    };
    // 2015-08-30T12:36:00Z
    let time = UNIX_EPOCH + Duration::from_secs(1_440_938_160);
    assert_eq!(context["timestamp"], "2015-08-30T12:36:00Z");
    let header_refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let url = format!("https://{host}{path}");
    let has_token = credentials.session_token.is_some();
    let signer = Signer {
        credentials,
        region: context["region"].as_str().unwrap().into(),
        service: context["service"].as_str().unwrap().into(),
    };
    let unsigned = Unsigned {
        method,
        url: &url,
        headers: &header_refs,
        body: body.as_bytes(),
    };
    let signed = sign_request(&signer, unsigned, time).unwrap();
    let auth = signed
        .iter()
        .find(|(k, _)| k == "authorization")
        .unwrap()
        .1
        .clone();
    assert!(
        auth.ends_with(&format!("Signature={}", expected.trim())),
        "{case}: {auth}"
    );
    assert!(
        signed
            .iter()
            .any(|(k, v)| k == "x-amz-date" && v == "20150830T123600Z")
    );
    if has_token {
        assert!(
            signed.iter().any(|(k, _)| k == "x-amz-security-token"),
            "{case}"
        );
    }
}

#[test]
fn get_vanilla() {
    check("get-vanilla");
}

#[test]
fn get_vanilla_with_session_token() {
    check("get-vanilla-with-session-token");
}

#[test]
fn post_vanilla() {
    check("post-vanilla");
}
