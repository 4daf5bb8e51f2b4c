//! `Upstream`: one configured upstream at run time, with its pooled HTTP client and its
//! credential headers prepared once.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use writ_providers::sigv4::Signer;
use writ_providers::{ProviderKind, bedrock, openai};

use crate::config::UpstreamConfig;
use crate::upstream::HttpClient;
use crate::upstream::access_token::AccessTokenSource;
use crate::upstream::egress::EgressResolver;

/// A configured upstream, ready to forward to.
pub(crate) struct Upstream {
    pub(crate) name: String,
    pub(crate) kind: ProviderKind,
    /// `scheme://authority` plus an optional path prefix, without a trailing slash.
    pub(crate) base: String,
    /// Headers that authenticate to the upstream; values are marked sensitive.
    pub(crate) credential: Vec<(HeaderName, HeaderValue)>,
    pub(crate) timeout: Duration,
    pub(crate) read_timeout: Duration,
    pub(crate) max_response_bytes: usize,
    /// Query parameter the key travels in, for upstreams that want it there.
    pub(crate) auth_query: Option<String>,
    /// Azure deployments and the models they serve.
    pub(crate) deployments: std::collections::BTreeMap<String, String>,
    /// For Vertex: where access tokens come from.
    pub(crate) tokens: Option<AccessTokenSource>,
    /// For Vertex: the only project and location requests may name.
    pub(crate) vertex_scope: Option<(String, String)>,
    /// For Bedrock: who signs each request (SigV4).
    pub(crate) signer: Option<Signer>,
    /// The credential, kept to scrub it from anything the upstream sends back.
    pub(crate) secret: writ_providers::UpstreamSecret,
    /// How connections to it are made (egress policy, TLS, timeouts).
    connector: HttpsConnector<HttpConnector<EgressResolver>>,
    /// A connection pool per serving thread (index [`crate::serve::workers::current`]), made on
    /// first use: a worker reuses only connections its own runtime drives.
    pools: Box<[std::sync::OnceLock<HttpClient>]>,
}

impl Upstream {
    pub(crate) fn new(name: &str, cfg: &UpstreamConfig) -> Result<Self, String> {
        let base_url: &Uri = &cfg.base_url;
        let signer = cfg.aws.as_ref().map(|aws| Signer {
            credentials: aws.credentials.clone(),
            region: aws.region.clone(),
            service: bedrock::SIGNING_SERVICE.to_string(),
        });
        let key = match (&cfg.api_key, &signer, &cfg.vertex) {
            (Some(key), _, _) => key,
            (None, Some(signer), _) => &signer.credentials.secret_access_key,
            (None, None, Some(vertex)) => vertex.service_account.private_key_pem(),
            (None, None, None) => return Err("no api_key".to_string()),
        };
        let tokens = cfg
            .vertex
            .as_ref()
            .map(|v| AccessTokenSource::new(v.service_account.clone(), v.token_uri.clone()));
        let vertex_scope = cfg
            .vertex
            .as_ref()
            .map(|v| (v.project.clone(), v.location.clone()));
        let credential = match cfg.kind {
            // Signed per request by inject.
            ProviderKind::Bedrock => Vec::new(),
            // A fresh access token per request, from `tokens`.
            ProviderKind::Vertex => Vec::new(),
            ProviderKind::OpenAi => {
                openai::credential_headers(key, cfg.organization.as_deref(), cfg.project.as_deref())
                    .map_err(|_| "credential is not a valid header value".to_string())?
            }
            ProviderKind::Azure => writ_providers::azure::credential_headers(key)
                .map_err(|_| "credential is not a valid header value".to_string())?,
            ProviderKind::Gemini => writ_providers::gemini::credential_headers(key)
                .map_err(|_| "credential is not a valid header value".to_string())?,
            ProviderKind::Anthropic => writ_providers::anthropic::credential_headers(key)
                .map_err(|_| "credential is not a valid header value".to_string())?,
            // The key travels in the query string (added by inject), not in a header.
            ProviderKind::Mcp | ProviderKind::Http if cfg.auth_query.is_some() => Vec::new(),
            ProviderKind::Mcp | ProviderKind::Http => {
                let (name, value) = match (&cfg.auth_header, &cfg.basic_user) {
                    (Some(name), _) => (name.clone(), key.expose().to_string()),
                    (None, Some(user)) => {
                        use base64::Engine;
                        let pair = base64::engine::general_purpose::STANDARD
                            .encode(format!("{user}:{}", key.expose()));
                        (http::header::AUTHORIZATION, format!("Basic {pair}"))
                    }
                    (None, None) => (
                        http::header::AUTHORIZATION,
                        format!("Bearer {}", key.expose()),
                    ),
                };
                let mut value = HeaderValue::try_from(value)
                    .map_err(|_| "credential is not a valid header value".to_string())?;
                value.set_sensitive(true);
                vec![(name, value)]
            }
        };
        let mut http =
            HttpConnector::new_with_resolver(EgressResolver::new(cfg.allow_private_network));
        http.enforce_http(false);
        http.set_connect_timeout(Some(cfg.connect_timeout));
        http.set_nodelay(true);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(provider)
            .map_err(|e| format!("TLS setup failed: {e}"))?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let scheme = base_url.scheme_str().unwrap_or("https");
        let authority = base_url.authority().map(|a| a.as_str()).unwrap_or_default();
        let prefix = base_url.path().trim_end_matches('/');
        Ok(Self {
            name: name.to_string(),
            kind: cfg.kind,
            base: format!("{scheme}://{authority}{prefix}"),
            credential,
            timeout: cfg.timeout,
            read_timeout: cfg.read_timeout,
            max_response_bytes: cfg.max_response_bytes,
            secret: key.clone(),
            signer,
            tokens,
            vertex_scope,
            deployments: cfg.deployments.clone(),
            auth_query: cfg.auth_query.clone(),
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
