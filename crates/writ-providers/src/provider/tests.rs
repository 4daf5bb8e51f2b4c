//! Provider settings and what a provider answers: each kind's own fields and default URL,
//! its credential, its routes, and what it reads from a request.

use std::collections::BTreeMap;
use std::path::Path;

use http::{HeaderMap, Method};

use super::*;
use crate::UpstreamInPath;

/// Resolves `${env:…}` from a fixed map; files are never there.
struct Vars(BTreeMap<&'static str, &'static str>);

#[derive(Debug, PartialEq, Eq)]
enum SourceError {
    Unset(&'static str),
    NoFile(&'static str),
}

impl ConfigSource for Vars {
    type Error = SourceError;

    fn expand(&self, field: &'static str, value: &str) -> Result<String, SourceError> {
        match value
            .strip_prefix("${env:")
            .and_then(|v| v.strip_suffix('}'))
        {
            Some(name) => self
                .0
                .get(name)
                .map(|v| v.to_string())
                .ok_or(SourceError::Unset(field)),
            None => Ok(value.to_string()),
        }
    }

    fn read_file(&self, field: &'static str, _: &Path) -> Result<String, SourceError> {
        Err(SourceError::NoFile(field))
    }
}

fn parse(toml_text: &str) -> Result<ProviderConfig, toml::de::Error> {
    toml::from_str(toml_text)
}

fn build(toml_text: &str) -> Result<Provider, BuildError<SourceError>> {
    let vars = Vars(BTreeMap::from([("KEY", "sk-from-env-0123")]));
    parse(toml_text).expect("parses").build(&vars)
}

fn provider(toml_text: &str) -> Provider {
    build(toml_text).expect("valid")
}

fn route(pattern: &str) -> &'static RouteSpec {
    RouteSpec::find(pattern).expect("a route")
}

#[test]
fn a_field_of_another_kind_is_refused_naming_the_field() {
    for (text, field) in [
        (
            "kind = \"openai\"\napi_key = \"k\"\nregion = \"us-east-1\"",
            "region",
        ),
        (
            "kind = \"anthropic\"\napi_key = \"k\"\norganization = \"o\"",
            "organization",
        ),
        (
            "kind = \"gemini\"\napi_key = \"k\"\ndeployments = {}",
            "deployments",
        ),
        (
            "kind = \"azure\"\napi_key = \"k\"\nauth_query = \"key\"",
            "auth_query",
        ),
        (
            "kind = \"bedrock\"\nregion = \"us-east-1\"\napi_key = \"k\"",
            "api_key",
        ),
        (
            "kind = \"vertex\"\nlocation = \"l\"\napi_key = \"k\"",
            "api_key",
        ),
        (
            "kind = \"mcp\"\napi_key = \"k\"\nlocation = \"l\"",
            "location",
        ),
        (
            "kind = \"http\"\napi_key = \"k\"\nservice_account_file = \"f\"",
            "service_account_file",
        ),
        ("kind = \"openai\"\napi_kye = \"k\"", "api_kye"),
    ] {
        let err = parse(text).unwrap_err();
        assert!(
            err.message()
                .starts_with(&format!("unknown field `{field}`")),
            "{text}: {err}"
        );
    }
}

#[test]
fn an_unknown_kind_is_refused_listing_the_known_ones() {
    let err = build("kind = \"carrier-pigeon\"\napi_key = \"k\"").unwrap_err();
    assert!(matches!(
        &err,
        BuildError::Invalid {
            field: "kind",
            problem: FieldProblem::UnknownKind
        }
    ));
    let shown = err.to_string();
    for kind in [
        "openai",
        "anthropic",
        "gemini",
        "vertex",
        "azure",
        "bedrock",
        "mcp",
        "http",
    ] {
        assert!(shown.contains(kind), "{shown}");
    }
    assert!(parse("api_key = \"k\"").is_err(), "a kind is required");
}

#[test]
fn each_kind_has_its_own_default_url_or_none() {
    for (text, url) in [
        (
            "kind = \"openai\"\napi_key = \"k\"",
            Some("https://api.openai.com"),
        ),
        (
            "kind = \"anthropic\"\napi_key = \"k\"",
            Some("https://api.anthropic.com"),
        ),
        (
            "kind = \"gemini\"\napi_key = \"k\"",
            Some("https://generativelanguage.googleapis.com"),
        ),
        (
            "kind = \"bedrock\"\nregion = \"eu-west-3\"\naws_access_key_id = \"A\"\naws_secret_access_key = \"S\"",
            Some("https://bedrock-runtime.eu-west-3.amazonaws.com"),
        ),
        ("kind = \"azure\"\napi_key = \"k\"", None),
        ("kind = \"mcp\"\napi_key = \"k\"", None),
        ("kind = \"http\"\napi_key = \"k\"", None),
    ] {
        assert_eq!(provider(text).default_base_url().as_deref(), url, "{text}");
    }
}

#[test]
fn each_kind_validates_its_own_fields() {
    for (text, field) in [
        ("kind = \"openai\"", "api_key"),
        ("kind = \"openai\"\napi_key = \"a\\nb\"", "api_key"),
        ("kind = \"openai\"\napi_key = \"\"", "api_key"),
        (
            "kind = \"openai\"\napi_key = \"k\"\norganization = \"a\\nb\"",
            "organization",
        ),
        (
            "kind = \"bedrock\"\naws_access_key_id = \"A\"\naws_secret_access_key = \"S\"",
            "region",
        ),
        (
            "kind = \"bedrock\"\nregion = \"us east\"\naws_access_key_id = \"A\"\naws_secret_access_key = \"S\"",
            "region",
        ),
        (
            "kind = \"bedrock\"\nregion = \"us-east-1\"\naws_access_key_id = \"A\"",
            "aws_secret_access_key",
        ),
        (
            "kind = \"vertex\"\nlocation = \"us-central1\"",
            "service_account_file",
        ),
        (
            "kind = \"vertex\"\nlocation = \"l\"\nservice_account_json = \"{}\"\nservice_account_file = \"f\"",
            "service_account_json",
        ),
        (
            "kind = \"vertex\"\nlocation = \"l\"\nservice_account_json = \"{}\"",
            "service_account_json",
        ),
        (
            "kind = \"http\"\napi_key = \"k\"\nbasic_user = \"u\"\nauth_query = \"q\"",
            "auth_header",
        ),
        (
            "kind = \"http\"\napi_key = \"k\"\nbasic_user = \"a:b\"",
            "basic_user",
        ),
        (
            "kind = \"mcp\"\napi_key = \"k\"\nauth_query = \"a&b\"",
            "auth_query",
        ),
        (
            "kind = \"mcp\"\napi_key = \"k\"\nauth_header = \"a b\"",
            "auth_header",
        ),
    ] {
        match build(text) {
            Err(BuildError::Invalid { field: f, .. }) => assert_eq!(f, field, "{text}"),
            other => panic!("{text}: {other:?}"),
        }
    }
    // The source's own failures are passed on, naming the field.
    assert!(matches!(
        build("kind = \"openai\"\napi_key = \"${env:NOPE}\""),
        Err(BuildError::Source(SourceError::Unset("api_key")))
    ));
    assert!(matches!(
        build("kind = \"vertex\"\nlocation = \"l\"\nservice_account_file = \"/x.json\""),
        Err(BuildError::Source(SourceError::NoFile(
            "service_account_file"
        )))
    ));
}

#[test]
fn the_credential_travels_as_each_kind_wants_it() {
    let header = |p: &Provider, name: &str| {
        p.credential_headers()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| (v.to_str().unwrap().to_string(), v.is_sensitive()))
    };
    let openai = provider("kind = \"openai\"\napi_key = \"${env:KEY}\"\norganization = \"org-1\"");
    assert_eq!(
        header(&openai, "authorization"),
        Some(("Bearer sk-from-env-0123".to_string(), true))
    );
    assert_eq!(header(&openai, "openai-organization").unwrap().0, "org-1");
    assert_eq!(openai.secrets()[0].expose(), "sk-from-env-0123");
    for (kind, name) in [
        ("anthropic", "x-api-key"),
        ("gemini", "x-goog-api-key"),
        ("azure", "api-key"),
    ] {
        let p = provider(&format!("kind = \"{kind}\"\napi_key = \"k-1\""));
        assert_eq!(header(&p, name), Some(("k-1".to_string(), true)), "{kind}");
        assert_eq!(p.credential_param(), None);
    }
    let tool = |extra: &str| provider(&format!("kind = \"mcp\"\napi_key = \"k y/1\"\n{extra}"));
    assert_eq!(
        header(&tool(""), "authorization").unwrap().0,
        "Bearer k y/1"
    );
    assert_eq!(
        header(&tool("auth_header = \"x-key\""), "x-key").unwrap().0,
        "k y/1"
    );
    assert_eq!(
        header(&tool("basic_user = \"svc\""), "authorization")
            .unwrap()
            .0,
        "Basic c3ZjOmsgeS8x"
    );
    let query = tool("auth_query = \"key\"");
    assert!(query.credential_headers().is_empty());
    assert_eq!(query.credential_param(), Some(("key=", "key=k%20y%2F1")));
    assert!(!format!("{query:?}").contains("k%20y"), "no key in Debug");
    let bedrock = provider(
        "kind = \"bedrock\"\nregion = \"us-east-1\"\naws_access_key_id = \"AKID\"\naws_secret_access_key = \"s3cr3t\"",
    );
    assert!(bedrock.credential_headers().is_empty());
    assert_eq!(bedrock.secrets()[0].expose(), "s3cr3t");
    assert!(!format!("{bedrock:?}").contains("s3cr3t"));
    assert!(bedrock.access_token_account().is_none());
}

#[test]
fn bedrock_signs_each_request_and_others_do_not() {
    let bedrock = provider(
        "kind = \"bedrock\"\nregion = \"us-east-1\"\naws_access_key_id = \"AKID\"\naws_secret_access_key = \"s3cr3t\"",
    );
    let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    let mut headers = HeaderMap::new();
    headers.insert("x-amz-date", "19700101T000000Z".parse().unwrap());
    let url = "https://bedrock-runtime.us-east-1.amazonaws.com:443/model/m/converse";
    bedrock
        .sign(&Method::POST, url, &mut headers, b"{}", now)
        .unwrap();
    assert_eq!(headers["host"], "bedrock-runtime.us-east-1.amazonaws.com");
    assert_eq!(
        headers["x-amz-date"], "20231114T221320Z",
        "the agent's own is replaced"
    );
    let auth = &headers["authorization"];
    assert!(
        auth.to_str()
            .unwrap()
            .starts_with("AWS4-HMAC-SHA256 Credential=AKID/")
    );
    assert!(auth.is_sensitive());
    assert!(matches!(
        bedrock.sign(&Method::POST, "/no/host", &mut HeaderMap::new(), b"", now),
        Err(SignError::BadUrl)
    ));
    let openai = provider("kind = \"openai\"\napi_key = \"k\"");
    let mut untouched = HeaderMap::new();
    openai
        .sign(&Method::POST, url, &mut untouched, b"{}", now)
        .unwrap();
    assert!(untouched.is_empty());
}

#[test]
fn anthropic_requests_get_a_version_unless_the_client_chose_one() {
    let anthropic = provider("kind = \"anthropic\"\napi_key = \"k\"");
    let mut headers = HeaderMap::new();
    anthropic.complete_headers(&mut headers);
    assert_eq!(headers[anthropic::VERSION], anthropic::DEFAULT_VERSION);
    let mut chosen = HeaderMap::new();
    chosen.insert(anthropic::VERSION, "2024-01-01".parse().unwrap());
    anthropic.complete_headers(&mut chosen);
    assert_eq!(chosen[anthropic::VERSION], "2024-01-01");
    let mut other = HeaderMap::new();
    provider("kind = \"openai\"\napi_key = \"k\"").complete_headers(&mut other);
    assert!(other.is_empty());
}

#[test]
fn an_upstream_serves_the_routes_of_its_own_dialect() {
    let openai = provider("kind = \"openai\"\napi_key = \"k\"");
    let azure = provider("kind = \"azure\"\napi_key = \"k\"");
    assert!(openai.serves(route("/v1/chat/completions")));
    assert!(!openai.serves(route("/v1/messages")));
    assert!(!openai.serves(route("/u/{upstream}/{*rest}")));
    assert!(!azure.serves(route("/v1/chat/completions")));
    assert_eq!(openai.dialect(), route("/v1/embeddings").dialect());
    assert_ne!(openai.dialect(), azure.dialect());
    assert_eq!(openai.kind(), ProviderKind::OpenAi);
}

#[test]
fn routes_say_where_the_upstream_is_named() {
    let named = |pattern: &str, path| route(pattern).upstream_in_path(path);
    assert_eq!(
        named("/v1/chat/completions", "/v1/chat/completions"),
        Some(UpstreamInPath::Unnamed)
    );
    assert_eq!(
        named("/mcp/{upstream}", "/mcp/tools"),
        Some(UpstreamInPath::Named {
            name: "tools",
            rest: "",
            passthrough: false
        })
    );
    assert_eq!(
        named("/u/{upstream}/{*rest}", "/u/crm/v1/bookings/42"),
        Some(UpstreamInPath::Named {
            name: "crm",
            rest: "/v1/bookings/42",
            passthrough: true
        })
    );
    assert_eq!(named("/u/{upstream}/{*rest}", "/u/crm"), None);
    assert_eq!(named("/mcp/{upstream}", "/elsewhere"), None);
}

#[test]
fn only_mcp_routes_name_a_protected_resource() {
    let mcp = route("/mcp/{upstream}");
    assert_eq!(mcp.protected_resource_upstream("/mcp/tools"), Some("tools"));
    for path in ["/mcp/", "/mcp/a/b", "/elsewhere", "/mcp"] {
        assert_eq!(mcp.protected_resource_upstream(path), None, "{path}");
    }
    // Not decoded: the name is what the route phase looks up.
    assert_eq!(
        mcp.protected_resource_upstream("/mcp/t%6fols"),
        Some("t%6fols")
    );
    for other in ["/v1/chat/completions", "/u/{upstream}/{*rest}"] {
        assert_eq!(route(other).protected_resource_upstream("/mcp/tools"), None);
    }
}

#[test]
fn an_azure_deployment_is_read_as_the_model_it_serves() {
    let azure =
        provider("kind = \"azure\"\napi_key = \"k\"\ndeployments = { \"prod-4o\" = \"gpt-4o\" }");
    let chat = route("/openai/deployments/{deployment}/chat/completions");
    let model = |path: &str, body: &str| match azure.inspect(chat, path, body.as_bytes()) {
        Ok(Inspection::Model { inspected, .. }) => Ok(inspected.model),
        Ok(other) => panic!("{other:?}"),
        Err(e) => Err(e),
    };
    assert_eq!(
        model(
            "/openai/deployments/prod-4o/chat/completions",
            r#"{"model":"cheap-model","messages":[]}"#
        ),
        Ok(Some("gpt-4o".to_string()))
    );
    // An unmapped deployment is its own model name; an unknown action is not a route.
    assert_eq!(
        model(
            "/openai/deployments/other/chat/completions",
            r#"{"messages":[]}"#
        ),
        Ok(Some("other".to_string()))
    );
    assert_eq!(
        model("/openai/deployments/prod-4o/images", "{}"),
        Err(InspectRefusal::NotFound)
    );
    // The operation comes from the path.
    let embeddings = azure
        .inspect(
            chat,
            "/openai/deployments/e/embeddings",
            br#"{"input":"x"}"#,
        )
        .unwrap();
    assert!(matches!(
        embeddings,
        Inspection::Model {
            operation: Operation::Embeddings,
            ..
        }
    ));
}

#[test]
fn what_each_shape_of_api_reads_from_a_body() {
    let tools = provider("kind = \"mcp\"\napi_key = \"k\"");
    let call = tools
        .inspect(
            route("/mcp/{upstream}"),
            "",
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{}}}"#,
        )
        .unwrap();
    assert!(matches!(&call, Inspection::Tool(m) if m.name() == Some("t")));
    assert!(call.body_checked(), "MCP bodies are read strictly");
    let http = provider("kind = \"http\"\napi_key = \"k\"");
    let plain = http
        .inspect(route("/u/{upstream}/{*rest}"), "/x", b"not json")
        .unwrap();
    assert_eq!(plain, Inspection::Http);
    assert!(!plain.body_checked());
    let openai = provider("kind = \"openai\"\napi_key = \"k\"");
    assert!(matches!(
        openai.inspect(route("/v1/chat/completions"), "/v1/chat/completions", b"[]"),
        Err(InspectRefusal::Body(InspectError::NotObject))
    ));
}

#[test]
fn debug_output_hides_secrets() {
    let text = "kind = \"http\"\napi_key = \"k-top-secret\"\nbasic_user = \"svc\"";
    let config = parse(text).unwrap();
    assert!(!format!("{config:?}").contains("k-top-secret"));
    let shown = format!("{:?}", provider(text));
    assert!(!shown.contains("k-top-secret"), "{shown}");
    assert!(!shown.contains("c3ZjOmstdG9wLXNlY3JldA"), "{shown}");
}
