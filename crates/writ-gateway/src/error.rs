//! Every way a gateway request fails, and the one place those become HTTP responses.
//!
//! Vague outward, exact inward: the client gets a status, a stable `code` and a short
//! message that says what to do next, in the error shape of the dialect its route
//! speaks (OpenAI's `{"error":{"message","type","code","param"}}` unless the route is
//! Anthropic's, Google's or Bedrock's: `writ_providers` renders each); the precise cause
//! goes to the log. No message ever contains a writ or a credential, and nothing an
//! upstream sent about its credential is passed on.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::json;
use writ_providers::{Dialect, GatewayErrorReport, InspectError};
use writ_token::{DeniedBy, WritError};

mod approval;
mod class;

pub use approval::ApprovalError;
pub use class::Class;

/// A request the gateway refused or could not complete.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// No credential header carried a writ.
    #[error("no writ presented")]
    MissingWrit,
    /// The writ failed to decode, verify or authorize.
    #[error(transparent)]
    Writ(#[from] WritError),
    /// A DPoP proof is missing, malformed, or does not match the request or the writ.
    #[error(transparent)]
    Dpop(writ_token::dpop::DpopError),
    /// An approval held the request, or could not be used or decided.
    #[error(transparent)]
    Approval(#[from] ApprovalError),
    /// An approver token no approver holds (mistyped, or the approver was removed).
    #[error(
        "this approver token is not the token of any approver (mistyped, or the approver was removed): ask a tenant admin for a new one (`writ approver add`)"
    )]
    UnknownApproverToken,
    /// A single-use writ was presented again.
    #[error("this single-use writ was already used: mint a new writ for each call")]
    AlreadyUsed,
    /// No route has this path.
    #[error("no route for this path")]
    NotFound,
    /// The path exists, not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The admin API is off on this listener: it is reachable from other hosts without
    /// TLS, and `allow_plaintext_admin` is not set.
    #[error(
        "the admin API is disabled on this listener: it is reachable from other hosts without \
         TLS, where admin writs would cross the network in clear text; serve TLS (tls_cert, \
         tls_key), listen on 127.0.0.1, or set [server] allow_plaintext_admin = true"
    )]
    AdminApiDisabled,
    /// The request names an upstream that is not configured.
    #[error(
        "unknown upstream: no upstream of this API is configured under the name the x-writ-upstream header or the path gives"
    )]
    UnknownUpstream,
    /// The upstream is known to the writ's tenant but cannot serve it now: no credential is
    /// set for the tenant, or its settings or credential cannot be used.
    #[error(
        "upstream `{upstream}` cannot serve tenant `{tenant}`: {}",
        match why {
            Unavailable::NoCredential => format!(
                "no credential is set for this tenant; a tenant admin sets one: \
                 `writ secret set {upstream} --tenant {tenant}` (reads the secret from stdin)"
            ),
            Unavailable::Invalid(reason) => format!(
                "{reason}; a tenant admin can set a new credential (`writ secret set {upstream} \
                 --tenant {tenant}`) or fix the upstream (`writ upstream show {upstream} --tenant {tenant}`)"
            ),
        }
    )]
    UpstreamUnavailable {
        /// The writ's tenant.
        tenant: String,
        /// The upstream named.
        upstream: String,
        /// Why it cannot serve.
        why: Unavailable,
    },
    /// No upstream serving this API is configured, or several are and none was chosen.
    #[error(
        "no upstream chosen for this API: {reason}{}",
        if choices.is_empty() { String::new() } else { format!(" ({})", choices.join(", ")) }
    )]
    NoUpstream {
        /// Why none was chosen.
        reason: &'static str,
        /// The upstreams the request could name, when there is a choice to make.
        choices: Vec<String>,
    },
    /// The body is larger than allowed.
    #[error("request body exceeds {limit} bytes")]
    BodyTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The body could not be read from the client.
    #[error("request body could not be read")]
    BodyRead,
    /// The body is not what this route accepts.
    #[error(transparent)]
    InvalidBody(#[from] InspectError),
    /// A writ was sent in the URL query, where logs keep it.
    #[error("a writ was sent in the URL; send it in the Authorization header instead")]
    WritInUrl,
    /// A credential was found in the URL (by name or by its shape).
    #[error(
        "a credential ({rule}) was sent in the URL, in the {location}; URLs are written to logs along the way, so send credentials in a header (Authorization: Bearer …) or the body instead"
    )]
    CredentialInUrl {
        /// Where: `query parameter \`key\`` or `path segment #2`; never the value.
        location: String,
        /// Which rule matched.
        rule: &'static str,
    },
    /// A request body holds what looks like a credential, and the tenant blocks that.
    #[error(
        "the request body contains what looks like a credential ({rules}); it was not sent upstream. Remove it: the gateway adds the upstream's credential itself, and secrets in prompts end up in model providers' logs"
    )]
    SecretInRequest {
        /// Rule ids that matched, comma-separated; never the values.
        rules: String,
    },
    /// A pass-through path has segments an upstream could read differently.
    #[error("path has `.`, `..` or empty segments, or an encoded slash")]
    InvalidPath,
    /// Tool arguments cannot be stated as facts.
    #[error(transparent)]
    InvalidArguments(#[from] writ_token::ArgumentsError),
    /// An MCP method the gateway does not know, which no grant can allow.
    #[error(
        "this MCP method is not available through the gateway: it authorizes tools/call, prompts/get, resources/read and subscribe, completion/complete, the lists and session upkeep"
    )]
    UnknownMcpMethod,
    /// An MCP request's transport headers disagree with its body, or name a protocol
    /// version the gateway does not pass on.
    #[error(transparent)]
    McpTransport(#[from] writ_providers::mcp::transport::TransportError),
    /// A header is malformed.
    #[error("invalid header `{name}`")]
    InvalidHeader {
        /// The header name.
        name: &'static str,
    },
    /// An `Mcp-Session-Id` names no session of this agent at this upstream: one never
    /// assigned, ended, expired, or another agent's. The answer does not tell these apart,
    /// so a client learns nothing about sessions not its own.
    #[error(
        "unknown MCP session: it has ended, or was never this agent's at this upstream; start a new session with an initialize request that carries no Mcp-Session-Id"
    )]
    UnknownSession,
    /// The `Mcp-Session-Id` header is malformed or repeated, or missing where the request
    /// needs one.
    #[error("invalid Mcp-Session-Id header: {reason}")]
    InvalidSessionId {
        /// What is wrong, and what a valid one is.
        reason: &'static str,
    },
    /// The `Origin` header of a request to an MCP endpoint is not an allowed origin (or
    /// not an origin at all): a web page of another site is calling it.
    #[error(
        "the Origin header is not an origin allowed to call this MCP endpoint: only the gateway's own origin and those the operator lists in [server] mcp_allowed_origins are"
    )]
    OriginNotAllowed,
    /// The upstream could not be reached, or did not answer in time.
    #[error("upstream `{upstream}` {cause}")]
    UpstreamUnreachable {
        /// The upstream's configured name.
        upstream: String,
        /// What failed.
        cause: UpstreamFailure,
    },
    /// The upstream refused the credential the gateway injected (its 401 or 403): the
    /// provider key is wrong or revoked, which the operator must fix, not the agent.
    #[error(
        "upstream `{upstream}` refused {} ({status}): {}",
        match tenant_credential {
            Some((tenant, version)) => format!("tenant `{tenant}`'s credential, version {version}"),
            None => "the gateway's credential".to_string(),
        },
        match tenant_credential {
            Some((tenant, _)) => format!(
                "a tenant admin sets a working one with `writ secret set {upstream} --tenant {tenant}` \
                 (or rolls back with `writ secret activate`)"
            ),
            None => "the operator must fix its key".to_string(),
        }
    )]
    UpstreamCredentialRefused {
        /// The upstream's configured name.
        upstream: String,
        /// When the credential was a tenant's own (from the vault): the tenant and version.
        tenant_credential: Option<(String, u32)>,
        /// Its status, 401 or 403.
        status: u16,
    },
    /// The writ does not allow this request: what was asked, who can lift it, and the
    /// output cap the writ would allow when that is what refused it.
    #[error("{}", .0.message())]
    Denied(Box<DeniedRequest>),
    /// A tenant policy (the operator's checks on every request of the tenant) refused the
    /// request: which policy and check, and who can change it.
    #[error("{}", .0.message())]
    DeniedByPolicy(Box<PolicyRefusal>),
    /// The upstream stopped sending its answer for longer than its `read_timeout`.
    #[error(
        "the upstream stopped sending its answer for longer than the gateway waits (the upstream's read_timeout); try again later"
    )]
    UpstreamTimeout,
    /// The upstream connection failed while its answer was read.
    #[error(
        "the upstream broke off its answer (its connection was closed or reset midway); try again"
    )]
    UpstreamFailed,
    /// The gateway could not obtain the credential for the upstream (a token exchange failed).
    #[error(
        "the gateway could not obtain its credential for the upstream (its token exchange failed): the operator must fix the upstream's service account"
    )]
    UpstreamAuth,
    /// An admin request body is not acceptable.
    #[error("invalid request: {reason}")]
    InvalidRequest {
        /// What is wrong, in words.
        reason: String,
    },
    /// An admin request body is declared (`Content-Type`) as something other than JSON.
    #[error("the body must be JSON: send it with Content-Type: application/json")]
    UnsupportedMediaType,
    /// A revocation names an agent, tenant or writ that does not exist (the admin may
    /// insist with `"force": true`).
    #[error("{reason}")]
    NothingToRevoke {
        /// What does not exist, and what to do.
        reason: String,
    },
    /// A lift names no recorded revocation.
    #[error("no revocation with id {id}; `GET /admin/v1/revocations` lists them")]
    UnknownRevocation {
        /// The id asked for.
        id: i64,
    },
    /// A lift names a revocation that cannot be lifted (permanent, or lifted already).
    #[error("{reason}")]
    CannotLift {
        /// Why.
        reason: String,
    },
    /// State could not be read or written.
    #[error("storage failure")]
    Storage(#[from] writ_store::StoreError),
    /// The upstream answered with a server error.
    #[error("upstream `{upstream}` failed with status {status}; try again later")]
    UpstreamStatus {
        /// The upstream's configured name.
        upstream: String,
        /// The upstream's status.
        status: u16,
    },
    /// The upstream's success response is not what the API promises.
    #[error(
        "the upstream's answer is not what its API promises (not JSON, or JSON that cannot be read one way only); try again, and tell the operator if it persists"
    )]
    UpstreamInvalid,
    /// The upstream's response is larger than the configured cap.
    #[error(
        "the upstream's answer is larger than the gateway passes on (the upstream's max_response_bytes); ask for less output, or ask the operator to raise the limit"
    )]
    UpstreamTooLarge,
    /// A limit refused the request.
    #[error("limit reached: {} {} for {}", .0.limit, .0.dimension.as_str(), .0.scope)]
    RateLimited(Box<writ_limits::Refusal>),
    /// Too many invalid writs from this address: it must wait.
    #[error(
        "too many invalid writs from this address: {}, retry after {retry_after_secs}s",
        if *.locked { "blocked" } else { "slowed down" }
    )]
    AuthThrottled {
        /// Seconds to wait.
        retry_after_secs: u64,
        /// Blocked (rather than slowed down).
        locked: bool,
    },
    /// The audit log cannot be written and the gateway is in strict audit mode.
    #[error("the audit log cannot be written; requests are refused until it can")]
    AuditUnavailable,
    /// The limit backend is unreachable and the gateway fails closed.
    #[error("the limit backend is unavailable")]
    LimiterUnavailable,
    /// A bug or misconfiguration inside the gateway.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

/// Why an upstream could not be reached, by class: what the operator checks next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamFailure {
    /// Its host name did not resolve.
    Dns,
    /// Its host resolves only to private or metadata addresses, which egress refuses.
    Egress,
    /// The TCP connection was refused or the host is unreachable.
    Connect,
    /// The TLS handshake failed (certificate not trusted, wrong name, protocol).
    Tls,
    /// No response headers within the upstream's `timeout`.
    Timeout {
        /// The configured timeout, in whole seconds (at least 1).
        secs: u64,
    },
    /// The connection broke after it was made.
    Broken,
    /// The server the gateway starts (`command`) could not be started or did not complete
    /// the MCP handshake.
    NotStarted,
    /// The server the gateway starts exited before answering (it is started again).
    Exited,
    /// The server the gateway starts does not read its input.
    NotReading,
}

impl std::fmt::Display for UpstreamFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamFailure::Dns => f.write_str(
                "could not be reached: DNS lookup of its host failed (the operator should check its base_url)",
            ),
            UpstreamFailure::Egress => f.write_str(
                "could not be reached: its host resolves only to private addresses, which the gateway refuses unless the upstream sets allow_private_network",
            ),
            UpstreamFailure::Connect => f.write_str(
                "could not be reached: the TCP connection was refused or the host is unreachable",
            ),
            UpstreamFailure::Tls => f.write_str(
                "could not be reached: the TLS handshake failed (certificate not trusted or not for this host)",
            ),
            UpstreamFailure::Timeout { secs } => {
                write!(f, "did not answer within {secs}s; try again later")
            }
            UpstreamFailure::Broken => {
                f.write_str("closed the connection before answering; try again")
            }
            UpstreamFailure::NotStarted => f.write_str(
                "could not be started: its process failed to start or to complete the MCP handshake (the operator should check its command and the gateway's log)",
            ),
            UpstreamFailure::Exited => {
                f.write_str("exited before answering; it is being restarted, try again")
            }
            UpstreamFailure::NotReading => {
                f.write_str("is not reading its input; try again later")
            }
        }
    }
}

/// A data-plane request the writ does not allow.
#[derive(Debug)]
pub struct DeniedRequest {
    /// Why, as the authorizer said.
    pub denial: writ_token::Denial,
    /// What was asked, in words (`chat with model \`gpt-4o\` on upstream \`openai\``).
    pub asked: String,
    /// When the output cap refused it: the largest cap the writ allows, and the request
    /// field that states it in the caller's API.
    pub cap: Option<(u64, &'static str)>,
}

impl DeniedRequest {
    /// What the sender should do, in words; the failed checks go in `detail`.
    fn message(&self) -> String {
        if let Some((max, field)) = self.cap {
            return format!("this writ allows at most {max} output tokens: set {field} ≤ {max}");
        }
        if self.denial.run_limit {
            return format!(
                "this writ's checks took too long to evaluate for {}: use a writ with fewer or simpler checks",
                self.asked
            );
        }
        let next = match self.denial.denied_by() {
            DeniedBy::Audience => {
                "the writ is bound to another resource (its audience): mint one with `resource` set to this endpoint's URI"
            }
            DeniedBy::Ceiling => {
                "the agent's registered ceiling does not cover it: the operator must widen it (`writ agent update`)"
            }
            DeniedBy::MintGrants => "mint a writ whose grants (authorization_details) cover it",
            DeniedBy::Attenuation => {
                "a holder narrowed this writ: ask whoever issued it for one that covers it"
            }
            DeniedBy::Unknown => "mint a writ whose grants cover it",
        };
        format!("this writ does not allow {}: {next}", self.asked)
    }
}

/// A data-plane request a tenant policy refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRefusal {
    /// Which policy and check refused it, as the policy said.
    pub denial: writ_token::PolicyDenial,
    /// The tenant whose policy it is, when known.
    pub tenant: Option<String>,
}

impl PolicyRefusal {
    /// The refusal in words: the policy and its failed check (the operator's own text,
    /// no secret), and who can change it.
    fn message(&self) -> String {
        let tenant = self
            .tenant
            .as_deref()
            .map(|t| format!(" --tenant {t}"))
            .unwrap_or_default();
        match self.denial.policy() {
            Some(name) => format!(
                "{}; a tenant admin can change it: `writ policy show {name}{tenant}`",
                self.denial
            ),
            None => format!(
                "{}; a tenant admin can review them: `writ policy list{tenant}`",
                self.denial
            ),
        }
    }
}

/// Whose fault a failure is; decides log level and the `type` clients see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The client sent something wrong.
    Client,
    /// The upstream failed.
    Upstream,
    /// The gateway failed.
    Internal,
}

impl GatewayError {
    /// The message clients see: the cause in words, never a secret.
    fn public_message(&self) -> String {
        match self {
            GatewayError::MissingWrit => {
                "No writ presented. Send it as `Authorization: Bearer writ_…` \
                (or in x-api-key, api-key or x-goog-api-key)."
                    .to_string()
            }
            GatewayError::Writ(WritError::Denied(_)) => {
                "This writ does not allow this request: mint a writ whose grants cover it."
                    .to_string()
            }
            GatewayError::Writ(WritError::Expired { .. }) => {
                "The writ has expired; mint a new one.".to_string()
            }
            GatewayError::Writ(WritError::Revoked) => {
                "This writ was revoked (it, a writ it was narrowed from, its agent or its \
                 tenant): mint a new one; if that is refused, ask the operator."
                    .to_string()
            }
            GatewayError::Writ(WritError::Datalog(
                e @ writ_token::DatalogError::TooCostly { .. },
            )) => {
                format!(
                    "The writ's checks could cost too much to evaluate for this request ({e}). \
                     Send fewer arguments or path segments, or use a writ without the costly checks."
                )
            }
            GatewayError::Writ(WritError::Datalog(e)) => format!(
                "The writ is refused: {e}. Attenuate writs with grants or checks only \
                 (`writ token attenuate`), not rules."
            ),
            GatewayError::Writ(
                e @ (WritError::Grant(_) | WritError::TtlOutOfRange { .. } | WritError::Build(_)),
            ) => {
                tracing::error!(error = %e, "token error on the data plane");
                "Internal error.".to_string()
            }
            GatewayError::Internal(_) => "Internal error.".to_string(),
            GatewayError::RateLimited(r) => {
                let window = match r.window_secs {
                    1 if r.dimension == writ_limits::Dimension::Concurrency => {
                        "in flight".to_string()
                    }
                    1 => "per second".to_string(),
                    60 => "per minute".to_string(),
                    3600 => "per hour".to_string(),
                    86_400 => "per day".to_string(),
                    2_592_000 => "per month".to_string(),
                    s => format!("per {s}s"),
                };
                if r.too_large {
                    // OpenAI answers a request larger than a limit so too: 429, "Request too large".
                    return format!(
                        "Request too large: it needs {} {dimension}, more than the limit of {} \
                         {dimension} {window} for {}, so no wait lets it through. Ask for less \
                         (a lower max_tokens, a shorter prompt) or use a writ or limit that \
                         allows more.",
                        r.amount,
                        r.limit,
                        r.scope,
                        dimension = r.dimension.as_str(),
                    );
                }
                format!(
                    "Limit reached: {} {} {window} for {}. Retry after {}s.",
                    r.limit,
                    r.dimension.as_str(),
                    r.scope,
                    r.retry_after.as_secs_f64().ceil().max(1.0) as u64
                )
            }
            GatewayError::Storage(writ_store::StoreError::Conflict { what, name }) => format!(
                "A {what} named `{name}` exists already: choose another name, or read the \
                 existing one and change it."
            ),
            GatewayError::Storage(writ_store::StoreError::Refused(reason)) => {
                format!("Refused: {reason}.")
            }
            GatewayError::Storage(e @ writ_store::StoreError::NotFound { .. }) => {
                format!("Not found: {e}; list what exists with the matching GET route.")
            }
            GatewayError::Storage(_) => {
                "The gateway cannot reach its storage; try again.".to_string()
            }
            other => {
                let mut m = other.to_string();
                if let Some(first) = m.get_mut(0..1) {
                    first.make_ascii_uppercase();
                }
                m.push('.');
                m
            }
        }
    }
}

/// Builds the JSON error body in OpenAI's shape.
pub fn error_body(
    status: StatusCode,
    kind: &str,
    code: &str,
    message: &str,
    param: Option<&str>,
) -> Response {
    let body = json!({"error": {"message": message, "type": kind, "code": code, "param": param}});
    (status, Json(body)).into_response()
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        self.into_response_for(Dialect::GATEWAY)
    }
}

impl GatewayError {
    /// The precise cause a person reading the body needs and the message does not say:
    /// the failed checks of a denial.
    fn detail(&self) -> Option<String> {
        match self {
            GatewayError::Denied(d) => Some(d.denial.to_string()),
            GatewayError::Writ(WritError::Denied(d)) => Some(d.to_string()),
            _ => None,
        }
    }

    /// The response for a request on a route of `dialect`, in that dialect's error shape.
    pub fn into_response_for(self, dialect: Dialect) -> Response {
        self.into_response_to(dialect, None)
    }

    /// Machine-readable fields of this error beyond its code, for shapes that carry them:
    /// the versions an unsupported MCP protocol version refusal names.
    fn extra(&self) -> Option<serde_json::Value> {
        match self {
            GatewayError::Approval(ApprovalError::Required {
                id,
                poll_url,
                reason,
                expires_at,
                summary,
            }) => Some(json!({
                "approval": {
                    "id": id,
                    "poll_url": poll_url,
                    "reason": reason,
                    "expires_at": expires_at,
                    "summary": summary,
                }
            })),
            GatewayError::McpTransport(
                writ_providers::mcp::transport::TransportError::UnsupportedVersion {
                    requested,
                    per_request,
                },
            ) => Some(json!({
                "supported": writ_providers::mcp::transport::supported_versions(*per_request),
                "requested": requested,
            })),
            _ => None,
        }
    }

    /// Like [`into_response_for`](Self::into_response_for), answering the JSON-RPC
    /// request `rpc_id` on an MCP route.
    pub fn into_response_to(
        self,
        dialect: Dialect,
        rpc_id: Option<&serde_json::Value>,
    ) -> Response {
        let Class {
            status,
            kind,
            code,
            fault,
        } = self.classify();
        match fault {
            Fault::Client => tracing::debug!(code, error = %self, "request refused"),
            Fault::Upstream => tracing::warn!(code, error = %self, "upstream failure"),
            Fault::Internal => tracing::error!(code, error = %self, "internal failure"),
        }
        let param = match &self {
            GatewayError::InvalidBody(i) => i.param(),
            GatewayError::Denied(d) => d.cap.map(|(_, field)| field),
            _ => None,
        };
        let message = self.public_message();
        let detail = self.detail();
        let extra = self.extra();
        let report = GatewayErrorReport {
            status: status.as_u16(),
            kind,
            code,
            message: &message,
            param,
            detail: detail.as_deref(),
            rpc_id,
            extra: extra.as_ref(),
        };
        let mut response = (status, Json(dialect.error_body(&report))).into_response();
        if let GatewayError::RateLimited(refusal) = &self {
            crate::limits::headers::refusal_headers(refusal, response.headers_mut());
        }
        if let GatewayError::BodyTooLarge { .. } = &self {
            // The rest of the body may be left unread (always when its declared length is
            // over the limit), and then the connection cannot carry another request: say
            // so, or a client puts it back in its pool and its next request on it fails.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let GatewayError::AuthThrottled {
            retry_after_secs, ..
        } = &self
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
        if let GatewayError::Dpop(reason) = &self {
            // RFC 9449 §7.1: the challenge names the scheme, the error and the algorithms.
            let challenge = format!(
                r#"DPoP algs="{}", error="invalid_dpop_proof", error_description="{reason}""#,
                writ_token::dpop::ALGS
            );
            if let Ok(value) = HeaderValue::try_from(challenge) {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, value);
            }
        } else if status == StatusCode::UNAUTHORIZED {
            // RFC 6750 §3: tell Bearer clients what kind of credential failed.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer realm="writ", error="invalid_token""#),
            );
        }
        response
    }
}

/// Why an upstream known to a tenant cannot serve it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unavailable {
    /// No credential is set for this tenant.
    NoCredential,
    /// Its settings or credential could not be used: the reason.
    Invalid(String),
}
