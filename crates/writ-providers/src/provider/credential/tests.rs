//! A credential applied to settings: literal, per kind, strict for Bedrock, refused for
//! started servers, never quoted in errors.

use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::Provider;
use crate::provider::config::FieldProblem;

/// Resolves `${env:…}` from a fixed map and reads no file, recording what it was asked.
struct Vars {
    vars: BTreeMap<&'static str, &'static str>,
    asked: std::cell::RefCell<Vec<String>>,
}

#[derive(Debug, PartialEq, Eq)]
enum SourceError {
    Unset,
    NoFile,
}

impl ConfigSource for Vars {
    type Error = SourceError;

    fn expand(&self, _: &'static str, value: &str) -> Result<String, SourceError> {
        self.asked.borrow_mut().push(value.to_string());
        match value
            .strip_prefix("${env:")
            .and_then(|v| v.strip_suffix('}'))
        {
            Some(name) => self
                .vars
                .get(name)
                .map(|v| v.to_string())
                .ok_or(SourceError::Unset),
            None => Ok(value.to_string()),
        }
    }

    fn read_file(&self, _: &'static str, _: &Path) -> Result<String, SourceError> {
        Err(SourceError::NoFile)
    }
}

fn vars() -> Vars {
    Vars {
        vars: BTreeMap::from([("HOME", "/root"), ("REGION", "eu-west-1")]),
        asked: Default::default(),
    }
}

fn settings(toml_text: &str) -> ProviderConfig {
    toml::from_str(toml_text).expect("parses")
}

fn build(config: &ProviderConfig) -> Result<Provider, BuildError<SourceError>> {
    config.build(&vars())
}

#[test]
fn a_key_credential_is_used_byte_for_byte_and_never_expanded() {
    for kind in ["openai", "anthropic", "gemini", "azure", "http", "mcp"] {
        let declared = settings(&format!("kind = \"{kind}\"\napi_key = \"${{env:HOME}}\""));
        let source = vars();
        let with = declared
            .with_credential("tenant-${env:HOME}")
            .expect("applies");
        let provider = with.build(&source).expect("builds");
        assert_eq!(
            provider.secrets()[0].expose(),
            "tenant-${env:HOME}",
            "{kind}"
        );
        assert!(
            source.asked.borrow().iter().all(|v| !v.contains("tenant")),
            "{kind}: the credential reached the source: {:?}",
            source.asked.borrow()
        );
        // The settings themselves are untouched: their own key still expands.
        let own = build(&declared).expect("builds");
        assert_eq!(own.secrets()[0].expose(), "/root", "{kind}");
    }
}

#[test]
fn a_key_credential_fills_api_key_even_where_none_was_written() {
    let declared = settings("kind = \"openai\"\norganization = \"org-1\"");
    assert!(build(&declared).is_err(), "no key, no provider");
    let provider = build(&declared.with_credential("sk-tenant-a").expect("applies")).expect("ok");
    let auth = provider
        .credential_headers()
        .iter()
        .find(|(n, _)| n == "authorization")
        .map(|(_, v)| v.to_str().expect("ascii").to_string());
    assert_eq!(auth.as_deref(), Some("Bearer sk-tenant-a"));
}

#[test]
fn a_bedrock_credential_replaces_all_three_fields() {
    let declared = settings(
        "kind = \"bedrock\"\nregion = \"${env:REGION}\"\naws_access_key_id = \"AKIDFILE\"\naws_secret_access_key = \"file-secret\"\naws_session_token = \"file-token\"",
    );
    let with = declared
        .with_credential(
            r#"{"aws_access_key_id":"AKID${env:HOME}","aws_secret_access_key":"s3cr3t"}"#,
        )
        .expect("applies");
    let provider = build(&with).expect("builds");
    let secrets: Vec<&str> = provider.secrets().iter().map(|s| s.expose()).collect();
    assert_eq!(secrets, ["s3cr3t"], "the file's session token is gone too");
    assert_eq!(
        provider.default_base_url().as_deref(),
        Some("https://bedrock-runtime.eu-west-1.amazonaws.com"),
        "the file's own region still expands"
    );
    let with_token = declared
        .with_credential(
            r#"{"aws_access_key_id":"AKID","aws_secret_access_key":"s3cr3t","aws_session_token":"t0k"}"#,
        )
        .expect("applies");
    let token = |p: &Provider| {
        let mut headers = http::HeaderMap::new();
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let url = "https://bedrock-runtime.eu-west-1.amazonaws.com/model/m/converse";
        p.sign(&http::Method::POST, url, &mut headers, b"{}", now)
            .expect("signs");
        headers
            .get("x-amz-security-token")
            .map(|v| v.to_str().expect("ascii").to_string())
    };
    assert_eq!(
        token(&build(&with_token).expect("builds")).as_deref(),
        Some("t0k")
    );
    assert_eq!(token(&provider), None, "the file's token is not kept");
    assert_eq!(
        token(&build(&declared).expect("builds")).as_deref(),
        Some("file-token")
    );
}

#[test]
fn a_malformed_bedrock_credential_is_refused_without_quoting_it() {
    let declared = settings("kind = \"bedrock\"\nregion = \"us-east-1\"");
    for (secret, problem) in [
        ("hunter2-not-json", AwsShapeProblem::NotObject),
        (r#"["hunter2"]"#, AwsShapeProblem::NotObject),
        (
            r#"{"aws_access_key_id":"AKID","aws_secret_access_key":"hunter2","aws_secret_access_key":"x"}"#,
            AwsShapeProblem::NotObject,
        ),
        (
            r#"{"aws_access_key_id":"AKID","aws_secret_access_key":7}"#,
            AwsShapeProblem::NotObject,
        ),
        (
            r#"{"aws_access_key_id":"AKID","aws_secret_access_key":"hunter2","hunter2":"x"}"#,
            AwsShapeProblem::UnknownKey,
        ),
        (
            r#"{"aws_secret_access_key":"hunter2"}"#,
            AwsShapeProblem::Missing,
        ),
    ] {
        let err = declared.with_credential(secret).expect_err(secret);
        assert_eq!(err, CredentialError::AwsShape(problem), "{secret}");
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("aws_secret_access_key"),
            "says the shape: {shown}"
        );
    }
}

#[test]
fn a_vertex_credential_replaces_the_key_file() {
    let declared = settings(
        "kind = \"vertex\"\nlocation = \"us-central1\"\nproject = \"p\"\nservice_account_file = \"/etc/key.json\"",
    );
    assert_eq!(
        build(&declared).expect_err("no file here").to_string(),
        "the config source failed"
    );
    let with = declared
        .with_credential("{\"type\":\"service_account\",\"hunter2\":1}")
        .expect("applies");
    // The credential is read, not the file: its own problem is named.
    match build(&with) {
        Err(BuildError::Invalid {
            field: "service_account_json",
            problem: FieldProblem::ServiceAccount(_),
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn started_servers_and_unknown_kinds_take_no_credential() {
    let launched = settings("kind = \"mcp\"\ncommand = [\"/bin/true\"]");
    assert!(launched.is_launched());
    assert!(launched.credential_fields().is_empty());
    assert_eq!(
        launched.with_credential("k").expect_err("refused"),
        CredentialError::Launched
    );
    let unknown = settings("kind = \"quantum\"");
    assert_eq!(unknown.kind(), None);
    assert_eq!(
        unknown.with_credential("k").expect_err("refused"),
        CredentialError::UnknownKind
    );
}

#[test]
fn credential_fields_name_what_each_kind_takes() {
    for (text, fields) in [
        ("kind = \"openai\"", &["api_key"][..]),
        ("kind = \"mcp\"", &["api_key"]),
        (
            "kind = \"bedrock\"",
            &[
                "aws_access_key_id",
                "aws_secret_access_key",
                "aws_session_token",
            ],
        ),
        (
            "kind = \"vertex\"",
            &["service_account_json", "service_account_file"],
        ),
    ] {
        assert_eq!(settings(text).credential_fields(), fields, "{text}");
    }
}

#[test]
fn settings_are_checked_without_a_credential() {
    for ok in [
        "kind = \"openai\"\norganization = \"org-1\"",
        "kind = \"bedrock\"\nregion = \"us-east-1\"",
        "kind = \"vertex\"\nlocation = \"us-central1\"",
        "kind = \"http\"\nauth_query = \"key\"",
    ] {
        settings(ok).check_settings().expect(ok);
    }
    for (bad, field) in [
        ("kind = \"bedrock\"\nregion = \"US East\"", "region"),
        ("kind = \"bedrock\"", "region"),
        ("kind = \"vertex\"", "location"),
        (
            "kind = \"vertex\"\nlocation = \"l\"\nproject = \"a b\"",
            "project",
        ),
        (
            "kind = \"vertex\"\nlocation = \"l\"\ntoken_uri = \"ftp://x\"",
            "token_uri",
        ),
        (
            "kind = \"http\"\nauth_query = \"key\"\nbasic_user = \"u\"",
            "auth_header",
        ),
        (
            "kind = \"openai\"\norganization = \"a\\nb\"",
            "organization",
        ),
        ("kind = \"quantum\"", "kind"),
    ] {
        match settings(bad).check_settings() {
            Err(BuildError::Invalid { field: f, .. }) => assert_eq!(f, field, "{bad}"),
            other => panic!("{bad}: {other:?}"),
        }
    }
}

#[test]
fn a_literal_never_shows_in_debug() {
    let with = settings("kind = \"openai\"")
        .with_credential("sk-hunter2")
        .expect("applies");
    assert!(!format!("{with:?}").contains("hunter2"));
}

#[test]
fn resolved_settings_build_alike_without_the_environment() {
    let declared = settings(
        "kind = \"bedrock\"\nregion = \"${env:REGION}\"\naws_access_key_id = \"${env:HOME}\"\naws_secret_access_key = \"${env:HOME}\"",
    );
    let resolved = declared.resolved(&vars()).expect("resolves");
    let nothing = Vars {
        vars: BTreeMap::new(),
        asked: Default::default(),
    };
    let provider = resolved
        .build(&nothing)
        .expect("builds without the variables");
    assert_eq!(provider.secrets()[0].expose(), "/root");
    assert_eq!(
        provider.default_base_url().as_deref(),
        Some("https://bedrock-runtime.eu-west-1.amazonaws.com")
    );
    assert!(
        nothing.asked.borrow().iter().all(|v| !v.contains("${")),
        "nothing left to expand: {:?}",
        nothing.asked.borrow()
    );
    let unset = settings("kind = \"openai\"\napi_key = \"${env:NOPE}\"");
    assert_eq!(unset.resolved(&vars()).err(), Some(SourceError::Unset));
    let file = settings("kind = \"vertex\"\nlocation = \"l\"\nservice_account_file = \"/k.json\"");
    assert_eq!(file.resolved(&vars()).err(), Some(SourceError::NoFile));
}
