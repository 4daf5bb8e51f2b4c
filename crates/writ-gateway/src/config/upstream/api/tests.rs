//! API-created upstreams refuse what would leak, start, read or expand; a tenant's
//! credential builds a declared or an API upstream literally.

use serde_json::json;

use super::*;
use crate::config::{Config, RawConfig};

fn refused(name: &str, settings: Value) -> (Option<String>, String) {
    let err = api_upstream(name, &settings).expect_err("refused");
    (err.field().map(str::to_string), err.to_string())
}

#[test]
fn settings_holding_a_credential_are_refused_pointing_at_the_credentials_route() {
    for (kind, key) in [
        ("openai", "api_key"),
        ("bedrock", "aws_secret_access_key"),
        ("bedrock", "aws_session_token"),
        ("bedrock", "aws_access_key_id"),
        ("vertex", "service_account_json"),
        ("http", "api_key"),
    ] {
        let (field, message) = refused("u", json!({"kind": kind, key: "sk-hunter2"}));
        assert_eq!(field.as_deref(), Some(format!("settings.{key}").as_str()));
        assert!(
            message.contains("POST /admin/v1/tenants/{tenant}/credentials/{upstream}"),
            "{message}"
        );
        assert!(!message.contains("hunter2"), "{message}");
    }
}

#[test]
fn settings_that_start_processes_read_files_or_the_environment_are_refused() {
    for (settings, field, says) in [
        (
            json!({"kind": "mcp", "command": ["/bin/sh"]}),
            "settings.command",
            "start a process",
        ),
        (
            json!({"kind": "mcp", "env": {"A": "b"}}),
            "settings.env",
            "start a process",
        ),
        (
            json!({"kind": "mcp", "cwd": "/"}),
            "settings.cwd",
            "start a process",
        ),
        (
            json!({"kind": "vertex", "location": "l", "service_account_file": "/etc/shadow"}),
            "settings.service_account_file",
            "read a file",
        ),
        (
            json!({"kind": "openai", "base_url": "https://${env:HOME}.example.com"}),
            "settings.base_url",
            "${env:",
        ),
        (
            json!({"kind": "azure", "base_url": "https://a.example.com", "deployments": {"m": "${env:SECRET}"}}),
            "settings.deployments",
            "environment",
        ),
        (
            json!({"kind": "azure", "base_url": "https://a.example.com", "deployments": {"${env:X}": "d"}}),
            "settings.deployments",
            "environment",
        ),
        (
            json!({"kind": "bedrock", "region": "${env:AWS_REGION}"}),
            "settings.region",
            "environment",
        ),
    ] {
        let (f, message) = refused("u", settings.clone());
        assert_eq!(f.as_deref(), Some(field), "{settings}");
        assert!(message.contains(says), "{settings}: {message}");
    }
}

#[test]
fn unknown_keys_bad_names_and_bad_values_are_refused() {
    let (field, message) = refused("u", json!({"kind": "openai", "organisation": "o"}));
    assert_eq!(field.as_deref(), Some("settings"));
    assert!(
        message.contains("unknown field `organisation`"),
        "{message}"
    );
    let (field, _) = refused("no spaces", json!({"kind": "openai"}));
    assert_eq!(field.as_deref(), Some("name"));
    let (field, _) = refused(&"a".repeat(65), json!({"kind": "openai"}));
    assert_eq!(field.as_deref(), Some("name"));
    for (settings, field) in [
        (json!(["kind", "openai"]), "settings"),
        (json!({"base_url": "https://a.example.com"}), "settings"),
        (json!({"kind": "quantum"}), "settings.kind"),
        (
            json!({"kind": "bedrock", "region": "Mars 1"}),
            "settings.region",
        ),
        (json!({"kind": "bedrock"}), "settings.region"),
        (json!({"kind": "vertex"}), "settings.location"),
        (json!({"kind": "azure"}), "settings.base_url"),
        (json!({"kind": "mcp"}), "settings.base_url"),
        (
            json!({"kind": "openai", "base_url": "ftp://a.example.com"}),
            "settings.base_url",
        ),
        (
            json!({"kind": "openai", "base_url": "https://a.example.com/?q=1"}),
            "settings.base_url",
        ),
        (json!({"kind": "openai", "timeout": "soon"}), "settings"),
        (
            json!({"kind": "openai", "max_response_bytes": 0}),
            "settings.max_response_bytes",
        ),
        (
            json!({"kind": "openai", "allow_plaintext": "yes"}),
            "settings",
        ),
        (
            json!({"kind": "http", "base_url": "https://a.example.com", "auth_query": "k", "basic_user": "u"}),
            "settings.auth_header",
        ),
    ] {
        let (f, _) = refused("u", settings.clone());
        assert_eq!(f.as_deref(), Some(field), "{settings}");
    }
}

#[test]
fn base_urls_outside_the_public_internet_are_refused_unless_allowed() {
    for url in [
        "https://0177.0.0.1",
        "https://0x7f000001",
        "https://2130706433",
        "https://169.254.169.254",
        "https://[::ffff:169.254.169.254]",
        "https://192.168.0.10:8443/v1",
    ] {
        let (field, message) = refused("u", json!({"kind": "openai", "base_url": url}));
        assert_eq!(field.as_deref(), Some("settings.base_url"), "{url}");
        assert!(message.contains("allow_private_network"), "{message}");
        let allowed = api_upstream(
            "u",
            &json!({"kind": "openai", "base_url": url, "allow_private_network": true}),
        )
        .expect(url);
        assert!(allowed.allow_private_network());
    }
    let (_, message) = refused(
        "u",
        json!({"kind": "openai", "base_url": "http://api.example.com"}),
    );
    assert!(message.contains("allow_plaintext"), "{message}");
}

#[test]
fn valid_settings_are_kept_as_given() {
    let settings = json!({
        "kind": "azure",
        "base_url": "https://acme.openai.azure.com",
        "deployments": {"gpt-4o": "prod-4o"},
        "timeout": "30s",
        "max_response_bytes": 1024,
    });
    let api = api_upstream("azure-eu", &settings).expect("valid");
    assert_eq!(api.name(), "azure-eu");
    assert_eq!(api.kind(), ProviderKind::Azure);
    assert_eq!(api.settings(), &settings);
    assert_eq!(
        api.base_url().map(ToString::to_string).as_deref(),
        Some("https://acme.openai.azure.com/")
    );
}

#[test]
fn an_api_upstream_builds_with_each_tenants_credential_literally() {
    let api = api_upstream("oa", &json!({"kind": "openai", "timeout": "5s"})).expect("valid");
    let built = |secret: &str| {
        build_with_credential("oa", UpstreamTemplate::Api(&api), secret).expect("builds")
    };
    let a = built("sk-tenant-a-${env:HOME}");
    let b = built("sk-tenant-b");
    assert_eq!(a.provider.secrets()[0].expose(), "sk-tenant-a-${env:HOME}");
    assert_eq!(b.provider.secrets()[0].expose(), "sk-tenant-b");
    assert_eq!(
        a.base_url.as_ref().map(ToString::to_string).as_deref(),
        Some("https://api.openai.com/")
    );
    assert_eq!(a.timeout, Duration::from_secs(5));
    assert!(!format!("{a:?}").contains("tenant-a"), "no secret in Debug");
    let bedrock =
        api_upstream("br", &json!({"kind": "bedrock", "region": "eu-west-1"})).expect("valid");
    let built = build_with_credential(
        "br",
        UpstreamTemplate::Api(&bedrock),
        r#"{"aws_access_key_id":"AKID","aws_secret_access_key":"s3cr3t"}"#,
    )
    .expect("builds");
    assert_eq!(
        built.base_url.as_ref().map(ToString::to_string).as_deref(),
        Some("https://bedrock-runtime.eu-west-1.amazonaws.com/")
    );
}

#[test]
fn a_bad_credential_is_refused_naming_the_upstream_not_the_secret() {
    let api = api_upstream("oa", &json!({"kind": "openai"})).expect("valid");
    for secret in ["", "sk-hunter2\nx"] {
        match build_with_credential("oa", UpstreamTemplate::Api(&api), secret) {
            Err(e @ ConfigError::Credential { .. }) => {
                let shown = format!("{e} {e:?}");
                assert!(
                    shown.contains("`oa`") && shown.contains("api_key"),
                    "{shown}"
                );
                assert!(!shown.contains("hunter2"), "{shown}");
            }
            other => panic!("{other:?}"),
        }
    }
    let bedrock =
        api_upstream("br", &json!({"kind": "bedrock", "region": "us-east-1"})).expect("valid");
    let err = build_with_credential("br", UpstreamTemplate::Api(&bedrock), "hunter2")
        .expect_err("not JSON");
    assert!(err.to_string().contains("aws_access_key_id"), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

fn config(toml_text: &str, env: &[(&str, &str)]) -> Config {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let lookup = move |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    Config::from_raw(RawConfig::from_toml(toml_text).expect("parses"), &lookup).expect("valid")
}

#[test]
fn a_declared_upstream_takes_a_tenant_credential_keeping_its_own_settings() {
    let cfg = config(
        "[upstreams.openai]\nkind = \"openai\"\napi_key = \"${env:OPENAI_KEY}\"\nbase_url = \"${env:OPENAI_URL}\"\norganization = \"org-1\"\ntimeout = \"7s\"",
        &[
            ("OPENAI_KEY", "sk-file"),
            ("OPENAI_URL", "https://oa.example.com/v1"),
        ],
    );
    let declared = &cfg.upstreams["openai"];
    assert_eq!(declared.provider.secrets()[0].expose(), "sk-file");
    let tenant = build_with_credential(
        "openai",
        UpstreamTemplate::Declared(declared),
        "${env:OPENAI_KEY}",
    )
    .expect("builds");
    assert_eq!(
        tenant.provider.secrets()[0].expose(),
        "${env:OPENAI_KEY}",
        "the vault secret is never expanded"
    );
    assert_eq!(tenant.base_url, declared.base_url);
    assert_eq!(tenant.timeout, Duration::from_secs(7));
    let org = tenant
        .provider
        .credential_headers()
        .iter()
        .find(|(n, _)| n == "openai-organization")
        .map(|(_, v)| v.to_str().expect("ascii").to_string());
    assert_eq!(org.as_deref(), Some("org-1"));
    // Applied to the file's settings again, not to the last tenant's.
    let other = build_with_credential("openai", UpstreamTemplate::Declared(&tenant), "sk-b")
        .expect("builds");
    assert_eq!(other.provider.secrets()[0].expose(), "sk-b");
}

#[test]
fn a_declared_bedrock_upstream_keeps_its_region_from_the_environment() {
    let cfg = config(
        "[upstreams.br]\nkind = \"bedrock\"\nregion = \"${env:REGION}\"\naws_access_key_id = \"AKIDFILE\"\naws_secret_access_key = \"${env:AWS_SECRET}\"",
        &[("REGION", "ap-south-1"), ("AWS_SECRET", "file-secret")],
    );
    let tenant = build_with_credential(
        "br",
        UpstreamTemplate::Declared(&cfg.upstreams["br"]),
        r#"{"aws_access_key_id":"AKIDT","aws_secret_access_key":"tenant-secret"}"#,
    )
    .expect("builds");
    assert_eq!(tenant.provider.secrets()[0].expose(), "tenant-secret");
    assert_eq!(
        tenant.provider.default_base_url().as_deref(),
        Some("https://bedrock-runtime.ap-south-1.amazonaws.com")
    );
}

#[test]
fn a_declared_server_the_gateway_starts_takes_no_credential() {
    let cfg = config(
        "[upstreams.local]\nkind = \"mcp\"\ncommand = [\"/bin/true\"]\nenv = { TOKEN = \"${env:T}\" }",
        &[("T", "file-token")],
    );
    let local = &cfg.upstreams["local"];
    assert_eq!(local.provider.secrets()[0].expose(), "file-token");
    match build_with_credential("local", UpstreamTemplate::Declared(local), "k") {
        Err(ConfigError::Credential {
            error: CredentialError::Launched,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

/// A service-account key's JSON with a fresh RSA key (made by `openssl`), naming
/// `token_uri`.
fn service_account(token_uri: &str) -> String {
    let out = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "openssl genpkey failed");
    let pem = String::from_utf8(out.stdout).expect("PEM is text");
    json!({
        "type": "service_account",
        "client_email": "svc@p.iam.gserviceaccount.com",
        "private_key": pem,
        "token_uri": token_uri,
        "project_id": "from-key",
    })
    .to_string()
}

#[test]
fn a_vertex_credential_naming_a_private_token_endpoint_is_refused_unless_allowed() {
    let public = service_account("https://oauth2.googleapis.com/token");
    let metadata = service_account("http://169.254.169.254/token");
    let api =
        api_upstream("vx", &json!({"kind": "vertex", "location": "us-central1"})).expect("valid");
    let built = build_with_credential("vx", UpstreamTemplate::Api(&api), &public)
        .expect("a public endpoint");
    assert!(built.provider.access_token_account().is_some());
    let wrong = json!({"type": "hunter2", "client_email": "a", "private_key": "b"}).to_string();
    let err = build_with_credential("vx", UpstreamTemplate::Api(&api), &wrong)
        .expect_err("not a service account");
    assert!(matches!(err, ConfigError::Credential { .. }), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
    let err = build_with_credential("vx", UpstreamTemplate::Api(&api), &metadata)
        .expect_err("the metadata address");
    assert_eq!(err.field(), Some("settings.token_uri"));
    assert!(!err.to_string().contains("PRIVATE KEY"), "{err}");
    let allowed = api_upstream(
        "vx",
        &json!({"kind": "vertex", "location": "us-central1", "allow_private_network": true}),
    )
    .expect("valid");
    build_with_credential("vx", UpstreamTemplate::Api(&allowed), &metadata).expect("allowed");

    let env = [("SA", public.as_str())];
    let cfg = config(
        "[upstreams.vx]\nkind = \"vertex\"\nlocation = \"us-central1\"\nservice_account_json = \"${env:SA}\"",
        &env,
    );
    let declared = &cfg.upstreams["vx"];
    let err = build_with_credential("vx", UpstreamTemplate::Declared(declared), &metadata)
        .expect_err("the tenant's key names the metadata address");
    assert_eq!(err.field(), Some("upstreams.vx.token_uri"));
    let tenant =
        build_with_credential("vx", UpstreamTemplate::Declared(declared), &public).expect("builds");
    assert!(
        tenant.provider.secrets()[0]
            .expose()
            .contains("PRIVATE KEY"),
        "the tenant's key is the one held"
    );
}

#[tokio::test]
async fn the_resolution_check_covers_the_base_url_and_the_token_endpoint() {
    let local = api_upstream(
        "m",
        &json!({"kind": "mcp", "base_url": "http://localhost:9/mcp"}),
    )
    .expect("a name is not resolved at parse");
    let err = local
        .resolve_check()
        .await
        .expect_err("localhost is loopback");
    assert_eq!(err.field(), Some("settings.base_url"));
    let token = api_upstream(
        "vx",
        &json!({"kind": "vertex", "location": "l", "token_uri": "http://localhost:9/token"}),
    )
    .expect("valid");
    let err = token
        .resolve_check()
        .await
        .expect_err("localhost is loopback");
    assert_eq!(err.field(), Some("settings.token_uri"));
    api_upstream("oa", &json!({"kind": "openai"}))
        .expect("valid")
        .resolve_check()
        .await
        .expect("the default is not resolved");
}
