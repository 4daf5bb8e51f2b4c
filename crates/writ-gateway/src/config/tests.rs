//! Parsing and validating `writ.toml`: every section's refusals and defaults.

use super::*;
use writ_limits::Window;

fn env(name: &str) -> Option<String> {
    (name == "OPENAI_KEY").then(|| "sk-from-env".to_string())
}

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_raw(RawConfig::from_toml(text)?, &env)
}

#[test]
fn defaults_without_config() {
    let c = Config::embedded_default();
    assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
    assert_eq!(c.max_ttl, Duration::from_secs(30));
    assert!(c.upstreams.is_empty());
}

#[test]
fn expands_env_references() {
    let c =
        load("[upstreams.openai]\nkind = \"openai\"\napi_key = \"${env:OPENAI_KEY}\"\n").unwrap();
    assert_eq!(
        c.upstreams["openai"].api_key.as_ref().unwrap().expose(),
        "sk-from-env"
    );
    assert!(matches!(
        load("[upstreams.o]\nkind = \"openai\"\napi_key = \"${env:NOPE}\"\n"),
        Err(ConfigError::MissingEnv { name, .. }) if name == "NOPE"
    ));
    assert!(matches!(
        load("[upstreams.o]\nkind = \"openai\"\napi_key = \"${file:/etc/x}\"\n"),
        Err(ConfigError::BadReference { .. })
    ));
    assert!(matches!(
        load("[upstreams.o]\nkind = \"openai\"\napi_key = \"${env:OPENAI_KEY\"\n"),
        Err(ConfigError::BadReference { .. })
    ));
}

#[test]
fn serving_threads_and_audit_durability() {
    let c = load("").unwrap();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(c.workers, cores.min(crate::workers::MAX_WORKERS));
    assert_eq!(c.audit.durability, writ_audit::sink::Durability::Committed);
    let c = load("[server]\nworkers = 3\n[audit]\ndurability = \"synced\"").unwrap();
    assert_eq!(c.workers, 3);
    assert_eq!(load("[server]\nworkers = 0").unwrap().workers, 0);
    assert_eq!(c.audit.durability, writ_audit::sink::Durability::Synced);
    let err = load("[server]\nworkers = -1").unwrap_err().to_string();
    assert!(err.contains("workers"), "{err}");
}

#[test]
fn typos_are_errors_with_a_line() {
    let err = load("[server]\nlisten = \"127.0.0.1:1\"\nlisen = \"x\"\n").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("lisen") && text.contains("line 3"), "{text}");
}

#[test]
fn refuses_bad_values() {
    for (text, field) in [
        ("[server]\nlisten = \"nowhere\"", "server.listen"),
        ("[server]\nmax_body_bytes = 0", "server.max_body_bytes"),
        ("[server]\nworkers = 257", "server.workers"),
        ("[audit]\ndurability = \"eventually\"", "audit.durability"),
        ("[tokens]\nmax_ttl = \"0s\"", "tokens.max_ttl"),
        (
            "[upstreams.o]\nkind = \"carrier-pigeon\"",
            "upstreams.o.kind",
        ),
        ("[upstreams.o]\nkind = \"openai\"", "upstreams.o.api_key"),
        (
            "[upstreams.o]\nkind = \"openai\"\napi_key=\"k\"\nbase_url=\"ftp://x\"",
            "upstreams.o.base_url",
        ),
        (
            "[upstreams.o]\nkind = \"openai\"\napi_key=\"a\\nb\"",
            "upstreams.o.api_key",
        ),
        ("[upstreams.\"a b\"]\nkind = \"mock\"", "upstreams.a b"),
        (
            "[upstreams.o]\nkind = \"http\"\napi_key=\"k\"\nbase_url=\"https://x\"\nbasic_user=\"u\"\nauth_query=\"key\"",
            "upstreams.o.auth_header",
        ),
        (
            "[upstreams.o]\nkind = \"openai\"\napi_key=\"k\"\nbasic_user=\"u\"",
            "upstreams.o.basic_user",
        ),
        (
            "[upstreams.o]\nkind = \"http\"\napi_key=\"k\"\nbase_url=\"https://x\"\nbasic_user=\"a:b\"",
            "upstreams.o.basic_user",
        ),
        (
            "[upstreams.o]\nkind = \"http\"\napi_key=\"k\"\nbase_url=\"https://x\"\nauth_query=\"a&b\"",
            "upstreams.o.auth_query",
        ),
        (
            "[upstreams.o]\nkind = \"azure\"\napi_key=\"k\"",
            "upstreams.o.base_url",
        ),
        ("[pricing.m]\ninput = -1.0\noutput = 1.0", "pricing.m"),
        ("[server]\ntls_cert = \"c.pem\"", "server.tls_key"),
        ("[server]\ntls_key = \"k.pem\"", "server.tls_cert"),
        (
            "[upstreams.b]\nkind = \"bedrock\"\naws_access_key_id = \"A\"\naws_secret_access_key = \"S\"",
            "upstreams.b.region",
        ),
        (
            "[upstreams.b]\nkind = \"bedrock\"\nregion = \"us east\"\naws_access_key_id = \"A\"\naws_secret_access_key = \"S\"",
            "upstreams.b.region",
        ),
        (
            "[upstreams.b]\nkind = \"bedrock\"\nregion = \"us-east-1\"\naws_access_key_id = \"A\"",
            "upstreams.b.aws_secret_access_key",
        ),
        (
            "[upstreams.b]\nkind = \"bedrock\"\nregion = \"us-east-1\"\naws_access_key_id = \"A\"\naws_secret_access_key = \"S S\"",
            "upstreams.b.aws_secret_access_key",
        ),
        (
            "[upstreams.b]\nkind = \"bedrock\"\nregion = \"us-east-1\"\napi_key = \"k\"\naws_access_key_id = \"A\"\naws_secret_access_key = \"S\"",
            "upstreams.b.api_key",
        ),
        (
            "[upstreams.o]\nkind = \"openai\"\napi_key = \"k\"\nregion = \"us-east-1\"",
            "upstreams.o.region",
        ),
        (
            "[upstreams.o]\nkind = \"openai\"\napi_key = \"k\"\nlocation = \"us-central1\"",
            "upstreams.o.location",
        ),
        (
            "[upstreams.v]\nkind = \"vertex\"\nlocation = \"us-central1\"",
            "upstreams.v.service_account_file",
        ),
        (
            "[upstreams.v]\nkind = \"vertex\"\nlocation = \"us-central1\"\nservice_account_json = \"{}\"",
            "upstreams.v.service_account_json",
        ),
        (
            "[upstreams.v]\nkind = \"vertex\"\nlocation = \"us-central1\"\nservice_account_file = \"/nonexistent.json\"",
            "upstreams.v.service_account_file",
        ),
    ] {
        match load(text) {
            Err(ConfigError::Invalid { field: f, .. }) => assert_eq!(f, field, "{text}"),
            other => panic!("{text}: {other:?}"),
        }
    }
    assert!(matches!(
        load("[server]\nlisten = 5"),
        Err(ConfigError::Parse(_))
    ));
}

#[test]
fn a_json_value_with_a_key_given_twice_is_refused() {
    // Valid but for `project_id` twice: which project a reader takes would depend on
    // its parser, so the configuration is refused, naming the key.
    let text = r#"[upstreams.v]
kind = "vertex"
location = "us-central1"
service_account_json = '{"type":"service_account","client_email":"a@b","private_key":"k","project_id":"p1","project_id":"p2"}'
"#;
    match load(text) {
        Err(ConfigError::Invalid { field, reason }) => {
            assert_eq!(field, "upstreams.v.service_account_json");
            assert!(reason.contains("`project_id` more than once"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn private_literal_addresses_need_an_explicit_allow() {
    for base in [
        "http://169.254.169.254",
        "http://127.0.0.1:8080",
        "http://[::1]:9000",
        "http://10.0.0.5/v1",
    ] {
        let text =
            format!("[upstreams.o]\nkind = \"openai\"\napi_key = \"k\"\nbase_url = \"{base}\"\n");
        assert!(
            matches!(load(&text), Err(ConfigError::Invalid { field, .. }) if field == "upstreams.o.base_url"),
            "{base}"
        );
        assert!(
            load(&format!("{text}allow_private_network = true\n")).is_ok(),
            "{base}"
        );
    }
    assert!(
        load("[upstreams.o]\nkind = \"openai\"\napi_key = \"k\"\nbase_url = \"https://8.8.8.8\"\n")
            .is_ok()
    );
}

#[test]
fn bedrock_defaults_its_endpoint_from_the_region() {
    let c = load("[upstreams.b]\nkind = \"bedrock\"\nregion = \"eu-west-3\"\naws_access_key_id = \"AKID\"\naws_secret_access_key = \"s3cr3t-aws-key\"\n").unwrap();
    let b = &c.upstreams["b"];
    assert_eq!(
        b.base_url.as_ref().unwrap().to_string(),
        "https://bedrock-runtime.eu-west-3.amazonaws.com/"
    );
    assert_eq!(b.aws.as_ref().unwrap().region, "eu-west-3");
    assert!(!format!("{c:?}").contains("s3cr3t-aws-key"));
}

#[test]
fn limits_are_declared_and_checked() {
    let c = load(
        "[limiter]\nbackend = \"redis\"\nredis_url = \"redis://:pw-secret@127.0.0.1:6379\"\non_backend_failure = \"local\"\n\n[[limit]]\nscope = [\"tenant\", \"agent\"]\ndimension = \"tokens\"\nper = \"minute\"\nlimit = 1000\nburst = 200\n\n[[limit]]\nscope = \"agent\"\ndimension = \"concurrency\"\nlimit = 2\n",
    )
    .unwrap();
    assert_eq!(c.limits.len(), 2);
    assert_eq!(c.limits[0].burst, 200);
    assert_eq!(c.limits[1].window, Window::InFlight);
    assert!(c.limiter.local_fallback);
    assert!(!format!("{c:?}").contains("pw-secret"));
    for (text, field) in [
        (
            "[[limit]]\nscope = \"agent\"\ndimension = \"requests\"\nlimit = 5",
            "limit[0].per",
        ),
        (
            "[[limit]]\nscope = \"agent\"\ndimension = \"requests\"\nper = \"fortnight\"\nlimit = 5",
            "limit[0].per",
        ),
        (
            "[[limit]]\nscope = \"agent\"\ndimension = \"requests\"\nper = \"day\"\nlimit = 0",
            "limit[0].limit",
        ),
        (
            "[[limit]]\nscope = \"agent\"\ndimension = \"requests\"\nper = \"day\"\nlimit = 5\nburst = 2",
            "limit[0].burst",
        ),
        (
            "[[limit]]\nscope = \"agent\"\ndimension = \"concurrency\"\nper = \"day\"\nlimit = 5",
            "limit[0].per",
        ),
        (
            "[[limit]]\nscope = []\ndimension = \"requests\"\nper = \"day\"\nlimit = 5",
            "limit[0].scope",
        ),
        ("[limiter]\nbackend = \"redis\"", "limiter.redis_url"),
        ("[limiter]\nbackend = \"etcd\"", "limiter.backend"),
        ("[limiter]\nredis_url = \"http://x\"", "limiter.redis_url"),
        (
            "[limiter]\non_backend_failure = \"open\"",
            "limiter.on_backend_failure",
        ),
    ] {
        match load(text) {
            Err(ConfigError::Invalid { field: f, .. }) => assert_eq!(f, field, "{text}"),
            other => panic!("{text}: {other:?}"),
        }
    }
    assert!(matches!(
        load("[[limit]]\nscope = \"planet\"\ndimension = \"requests\"\nper = \"day\"\nlimit = 5"),
        Err(ConfigError::Parse(_))
    ));
}

#[test]
fn debug_output_hides_secrets() {
    let c = load("[upstreams.o]\nkind = \"openai\"\napi_key = \"sk-top-secret\"\n").unwrap();
    let shown = format!("{c:?}");
    assert!(!shown.contains("sk-top-secret"));
}
