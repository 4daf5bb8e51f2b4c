//! Passkeys for the console (WebAuthn, through `webauthn-rs`): one-time enrolment links,
//! registering a passkey with one, and signing in with a passkey. No HTTP here: each half
//! of a ceremony takes what the browser sent, the store and the time, and answers what to
//! send back.
//!
//! The relying party is the console's origin: `server.public_url` when set, else
//! `http://localhost:<port>` of the listener (WebAuthn needs a secure context, and takes
//! no IP address as a relying party id). A ceremony's state waits in the store between
//! its halves (so a load balancer may send them to two gateways), for
//! [`CEREMONY_SECS`] at most, [`MAX_CEREMONIES`] of each kind and
//! [`MAX_CEREMONIES_EACH`] per person or link at once; each state finishes one ceremony.

use base64::Engine as _;
use rand::RngCore as _;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use webauthn_rs::prelude::{
    CreationChallengeResponse, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, RequestChallengeResponse, Url, Uuid,
    Webauthn, WebauthnBuilder,
};
use writ_store::{CeremonyKind, CeremonyRecord, Person, PersonRole, Store, StoreError};
use zeroize::Zeroizing;

/// How long an enrolment link works.
pub(crate) const ENROLMENT_SECS: u64 = 24 * 60 * 60;
/// How long a ceremony may take between its two halves.
pub(crate) const CEREMONY_SECS: u64 = 5 * 60;
/// Most ceremonies of one kind under way at once.
pub(crate) const MAX_CEREMONIES: u64 = 1_000;
/// Most ceremonies under way at once for one person (or one enrolment link).
pub(crate) const MAX_CEREMONIES_EACH: u64 = 5;
/// The console path an enrolment link's token follows.
pub(crate) const ENROL_PATH: &str = "/console/enrol/";
/// Length of an enrolment token and of a ceremony id: 32 bytes, base64url unpadded.
const TOKEN_CHARS: usize = 43;

/// Why a passkey ceremony did not succeed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PasskeyError {
    /// The enrolment link is unknown, used, expired or replaced (never saying which).
    #[error(
        "this enrolment link does not work: it was used, has expired, was replaced by a newer \
         one, or never existed. Ask an admin for a new link (`writ admin enrol` or \
         `writ approver enrol`)."
    )]
    LinkInvalid,
    /// The ceremony's state is gone: finished already, expired, or never begun.
    #[error("this passkey request has expired or was used already: start again")]
    CeremonyGone,
    /// Nobody of that name and tenant has a passkey.
    #[error(
        "no passkey is enrolled for this name and tenant: check both, or ask an admin for an \
         enrolment link"
    )]
    NoPasskey,
    /// The authenticator's answer did not prove what it had to.
    #[error("the passkey's answer was not accepted: try again, with a passkey enrolled here")]
    Rejected,
    /// The passkey is enrolled already.
    #[error("this passkey is enrolled already: sign in with it")]
    Duplicate,
    /// Too many ceremonies under way.
    #[error("too many passkey sign-ins are under way; try again in a few minutes")]
    Busy,
    /// The relying party cannot be set up from the gateway's URL.
    #[error("passkeys need server.public_url to be an https:// URL with a host name")]
    Configuration,
    /// The store failed (logged by whoever answers it; not shown).
    #[error("the gateway could not do this just now; try again")]
    Store(StoreError),
}

impl From<StoreError> for PasskeyError {
    fn from(e: StoreError) -> Self {
        PasskeyError::Store(e)
    }
}

/// Longest name of a console person.
const MAX_NAME: usize = 64;

/// Whether `name` is a console person's name (an approver's or an admin's): 1 to 64
/// characters of `A-Z a-z 0-9 - _ . @`, so it is one path segment as it is and reads the
/// same everywhere it is shown.
pub(crate) fn valid_person_name(name: &str) -> bool {
    (1..=MAX_NAME).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
}

/// The console's relying party.
pub(crate) struct RelyingParty {
    webauthn: Webauthn,
    origin: Url,
}

impl std::fmt::Debug for RelyingParty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelyingParty")
            .field("origin", &self.origin.as_str())
            .finish()
    }
}

/// The console's origin for a gateway whose identity URL is `issuer`: its scheme, host
/// and port, with an IP address host spelled `localhost`.
pub(crate) fn console_origin(issuer: &str) -> Result<Url, PasskeyError> {
    let mut url = Url::parse(issuer).map_err(|_| PasskeyError::Configuration)?;
    if matches!(url.host(), Some(url::Host::Ipv4(_) | url::Host::Ipv6(_))) {
        url.set_host(Some("localhost"))
            .map_err(|_| PasskeyError::Configuration)?;
    }
    Url::parse(&url.origin().ascii_serialization()).map_err(|_| PasskeyError::Configuration)
}

impl RelyingParty {
    /// The relying party of a gateway whose identity URL is `issuer`.
    pub(crate) fn for_issuer(issuer: &str) -> Result<Self, PasskeyError> {
        let origin = console_origin(issuer)?;
        let rp_id = origin
            .domain()
            .ok_or(PasskeyError::Configuration)?
            .to_string();
        let webauthn = WebauthnBuilder::new(&rp_id, &origin)
            .and_then(|b| b.rp_name("writ console").build())
            .map_err(|_| PasskeyError::Configuration)?;
        Ok(RelyingParty { webauthn, origin })
    }

    /// The URL of the enrolment link of `token`.
    fn link(&self, token: &str) -> String {
        format!(
            "{}{}{token}",
            self.origin.as_str().trim_end_matches('/'),
            ENROL_PATH
        )
    }
}

/// 32 random bytes, base64url without padding.
fn random_token() -> Zeroizing<String> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(bytes.as_mut());
    Zeroizing::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_ref()))
}

/// Whether `token` is shaped as the console's tokens are (so nothing else reaches the
/// store).
fn well_formed(token: &str) -> bool {
    token.len() == TOKEN_CHARS
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// SHA-256 (hex) of a token: what the store keeps instead.
fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Records a new enrolment link for `person` (voiding their earlier one) and answers its
/// URL, which holds the only copy of its token.
pub(crate) async fn issue_link(
    rp: &RelyingParty,
    store: &Store,
    person: &Person,
    now: u64,
) -> Result<Zeroizing<String>, PasskeyError> {
    let token = random_token();
    store
        .create_enrolment(person, &hash(&token), now, now + ENROLMENT_SECS)
        .await?;
    Ok(Zeroizing::new(rp.link(&token)))
}

/// The person the enrolment token `token` is for, if it still works.
pub(crate) async fn enrolling(
    store: &Store,
    token: &str,
    now: u64,
) -> Result<Person, PasskeyError> {
    if !well_formed(token) {
        return Err(PasskeyError::LinkInvalid);
    }
    store
        .enrolment(&hash(token), now)
        .await?
        .ok_or(PasskeyError::LinkInvalid)
}

/// The WebAuthn user id of a person: stable, and naming nobody.
fn user_id(person: &Person) -> Uuid {
    let digest = Sha256::new()
        .chain_update(b"writ console person\0")
        .chain_update(person.role.as_str())
        .chain_update(b"\0")
        .chain_update(person.tenant.as_deref().unwrap_or(""))
        .chain_update(b"\0")
        .chain_update(&person.name)
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::from_bytes(bytes)
}

/// How a person is named to their authenticator: `bob (approver, acme)`.
fn user_name(person: &Person) -> String {
    format!(
        "{} ({}, {})",
        person.name,
        person.role.as_str(),
        person.tenant.as_deref().unwrap_or("every tenant")
    )
}

fn stored_passkey(json: &str) -> Result<Passkey, PasskeyError> {
    serde_json::from_str(json).map_err(|_| {
        PasskeyError::from(StoreError::Corrupt {
            what: "passkey",
            reason: "not a passkey".to_string(),
        })
    })
}

fn credential_id(passkey: &Passkey) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(passkey.cred_id().as_slice())
}

async fn keep(
    store: &Store,
    kind: CeremonyKind,
    subject: String,
    state: String,
    now: u64,
) -> Result<Zeroizing<String>, PasskeyError> {
    let id = random_token();
    let record = CeremonyRecord {
        id_hash: hash(&id),
        kind,
        subject,
        state,
        expires_at: now + CEREMONY_SECS,
    };
    match store
        .save_ceremony(&record, now, MAX_CEREMONIES, MAX_CEREMONIES_EACH)
        .await
    {
        Ok(()) => Ok(id),
        Err(StoreError::Refused(_)) => Err(PasskeyError::Busy),
        Err(e) => Err(e.into()),
    }
}

async fn take(
    store: &Store,
    kind: CeremonyKind,
    id: &str,
    now: u64,
) -> Result<CeremonyRecord, PasskeyError> {
    if !well_formed(id) {
        return Err(PasskeyError::CeremonyGone);
    }
    store
        .take_ceremony(&hash(id), kind, now)
        .await?
        .ok_or(PasskeyError::CeremonyGone)
}

/// Begins registering a passkey with the enrolment token `token`: the ceremony's id and
/// the options for `navigator.credentials.create`.
pub(crate) async fn begin_enrolment(
    rp: &RelyingParty,
    store: &Store,
    token: &str,
    now: u64,
) -> Result<(Zeroizing<String>, CreationChallengeResponse), PasskeyError> {
    let person = enrolling(store, token, now).await?;
    let exclude = store
        .passkeys_named(person.tenant.as_deref(), &person.name)
        .await?
        .into_iter()
        .filter(|k| k.person == person)
        .map(|k| stored_passkey(&k.passkey).map(|p| p.cred_id().clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let name = user_name(&person);
    let (options, state) = rp
        .webauthn
        .start_passkey_registration(user_id(&person), &name, &name, Some(exclude))
        .map_err(|_| PasskeyError::Rejected)?;
    let state = serde_json::to_string(&state).map_err(|_| PasskeyError::Rejected)?;
    let id = keep(store, CeremonyKind::Enrol, hash(token), state, now).await?;
    Ok((id, options))
}

/// Finishes registering: checks the authenticator's answer against the ceremony begun
/// with the same token, uses the link (once) and stores the passkey. Answers whose it is
/// and its credential id.
pub(crate) async fn finish_enrolment(
    rp: &RelyingParty,
    store: &Store,
    token: &str,
    ceremony: &str,
    credential: &RegisterPublicKeyCredential,
    now: u64,
) -> Result<(Person, String), PasskeyError> {
    if !well_formed(token) {
        return Err(PasskeyError::LinkInvalid);
    }
    let record = take(store, CeremonyKind::Enrol, ceremony, now).await?;
    if record.subject != hash(token) {
        return Err(PasskeyError::CeremonyGone);
    }
    let state: PasskeyRegistration =
        serde_json::from_str(&record.state).map_err(|_| PasskeyError::CeremonyGone)?;
    let passkey = rp
        .webauthn
        .finish_passkey_registration(credential, &state)
        .map_err(|_| PasskeyError::Rejected)?;
    let json = serde_json::to_string(&passkey).map_err(|_| PasskeyError::Rejected)?;
    let id = credential_id(&passkey);
    match store
        .complete_enrolment(&hash(token), &id, &json, now)
        .await
    {
        Ok(person) => Ok((person, id)),
        Err(StoreError::Refused(_)) => Err(PasskeyError::LinkInvalid),
        Err(StoreError::Conflict { .. }) => Err(PasskeyError::Duplicate),
        Err(e) => Err(e.into()),
    }
}

/// Who a sign-in ceremony is for, as kept with its state.
#[derive(serde::Serialize, Deserialize)]
struct Signing {
    tenant: Option<String>,
    name: String,
}

/// Begins a sign-in by the person named `name` in `tenant` (`None`: an admin of every
/// tenant): the ceremony's id and the options for `navigator.credentials.get`, allowing
/// their passkeys only.
pub(crate) async fn begin_sign_in(
    rp: &RelyingParty,
    store: &Store,
    tenant: Option<&str>,
    name: &str,
    now: u64,
) -> Result<(Zeroizing<String>, RequestChallengeResponse), PasskeyError> {
    let passkeys = store
        .passkeys_named(tenant, name)
        .await?
        .iter()
        .map(|k| stored_passkey(&k.passkey))
        .collect::<Result<Vec<_>, _>>()?;
    if passkeys.is_empty() {
        return Err(PasskeyError::NoPasskey);
    }
    let (options, state) = rp
        .webauthn
        .start_passkey_authentication(&passkeys)
        .map_err(|_| PasskeyError::Rejected)?;
    let state = serde_json::to_string(&state).map_err(|_| PasskeyError::Rejected)?;
    let subject = serde_json::to_string(&Signing {
        tenant: tenant.map(str::to_string),
        name: name.to_string(),
    })
    .map_err(|_| PasskeyError::Rejected)?;
    let id = keep(store, CeremonyKind::SignIn, subject, state, now).await?;
    Ok((id, options))
}

/// Finishes a sign-in: checks the authenticator's answer against the ceremony (one of
/// the passkeys it allowed, signing its challenge, the user verified) and notes the
/// passkey's use. Answers who signed in and with which credential id.
pub(crate) async fn finish_sign_in(
    rp: &RelyingParty,
    store: &Store,
    ceremony: &str,
    credential: &PublicKeyCredential,
    now: u64,
) -> Result<(Person, String), PasskeyError> {
    let record = take(store, CeremonyKind::SignIn, ceremony, now).await?;
    let signing: Signing =
        serde_json::from_str(&record.subject).map_err(|_| PasskeyError::CeremonyGone)?;
    let state: PasskeyAuthentication =
        serde_json::from_str(&record.state).map_err(|_| PasskeyError::CeremonyGone)?;
    let result = rp
        .webauthn
        .finish_passkey_authentication(credential, &state)
        .map_err(|_| PasskeyError::Rejected)?;
    let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(result.cred_id().as_slice());
    // Removed since the ceremony began: refused.
    let stored = store.passkey(&id).await?.ok_or(PasskeyError::Rejected)?;
    if stored.person.tenant != signing.tenant || stored.person.name != signing.name {
        return Err(PasskeyError::Rejected);
    }
    let mut passkey = stored_passkey(&stored.passkey)?;
    passkey.update_credential(&result);
    let json = serde_json::to_string(&passkey).map_err(|_| PasskeyError::Rejected)?;
    store.note_passkey_use(&id, &json, now).await?;
    Ok((stored.person, id))
}

/// A person's role and scope in words, for pages and audit records.
pub(crate) fn describe(person: &Person) -> String {
    match (&person.role, &person.tenant) {
        (PersonRole::Admin, None) => "an admin of every tenant".to_string(),
        (PersonRole::Admin, Some(t)) => format!("an admin of tenant {t}"),
        (PersonRole::Approver, Some(t)) => format!("an approver of tenant {t}"),
        (PersonRole::Approver, None) => "an approver".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_is_localhost_for_an_address_and_the_public_url_else() {
        let origin = |i: &str| console_origin(i).map(|u| u.to_string()).ok();
        assert_eq!(
            origin("http://127.0.0.1:8080").as_deref(),
            Some("http://localhost:8080/")
        );
        assert_eq!(
            origin("http://[::1]:9000").as_deref(),
            Some("http://localhost:9000/")
        );
        assert_eq!(
            origin("https://writ.example.com/base/").as_deref(),
            Some("https://writ.example.com/")
        );
        assert!(origin("not a url").is_none());
        let rp = RelyingParty::for_issuer("http://127.0.0.1:8080").expect("rp");
        assert_eq!(rp.link("abc"), "http://localhost:8080/console/enrol/abc");
    }

    #[test]
    fn tokens_are_checked_before_the_store() {
        let token = random_token();
        assert!(well_formed(&token));
        assert!(!well_formed(&token[1..]));
        assert!(!well_formed(&format!("{}=", &token[1..])));
        assert!(!well_formed(&"a".repeat(4096)));
        assert!(!well_formed(&format!("{}/", &token[1..])));
        assert_ne!(hash(&token), *token);
    }

    #[test]
    fn user_ids_differ_by_role_tenant_and_name() {
        let p = |role, tenant: Option<&str>, name: &str| Person {
            role,
            tenant: tenant.map(str::to_string),
            name: name.to_string(),
        };
        let a = user_id(&p(PersonRole::Admin, Some("acme"), "bob"));
        assert_eq!(a, user_id(&p(PersonRole::Admin, Some("acme"), "bob")));
        assert_ne!(a, user_id(&p(PersonRole::Approver, Some("acme"), "bob")));
        assert_ne!(a, user_id(&p(PersonRole::Admin, None, "bob")));
        assert_ne!(a, user_id(&p(PersonRole::Admin, Some("acme"), "bo")));
    }
}
