//! Talking to a running gateway's admin API from the CLI, with a short-lived admin writ
//! minted from the root key in the local data directory.

use std::time::Duration;

use anyhow::Context;
use writ_gateway::config::Config;
use writ_store::DataDir;
use writ_token::{Clock, MintRequest, SystemClock, mint, parse_grants};

/// Mints an admin writ: agent `admin`, for one tenant or all.
pub fn admin_writ(
    data: &DataDir,
    config: &Config,
    tenant: Option<&str>,
    ttl: Duration,
) -> anyhow::Result<String> {
    let grant = match tenant {
        Some(t) => serde_json::json!({"type": "writ:admin", "tenant": t}),
        None => serde_json::json!({"type": "writ:admin"}),
    };
    let grants = parse_grants(&grant.to_string())?;
    let keys = data.root_keys()?;
    let (writ, _) = mint(
        &keys.signing,
        &MintRequest {
            tenant: &config.tenant,
            agent: "admin",
            ceiling: &grants,
            grants: &grants,
            ttl,
            max_ttl: config.max_ttl,
            now: SystemClock.now(),
            cnf_jkt: None,
        },
    )?;
    Ok(writ)
}

/// The base URL of the local gateway: `--gateway`, else the configured listen address.
pub fn gateway_url(config: &Config, flag: Option<String>) -> String {
    flag.unwrap_or_else(|| {
        let mut addr = config.listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{addr}")
    })
}

/// What became of a call to the gateway.
pub enum Sent {
    /// The gateway answered with this JSON.
    Applied(serde_json::Value),
    /// Nothing listens there.
    NotRunning,
}

/// POSTs `body` to `path` on the gateway with `writ`.
pub async fn post(
    base: &str,
    path: &str,
    writ: &str,
    body: &serde_json::Value,
) -> anyhow::Result<Sent> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    send(client.post(format!("{base}{path}")).json(body), writ).await
}

/// GETs `path` on the gateway with `writ`.
pub async fn get(base: &str, path: &str, writ: &str) -> anyhow::Result<Sent> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    send(client.get(format!("{base}{path}")), writ).await
}

async fn send(request: reqwest::RequestBuilder, writ: &str) -> anyhow::Result<Sent> {
    let resp = match request.bearer_auth(writ).send().await {
        Ok(r) => r,
        Err(e) if e.is_connect() => return Ok(Sent::NotRunning),
        Err(e) => return Err(e).context("the gateway did not answer"),
    };
    let status = resp.status();
    let v: serde_json::Value = resp
        .json()
        .await
        .context("the gateway's answer is not JSON")?;
    if !status.is_success() {
        let msg = v["error"]["message"].as_str().unwrap_or("no message");
        anyhow::bail!("the gateway refused ({status}): {msg}");
    }
    Ok(Sent::Applied(v))
}
