//! `writ serve`: open the data directory, start the gateway (and, with `--demo`, the mock
//! upstream it forwards to), print how to use it.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use writ_gateway::Gateway;
use writ_gateway::config::{Config, RawConfig, UpstreamConfig};
use writ_mock::MockServer;
use writ_store::{Agent, DataDir};
use writ_token::{SystemClock, parse_grants};

mod reload;

/// Options of `writ serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on, overriding the config (port 0 picks a free port).
    #[arg(long)]
    listen: Option<SocketAddr>,
    #[command(flatten)]
    state: crate::settings::StateArgs,
    /// Add the offline demo: a mock of OpenAI on a loopback port as upstream `demo`, and
    /// an agent `demo` allowed any `writ:llm` grant on it.
    #[arg(long)]
    demo: bool,
    /// Reload the config file on SIGHUP only, not also when its contents change.
    #[arg(long)]
    no_watch: bool,
}

impl ServeArgs {
    /// Where the configuration and state are found.
    pub fn state(&self) -> &crate::settings::StateArgs {
        &self.state
    }
}

/// The grant a `--demo` agent's ceiling holds.
const DEMO_CEILING: &str = r#"{"type":"writ:llm","upstream":"demo"}"#;
/// The grant the printed mint command asks for.
const FIRST_GRANT: &str =
    r#"{"type":"writ:llm","upstream":"demo","actions":["chat"],"models":["gpt-4o-mini"]}"#;

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = args
        .state
        .load_with(crate::settings::SecretsMode::Resolve)?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    config.check_admin_apart()?;
    // Runs as long as the gateway: dropping it stops the mock.
    let mut demo_mock = None;
    let mut demo = None;
    if args.demo && !config.upstreams.contains_key("demo") {
        let mock = MockServer::start(writ_mock::random_key())
            .await
            .context("cannot start the demo's mock upstream on a loopback port")?;
        let upstream = demo_upstream(&mock)?;
        config
            .upstreams
            .insert("demo".to_string(), upstream.clone());
        demo = Some(upstream);
        demo_mock = Some(mock);
    }
    let data = DataDir::open_or_create(&config.data_dir)?;
    data.master_key()?;
    let store = writ_gateway::open_store(&config, &data)
        .await
        .context("cannot open the database")?;
    if args.demo {
        store
            .put_agent(&Agent {
                tenant: config.tenant.clone(),
                name: "demo".to_string(),
                ceiling: parse_grants(DEMO_CEILING)?,
                max_ttl: config.max_ttl,
                credentials: writ_store::AgentCredentials::default(),
            })
            .await?;
    }
    let gateway =
        Gateway::start(&config, data.clone(), store.clone(), Arc::new(SystemClock)).await?;
    let listener =
        listen(config.listen).with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let admin_listener = match &config.admin {
        Some(admin) => Some(
            listen(admin.listen)
                .with_context(|| format!("cannot listen on {} ([admin] listen)", admin.listen))?,
        ),
        None => None,
    };

    let state = match store.backend() {
        writ_store::Backend::Sqlite => "SQLite",
        writ_store::Backend::Postgres => "state in PostgreSQL",
    };
    println!(
        "data: {} ({state}, root key id {})",
        data.path().display(),
        gateway.keys().signing.kid()
    );
    let upstreams: Vec<String> = gateway
        .upstreams()
        .into_iter()
        .map(|(name, kind)| match &demo_mock {
            Some(_) if name == "demo" => format!("{name} (mock)"),
            _ => format!("{name} ({})", kind.as_str()),
        })
        .collect();
    if upstreams.is_empty() {
        println!(
            "upstreams: none. Run `writ serve --demo` for the offline demo, or `writ init` to write a writ.toml."
        );
    } else {
        println!("upstreams: {}", upstreams.join(", "));
    }
    if args.demo {
        println!("\nMint a first writ (run in this directory):\n");
        println!(
            "  {} token mint --agent demo --grant '{FIRST_GRANT}' --ttl 30s",
            invoked_as()
        );
        println!();
    }
    let gateway = Arc::new(gateway);
    // Before the ready line: from then on a SIGHUP reloads instead of ending the process.
    reload::spawn(
        gateway.clone(),
        reload::Source {
            path: crate::settings::config_path(args.state.config.as_deref()),
            data_dir: args.state.data_dir.clone(),
            listen: args.listen,
            demo,
            watch: !args.no_watch,
        },
    )?;
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    if let Some(admin) = &admin_listener {
        println!(
            "admin: {scheme}://{} (admin API, /metrics and console; not on the data-plane address)",
            admin.local_addr()?
        );
    }
    // Printed last: once this line appears the gateway is ready (scripts wait for it).
    println!(
        "writ {} listening on {scheme}://{addr}",
        env!("CARGO_PKG_VERSION")
    );
    let stops = stop_signals();
    let first_stop = {
        let mut stops = stops.clone();
        async move {
            let _ = stops.wait_for(|n| *n >= 1).await;
        }
    };
    let listeners = writ_gateway::Listeners {
        data: listener,
        admin: admin_listener,
    };
    let serving =
        writ_gateway::serve_listeners(listeners, gateway.clone(), config.workers, first_stop);
    // After the first stop, the drain may take `drain_timeout`; a second stop ends it now.
    let cut_short = {
        let mut stops = stops.clone();
        let drain = config.drain_timeout;
        async move {
            let _ = stops.wait_for(|n| *n >= 1).await;
            tokio::select! {
                () = tokio::time::sleep(drain) => format!("the drain took longer than {}", humantime::format_duration(drain)),
                _ = stops.wait_for(|n| *n >= 2) => "a second stop signal".to_string(),
            }
        }
    };
    tokio::select! {
        served = serving => served?,
        why = cut_short => tracing::warn!("stopping with requests still in flight: {why}"),
    }
    // Every record written and covered by a signed checkpoint before the process ends.
    gateway.audit_checkpoint().await;
    // The spans of the last requests go to the collector too (`[traces]`).
    gateway.flush_traces().await;
    store.close().await;
    drop(demo_mock);
    println!("writ stopped");
    Ok(())
}

/// The demo upstream: an ordinary `openai` upstream at `mock`, configured as an operator
/// would configure it (loopback allowed for this upstream only).
fn demo_upstream(mock: &MockServer) -> anyhow::Result<UpstreamConfig> {
    let key = mock.key();
    let text = format!(
        "[upstreams.demo]\nkind = \"openai\"\nbase_url = \"{}\"\napi_key = \"{}\"\nallow_private_network = true\n",
        mock.base_url(),
        key.expose()
    );
    let raw = RawConfig::from_toml(&text).context("the demo upstream's config")?;
    let mut config = Config::from_raw(raw, &|_| None).context("the demo upstream's config")?;
    config
        .upstreams
        .remove("demo")
        .context("the demo upstream's config has no upstream")
}

/// How to run this same binary from the current directory.
fn invoked_as() -> String {
    let exe = std::env::current_exe().ok();
    let cwd = std::env::current_dir().ok();
    match (exe, cwd) {
        (Some(exe), Some(cwd)) => match exe.strip_prefix(&cwd) {
            Ok(rel) => format!("./{}", rel.display()),
            Err(_) => exe.display().to_string(),
        },
        _ => "writ".to_string(),
    }
}

/// Counts stop signals (SIGINT, SIGTERM) as they come: 1 stops accepting and drains, 2
/// stops at once.
fn stop_signals() -> tokio::sync::watch::Receiver<u8> {
    let (tx, rx) = tokio::sync::watch::channel(0u8);
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        loop {
            #[cfg(unix)]
            let received = match term.as_mut() {
                Some(term) => tokio::select! {
                    r = tokio::signal::ctrl_c() => r.is_ok(),
                    r = term.recv() => r.is_some(),
                },
                None => tokio::signal::ctrl_c().await.is_ok(),
            };
            #[cfg(not(unix))]
            let received = tokio::signal::ctrl_c().await.is_ok();
            if !received {
                return;
            }
            tx.send_modify(|n| *n = n.saturating_add(1));
            if *tx.borrow() >= 2 {
                return;
            }
            tracing::info!(
                "stopping: no new connections; draining requests in flight (stop again to exit now)"
            );
        }
    });
    rx
}

/// Connections the kernel queues for a listener before it drops new ones (capped by
/// `net.core.somaxconn`). With tokio's 1024, ten thousand clients connecting at once to a
/// gateway on a loaded machine overflowed the queue, and each dropped SYN was retried only
/// one, three, seven seconds later.
const LISTEN_BACKLOG: u32 = 4096;

/// A listener on `addr` with a queue of [`LISTEN_BACKLOG`].
fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As tokio's `TcpListener::bind` does: a restarted gateway may bind at once.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}
