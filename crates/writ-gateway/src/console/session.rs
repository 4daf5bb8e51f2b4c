//! Console sessions: who signed in, how, over which tenants, and until when.
//!
//! A session id is 256 random bits, sent to the browser once in the `writ_console`
//! cookie; the gateway keeps only its SHA-256, so a copy of the session table signs nobody
//! in. Sessions live in this instance's memory (a restart signs everyone out, and a
//! session opened on one instance is unknown to the others), end after
//! [`IDLE_TIMEOUT`] without a request or [`ABSOLUTE_TIMEOUT`] after sign-in, both on the
//! gateway clock, and at sign-out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use writ_token::VerifiedWrit;
use zeroize::Zeroizing;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "writ_console";
/// A session ends this long after its last request.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after sign-in, however busy.
pub(crate) const ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(12 * 60 * 60);
/// Most sessions open at once on one instance; a sign-in past it is refused.
const MAX_SESSIONS: usize = 10_000;

/// How a person proved who they are when signing in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignInMethod {
    /// An admin writ exchanged for the session.
    AdminWrit,
    /// An approver token (`wap_…`).
    ApproverToken,
    /// A passkey (WebAuthn) enrolled through a one-time link.
    Passkey,
}

impl SignInMethod {
    /// The name approval records and audit records give it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SignInMethod::AdminWrit => "admin_writ",
            SignInMethod::ApproverToken => "approver_token",
            SignInMethod::Passkey => "passkey",
        }
    }
}

/// What a session may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// An admin: approvals and agents (of `tenant`, or of every tenant).
    Admin,
    /// An approver: approvals of their tenant only.
    Approver,
}

/// One signed-in person.
#[derive(Clone)]
pub(crate) struct Session {
    /// Their name, as approvals and revocations record it.
    pub(crate) person: String,
    /// The one tenant they act on; `None`: every tenant (the operator).
    pub(crate) tenant: Option<String>,
    /// What they may do.
    pub(crate) role: Role,
    /// How they signed in.
    pub(crate) method: SignInMethod,
    /// SHA-256 (hex) of the approver token signed in with: the session ends when no
    /// approver holds that token any more.
    pub(crate) approver_token_hash: Option<String>,
    /// The admin writ signed in with: the session ends as soon as it is revoked (its
    /// agent stopped, its tenant stopped, …). Held in memory only, never shown.
    pub(crate) writ: Option<Arc<VerifiedWrit>>,
    /// The credential id of the passkey signed in with: the session ends when it is no
    /// longer stored (its person removed).
    pub(crate) passkey_id: Option<String>,
    /// The token every form of this session carries (base64url of 32 random bytes).
    csrf: Zeroizing<String>,
    started: SystemTime,
    last_seen: SystemTime,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("person", &self.person)
            .field("tenant", &self.tenant)
            .field("role", &self.role)
            .field("method", &self.method)
            .field("csrf", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// Who signs in: everything a session holds but its times and CSRF token.
#[derive(Clone)]
pub(crate) struct SignIn {
    /// Their name.
    pub(crate) person: String,
    /// The one tenant they act on; `None`: every tenant.
    pub(crate) tenant: Option<String>,
    /// What they may do.
    pub(crate) role: Role,
    /// How they proved it.
    pub(crate) method: SignInMethod,
    /// SHA-256 (hex) of the approver token, for approver sign-ins.
    pub(crate) approver_token_hash: Option<String>,
    /// The admin writ, for admin-writ sign-ins.
    pub(crate) writ: Option<Arc<VerifiedWrit>>,
    /// The passkey's credential id, for passkey sign-ins.
    pub(crate) passkey_id: Option<String>,
}

impl Session {
    /// The CSRF token its forms carry.
    pub(crate) fn csrf(&self) -> &str {
        &self.csrf
    }

    /// Whether `presented` is this session's CSRF token (compared in constant time).
    pub(crate) fn csrf_matches(&self, presented: &str) -> bool {
        let expected = self.csrf.as_bytes();
        let presented = presented.as_bytes();
        expected.len() == presented.len() && bool::from(expected.ct_eq(presented))
    }

    /// Whether this session acts on `tenant`.
    pub(crate) fn reaches(&self, tenant: &str) -> bool {
        self.tenant.as_deref().is_none_or(|t| t == tenant)
    }

    fn alive_at(&self, now: SystemTime) -> bool {
        let before = |start: SystemTime, span: Duration| {
            start.checked_add(span).is_some_and(|end| now < end)
        };
        before(self.started, ABSOLUTE_TIMEOUT) && before(self.last_seen, IDLE_TIMEOUT)
    }
}

/// A session id as the browser holds it: shown once, in the cookie.
pub(crate) struct SessionId(Zeroizing<String>);

impl SessionId {
    /// The cookie value.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// The open sessions of this instance, by the SHA-256 of their ids.
#[derive(Default)]
pub(crate) struct Sessions {
    open: Mutex<HashMap<[u8; 32], Session>>,
}

fn random_token() -> Zeroizing<String> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(bytes.as_mut());
    Zeroizing::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_ref()))
}

fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    /// Opens a session for `who` at `now`: its id (for the cookie), or `None` when
    /// [`MAX_SESSIONS`] live sessions are open already.
    pub(crate) fn open(&self, who: SignIn, now: SystemTime) -> Option<SessionId> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.len() >= MAX_SESSIONS {
            open.retain(|_, s| s.alive_at(now));
            if open.len() >= MAX_SESSIONS {
                return None;
            }
        }
        let id = random_token();
        let session = Session {
            person: who.person,
            tenant: who.tenant,
            role: who.role,
            method: who.method,
            approver_token_hash: who.approver_token_hash,
            writ: who.writ,
            passkey_id: who.passkey_id,
            csrf: random_token(),
            started: now,
            last_seen: now,
        };
        open.insert(key(&id), session);
        Some(SessionId(id))
    }

    /// The live session of cookie value `id` at `now`, its idle time restarted; `None`
    /// when there is none (never opened, ended, or expired — an expired one is dropped).
    pub(crate) fn touch(&self, id: &str, now: SystemTime) -> Option<Session> {
        let k = key(id);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let session = open.get_mut(&k)?;
        if !session.alive_at(now) {
            open.remove(&k);
            return None;
        }
        session.last_seen = now;
        Some(session.clone())
    }

    /// Ends the session of cookie value `id`, if it is open.
    pub(crate) fn close(&self, id: &str) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.remove(&key(id));
    }
}

/// The `writ_console` cookie's value among the request's cookies.
pub(crate) fn cookie_value(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// The `Set-Cookie` value carrying `id`: `HttpOnly`, `SameSite=Strict`, `Path=/console`,
/// and `Secure` when the gateway serves TLS.
pub(crate) fn set_cookie(id: &SessionId, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/console{secure}",
        id.as_str()
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub(crate) fn clear_cookie(secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/console; Max-Age=0{secure}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin() -> SignIn {
        SignIn {
            person: "alice".into(),
            tenant: None,
            role: Role::Admin,
            method: SignInMethod::AdminWrit,
            approver_token_hash: None,
            writ: None,
            passkey_id: None,
        }
    }

    #[test]
    fn idle_and_absolute_expiry() {
        let sessions = Sessions::default();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let id = sessions.open(admin(), t0).expect("room");
        let mut now = t0;
        // Busy for 12 hours: never idle, then past the absolute end.
        let step = Duration::from_secs(20 * 60);
        while now + step < t0 + ABSOLUTE_TIMEOUT {
            now += step;
            assert!(sessions.touch(id.as_str(), now).is_some(), "{now:?}");
        }
        assert!(sessions.touch(id.as_str(), t0 + ABSOLUTE_TIMEOUT).is_none());
        let id = sessions.open(admin(), t0).expect("room");
        assert!(sessions.touch(id.as_str(), t0 + IDLE_TIMEOUT).is_none());
    }

    #[test]
    fn csrf_and_debug() {
        let sessions = Sessions::default();
        let now = SystemTime::UNIX_EPOCH;
        let id = sessions.open(admin(), now).expect("room");
        let s = sessions.touch(id.as_str(), now).expect("open");
        assert!(s.csrf_matches(s.csrf()));
        assert!(!s.csrf_matches(""));
        assert!(!s.csrf_matches(&format!("{}x", s.csrf())));
        assert!(!format!("{s:?}").contains(s.csrf()));
        sessions.close(id.as_str());
        assert!(sessions.touch(id.as_str(), now).is_none());
    }

    #[test]
    fn cookie_is_found_among_others() {
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::COOKIE,
            "a=1; writ_console=abc; b=2".parse().expect("hv"),
        );
        assert_eq!(cookie_value(&h), Some("abc"));
        h.insert(http::header::COOKIE, "writ_console=".parse().expect("hv"));
        assert_eq!(cookie_value(&h), None);
    }
}
