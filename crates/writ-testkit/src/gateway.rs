//! `TestGateway`: a real gateway on port 0 with its own root key and a settable clock.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use writ_gateway::config::{Config, RawConfig};
use writ_gateway::{Gateway, KeyState};
use writ_store::DataDir;
use writ_token::{ManualClock, MintRequest, RootKeyPair, mint, parse_grants};

/// A gateway serving on a loopback port, stopped when dropped.
pub struct TestGateway {
    addr: SocketAddr,
    scheme: &'static str,
    gateway: Arc<Gateway>,
    clock: Arc<ManualClock>,
    stop: Option<oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl TestGateway {
    /// Starts a gateway serving HTTPS with `certs` (the config must have no `[server]` table).
    pub async fn start_tls(config_toml: &str, certs: &crate::TestCertificates) -> Self {
        let server = format!(
            "[server]\ntls_cert = {:?}\ntls_key = {:?}\n",
            certs.cert.display().to_string(),
            certs.key.display().to_string()
        );
        let mut gw = Self::start(&format!("{server}{config_toml}")).await;
        gw.scheme = "https";
        gw
    }

    /// Starts a gateway from TOML config text (upstreams etc.), with a fresh root key.
    pub async fn start(config_toml: &str) -> Self {
        Self::start_with_env(config_toml, &[]).await
    }

    /// Starts a gateway whose config's `${env:NAME}` references read `vars` first, then
    /// this process's environment (tests cannot safely set variables in a running process).
    pub async fn start_with_env(config_toml: &str, vars: &[(&str, &str)]) -> Self {
        Self::start_keyed(config_toml, vars, None).await
    }

    /// Starts a second instance beside `first`: its own data directory holding a copy of
    /// `first`'s keys (root keys and master key), so writs either mints are good on both,
    /// as on gateways an operator deploys from one key set. Share state through the
    /// config (`[store] url`, `[limiter] backend = "redis"`).
    pub async fn start_beside(config_toml: &str, first: &TestGateway) -> Self {
        Self::start_keyed(config_toml, &[], Some(first.gateway().data_dir())).await
    }

    async fn start_keyed(
        config_toml: &str,
        vars: &[(&str, &str)],
        keys_from: Option<&std::path::Path>,
    ) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("writ_gateway=debug")
            .with_test_writer()
            .try_init();
        let raw = RawConfig::from_toml(config_toml).expect("test config parses");
        let lookup = |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
                .or_else(|| std::env::var(name).ok())
        };
        let config = Config::from_raw(raw, &lookup).expect("test config is valid");
        let dir = tempfile::tempdir().expect("temporary data directory");
        if let Some(from) = keys_from {
            let to = dir.path().join("writ-data").join("keys");
            std::fs::create_dir_all(&to).expect("keys directory");
            for entry in std::fs::read_dir(from.join("keys")).expect("first instance's keys") {
                let entry = entry.expect("key file");
                std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy key");
            }
        }
        let data = DataDir::open_or_create(dir.path().join("writ-data")).expect("data directory");
        let store = writ_gateway::open_store(&config, &data)
            .await
            .expect("database");
        let clock = Arc::new(ManualClock::starting_now());
        let gateway = Arc::new(
            Gateway::start(&config, data, store, clock.clone())
                .await
                .expect("gateway starts"),
        );
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind gateway");
        let addr = listener.local_addr().expect("gateway address");
        let (stop, stopped) = oneshot::channel();
        // Set here, as serving sets it, so a test reading the issuer as soon as this
        // returns never finds it empty (the spawned server may not have run yet).
        gateway.default_issuer(addr);
        // Served as `writ serve` serves: on worker threads, one runtime each.
        tokio::spawn(writ_gateway::serve_with_workers(
            listener,
            gateway.clone(),
            config.workers,
            async {
                let _ = stopped.await;
            },
        ));
        Self {
            addr,
            scheme: "http",
            gateway,
            clock,
            stop: Some(stop),
            _dir: dir,
        }
    }

    /// The gateway's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port><path>` (`https` when started with TLS).
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    /// The clock the gateway reads; advance it instead of sleeping.
    pub fn clock(&self) -> &ManualClock {
        &self.clock
    }

    /// The gateway itself, for reading its state.
    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// The keys the gateway uses now; `signing` signs what this fixture mints.
    pub fn keys(&self) -> Arc<KeyState> {
        self.gateway.keys()
    }

    /// Mints a writ for agent `demo` whose ceiling is any `writ:llm` grant on `upstream`.
    pub fn mint(&self, upstream: &str, grants_json: &str, ttl_secs: u64) -> String {
        let ceiling = format!(r#"{{"type":"writ:llm","upstream":"{upstream}"}}"#);
        self.mint_as(&ceiling, grants_json, ttl_secs)
    }
}

impl TestGateway {
    /// Mints a writ for agent `demo` with the given ceiling and grants (JSON).
    pub fn mint_as(&self, ceiling_json: &str, grants_json: &str, ttl_secs: u64) -> String {
        let ceiling = parse_grants(ceiling_json).expect("ceiling");
        let grants = parse_grants(grants_json).expect("grants");
        mint_with(
            &self.keys().signing,
            &ceiling,
            &grants,
            ttl_secs,
            writ_token::Clock::now(&*self.clock),
        )
    }
}

impl TestGateway {
    /// Calls `path` with `bearer` as its credential and `body` as JSON: the status and the
    /// answer parsed as JSON (`Null` for an empty answer). Panics on an answer that is not
    /// JSON: every API of the gateway answers JSON.
    pub async fn call_json(
        &self,
        bearer: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let mut req = reqwest::Client::new()
            .request(method, self.url(path))
            .bearer_auth(bearer);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("the gateway answers");
        let status = resp.status();
        let text = resp.text().await.expect("an answer body");
        let value = if text.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON answer: {text}"))
        };
        (status, value)
    }

    /// Mints a writ for `agent` of tenant `default` with the given ceiling and grants (JSON).
    pub fn mint_for(
        &self,
        agent: &str,
        ceiling_json: &str,
        grants_json: &str,
        ttl_secs: u64,
    ) -> String {
        let ceiling = parse_grants(ceiling_json).expect("ceiling");
        let grants = parse_grants(grants_json).expect("grants");
        let req = MintRequest {
            tenant: "default",
            agent,
            ceiling: &ceiling,
            grants: &grants,
            ttl: Duration::from_secs(ttl_secs),
            max_ttl: Duration::from_secs(30),
            now: writ_token::Clock::now(&*self.clock),
            cnf_jkt: None,
            audience: None,
        };
        mint(&self.keys().signing, &req).expect("mint").0
    }

    /// Mints a writ for agent `demo` of `tenant` with the given ceiling and grants (JSON).
    pub fn mint_in(
        &self,
        tenant: &str,
        ceiling_json: &str,
        grants_json: &str,
        ttl_secs: u64,
    ) -> String {
        let ceiling = parse_grants(ceiling_json).expect("ceiling");
        let grants = parse_grants(grants_json).expect("grants");
        let req = MintRequest {
            tenant,
            agent: "demo",
            ceiling: &ceiling,
            grants: &grants,
            ttl: Duration::from_secs(ttl_secs),
            max_ttl: Duration::from_secs(30),
            now: writ_token::Clock::now(&*self.clock),
            cnf_jkt: None,
            audience: None,
        };
        mint(&self.keys().signing, &req).expect("mint").0
    }
}

/// Mints a writ for agent `demo` with `key`.
pub fn mint_with(
    key: &RootKeyPair,
    ceiling: &[writ_token::Grant],
    grants: &[writ_token::Grant],
    ttl_secs: u64,
    now: std::time::SystemTime,
) -> String {
    let req = MintRequest {
        tenant: "default",
        agent: "demo",
        ceiling,
        grants,
        ttl: Duration::from_secs(ttl_secs),
        max_ttl: Duration::from_secs(30),
        now,
        cnf_jkt: None,
        audience: None,
    };
    mint(key, &req).expect("mint").0
}

impl TestGateway {
    /// Starts a graceful shutdown: the gateway stops accepting connections and lets the
    /// requests in flight finish (its data directory stays until it is dropped).
    pub fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
