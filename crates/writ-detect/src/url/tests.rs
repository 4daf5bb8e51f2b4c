use super::*;
use crate::rules::{BUILTIN, RuleId};

fn scanner() -> Scanner {
    Scanner::new(BUILTIN, &[("openai", "upstream-configured-secret-0001")]).unwrap()
}

fn param(index: usize, name: &str, rule: UrlRule) -> Option<UrlFinding> {
    Some(UrlFinding {
        location: UrlLocation::QueryParam {
            index,
            name: Some(name.to_owned()),
        },
        rule,
    })
}

#[test]
fn clean_urls_pass() {
    let s = scanner();
    for url in [
        "/v1/chat/completions",
        "/v1/models/gemini-2.0-flash:generateContent?alt=sse",
        "/v1/files?limit=20&pageToken=CiAKGjBpNDd2Nmp2Zml2cXRiOWNkMA",
        "/v1/files?order=desc&key=id",
        "/u/travel/flights?from=FRA&to=JFK&date=2026-12-01",
        "/model/anthropic.claude-3-haiku/converse",
        "/?",
        "",
        "/search?q=how+do+I+rotate+a+password%3F",
    ] {
        assert_eq!(check_url(url, &s), None, "{url}");
    }
}

#[test]
fn credential_parameter_names() {
    let s = scanner();
    assert_eq!(
        check_url("/v1/models?key=abcd1234", &s),
        param(0, "key", UrlRule::CredentialParam)
    );
    assert_eq!(
        check_url("/x?limit=1&API-Key=zzzzzzzz", &s),
        param(1, "API-Key", UrlRule::CredentialParam)
    );
    assert_eq!(
        check_url("/cb?state=x&access_token=opaque-value", &s),
        param(1, "access_token", UrlRule::CredentialParam)
    );
    assert_eq!(
        check_url("/blob?sv=2022-11-02&sig=abcdEFGH%2Bijkl%3D", &s),
        param(1, "sig", UrlRule::CredentialParam)
    );
    assert_eq!(
        check_url("/o?X-Amz-Signature=0123456789abcdef", &s),
        param(0, "X-Amz-Signature", UrlRule::CredentialParam)
    );
    // Empty and flag-like values are not credentials.
    assert_eq!(check_url("/x?token=&auth=1", &s), None);
}

#[test]
fn secrets_in_values_segments_and_names() {
    let s = scanner();
    let key = "sk-proj-EXAMPLE0fake1KEY2for3tests4ONLYabcdefghij";
    assert_eq!(
        check_url(&format!("/v1/chat?q={key}"), &s),
        param(
            0,
            "q",
            UrlRule::Secret(ScanRule::Builtin(RuleId::OpenaiApiKey))
        )
    );
    assert_eq!(
        check_url(&format!("/u/x/{key}/items"), &s),
        Some(UrlFinding {
            location: UrlLocation::PathSegment { index: 2 },
            rule: UrlRule::Secret(ScanRule::Builtin(RuleId::OpenaiApiKey)),
        })
    );
    // Percent-encoded, and the configured secret.
    assert_eq!(
        check_url("/x?note=upstream-configured%2Dsecret-0001", &s),
        param(0, "note", UrlRule::Secret(ScanRule::Configured(0)))
    );
    // A secret as the parameter name: reported without the name.
    assert_eq!(
        check_url(&format!("/x?{key}"), &s),
        Some(UrlFinding {
            location: UrlLocation::QueryParam {
                index: 0,
                name: None
            },
            rule: UrlRule::Secret(ScanRule::Builtin(RuleId::OpenaiApiKey)),
        })
    );
}

#[test]
fn findings_never_contain_the_value() {
    let s = scanner();
    let value = "AKIAIOSFODNN7EXAMPLE";
    let f = check_url(&format!("/x?id={value}"), &s).unwrap();
    assert!(!format!("{f:?}").contains(value));
    assert_eq!(f.rule.id(), "aws-access-key-id");
}

#[test]
fn percent_decoding() {
    assert_eq!(percent_decode("a%2Bb+c%zz%4", true), b"a+b c%zz%4");
    assert_eq!(percent_decode("a+b", false), b"a+b");
    assert_eq!(percent_decode("%41%4a%", false), b"AJ%");
}
