//! `[store]`: defaults, PostgreSQL URLs, master keys from the environment, rotation keys,
//! the poll interval; refusals that never quote a secret.

use base64::Engine;

use crate::config::{
    Config, ConfigError, MasterKeySource, RawConfig, Secrets, StoreBackend, StoreConfigError,
};

const KEY_A: [u8; 32] = [7; 32];
const KEY_B: [u8; 32] = [9; 32];

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn env(name: &str) -> Option<String> {
    match name {
        "KEY_A" => Some(b64(&KEY_A)),
        "KEY_B" => Some(b64(&KEY_B)),
        "KEY_A_NO_PAD" => Some(b64(&KEY_A).trim_end_matches('=').to_string()),
        "SHORT" => Some(b64(&[1; 16])),
        "PG_PASSWORD" => Some("pg-hunter2".to_string()),
        "NOT_B64" => Some("hunter2!hunter2!hunter2!hunter2!hunter2!hunter2".to_string()),
        _ => None,
    }
}

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_raw(RawConfig::from_toml(text)?, &env)
}

fn refusal(text: &str) -> (String, String) {
    let err = load(text).expect_err(text);
    (err.field().unwrap_or_default().to_string(), err.to_string())
}

#[test]
fn the_default_store_is_sqlite_with_the_data_directorys_key() {
    let store = Config::embedded_default().store;
    assert!(matches!(store.backend, StoreBackend::Sqlite));
    assert!(matches!(store.master_key, MasterKeySource::DataDir));
    assert!(store.previous_master_keys.is_empty());
    assert_eq!(store.poll_interval, super::DEFAULT_POLL_INTERVAL);
}

#[test]
fn a_postgres_store_with_keys_from_the_environment() {
    let c = load(
        "[store]\nurl = \"postgres://writ:${env:PG_PASSWORD}@db.internal:5433/writ\"\nmaster_key = \"${env:KEY_A}\"\nprevious_master_keys = [\"${env:KEY_B}\"]\npoll_interval = \"100ms\"\n",
    )
    .expect("valid");
    let StoreBackend::Postgres(url) = &c.store.backend else {
        panic!("{:?}", c.store.backend)
    };
    assert_eq!(
        url.expose(),
        "postgres://writ:pg-hunter2@db.internal:5433/writ"
    );
    let MasterKeySource::Configured(key) = &c.store.master_key else {
        panic!("{:?}", c.store.master_key)
    };
    assert_eq!(key.expose(), &KEY_A);
    assert_eq!(c.store.previous_master_keys.len(), 1);
    assert_eq!(c.store.previous_master_keys[0].expose(), &KEY_B);
    assert_eq!(c.store.poll_interval.as_millis(), 100);
    let shown = format!("{c:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(
        shown.contains("postgres://db.internal:5433/writ"),
        "{shown}"
    );
    for byte in [b64(&KEY_A), b64(&KEY_B)] {
        assert!(!shown.contains(&byte), "no key in Debug");
    }
    let unpadded =
        load("[store]\nmaster_key = \"${env:KEY_A_NO_PAD}\"\nurl = \"postgresql://h/db\"")
            .expect("valid");
    assert!(
        matches!(unpadded.store.master_key, MasterKeySource::Configured(ref k) if k.expose() == &KEY_A)
    );
}

#[test]
fn malformed_store_values_are_refused_without_quoting_them() {
    for (text, field, error) in [
        (
            "[store]\nurl = \"mysql://writ:hunter2@db/writ\"",
            "store.url",
            StoreConfigError::NotPostgres,
        ),
        (
            "[store]\nurl = \"hunter2\"",
            "store.url",
            StoreConfigError::NotPostgres,
        ),
        (
            "[store]\nurl = \"postgres://\"",
            "store.url",
            StoreConfigError::NotPostgres,
        ),
        (
            "[store]\nmaster_key = \"${env:SHORT}\"",
            "store.master_key",
            StoreConfigError::NotAKey,
        ),
        (
            "[store]\nmaster_key = \"${env:NOT_B64}\"",
            "store.master_key",
            StoreConfigError::NotAKey,
        ),
        (
            "[store]\nmaster_key = \"hunter2\"",
            "store.master_key",
            StoreConfigError::NotAKey,
        ),
        (
            "[store]\nmaster_key = \"${env:KEY_A}\"\nprevious_master_keys = [\"${env:KEY_B}\", \"hunter2\"]",
            "store.previous_master_keys[1]",
            StoreConfigError::NotAKey,
        ),
        (
            "[store]\nmaster_key = \"${env:KEY_A}\"\nprevious_master_keys = [\"${env:KEY_A}\"]",
            "store.previous_master_keys[0]",
            StoreConfigError::CurrentKey,
        ),
        (
            "[store]\npoll_interval = \"0s\"",
            "store.poll_interval",
            StoreConfigError::PollInterval,
        ),
        (
            "[store]\npoll_interval = \"2m\"",
            "store.poll_interval",
            StoreConfigError::PollInterval,
        ),
    ] {
        match load(text) {
            Err(ConfigError::Store { field: f, error: e }) => {
                assert_eq!((f.as_str(), e), (field, error), "{text}");
            }
            other => panic!("{text}: {other:?}"),
        }
        let (_, message) = refusal(text);
        assert!(!message.contains("hunter2"), "{message}");
    }
    let too_many = format!(
        "[store]\nprevious_master_keys = [{}]",
        vec!["\"${env:KEY_B}\""; 17].join(", ")
    );
    assert_eq!(refusal(&too_many).0, "store.previous_master_keys");
    let (_, errors) =
        RawConfig::from_toml_all("[store]\nurl = \"postgres://h/db\"\nmaster_kee = \"x\"");
    match errors.as_slice() {
        [ConfigError::UnknownKey { key, line, .. }] => {
            assert_eq!((key.as_str(), *line), ("store.master_kee", 3));
        }
        other => panic!("{other:?}"),
    }
    let (field, _) = refusal("[store]\nmaster_key = \"${env:UNSET_KEY}\"");
    assert_eq!(field, "store.master_key", "an unset variable is named");
}

#[test]
fn an_unset_store_variable_is_deferred_for_operator_commands() {
    let raw = RawConfig::from_toml("[store]\nurl = \"${env:PG_URL}\"\nmaster_key = \"${env:MK}\"")
        .expect("parses");
    let c = Config::validate(raw, Secrets::Defer(&env)).expect("deferred");
    let fields: Vec<&str> = c.deferred.iter().map(|d| d.field.as_str()).collect();
    assert_eq!(fields, ["store.url", "store.master_key"]);
    assert!(
        matches!(c.store.backend, StoreBackend::Sqlite),
        "at its default"
    );
}
