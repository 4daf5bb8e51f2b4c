//! Talking to a running gateway's admin API from the CLI: where it is (`--gateway`, else
//! the config's `[admin] listen` or `[server] listen` address, over HTTPS when the config serves TLS), which CA to trust
//! (`--ca-file`, else `[server] tls_ca`, else the public web roots), and a short-lived
//! admin writ minted from the root key in the local data directory.
//!
//! Every failure to reach the gateway is an error naming its cause; nothing here falls
//! back to acting locally. Commands that can record a change for the next start do so
//! only when the operator passes `--offline`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::CertificateError;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use writ_gateway::audit::operator_log::{Operator, OperatorLog};
use writ_gateway::config::Config;
use writ_store::DataDir;
use writ_token::{Clock, MintRequest, SystemClock, mint, parse_grants};

/// Longest wait to connect to the gateway.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for a whole answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest answer read.
const MAX_ANSWER: usize = 1 << 20;

/// How to reach the gateway: the flags every command that talks to it takes.
#[derive(Debug, Clone, clap::Args)]
pub struct GatewayArgs {
    /// The gateway's base URL (`https://host:port`); defaults to the config's admin
    /// listen address (`[admin] listen`, else `[server] listen`), over HTTPS when the config sets tls_cert.
    #[arg(long)]
    pub gateway: Option<String>,
    /// CA certificate(s) (PEM) to trust for the gateway's TLS certificate; defaults to the
    /// config's [server] tls_ca, else the public web roots. For a self-signed
    /// certificate, the certificate itself.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

/// Why the gateway could not be reached, or refused.
#[derive(Debug, thiserror::Error)]
pub enum ReachError {
    /// `--gateway` is not an http(s) URL.
    #[error("--gateway `{url}` is not an http(s)://host[:port] URL")]
    BadUrl {
        /// What was given.
        url: String,
    },
    /// The CA file could not be used.
    #[error("CA file {path}: {reason}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Nothing accepts connections there.
    #[error(
        "cannot reach the gateway at {url}: connection refused (is `writ serve` running there?)"
    )]
    Refused {
        /// The gateway's URL.
        url: String,
    },
    /// The TLS handshake failed.
    #[error("cannot reach the gateway at {url}: TLS: {reason}")]
    Tls {
        /// The gateway's URL.
        url: String,
        /// Why, and what to do.
        reason: String,
    },
    /// No connection in time.
    #[error("cannot reach the gateway at {url}: no connection within {secs}s")]
    Timeout {
        /// The gateway's URL.
        url: String,
        /// The wait.
        secs: u64,
    },
    /// Connected and sent, but no whole answer in time: the request may have been
    /// carried out.
    #[error("the gateway at {url} did not answer within {secs}s")]
    NoAnswer {
        /// The gateway's URL.
        url: String,
        /// The wait.
        secs: u64,
    },
    /// Any other failure to connect (name resolution, network unreachable…).
    #[error("cannot reach the gateway at {url}: {reason}")]
    Connect {
        /// The gateway's URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// Any other transport failure, after the request may have been sent.
    #[error("the exchange with the gateway at {url} failed: {reason}")]
    Transport {
        /// The gateway's URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The gateway answered with an error.
    #[error("the gateway at {url} refused ({status}): {message}")]
    Refusal {
        /// The gateway's URL.
        url: String,
        /// The HTTP status.
        status: StatusCode,
        /// Its error message.
        message: String,
    },
}

impl ReachError {
    /// Whether the gateway certainly did not carry out the request: it was never
    /// delivered, or the gateway refused it. After a lost answer it may have.
    pub fn changed_nothing(&self) -> bool {
        !matches!(
            self,
            ReachError::NoAnswer { .. } | ReachError::Transport { .. }
        )
    }

    /// What became of a change that failed so: `nothing` when it certainly was not
    /// made, else `unknown` (what to check before trying again).
    pub fn outcome(&self, nothing: &str, unknown: &str) -> String {
        if self.changed_nothing() {
            nothing.to_string()
        } else {
            format!("the gateway may or may not have applied it: {unknown}")
        }
    }
}

/// A gateway the CLI talks to.
pub struct GatewayClient {
    base: String,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl GatewayClient {
    /// The gateway `args` and `config` name, with the CA they say to trust.
    pub fn new(config: &Config, args: &GatewayArgs) -> Result<Self, ReachError> {
        let base = match &args.gateway {
            Some(url) => {
                let uri: http::Uri = url
                    .parse()
                    .map_err(|_| ReachError::BadUrl { url: url.clone() })?;
                if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                    return Err(ReachError::BadUrl { url: url.clone() });
                }
                url.trim_end_matches('/').to_string()
            }
            None => {
                let mut addr = config.admin_listen();
                if addr.ip().is_unspecified() {
                    addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                let scheme = if config.tls.is_some() {
                    "https"
                } else {
                    "http"
                };
                format!("{scheme}://{addr}")
            }
        };
        let ca = args.ca_file.as_deref().or(config.tls_ca.as_deref());
        let mut roots = rustls::RootCertStore::empty();
        match ca {
            Some(path) => {
                for cert in read_ca(path)? {
                    roots.add(cert).map_err(|e| ReachError::CaFile {
                        path: path.to_path_buf(),
                        reason: format!("not a usable CA certificate: {e}"),
                    })?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        // One crypto provider in the whole binary: ring, as the gateway's TLS uses.
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| ReachError::Transport {
            url: base.clone(),
            reason: format!("TLS setup failed: {e}"),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Self {
            base,
            client: Client::builder(TokioExecutor::new()).build(https),
        })
    }

    /// The gateway's base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// POSTs `body` to `path` with `writ` and returns the gateway's JSON answer.
    pub async fn post(
        &self,
        path: &str,
        writ: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, ReachError> {
        self.call(Method::POST, path, Some(writ), Some(body)).await
    }

    /// GETs `path` with `writ` and returns the gateway's JSON answer.
    pub async fn get(&self, path: &str, writ: &str) -> Result<serde_json::Value, ReachError> {
        self.call(Method::GET, path, Some(writ), None).await
    }

    /// PUTs `body` to `path` with `writ` and returns the gateway's JSON answer.
    pub async fn put(
        &self,
        path: &str,
        writ: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, ReachError> {
        self.call(Method::PUT, path, Some(writ), Some(body)).await
    }

    /// DELETEs `path` with `writ`; the gateway's JSON answer, `Null` when it has none
    /// (204 No Content).
    pub async fn delete(&self, path: &str, writ: &str) -> Result<serde_json::Value, ReachError> {
        self.call(Method::DELETE, path, Some(writ), None).await
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        writ: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, ReachError> {
        let url = self.base.clone();
        let transport = |reason: String| ReachError::Transport {
            url: url.clone(),
            reason,
        };
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(writ) = writ {
            req = req.header(header::AUTHORIZATION, format!("Bearer {writ}"));
        }
        let bytes = match body {
            Some(b) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(serde_json::to_vec(b).map_err(|e| transport(e.to_string()))?)
            }
            None => Bytes::new(),
        };
        let req = req
            .body(Full::new(bytes))
            .map_err(|e| transport(e.to_string()))?;
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| classify(&url, &e))?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| transport(format!("the answer could not be read: {e}")))?
                .to_bytes();
            Ok::<_, ReachError>((status, body))
        };
        let (status, body) = tokio::time::timeout(ANSWER_TIMEOUT, exchange)
            .await
            .map_err(|_| ReachError::NoAnswer {
                url: url.clone(),
                secs: ANSWER_TIMEOUT.as_secs(),
            })??;
        let json: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
        if !status.is_success() {
            let message = json
                .as_ref()
                .and_then(|v| v["error"]["message"].as_str())
                .unwrap_or("no error message")
                .to_string();
            return Err(ReachError::Refusal {
                url,
                status,
                message,
            });
        }
        if body.is_empty() {
            // 204 No Content (a deletion) and other empty successes have nothing to say.
            return Ok(serde_json::Value::Null);
        }
        json.ok_or_else(|| transport("the answer is not JSON: is this a writ gateway?".into()))
    }
}

/// The certificates of a PEM CA file.
pub fn read_ca(path: &Path) -> Result<Vec<CertificateDer<'static>>, ReachError> {
    let err = |reason: String| ReachError::CaFile {
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(err("holds no PEM certificate".to_string()));
    }
    Ok(certs)
}

/// Names the cause of a failed request: refused, TLS (with what to do), timeout, other.
fn classify(url: &str, err: &hyper_util::client::legacy::Error) -> ReachError {
    let url = url.to_string();
    if let Some(found) = cause(err, &url) {
        return found;
    }
    let mut reason = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        reason.push_str(": ");
        reason.push_str(&e.to_string());
        source = e.source();
    }
    if err.is_connect() {
        return ReachError::Connect { url, reason };
    }
    if url.starts_with("http://") {
        reason.push_str(" (if the gateway serves HTTPS, use an https:// URL)");
    }
    ReachError::Transport { url, reason }
}

/// The first cause in `err`'s chain that has a name. An `io::Error` wrapping another
/// error is looked into with `get_ref`: its own `source` skips the error it wraps, and
/// hyper-rustls wraps rustls's error in two of them.
fn cause(err: &(dyn std::error::Error + 'static), url: &str) -> Option<ReachError> {
    if let Some(tls) = err.downcast_ref::<rustls::Error>() {
        return Some(ReachError::Tls {
            reason: tls_reason(tls),
            url: url.to_string(),
        });
    }
    if let Some(io) = err.downcast_ref::<std::io::Error>() {
        match io.kind() {
            std::io::ErrorKind::ConnectionRefused => {
                return Some(ReachError::Refused {
                    url: url.to_string(),
                });
            }
            std::io::ErrorKind::TimedOut => {
                return Some(ReachError::Timeout {
                    url: url.to_string(),
                    secs: CONNECT_TIMEOUT.as_secs(),
                });
            }
            _ => {}
        }
        if let Some(inner) = io.get_ref() {
            return cause(inner, url);
        }
    }
    cause(err.source()?, url)
}

fn tls_reason(e: &rustls::Error) -> String {
    match e {
        // A CA of the same name that did not sign it fails as a bad signature.
        rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) => "the gateway's certificate is signed by an unknown CA: pass --ca-file with the \
              CA that signed it (or the certificate itself if self-signed), or set [server] \
              tls_ca"
            .to_string(),
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => "the gateway's certificate is not valid for this host name: pass --gateway with a \
              name the certificate holds"
            .to_string(),
        rustls::Error::InvalidMessage(_) => {
            format!("{e} (is the gateway serving plain HTTP? then use an http:// URL)")
        }
        other => other.to_string(),
    }
}

/// Mints an admin writ for one tenant or all, whose subject is `operator`: the gateway's
/// audit records of what is done with it name them.
pub fn admin_writ(
    data: &DataDir,
    config: &Config,
    operator: &Operator,
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
            agent: operator.as_str(),
            ceiling: &grants,
            grants: &grants,
            ttl,
            max_ttl: config.max_ttl,
            now: SystemClock.now(),
            cnf_jkt: None,
            audience: None,
        },
    )?;
    Ok(writ)
}

/// `writ admin token`: prints an admin writ for `operator` (else the operator of this
/// process), for one tenant or all, and records its issue in the operator's audit trail
/// (its pseudonym, scope and lifetime; never the writ).
pub async fn issue_admin_writ(
    state: &crate::settings::StateArgs,
    tenant: Option<&str>,
    ttl: Duration,
    operator: Option<String>,
) -> anyhow::Result<()> {
    let (config, data) = state.open()?;
    if let Some(t) = tenant {
        crate::settings::tenant(Some(t), &config)?;
    }
    let operator = match operator {
        Some(name) => Operator::named(&name).ok_or_else(|| {
            anyhow::anyhow!(
                "--as `{name}` is not a plain name: 1-64 characters of A-Z a-z 0-9 _ . - @"
            )
        })?,
        None => Operator::from_env(),
    };
    let writ = admin_writ(&data, &config, &operator, tenant, ttl)?;
    let keys = data.root_keys()?;
    let token_id = writ_token::decode(&writ)?
        .verify(&keys.trusted)?
        .claims()
        .token_id
        .clone();
    let mut log = OperatorLog::new(&config.audit, &data, operator.clone())?;
    let writ_pseudonym = log.pseudonym(&token_id);
    let record = log.record(writ_audit::Kind::WritMinted, "issue_admin_writ");
    record.tenant = Some(config.tenant.clone());
    record.agent = Some(operator.to_string());
    record.writ = Some(writ_pseudonym);
    if let Some(detail) = record.detail.as_mut() {
        detail.insert(
            "admin_scope".into(),
            serde_json::json!(tenant.unwrap_or("*")),
        );
        detail.insert("ttl_secs".into(), serde_json::json!(ttl.as_secs()));
    }
    log.commit().await?;
    println!("{writ}");
    Ok(())
}
