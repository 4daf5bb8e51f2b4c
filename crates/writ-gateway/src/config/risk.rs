//! Risky settings a config allows: warned about at start and by `writ config check`.
//! (Settings too risky to allow without an explicit opt-in — a credential over plain
//! HTTP to another host — are refused while validating, in `upstream.rs`.)

use super::Config;
use super::upstream::is_loopback;

/// A setting that works but weakens the deployment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Warning {
    /// The gateway listens beyond this host without TLS: writs and prompts cross the
    /// network in clear text.
    #[error(
        "server.listen = {listen} is reachable from other hosts and TLS is off: writs and \
         prompts cross the network in clear text; set tls_cert and tls_key, or listen on \
         127.0.0.1 behind a TLS proxy{admin}"
    )]
    PlaintextListener {
        /// The address.
        listen: String,
        /// What becomes of the admin API there.
        admin: &'static str,
    },
    /// The admin listener (`[admin] listen`) is reachable from other hosts without TLS.
    #[error(
        "admin.listen = {listen} is reachable from other hosts and TLS is off: admin writs \
         and console sessions would cross the network in clear text{admin}"
    )]
    PlaintextAdminListener {
        /// The address.
        listen: String,
        /// What becomes of the admin API there.
        admin: &'static str,
    },
    /// An upstream's credential goes over plain HTTP to another host, as its
    /// `allow_plaintext = true` allows.
    #[error(
        "upstreams.{upstream}: its credential is sent unencrypted to {url} (allow_plaintext = true)"
    )]
    PlaintextUpstream {
        /// The upstream.
        upstream: String,
        /// Its base URL.
        url: String,
    },
}

/// Whether the gateway's listener is only reachable from this host.
fn listens_on_loopback(config: &Config) -> bool {
    config.listen.ip().is_loopback()
}

/// On the admin listener when there is one (it serves TLS when the data plane does).
pub(super) fn admin_api_allowed(config: &Config) -> bool {
    config.admin_listen().ip().is_loopback() || config.tls.is_some() || config.allow_plaintext_admin
}

pub(super) fn warnings(config: &Config) -> Vec<Warning> {
    let mut out = Vec::new();
    if !listens_on_loopback(config) && config.tls.is_none() {
        out.push(Warning::PlaintextListener {
            listen: config.listen.to_string(),
            admin: if config.admin.is_some() {
                ""
            } else if config.allow_plaintext_admin {
                "; the admin API is served there too (allow_plaintext_admin = true)"
            } else {
                "; the admin API is refused there (403) unless allow_plaintext_admin = true"
            },
        });
    }
    if let Some(admin) = &config.admin
        && !admin.listen.ip().is_loopback()
        && config.tls.is_none()
    {
        out.push(Warning::PlaintextAdminListener {
            listen: admin.listen.to_string(),
            admin: if config.allow_plaintext_admin {
                "; they are served there anyway (allow_plaintext_admin = true)"
            } else {
                "; the admin API and console are refused there (403) unless \
                 allow_plaintext_admin = true"
            },
        });
    }
    for (name, u) in &config.upstreams {
        // Every upstream carries a credential.
        let Some(url) = &u.base_url else {
            // A server the gateway starts is reached over a pipe, not the network.
            continue;
        };
        if url.scheme_str() == Some("http") && !is_loopback(url) {
            // Scheme, host and port only: a URL's user-info may hold a password.
            let host = url.host().unwrap_or_default();
            let url = match url.port_u16() {
                Some(port) => format!("http://{host}:{port}"),
                None => format!("http://{host}"),
            };
            out.push(Warning::PlaintextUpstream {
                upstream: name.clone(),
                url,
            });
        }
    }
    out
}
