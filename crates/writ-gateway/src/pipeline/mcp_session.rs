//! MCP sessions (Streamable HTTP up to revision 2025-11-25): an `Mcp-Session-Id` an MCP
//! upstream assigns is bound to the agent it was assigned to, and only that agent may speak
//! in it, at that upstream.
//!
//! - **Learning**: when an upstream's answer carries `Mcp-Session-Id` (on the response to
//!   `initialize`), the session is bound to the agent acting with the writ — the last
//!   delegate of a delegated writ, not the agent that delegated — before the client sees
//!   the id. Bindings live in the limiter backend ([`crate::limits::sessions`]), as
//!   digests: across instances with Redis.
//! - **Checking**: a request carrying `Mcp-Session-Id` (whatever its method, `initialize`
//!   included) is refused before anything is forwarded unless the session is bound to the
//!   same agent at the same upstream: 404 ([`GatewayError::UnknownSession`]), what the spec
//!   answers for a session that ended, so an honest client starts a new one and a hostile
//!   one cannot tell another agent's session from one that never existed. A malformed id
//!   (not 1 to 256 visible ASCII characters, or sent twice) is 400.
//! - **Ending**: `DELETE /mcp/{upstream}` with the session's id is authorized as session
//!   upkeep is (any tool grant on the upstream), forwarded, and the binding forgotten once
//!   the upstream accepts it; a 404 from the upstream (it ended the session itself) also
//!   forgets it.
//!
//! - **Listening**: `GET /mcp/{upstream}` with the session's id opens the legacy standalone
//!   stream, authorized as session upkeep and streamed through like any answer: the
//!   server's own messages to the client (a sampling or elicitation request not tied to a
//!   call, change notifications) travel on it, and the client's answers come back as POSTs
//!   of that session. Without a session there is nothing to listen to: 400.

use axum::body::Bytes;
use http::{HeaderMap, Method, StatusCode};
use writ_limits::{Bound, SessionKey, SessionOwner};
use writ_providers::RouteSpec;
use writ_token::{Api, RequestFacts, VerifiedWrit};

use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::pipeline::route::Target;

/// The header a session's id travels in, both ways.
const HEADER: &str = "mcp-session-id";

/// The longest session id accepted. The spec sets no length; ids are UUIDs, JWTs or
/// hashes, and anything longer is refused rather than stored or forwarded.
pub(crate) const MAX_SESSION_ID_LEN: usize = 256;

/// Why an `Mcp-Session-Id` header is not a session id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionIdError {
    /// The header was sent more than once.
    Repeated,
    /// The value is empty.
    Empty,
    /// Longer than [`MAX_SESSION_ID_LEN`].
    TooLong,
    /// A character outside visible ASCII (0x21–0x7E), as the spec requires.
    NotVisibleAscii,
}

impl SessionIdError {
    /// What is wrong, and what a valid id is, in words.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::Repeated => "sent more than once; send the session's one id",
            Self::Empty => "empty; a session id is 1 to 256 visible ASCII characters",
            Self::TooLong => "longer than 256 characters",
            Self::NotVisibleAscii => {
                "has characters outside visible ASCII (0x21 to 0x7E), which a session id never has"
            }
        }
    }
}

/// The session id in `headers`, if one is sent: refused as [`SessionIdError`] when it is
/// repeated, empty, too long, or not visible ASCII.
pub(crate) fn session_id(headers: &HeaderMap) -> Result<Option<&str>, SessionIdError> {
    let mut values = headers.get_all(HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(SessionIdError::Repeated);
    }
    let bytes = value.as_bytes();
    if bytes.is_empty() {
        return Err(SessionIdError::Empty);
    }
    if bytes.len() > MAX_SESSION_ID_LEN {
        return Err(SessionIdError::TooLong);
    }
    if !bytes.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(SessionIdError::NotVisibleAscii);
    }
    value
        .to_str()
        .map(Some)
        .map_err(|_| SessionIdError::NotVisibleAscii)
}

/// A request on an MCP route, as far as sessions go: who asks, at which upstream, and in
/// which session (checked to be theirs).
#[derive(Debug)]
pub(crate) struct Session {
    upstream: String,
    owner: SessionOwner,
    /// The session the request speaks in: bound to `owner` at `upstream`.
    presented: Option<SessionKey>,
    /// The request is a DELETE, which ends `presented`.
    ends: bool,
}

/// The request facts of a DELETE that ends an MCP session or a GET that listens to it,
/// which have no body to inspect: session upkeep (the operation `initialize` and `ping`
/// are), so any tool grant on the upstream allows them. `None` for any other request; a
/// DELETE or GET with a body is refused.
pub(crate) fn ending_facts(
    route: &RouteSpec,
    target: &Target,
    method: &Method,
    body: &Bytes,
) -> Result<Option<RequestFacts>, GatewayError> {
    if !route.is_mcp_transport() || (method != Method::DELETE && method != Method::GET) {
        return Ok(None);
    }
    if !body.is_empty() {
        return Err(GatewayError::InvalidRequest {
            reason: format!("a {method} of an MCP session has no body"),
        });
    }
    Ok(Some(RequestFacts {
        upstream: Some(target.upstream.name.clone()),
        ..RequestFacts::new(Api::Tool, "tool_session", method.as_str(), "/")
    }))
}

/// Checks the session a request on an MCP route speaks in (see the module's
/// documentation): `Ok(None)` on other routes. Refused with
/// [`GatewayError::InvalidSessionId`] for a malformed id or a DELETE without one,
/// [`GatewayError::UnknownSession`] for a session not bound to this agent at this
/// upstream, and [`GatewayError::LimiterUnavailable`] when no store can tell.
pub(crate) async fn check(
    gw: &Gateway,
    route: &RouteSpec,
    target: &Target,
    method: &Method,
    headers: &HeaderMap,
    writ: &VerifiedWrit,
) -> Result<Option<Session>, GatewayError> {
    if !route.is_mcp_transport() {
        return Ok(None);
    }
    let id =
        session_id(headers).map_err(|e| GatewayError::InvalidSessionId { reason: e.reason() })?;
    let ends = method == Method::DELETE;
    if ends && id.is_none() {
        return Err(GatewayError::InvalidSessionId {
            reason: "missing: a DELETE ends the session whose id it sends",
        });
    }
    if method == Method::GET && id.is_none() {
        return Err(GatewayError::InvalidSessionId {
            reason: "missing: a GET listens to the session whose id it sends",
        });
    }
    let (tenant, agent) = writ.acting_agent();
    let owner = SessionOwner::new(tenant, agent);
    let upstream = target.upstream.name.clone();
    let presented = match id {
        None => None,
        Some(id) => {
            let key = SessionKey::new(&upstream, id);
            match gw.mcp_sessions.owner(&key, gw.clock.now()).await {
                Ok(Some(bound)) if bound == owner => Some(key),
                Ok(_) => return Err(GatewayError::UnknownSession),
                Err(e) => {
                    tracing::error!(error = %e, "session check impossible; refusing (fail closed)");
                    return Err(GatewayError::LimiterUnavailable);
                }
            }
        }
    };
    Ok(Some(Session {
        upstream,
        owner,
        presented,
        ends,
    }))
}

/// Records what the upstream's answer (`status`, `headers`) did to the session, before the
/// client sees it: a session it assigned is bound to the agent; one it accepted to end, or
/// says is gone (404), is forgotten. Refused with [`GatewayError::UpstreamInvalid`] when it
/// assigns a malformed id or one bound to another agent (neither is passed on), and
/// [`GatewayError::LimiterUnavailable`] when no store can bind it.
pub(crate) async fn settle(
    gw: &Gateway,
    session: Option<&Session>,
    status: StatusCode,
    headers: &HeaderMap,
) -> Result<(), GatewayError> {
    let Some(s) = session else {
        return Ok(());
    };
    if let Some(key) = &s.presented
        && ((s.ends && status.is_success()) || status == StatusCode::NOT_FOUND)
        && let Err(e) = gw.mcp_sessions.end(key, s.owner).await
    {
        // Kept until it expires: it still lets no one else in.
        tracing::warn!(error = %e, upstream = %s.upstream, "ended session could not be forgotten");
    }
    if s.ends {
        return Ok(());
    }
    let assigned = match session_id(headers) {
        Ok(None) => return Ok(()),
        Ok(Some(id)) => id,
        Err(e) => {
            tracing::warn!(upstream = %s.upstream, problem = e.reason(), "upstream assigned a malformed session id");
            return Err(GatewayError::UpstreamInvalid);
        }
    };
    let key = SessionKey::new(&s.upstream, assigned);
    if s.presented == Some(key) {
        return Ok(());
    }
    match gw.mcp_sessions.bind(&key, s.owner, gw.clock.now()).await {
        Ok(Bound::New | Bound::Same) => Ok(()),
        Ok(Bound::Other) => {
            tracing::warn!(upstream = %s.upstream, "upstream assigned a session bound to another agent; not passed on");
            Err(GatewayError::UpstreamInvalid)
        }
        Err(e) => {
            tracing::error!(error = %e, "session could not be bound; refusing (fail closed)");
            Err(GatewayError::LimiterUnavailable)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(HEADER, HeaderValue::from_bytes(v).expect("a header value"));
        }
        h
    }

    #[test]
    fn a_session_id_is_one_short_visible_ascii_value() {
        assert_eq!(session_id(&HeaderMap::new()), Ok(None));
        let uuid = b"1868a90c-5a1f-4c3e-9f7e-2b8d6f0e4a11";
        assert_eq!(
            session_id(&headers(&[uuid])),
            Ok(Some("1868a90c-5a1f-4c3e-9f7e-2b8d6f0e4a11"))
        );
        let longest = vec![b'~'; MAX_SESSION_ID_LEN];
        assert_eq!(
            session_id(&headers(&[&longest])).map(|id| id.map(str::len)),
            Ok(Some(MAX_SESSION_ID_LEN))
        );
        for (values, error) in [
            (vec![&uuid[..], &uuid[..]], SessionIdError::Repeated),
            (vec![&b""[..]], SessionIdError::Empty),
            (
                vec![&[b'a'; MAX_SESSION_ID_LEN + 1][..]],
                SessionIdError::TooLong,
            ),
            (vec![&b"has space"[..]], SessionIdError::NotVisibleAscii),
            (vec![&b"tab\there"[..]], SessionIdError::NotVisibleAscii),
            (
                vec!["caf\u{e9}".as_bytes()],
                SessionIdError::NotVisibleAscii,
            ),
            (vec![&b"\xff"[..]], SessionIdError::NotVisibleAscii),
        ] {
            assert_eq!(session_id(&headers(&values)), Err(error), "{values:?}");
        }
    }
}
