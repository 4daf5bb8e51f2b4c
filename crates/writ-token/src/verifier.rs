//! The one definition of a valid writ (DESIGN §2, §4): decoded within the size caps,
//! signatures verified (once, then served from the [`VerifyCache`]), unexpired at the
//! caller's `now`, and no block revoked. The data plane and token exchange both ask
//! [`Verifier::check`], so a writ one accepts the other accepts too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::encoding::decode;
use crate::error::WritError;
use crate::keys::RootKeys;
use crate::revocation::RevocationSet;
use crate::verify::VerifiedWrit;
use crate::verify_cache::VerifyCache;

/// The revocations a writ is checked against. The caller owns where they live (memory,
/// shared with other instances); [`Verifier::check`] asks on every call, cache hit or not,
/// so a revocation applies to the next request.
pub trait RevocationCheck {
    /// Whether `writ` is revoked: its id, the revocation id of any of its blocks, its
    /// agent, a delegate, its tenant, or its issue time.
    fn is_revoked(&self, writ: &VerifiedWrit) -> bool;
}

impl RevocationCheck for RevocationSet {
    fn is_revoked(&self, writ: &VerifiedWrit) -> bool {
        RevocationSet::is_revoked(self, writ)
    }
}

/// Checks presented writs, verifying each one's signatures once and serving what that
/// established from a cache keyed by the SHA-256 of its text until it expires. Holds no
/// writ text: each checked writ carries the text its request presented.
pub struct Verifier {
    cache: VerifyCache,
    /// Writs verified and then found expired (and not revoked), by the SHA-256 of their
    /// text, with their expiry: an agent that keeps presenting an expired writ — the common
    /// refusal of writs that live seconds — is refused without its signatures being
    /// verified again (which cost about four times serving an allowed request). At most
    /// [`EXPIRED_MEMO`] entries; emptied when full, and with the cache.
    expired: Mutex<HashMap<[u8; 32], SystemTime>>,
}

/// How many expired writs the verifier remembers (about 50 bytes each).
const EXPIRED_MEMO: usize = 4096;

impl Verifier {
    /// A verifier whose cache holds at most `capacity` writs.
    pub fn new(capacity: usize) -> Self {
        Self {
            cache: VerifyCache::new(capacity),
            expired: Mutex::new(HashMap::new()),
        }
    }

    /// The writ `text` stands for, if it is valid at `now`: returns the verified writ, with
    /// `text` (what a request presenting the same text while it is cached gets shares its
    /// verification: [`VerifiedWrit::same_verification`]).
    ///
    /// Fails, in this order, with [`WritError::TooLarge`] or [`WritError::MissingPrefix`]
    /// (before the text is hashed or parsed), any decoding or verification error of
    /// [`crate::UnverifiedWrit::verify`] against `trusted` (a cache miss only),
    /// [`WritError::Revoked`] when `revocations` revokes it, and [`WritError::Expired`]
    /// when `now` is past its expiry (at the one-second resolution of the writ's own
    /// expiry check). Revocation and expiry are checked on every call, cached or not.
    pub fn check(
        &self,
        text: &str,
        trusted: &RootKeys,
        now: SystemTime,
        revocations: &(impl RevocationCheck + ?Sized),
    ) -> Result<Arc<VerifiedWrit>, WritError> {
        let unverified = decode(text)?;
        let key = VerifyCache::key(text);
        let writ = match self.cache.get_keyed(&key, text, now) {
            Some(hit) => Arc::new(hit),
            None => {
                if let Some(at) = self.known_expired(&key, now) {
                    return Err(WritError::Expired { at });
                }
                let verified = Arc::new(unverified.verify(trusted)?);
                if !is_expired(&verified, now) {
                    self.cache.insert_keyed(key, &verified, now);
                }
                verified
            }
        };
        if revocations.is_revoked(&writ) {
            return Err(WritError::Revoked);
        }
        if is_expired(&writ, now) {
            let at = writ.claims().expires_at;
            self.remember_expired(key, at);
            return Err(WritError::Expired { at });
        }
        Ok(writ)
    }

    /// The expiry of the writ whose text hashes to `key`, if it was found expired before
    /// and `now` is still past it (a clock set back gets no answer from the memo).
    fn known_expired(&self, key: &[u8; 32], now: SystemTime) -> Option<SystemTime> {
        let at = *self.expired.lock().ok()?.get(key)?;
        past(at, now).then_some(at)
    }

    fn remember_expired(&self, key: [u8; 32], at: SystemTime) {
        if let Ok(mut expired) = self.expired.lock() {
            if expired.len() >= EXPIRED_MEMO {
                expired.clear();
            }
            expired.insert(key, at);
        }
    }

    /// Caches a writ just minted, unless it expired before `now`: its first
    /// [`Verifier::check`] then finds it without verifying a signature. Revocation and
    /// expiry are still checked on every call.
    pub fn remember(&self, minted: &crate::MintedWrit, now: SystemTime) {
        if !is_expired(minted.writ(), now) {
            self.cache.insert(minted.writ(), now);
        }
    }

    /// Drops every cached writ that expired before `now`.
    pub fn sweep(&self, now: SystemTime) {
        self.cache.sweep(now);
    }

    /// Drops every cached writ: after a revocation (so none is served from before it) or a
    /// change of root keys (so a retired key stops working at once).
    pub fn clear(&self) {
        self.cache.clear();
        if let Ok(mut expired) = self.expired.lock() {
            expired.clear();
        }
    }

    /// Number of writs cached.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }
}

/// Whether `now` is past the writ's expiry, compared in whole seconds as the Datalog
/// expiry check does (a writ still verifies during the second it expires).
fn is_expired(writ: &VerifiedWrit, now: SystemTime) -> bool {
    past(writ.claims().expires_at, now)
}

/// Whether `now`, to the whole second, is past `expires_at`.
fn past(expires_at: SystemTime, now: SystemTime) -> bool {
    let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    UNIX_EPOCH + Duration::from_secs(secs(now)) > expires_at
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeyId, MAX_WRIT_BYTES, MintRequest, Revocation, RootKeyPair, mint, parse_grants};
    use std::cell::Cell;

    const T0: u64 = 1_800_000_000;

    struct Issuer {
        key: RootKeyPair,
        trusted: RootKeys,
    }

    impl Issuer {
        fn new() -> Self {
            let key = RootKeyPair::generate(KeyId(1));
            let mut trusted = RootKeys::new();
            trusted.insert(key.kid(), key.public());
            Self { key, trusted }
        }

        /// A writ minted at `T0`, valid for `ttl` seconds.
        fn writ(&self, ttl: u64) -> String {
            let grants = parse_grants(r#"{"type":"writ:llm","upstream":"u"}"#).unwrap();
            let req = MintRequest {
                tenant: "t",
                agent: "a",
                ceiling: &grants,
                grants: &grants,
                ttl: Duration::from_secs(ttl),
                max_ttl: Duration::from_secs(60),
                now: at(0),
                cnf_jkt: None,
                audience: None,
            };
            mint(&self.key, &req).unwrap().0
        }
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(T0 + secs)
    }

    /// Revocations that count how often they were asked.
    struct Counting {
        set: RevocationSet,
        asked: Cell<u32>,
    }

    impl RevocationCheck for Counting {
        fn is_revoked(&self, writ: &VerifiedWrit) -> bool {
            self.asked.set(self.asked.get() + 1);
            self.set.is_revoked(writ)
        }
    }

    #[test]
    fn a_writ_is_verified_once_and_then_served_from_the_cache() {
        let issuer = Issuer::new();
        let verifier = Verifier::new(16);
        let text = issuer.writ(30);
        let none = RevocationSet::new();
        let first = verifier
            .check(&text, &issuer.trusted, at(1), &none)
            .unwrap();
        let second = verifier
            .check(&text, &issuer.trusted, at(2), &none)
            .unwrap();
        assert!(
            first.same_verification(&second),
            "the second check is a hit"
        );
        assert_eq!(verifier.cached(), 1);
    }

    #[test]
    fn a_cache_hit_still_checks_revocation_and_expiry() {
        let issuer = Issuer::new();
        let verifier = Verifier::new(16);
        let text = issuer.writ(30);
        let mut revocations = Counting {
            set: RevocationSet::new(),
            asked: Cell::new(0),
        };
        let writ = verifier
            .check(&text, &issuer.trusted, at(1), &revocations)
            .unwrap();
        revocations.set.insert(&Revocation::TokenId {
            token_id: writ.claims().token_id.clone(),
        });
        assert_eq!(
            verifier
                .check(&text, &issuer.trusted, at(2), &revocations)
                .unwrap_err(),
            WritError::Revoked
        );
        assert_eq!(revocations.asked.get(), 2, "asked on the hit as well");
        assert_eq!(verifier.cached(), 1, "the hit was served from the cache");
        revocations.set = RevocationSet::new();
        // Valid through its expiry second, refused after it, on the caller's clock (the
        // cache no longer serves it then: expiry is checked on every path alike).
        assert!(
            verifier
                .check(&text, &issuer.trusted, at(30), &revocations)
                .is_ok()
        );
        let later = at(31) + Duration::from_millis(10);
        assert_eq!(
            verifier
                .check(&text, &issuer.trusted, later, &revocations)
                .unwrap_err(),
            WritError::Expired { at: at(30) }
        );
    }

    #[test]
    fn an_expired_writ_is_refused_and_not_cached() {
        let issuer = Issuer::new();
        let verifier = Verifier::new(16);
        let text = issuer.writ(5);
        assert_eq!(
            verifier
                .check(&text, &issuer.trusted, at(6), &RevocationSet::new())
                .unwrap_err(),
            WritError::Expired { at: at(5) }
        );
        assert_eq!(verifier.cached(), 0);
    }

    /// An agent presenting an expired writ again is refused without its signatures being
    /// verified again (here: no key is trusted any more, and it is still "expired"); a
    /// clock set back before its expiry, a cleared cache, or a revoked writ gets no answer
    /// from that memory.
    #[test]
    fn an_expired_writ_presented_again_is_refused_without_verifying_it_again() {
        let issuer = Issuer::new();
        let verifier = Verifier::new(16);
        let text = issuer.writ(5);
        let none = RevocationSet::new();
        let expired = WritError::Expired { at: at(5) };
        assert_eq!(
            verifier
                .check(&text, &issuer.trusted, at(6), &none)
                .unwrap_err(),
            expired
        );
        let untrusted = RootKeys::new();
        for secs in [6, 7, 600] {
            assert_eq!(
                verifier
                    .check(&text, &untrusted, at(secs), &none)
                    .unwrap_err(),
                expired
            );
        }
        assert_eq!(verifier.cached(), 0);
        // A clock set back: verified afresh (and here refused for its unknown key).
        assert_ne!(
            verifier.check(&text, &untrusted, at(4), &none).unwrap_err(),
            expired
        );
        assert!(verifier.check(&text, &issuer.trusted, at(4), &none).is_ok());
        // Cleared with the cache (a root key retired, a revocation).
        verifier.clear();
        assert_ne!(
            verifier.check(&text, &untrusted, at(6), &none).unwrap_err(),
            expired
        );
        // A revoked writ is refused as revoked every time, not remembered as expired.
        let other = issuer.writ(5);
        let writ = verifier
            .check(&other, &issuer.trusted, at(1), &none)
            .unwrap();
        let mut revoked = RevocationSet::new();
        revoked.insert(&Revocation::TokenId {
            token_id: writ.claims().token_id.clone(),
        });
        verifier.clear();
        for _ in 0..2 {
            assert_eq!(
                verifier
                    .check(&other, &issuer.trusted, at(6), &revoked)
                    .unwrap_err(),
                WritError::Revoked
            );
        }
    }

    #[test]
    fn a_revoked_block_revokes_the_writ() {
        let issuer = Issuer::new();
        let verifier = Verifier::new(16);
        let parent = issuer.writ(30);
        let narrower = parse_grants(r#"{"type":"writ:llm","upstream":"u","actions":["chat"]}"#);
        let child = crate::attenuate(&parent, &narrower.unwrap()).unwrap();
        let none = RevocationSet::new();
        let parent_writ = verifier
            .check(&parent, &issuer.trusted, at(1), &none)
            .unwrap();
        let mut revocations = RevocationSet::new();
        revocations.insert(&Revocation::RevocationId {
            revocation_id: hex::encode(&parent_writ.revocation_ids()[0]),
        });
        assert_eq!(
            verifier
                .check(&child, &issuer.trusted, at(1), &revocations)
                .unwrap_err(),
            WritError::Revoked,
            "revoking the parent's block revokes what was narrowed from it"
        );
    }

    #[test]
    fn an_oversized_or_unprefixed_credential_is_refused_before_it_is_parsed() {
        let issuer = Issuer::new();
        let verifier = Verifier::new(16);
        let revocations = Counting {
            set: RevocationSet::new(),
            asked: Cell::new(0),
        };
        let huge = format!("writ_{}", "A".repeat(MAX_WRIT_BYTES));
        assert!(matches!(
            verifier.check(&huge, &issuer.trusted, at(1), &revocations),
            Err(WritError::TooLarge { .. })
        ));
        assert_eq!(
            verifier
                .check("sk-not-a-writ", &issuer.trusted, at(1), &revocations)
                .unwrap_err(),
            WritError::MissingPrefix
        );
        assert_eq!(revocations.asked.get(), 0);
        assert_eq!(verifier.cached(), 0);
    }

    #[test]
    fn a_writ_of_an_untrusted_key_is_refused() {
        let issuer = Issuer::new();
        let verifier = Verifier::new(16);
        let text = issuer.writ(30);
        let mut foreign = RootKeys::new();
        let key = RootKeyPair::generate(KeyId(9));
        foreign.insert(key.kid(), key.public());
        assert!(matches!(
            verifier.check(&text, &foreign, at(1), &RevocationSet::new()),
            Err(WritError::UnknownKeyId { kid: Some(1) })
        ));
    }
}
