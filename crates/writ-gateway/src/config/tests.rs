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
    assert_eq!(c.drain_timeout, Duration::from_secs(30));
    assert!(c.upstreams.is_empty());
    let c = load("[server]\ndrain_timeout = \"2m\"").unwrap();
    assert_eq!(c.drain_timeout, Duration::from_secs(120));
    assert_eq!(c.log_format, LogFormat::Text);
    assert!(!c.log_requests);
    let c = load("[log]\nformat = \"json\"\nrequests = true").unwrap();
    assert_eq!(c.log_format, LogFormat::Json);
    assert!(c.log_requests);
    let err = load("[log]\nformat = \"xml\"").unwrap_err().to_string();
    assert!(err.contains("xml") && err.contains("json"), "{err}");
}

#[test]
fn a_log_level_is_a_filter_or_refused_without_echoing_it() {
    assert_eq!(load("").unwrap().log_level, None);
    let c = load("[log]\nlevel = \"warn,writ_gateway::pipeline=debug\"").unwrap();
    assert_eq!(
        c.log_level.as_deref(),
        Some("warn,writ_gateway::pipeline=debug")
    );
    let long = "a".repeat(513);
    for hostile in [
        "",
        "info\u{1b}[31m",
        "info; rm -rf /",
        "\u{202e}info",
        long.as_str(),
    ] {
        let text = format!("[log]\nlevel = {}", toml::Value::from(hostile));
        let err = load(&text).unwrap_err().to_string();
        assert!(err.contains("log.level"), "{hostile:?}: {err}");
        assert!(
            hostile.is_empty() || !err.contains(hostile),
            "echoed: {err}"
        );
        let raw = RawConfig::from_toml(&text).unwrap();
        assert_eq!(raw.log_level(), None, "{hostile:?} reaches logging");
    }
}

#[test]
fn expands_env_references() {
    let c =
        load("[upstreams.openai]\nkind = \"openai\"\napi_key = \"${env:OPENAI_KEY}\"\n").unwrap();
    assert_eq!(
        c.upstreams["openai"].provider.secrets()[0].expose(),
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
    assert_eq!(c.workers, cores.min(crate::serve::workers::MAX_WORKERS));
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
        ("[server]\ndrain_timeout = \"2h\"", "server.drain_timeout"),
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
        (
            "[upstreams.\"a b\"]\nkind = \"openai\"\napi_key = \"k\"",
            "upstreams.a b",
        ),
        (
            "[upstreams.o]\nkind = \"http\"\napi_key=\"k\"\nbase_url=\"https://x\"\nbasic_user=\"u\"\nauth_query=\"key\"",
            "upstreams.o.auth_header",
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
            Err(e) => assert_eq!(e.field(), Some(field), "{text}: {e:?}"),
            other => panic!("{text}: {other:?}"),
        }
    }
    assert!(matches!(
        load("[server]\nlisten = 5"),
        Err(ConfigError::Parse(_))
    ));
}

#[test]
fn a_field_of_another_kind_is_an_unknown_key_named_with_its_line() {
    for (text, key, line) in [
        (
            "[upstreams.o]\nkind = \"openai\"\napi_key = \"k\"\nregion = \"us-east-1\"",
            "upstreams.o.region",
            4,
        ),
        (
            "[upstreams.o]\nkind = \"openai\"\napi_key = \"k\"\nlocation = \"us-central1\"",
            "upstreams.o.location",
            4,
        ),
        (
            "[upstreams.o]\nkind = \"openai\"\napi_key=\"k\"\nbasic_user=\"u\"",
            "upstreams.o.basic_user",
            4,
        ),
        (
            "[upstreams.b]\nkind = \"bedrock\"\nregion = \"us-east-1\"\napi_key = \"k\"\naws_access_key_id = \"A\"\naws_secret_access_key = \"S\"",
            "upstreams.b.api_key",
            4,
        ),
        (
            "[server]\nlisten = \"127.0.0.1:1\"\n[upstreams.a]\nkind = \"anthropic\"\napi_key = \"k\"\n\n[upstreams.t]\nkind = \"http\"\nbase_url = \"https://x\"\napi_key = \"k\"\ntimeuot = \"1s\"",
            "upstreams.t.timeuot",
            11,
        ),
    ] {
        let (raw, errors) = RawConfig::from_toml_all(text);
        assert!(
            raw.is_some(),
            "{text}: the rest is still checked: {errors:?}"
        );
        match errors.as_slice() {
            [
                ConfigError::UnknownKey {
                    key: k, line: l, ..
                },
            ] => {
                assert_eq!((k.as_str(), *l), (key, line), "{text}");
            }
            other => panic!("{text}: {other:?}"),
        }
        // Parsed alone, the key is refused too.
        assert!(matches!(load(text), Err(ConfigError::Parse(_))), "{text}");
    }
}

#[test]
fn an_unknown_kind_is_refused_listing_the_known_ones() {
    match load("[upstreams.o]\nkind = \"carrier-pigeon\"\napi_key = \"k\"") {
        Err(ConfigError::Invalid { field, reason }) => {
            assert_eq!(field, "upstreams.o.kind");
            assert!(
                reason.contains(writ_providers::ProviderKind::NAMES),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn each_kind_defaults_its_base_url() {
    for (table, url) in [
        (
            "kind = \"openai\"\napi_key = \"k\"",
            "https://api.openai.com/",
        ),
        (
            "kind = \"anthropic\"\napi_key = \"k\"",
            "https://api.anthropic.com/",
        ),
        (
            "kind = \"gemini\"\napi_key = \"k\"",
            "https://generativelanguage.googleapis.com/",
        ),
        (
            "kind = \"bedrock\"\nregion = \"us-west-2\"\naws_access_key_id = \"A\"\naws_secret_access_key = \"S\"",
            "https://bedrock-runtime.us-west-2.amazonaws.com/",
        ),
    ] {
        let c = load(&format!("[upstreams.u]\n{table}\n")).unwrap();
        assert_eq!(
            c.upstreams["u"].base_url.as_ref().unwrap().to_string(),
            url,
            "{table}"
        );
    }
    for kind in ["azure", "mcp", "http"] {
        assert!(
            matches!(
                load(&format!("[upstreams.u]\nkind = \"{kind}\"\napi_key = \"k\"\n")),
                Err(ConfigError::Invalid { field, .. }) if field == "upstreams.u.base_url"
            ),
            "{kind}"
        );
    }
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
        // Off loopback, plain HTTP also needs its own allow (it carries the key).
        assert!(
            load(&format!(
                "{text}allow_private_network = true\nallow_plaintext = true\n"
            ))
            .is_ok(),
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
    assert_eq!(b.provider.kind(), writ_providers::ProviderKind::Bedrock);
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
            Err(e) => assert_eq!(e.field(), Some(field), "{text}: {e:?}"),
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

#[test]
fn a_credential_over_plain_http_to_another_host_is_refused_unless_allowed() {
    let upstream = |url: &str, extra: &str| {
        format!(
            "[upstreams.t]\nkind = \"http\"\nbase_url = \"{url}\"\napi_key = \"k-123\"\n{extra}"
        )
    };
    let err = load(&upstream("http://tools.example.com", "")).unwrap_err();
    assert!(
        matches!(&err, ConfigError::Invalid { field, reason }
            if field == "upstreams.t.base_url" && reason.contains("allow_plaintext = true")),
        "{err}"
    );
    // Allowed explicitly: served, and warned about at every start.
    let c = load(&upstream(
        "http://tools.example.com",
        "allow_plaintext = true",
    ))
    .unwrap();
    assert!(matches!(
        c.warnings().as_slice(),
        [Warning::PlaintextUpstream { upstream, .. }] if upstream == "t"
    ));
    // TLS, or this host's loopback: nothing to say.
    for url in ["https://tools.example.com", "http://localhost:9000"] {
        assert!(
            load(&upstream(url, "")).unwrap().warnings().is_empty(),
            "{url}"
        );
    }
    let c = load(&upstream(
        "http://127.0.0.1:9000",
        "allow_private_network = true",
    ))
    .unwrap();
    assert!(c.warnings().is_empty());
    // Signing credentials count too.
    let err = load(
        "[upstreams.b]\nkind = \"bedrock\"\nregion = \"us-east-1\"\nbase_url = \"http://bedrock.example.com\"\naws_access_key_id = \"AKIA1\"\naws_secret_access_key = \"s\"\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("allow_plaintext"), "{err}");
}

#[test]
fn a_plaintext_listener_beyond_loopback_is_warned_and_closes_the_admin_api() {
    let c = load("[server]\nlisten = \"0.0.0.0:8787\"\n").unwrap();
    assert!(matches!(
        c.warnings().as_slice(),
        [Warning::PlaintextListener { .. }]
    ));
    assert!(!c.admin_api_allowed());
    let c = load("[server]\nlisten = \"10.1.2.3:8787\"\nallow_plaintext_admin = true\n").unwrap();
    assert!(c.admin_api_allowed());
    assert!(
        c.warnings()[0]
            .to_string()
            .contains("admin API is served there too")
    );
    let c = load("[server]\nlisten = \"0.0.0.0:443\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n")
        .unwrap();
    assert!(c.admin_api_allowed() && c.warnings().is_empty());
    for listen in ["127.0.0.1:8787", "[::1]:8787"] {
        let c = load(&format!("[server]\nlisten = \"{listen}\"\n")).unwrap();
        assert!(c.admin_api_allowed() && c.warnings().is_empty(), "{listen}");
    }
}

#[test]
fn tenant_names_are_validated_like_agent_names() {
    for bad in ["", "a b", "a/b", "é", &"x".repeat(65)] {
        let err = load(&format!("[tokens]\ntenant = \"{bad}\"\n")).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { field, .. } if field == "tokens.tenant"),
            "{bad:?}: {err}"
        );
    }
    assert_eq!(
        load("[tokens]\ntenant = \"acme-1.eu_x\"\n").unwrap().tenant,
        "acme-1.eu_x"
    );
    assert!(valid_name("acme") && !valid_name("acme corp"));
}

#[test]
fn validation_reports_every_problem() {
    let raw = RawConfig::from_toml(
        "[server]\nlisten = \"nope\"\nmax_body_bytes = 0\n[tokens]\ntenant = \"a b\"\n\
         [upstreams.a]\nkind = \"openai\"\napi_key = \"${env:A_KEY}\"\n\
         [upstreams.b]\nkind = \"anthropic\"\napi_key = \"${env:B_KEY}\"\n\
         [upstreams.c]\nkind = \"nope\"\n",
    )
    .unwrap();
    let errors = Config::validate(raw, Secrets::Resolve(&|_| None))
        .unwrap_err()
        .0;
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    for expect in [
        "server.listen",
        "server.max_body_bytes",
        "tokens.tenant",
        "upstreams.c.kind",
    ] {
        assert!(
            text.iter().any(|t| t.contains(expect)),
            "{expect}: {text:?}"
        );
    }
    let missing: Vec<&str> = errors
        .iter()
        .filter_map(|e| match e {
            ConfigError::MissingEnv { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(missing, ["A_KEY", "B_KEY"]);
}

#[test]
fn deferred_secrets_leave_their_sections_out() {
    let text = "[upstreams.openai]\nkind = \"openai\"\napi_key = \"${env:OPENAI_API_KEY}\"\n\
                [upstreams.mine]\nkind = \"openai\"\napi_key = \"${env:OPENAI_KEY}\"\n\
                [limiter]\nbackend = \"redis\"\nredis_url = \"${env:REDIS_URL}\"\n\
                [tokens]\ntenant = \"acme\"\n";
    let c = Config::validate(RawConfig::from_toml(text).unwrap(), Secrets::Defer(&env)).unwrap();
    assert_eq!(c.tenant, "acme");
    assert!(
        !c.upstreams.contains_key("openai"),
        "a deferred upstream is left out"
    );
    assert_eq!(
        c.upstreams["mine"].provider.secrets()[0].expose(),
        "sk-from-env",
        "set variables are resolved"
    );
    assert!(matches!(c.limiter.backend, LimiterBackend::Memory));
    let deferred: Vec<(&str, &str)> = c
        .deferred
        .iter()
        .map(|d| (d.field.as_str(), d.variable.as_str()))
        .collect();
    assert_eq!(
        deferred,
        [
            ("upstreams.openai.api_key", "OPENAI_API_KEY"),
            ("limiter.redis_url", "REDIS_URL")
        ]
    );
    // The same text, resolved, is refused naming both variables.
    let err = Config::validate(RawConfig::from_toml(text).unwrap(), Secrets::Resolve(&env))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("OPENAI_API_KEY") && err.contains("REDIS_URL"),
        "{err}"
    );
    // A malformed reference is an error even when deferring.
    let bad = "[upstreams.o]\nkind = \"openai\"\napi_key = \"${file:/x}\"\n";
    assert!(Config::validate(RawConfig::from_toml(bad).unwrap(), Secrets::Defer(&env)).is_err());
}

#[test]
fn every_unknown_key_is_reported_with_its_line() {
    let text = "[server]\nlisen = \"x\"\n\n[tokens]\nttl = \"30s\"\n\n[[limit]]\nscope = \"agent\"\ndimension = \"requests\"\nper = \"minute\"\nlimit = 5\nlimt = 6\n\n[colour]\nx = 1\n";
    let (raw, errors) = RawConfig::from_toml_all(text);
    assert!(raw.is_some(), "the rest of the file is still checked");
    let found: Vec<(String, usize)> = errors
        .iter()
        .map(|e| match e {
            ConfigError::UnknownKey { key, line, .. } => (key.clone(), *line),
            other => panic!("{other}"),
        })
        .collect();
    let expected = [
        ("server.lisen".to_string(), 2),
        ("tokens.ttl".to_string(), 5),
        ("limit[0].limt".to_string(), 12),
        ("colour".to_string(), 14),
    ];
    assert_eq!(found, expected, "in file order");
    // A syntax error stops there.
    let (raw, errors) = RawConfig::from_toml_all("[server\n");
    assert!(raw.is_none());
    assert!(matches!(errors.as_slice(), [ConfigError::Parse(_)]));
    // A clean file: no error.
    let (raw, errors) = RawConfig::from_toml_all("[server]\nlisten = \"127.0.0.1:1\"\n");
    assert!(raw.is_some() && errors.is_empty());
}

#[tokio::test]
async fn a_gateway_does_not_start_on_deferred_secrets() {
    let text = "[upstreams.openai]\nkind = \"openai\"\napi_key = \"${env:OPENAI_API_KEY}\"\n";
    let config = Config::validate(
        RawConfig::from_toml(text).unwrap(),
        Secrets::Defer(&|_| None),
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let data = writ_store::DataDir::open_or_create(tmp.path().join("writ-data")).unwrap();
    let store = writ_store::Store::open(&data.database_path())
        .await
        .unwrap();
    let clock = std::sync::Arc::new(writ_token::SystemClock);
    let err = crate::Gateway::start(&config, data, store, clock)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, crate::StartError::DeferredSecrets { names } if names == "OPENAI_API_KEY"),
        "{err}"
    );
}

#[test]
fn a_warning_never_prints_a_urls_user_info() {
    let c = load(
        "[upstreams.t]\nkind = \"http\"\nbase_url = \"http://svc:hunter2@tools.example.com:8080/x\"\napi_key = \"k-1\"\nallow_plaintext = true\n",
    )
    .unwrap();
    let shown = c.warnings()[0].to_string();
    assert!(shown.contains("http://tools.example.com:8080"), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[test]
fn mcp_allowed_origins_are_kept_canonical_and_refused_by_index() {
    let c = load("[server]\nmcp_allowed_origins = [\"https://App.example.com:443\", \"http://localhost:3000\"]\n")
        .expect("valid origins");
    assert_eq!(
        c.mcp_allowed_origins,
        ["https://app.example.com", "http://localhost:3000"]
    );
    assert!(load("").expect("no origins").mcp_allowed_origins.is_empty());
    for bad in ["null", "https://app.example.com/", "app.example.com"] {
        let text = format!("[server]\nmcp_allowed_origins = [\"https://ok.example\", \"{bad}\"]\n");
        let err = load(&text).expect_err("refused").to_string();
        assert!(
            err.contains("server.mcp_allowed_origins[1]"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn names_of_only_dots_are_refused() {
    for bad in [".", "..", "...", "", "a/b", "a b"] {
        assert!(!crate::config::valid_name(bad), "{bad:?}");
    }
    for good in ["acme", "a.b", "..a", "gpt-4o_mini"] {
        assert!(crate::config::valid_name(good), "{good:?}");
    }
}
