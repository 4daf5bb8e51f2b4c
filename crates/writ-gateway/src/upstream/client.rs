//! `Upstream`: one configured upstream at run time: its provider (credential prepared
//! once) and its pooled HTTP client.

use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use writ_providers::Provider;

use crate::config::UpstreamConfig;
use crate::upstream::HttpClient;
use crate::upstream::access_token::AccessTokenSource;
use crate::upstream::egress::EgressResolver;
use crate::upstream::stdio::{self, StdioServer};

/// A configured upstream, ready to forward to.
pub(crate) struct Upstream {
    pub(crate) name: String,
    /// What it speaks and how it is authenticated to.
    pub(crate) provider: Provider,
    /// When it carries a tenant's own credential (from the vault): the tenant and the
    /// credential's version, for the operator's eyes when the upstream refuses it.
    pub(crate) tenant_credential: Option<(String, u32)>,
    /// `scheme://authority` plus an optional path prefix, without a trailing slash.
    pub(crate) base: String,
    pub(crate) timeout: Duration,
    pub(crate) read_timeout: Duration,
    pub(crate) max_response_bytes: usize,
    /// Where access tokens come from, for providers that need one per request (Vertex).
    pub(crate) tokens: Option<AccessTokenSource>,
    /// The server the gateway started for this upstream, reached over stdio instead of
    /// HTTP (`command`).
    pub(crate) stdio: Option<StdioServer>,
    /// An MCP server's tools that mirror arguments into `Mcp-Param-*` headers, as its
    /// latest `tools/list` answers through this instance said.
    pub(crate) mcp_params: crate::upstream::mcp_params::McpParams,
    /// How connections to it are made (egress policy, TLS, timeouts).
    connector: HttpsConnector<HttpConnector<EgressResolver>>,
    /// A connection pool per serving thread (index [`crate::serve::workers::current`]), made on
    /// first use: a worker reuses only connections its own runtime drives.
    pools: Box<[std::sync::OnceLock<HttpClient>]>,
}

impl Upstream {
    /// The upstream `name` of `cfg`, with its connector; fails when TLS cannot be set up.
    /// A server the upstream runs itself is started (in the background, on the current
    /// Tokio runtime).
    pub(crate) fn new(name: &str, cfg: &UpstreamConfig) -> Result<Self, rustls::Error> {
        let no_url = Uri::from_static("/");
        let base_url: &Uri = cfg.base_url.as_ref().unwrap_or(&no_url);
        let tokens = cfg
            .provider
            .access_token_account()
            .map(|(account, token_uri)| AccessTokenSource::new(account.clone(), token_uri.clone()));
        let mut http =
            HttpConnector::new_with_resolver(EgressResolver::new(cfg.allow_private_network));
        http.enforce_http(false);
        http.set_connect_timeout(Some(cfg.connect_timeout));
        http.set_nodelay(true);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(provider)?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let scheme = base_url.scheme_str().unwrap_or("https");
        let authority = base_url.authority().map(|a| a.as_str()).unwrap_or_default();
        let prefix = base_url.path().trim_end_matches('/');
        Ok(Self {
            name: name.to_string(),
            provider: cfg.provider.clone(),
            tenant_credential: None,
            base: format!("{scheme}://{authority}{prefix}"),
            timeout: cfg.timeout,
            read_timeout: cfg.read_timeout,
            max_response_bytes: cfg.max_response_bytes,
            tokens,
            stdio: cfg.provider.launch().map(|launch| {
                let limits = stdio::Limits {
                    timeout: cfg.timeout,
                    connect_timeout: cfg.connect_timeout,
                    max_line: cfg.max_response_bytes,
                };
                StdioServer::start(name, launch, limits)
            }),
            mcp_params: Default::default(),
            connector: https,
            pools: (0..=crate::serve::workers::MAX_WORKERS)
                .map(|_| std::sync::OnceLock::new())
                .collect(),
        })
    }

    /// The HTTP client (connection pool) of the serving thread this runs on.
    pub(crate) fn client(&self) -> &HttpClient {
        let slot = crate::serve::workers::current() % self.pools.len();
        self.pools[slot].get_or_init(|| {
            Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(90))
                .build(self.connector.clone())
        })
    }
}
