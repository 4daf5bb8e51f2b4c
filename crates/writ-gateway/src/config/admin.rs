//! `[admin]`: the optional second listener for operators — the admin API, `/metrics` and
//! the console — so the data-plane listener can face agents alone.

use std::net::SocketAddr;

use serde::Deserialize;

use super::{ConfigError, parse_base_url};

/// `[admin]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    listen: Option<String>,
    public_url: Option<String>,
}

/// Where the admin surface is served when it has a listener of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminListener {
    /// The admin listener's address (`[admin] listen`); port 0 picks a free port.
    pub listen: SocketAddr,
    /// The URL operators reach it at (`[admin] public_url`): the console's origin
    /// (passkeys, enrolment links) and the admin API's links. Defaults to
    /// `http(s)://<admin listen address>`.
    pub public_url: Option<String>,
}

/// Validates `[admin]` against the data-plane address `server_listen`: `None` when no
/// admin listener is configured. Problems are pushed to `problems`.
pub(super) fn admin_config(
    raw: RawAdmin,
    server_listen: SocketAddr,
    problems: &mut Vec<ConfigError>,
) -> Option<AdminListener> {
    let invalid = |field: &str, reason: &str| ConfigError::Invalid {
        field: field.to_string(),
        reason: reason.to_string(),
    };
    let public_url = match raw.public_url {
        None => None,
        Some(u) => match parse_base_url("admin.public_url", &u) {
            Ok(uri) if uri.path().trim_end_matches('/').is_empty() => {
                Some(uri.to_string().trim_end_matches('/').to_string())
            }
            Ok(_) => {
                // The console's routes live at the root; a prefix would not reach them.
                problems.push(invalid(
                    "admin.public_url",
                    "expected http(s)://host[:port] without a path",
                ));
                None
            }
            Err(e) => {
                problems.push(e);
                None
            }
        },
    };
    let Some(listen) = raw.listen else {
        if public_url.is_some() {
            problems.push(invalid(
                "admin.public_url",
                "needs admin.listen: without it the admin API and console are served on \
                 server.listen, at server.public_url",
            ));
        }
        return None;
    };
    let listen: SocketAddr = match listen.parse() {
        Ok(addr) => addr,
        Err(_) => {
            problems.push(invalid(
                "admin.listen",
                "expected host:port, such as 127.0.0.1:9091",
            ));
            return None;
        }
    };
    if let Err(e) = distinct(listen, server_listen) {
        problems.push(e);
    }
    Some(AdminListener { listen, public_url })
}

/// Refuses an admin address the data plane listens on too: the admin surface would not
/// be apart (and the second bind would fail). Port 0 picks a free port each time, so two
/// port-0 addresses never clash.
pub fn distinct(admin: SocketAddr, server: SocketAddr) -> Result<(), ConfigError> {
    let same_ip =
        admin.ip() == server.ip() || admin.ip().is_unspecified() || server.ip().is_unspecified();
    if admin.port() != 0 && admin.port() == server.port() && same_ip {
        return Err(ConfigError::Invalid {
            field: "admin.listen".to_string(),
            reason: format!(
                "{admin} is where the data plane listens (server.listen = {server}); the \
                 admin listener needs an address of its own"
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> (Option<AdminListener>, Vec<ConfigError>) {
        let raw: RawAdmin = toml::from_str(text).unwrap();
        let mut problems = Vec::new();
        let server = "127.0.0.1:8787".parse().unwrap();
        (admin_config(raw, server, &mut problems), problems)
    }

    fn field(problems: &[ConfigError]) -> Vec<&str> {
        problems.iter().filter_map(ConfigError::field).collect()
    }

    #[test]
    fn an_admin_listener_is_optional_and_takes_its_own_url() {
        let (admin, problems) = check("");
        assert!(admin.is_none() && problems.is_empty());
        let (admin, problems) =
            check("listen = \"127.0.0.1:9091\"\npublic_url = \"https://ops.example.com/\"");
        assert!(problems.is_empty(), "{problems:?}");
        let admin = admin.unwrap();
        assert_eq!(admin.listen, "127.0.0.1:9091".parse().unwrap());
        assert_eq!(admin.public_url.as_deref(), Some("https://ops.example.com"));
    }

    #[test]
    fn the_data_planes_address_is_refused_naming_both_keys() {
        for same in ["127.0.0.1:8787", "0.0.0.0:8787"] {
            let (_, problems) = check(&format!("listen = \"{same}\""));
            assert_eq!(field(&problems), ["admin.listen"], "{same}");
            let message = problems[0].to_string();
            assert!(message.contains("server.listen"), "{message}");
        }
        // Another port, another address, or a port picked at start are fine.
        for other in ["127.0.0.1:9091", "127.0.0.2:8787", "127.0.0.1:0"] {
            let (admin, problems) = check(&format!("listen = \"{other}\""));
            assert!(
                problems.is_empty() && admin.is_some(),
                "{other}: {problems:?}"
            );
        }
    }

    fn config(text: &str) -> super::super::Config {
        let raw = super::super::RawConfig::from_toml(text).unwrap();
        super::super::Config::from_raw(raw, &|_| None).unwrap()
    }

    /// The plaintext rule for the admin API applies where the admin API is served.
    #[test]
    fn the_admin_api_is_allowed_by_the_admin_listeners_address() {
        use super::super::Warning;
        let apart =
            config("[server]\nlisten = \"0.0.0.0:8787\"\n[admin]\nlisten = \"127.0.0.1:9091\"");
        assert!(apart.admin_api_allowed());
        assert_eq!(apart.admin_listen(), "127.0.0.1:9091".parse().unwrap());
        assert!(matches!(
            apart.warnings().as_slice(),
            [Warning::PlaintextListener { admin: "", .. }]
        ));
        let exposed = config("[admin]\nlisten = \"0.0.0.0:9091\"");
        assert!(!exposed.admin_api_allowed());
        assert!(matches!(
            exposed.warnings().as_slice(),
            [Warning::PlaintextAdminListener { .. }]
        ));
        let together = config("[server]\nlisten = \"127.0.0.1:8787\"");
        assert!(together.admin.is_none());
        assert_eq!(together.admin_listen(), together.listen);
        assert!(together.check_admin_apart().is_ok());
    }

    #[test]
    fn malformed_hostile_and_orphaned_values_are_refused() {
        let cases = [
            ("listen = \"localhost\"", "admin.listen"),
            ("listen = \"127.0.0.1:99999\"", "admin.listen"),
            ("listen = \"\"", "admin.listen"),
            (
                &*format!("listen = \"{}\"", "9".repeat(10_000)),
                "admin.listen",
            ),
            (
                "listen = \"127.0.0.1:9091\"\npublic_url = \"ftp://x\"",
                "admin.public_url",
            ),
            (
                "listen = \"127.0.0.1:9091\"\npublic_url = \"https://ops.example.com/base\"",
                "admin.public_url",
            ),
            (
                "public_url = \"https://ops.example.com\"",
                "admin.public_url",
            ),
        ];
        for (text, expected) in cases {
            let (_, problems) = check(text);
            assert_eq!(field(&problems), [expected], "{text}");
        }
        assert!(toml::from_str::<RawAdmin>("listn = \"127.0.0.1:1\"").is_err());
        assert!(toml::from_str::<RawAdmin>("listen = 9091").is_err());
    }
}
