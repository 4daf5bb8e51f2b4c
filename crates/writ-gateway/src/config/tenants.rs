//! `[tenants.<name>]`: the tenants `writ.toml` declares (seeded into the store at start,
//! each maybe with a display name and policies). The default tenant of `[tokens]` is
//! always one.
//!
//! `[tenants.<name>.policies]` maps a policy name to its Datalog (checks and
//! `requires_approval` rules, as for policies set through the admin API): they apply with
//! the tenant's stored policies, before them, and their names cannot be set through the API.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{ConfigError, check_name};

/// Longest display name, in characters.
const MAX_DISPLAY_NAME: usize = 200;

/// `[tenants.<name>]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTenant {
    display_name: Option<String>,
    #[serde(default)]
    policies: BTreeMap<String, String>,
}

/// A tenant declared in `writ.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantConfig {
    /// How people call it; the name when absent.
    pub display_name: Option<String>,
    /// Its policies by name (Datalog), as written; they compile together.
    pub policies: BTreeMap<String, String>,
}

/// Validates the declared tenants and adds `default_tenant` (the `[tokens]` one) when it
/// is not among them. Every problem is pushed to `problems`; valid tenants are kept.
pub(super) fn tenants(
    raw: BTreeMap<String, RawTenant>,
    default_tenant: &str,
    problems: &mut Vec<ConfigError>,
) -> BTreeMap<String, TenantConfig> {
    let mut out = BTreeMap::new();
    for (name, t) in raw {
        let field = format!("tenants.{name}");
        if let Err(e) = check_name(&field, &name) {
            problems.push(e);
            continue;
        }
        if let Some(display_name) = &t.display_name {
            let chars = display_name.chars().count();
            if display_name.trim().is_empty()
                || chars > MAX_DISPLAY_NAME
                || display_name.chars().any(char::is_control)
            {
                problems.push(ConfigError::Invalid {
                    field: format!("{field}.display_name"),
                    reason: format!(
                        "must be 1 to {MAX_DISPLAY_NAME} characters, not blank, without control characters"
                    ),
                });
                continue;
            }
        }
        if !t.policies.is_empty() {
            let sources: Vec<(&str, &str)> = t
                .policies
                .iter()
                .map(|(n, d)| (n.as_str(), d.as_str()))
                .collect();
            if let Err(e) = writ_token::OperatorPolicy::compile(&sources) {
                problems.push(ConfigError::Invalid {
                    field: format!("{field}.policies"),
                    reason: e.to_string(),
                });
                continue;
            }
        }
        out.insert(
            name,
            TenantConfig {
                display_name: t.display_name,
                policies: t.policies,
            },
        );
    }
    out.entry(default_tenant.to_string()).or_default();
    out
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError, RawConfig, TenantConfig};

    fn load(text: &str) -> Result<Config, crate::config::ConfigErrors> {
        let raw = RawConfig::from_toml(text).expect("parses");
        Config::validate(raw, crate::config::Secrets::Resolve(&|_| None))
    }

    #[test]
    fn declared_tenants_and_the_default_one_are_seeded() {
        let c = load("[tokens]\ntenant = \"acme\"\n[tenants.globex]\ndisplay_name = \"Globex Corp\"\n[tenants.initech]\n")
            .expect("valid");
        let names: Vec<&str> = c.tenants.keys().map(String::as_str).collect();
        assert_eq!(names, ["acme", "globex", "initech"]);
        assert_eq!(
            c.tenants["globex"].display_name.as_deref(),
            Some("Globex Corp")
        );
        assert_eq!(c.tenants["acme"], TenantConfig::default());
        let default = Config::embedded_default();
        assert_eq!(default.tenants.keys().collect::<Vec<_>>(), ["default"]);
        let named = load("[tokens]\ntenant = \"acme\"\n[tenants.acme]\ndisplay_name = \"Acme\"")
            .expect("valid");
        assert_eq!(named.tenants["acme"].display_name.as_deref(), Some("Acme"));
    }

    #[test]
    fn a_tenant_declares_its_policies() {
        let c = load(
            "[tenants.acme.policies]\npayments = 'requires_approval(\"payments over 100\") <- tool(\"pay\"), arg(\"amount\", $a), $a > 100;'\nmodels = 'check if model($m), $m != \"o1\";'\n",
        )
        .expect("valid");
        let names: Vec<&str> = c.tenants["acme"]
            .policies
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(names, ["models", "payments"]);
    }

    #[test]
    fn bad_tenant_names_and_display_names_are_refused() {
        let long = format!("[tenants.a]\ndisplay_name = \"{}\"", "x".repeat(201));
        for (text, field) in [
            ("[tenants.\"a b\"]", "tenants.a b"),
            ("[tenants.\"\"]", "tenants."),
            (
                "[tenants.a]\ndisplay_name = \"  \"",
                "tenants.a.display_name",
            ),
            (
                "[tenants.a]\ndisplay_name = \"a\\u0007b\"",
                "tenants.a.display_name",
            ),
            (long.as_str(), "tenants.a.display_name"),
        ] {
            let errors = load(text).expect_err(text).0;
            let fields: Vec<_> = errors.iter().filter_map(ConfigError::field).collect();
            assert_eq!(fields, [field], "{text}");
        }
        let (_, errors) = RawConfig::from_toml_all("[tenants.a]\ndisplay = \"A\"\n");
        let bad_policy = load("[tenants.a.policies]\npay = \"requires_approval($x) <- tool($x);\"")
            .expect_err("a rule other than requires_approval(\"why\") is refused")
            .0;
        let words = bad_policy[0].to_string();
        assert!(
            words.contains("tenants.a.policies") && words.contains("policy `pay`"),
            "{words}"
        );
        match errors.as_slice() {
            [ConfigError::UnknownKey { key, line, .. }] => {
                assert_eq!((key.as_str(), *line), ("tenants.a.display", 2));
            }
            other => panic!("{other:?}"),
        }
    }
}
