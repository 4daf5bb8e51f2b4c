//! Console sessions: who signed in, how, over which tenants, and until when.
//!
//! A session id is 256 random bits, sent to the browser once in the `writ_console`
//! cookie. Sessions are kept in the store every instance shares, keyed by the id's
//! SHA-256, so a person signed in on one instance is signed in on all of them, and a copy
//! of the table signs nobody in. A session ends after [`IDLE_TIMEOUT`] without a request
//! or [`ABSOLUTE_TIMEOUT`] after sign-in, both on the gateway clock, and at sign-out.
//! Its CSRF token is derived from its id, so every instance checks it alike.

use std::time::{Duration, SystemTime};

use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use writ_store::{ConsoleSession, Store, StoreError};
use writ_token::RevocationSubject;
use zeroize::Zeroizing;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "writ_console";
/// A session ends this long after its last request.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after sign-in, however busy.
pub(crate) const ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(12 * 60 * 60);
/// Most sessions open at once (over every instance); a sign-in past it is refused.
const MAX_SESSIONS: u64 = 10_000;

/// How a person proved who they are when signing in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignInMethod {
    /// An admin writ exchanged for the session.
    AdminWrit,
    /// An approver token (`wap_…`).
    ApproverToken,
    /// A passkey (WebAuthn).
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

    fn parse(s: &str) -> Option<Self> {
        [Self::AdminWrit, Self::ApproverToken, Self::Passkey]
            .into_iter()
            .find(|m| m.as_str() == s)
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

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Approver => "approver",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::Admin, Self::Approver]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
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
    /// What revocation reads of the admin writ signed in with: the session ends as soon
    /// as that writ is revoked (its agent stopped, its tenant stopped, …).
    pub(crate) writ: Option<RevocationSubject>,
    /// The credential id of the passkey signed in with: the session ends when it is no
    /// longer stored (its person removed).
    pub(crate) passkey_id: Option<String>,
    /// The token every form of this session carries.
    csrf: Zeroizing<String>,
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
    /// What revocation reads of the admin writ, for admin-writ sign-ins.
    pub(crate) writ: Option<RevocationSubject>,
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
}

/// A session id as the browser holds it: shown once, in the cookie.
pub(crate) struct SessionId(Zeroizing<String>);

impl SessionId {
    /// The cookie value.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a stored session is checked against on every request (the store's `proof`
/// column, JSON): never a credential.
#[derive(Serialize, Deserialize)]
struct Proof {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    approver_token_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    writ: Option<RevocationSubject>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    passkey_id: Option<String>,
}

fn random_token() -> Zeroizing<String> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(bytes.as_mut());
    Zeroizing::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_ref()))
}

/// The store's key of session id `id`: its SHA-256, hex.
fn key(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

/// The CSRF token of session id `id`: derived from the id (which only the browser holds)
/// under its own label, so every instance computes it and the store's key does not give
/// it away.
fn csrf_of(id: &str) -> Zeroizing<String> {
    let mut h = Sha256::new();
    h.update(b"writ console csrf\0");
    h.update(id.as_bytes());
    Zeroizing::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(h.finalize()))
}

fn unix(at: SystemTime) -> u64 {
    at.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Opens a session for `who` at `now`, in the store every instance shares: its id (for
/// the cookie), or `None` when [`MAX_SESSIONS`] sessions are open already.
pub(crate) async fn open(
    store: &Store,
    who: SignIn,
    now: SystemTime,
) -> Result<Option<SessionId>, StoreError> {
    let id = random_token();
    let at = unix(now);
    let proof = Proof {
        approver_token_hash: who.approver_token_hash,
        writ: who.writ,
        passkey_id: who.passkey_id,
    };
    let stored = ConsoleSession {
        id_hash: key(&id),
        person: who.person,
        tenant: who.tenant,
        role: who.role.as_str().to_string(),
        method: who.method.as_str().to_string(),
        proof: serde_json::to_string(&proof).unwrap_or_default(),
        started_at: at,
        ends_at: at + ABSOLUTE_TIMEOUT.as_secs(),
        idle_until: at + IDLE_TIMEOUT.as_secs(),
    };
    Ok(store
        .open_console_session(&stored, MAX_SESSIONS, at)
        .await?
        .then_some(SessionId(id)))
}

/// The open session of cookie value `id` at `now`, its idle time restarted; `None` when
/// there is none (never opened, ended, expired, or a row this gateway cannot read).
pub(crate) async fn touch(
    store: &Store,
    id: &str,
    now: SystemTime,
) -> Result<Option<Session>, StoreError> {
    let at = unix(now);
    let Some(stored) = store
        .touch_console_session(&key(id), at, at + IDLE_TIMEOUT.as_secs())
        .await?
    else {
        return Ok(None);
    };
    let (Some(role), Some(method), Ok(proof)) = (
        Role::parse(&stored.role),
        SignInMethod::parse(&stored.method),
        serde_json::from_str::<Proof>(&stored.proof),
    ) else {
        tracing::warn!("console: a stored session this gateway cannot read was ended");
        store.close_console_session(&stored.id_hash).await?;
        return Ok(None);
    };
    Ok(Some(Session {
        person: stored.person,
        tenant: stored.tenant,
        role,
        method,
        approver_token_hash: proof.approver_token_hash,
        writ: proof.writ,
        passkey_id: proof.passkey_id,
        csrf: csrf_of(id),
    }))
}

/// Ends the session of cookie value `id`, on every instance.
pub(crate) async fn close(store: &Store, id: &str) -> Result<(), StoreError> {
    store.close_console_session(&key(id)).await
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

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("state.db"))
            .await
            .expect("store");
        (dir, store)
    }

    #[tokio::test]
    async fn idle_and_absolute_expiry() {
        let (_dir, store) = store().await;
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let id = open(&store, admin(), t0).await.unwrap().expect("room");
        let mut now = t0;
        // Busy for 12 hours: never idle, then past the absolute end.
        let step = Duration::from_secs(20 * 60);
        while now + step < t0 + ABSOLUTE_TIMEOUT {
            now += step;
            assert!(
                touch(&store, id.as_str(), now).await.unwrap().is_some(),
                "{now:?}"
            );
        }
        assert!(
            touch(&store, id.as_str(), t0 + ABSOLUTE_TIMEOUT)
                .await
                .unwrap()
                .is_none()
        );
        let id = open(&store, admin(), t0).await.unwrap().expect("room");
        assert!(
            touch(&store, id.as_str(), t0 + IDLE_TIMEOUT)
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn csrf_debug_and_what_is_stored() {
        let (_dir, store) = store().await;
        let now = SystemTime::UNIX_EPOCH;
        let id = open(&store, admin(), now).await.unwrap().expect("room");
        let s = touch(&store, id.as_str(), now)
            .await
            .unwrap()
            .expect("open");
        assert!(s.csrf_matches(s.csrf()));
        assert!(!s.csrf_matches(""));
        assert!(!s.csrf_matches(&format!("{}x", s.csrf())));
        assert!(!format!("{s:?}").contains(s.csrf()));
        // Another session has another token.
        let other = open(&store, admin(), now).await.unwrap().expect("room");
        let o = touch(&store, other.as_str(), now)
            .await
            .unwrap()
            .expect("open");
        assert!(!s.csrf_matches(o.csrf()));
        // The store holds neither the id nor the CSRF token.
        let row = store
            .touch_console_session(&key(id.as_str()), 0, 0)
            .await
            .unwrap()
            .expect("row");
        let stored = format!("{row:?}");
        assert!(!stored.contains(id.as_str()) && !stored.contains(s.csrf()));
        close(&store, id.as_str()).await.unwrap();
        assert!(touch(&store, id.as_str(), now).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_row_this_gateway_cannot_read_ends_the_session() {
        let (_dir, store) = store().await;
        let row = ConsoleSession {
            id_hash: key("forged"),
            person: "mallory".into(),
            tenant: None,
            role: "root".into(),
            method: "admin_writ".into(),
            proof: "{}".into(),
            started_at: 0,
            ends_at: 100,
            idle_until: 100,
        };
        assert!(store.open_console_session(&row, 10, 0).await.unwrap());
        assert!(
            touch(&store, "forged", SystemTime::UNIX_EPOCH)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .touch_console_session(&key("forged"), 0, 0)
                .await
                .unwrap()
                .is_none()
        );
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
