//! Authenticate: verify the writ's signatures once, then serve it from the cache.

use std::sync::Arc;

use writ_token::{VerifiedWrit, WritError};

use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::pipeline::extract::PresentedWrit;
use crate::writ_cache::WritCache;

/// The verified writ for the presented text.
pub(crate) fn verify(
    gw: &Gateway,
    presented: &PresentedWrit,
) -> Result<Arc<VerifiedWrit>, GatewayError> {
    // Size and prefix first: an oversized credential is never hashed or parsed.
    let unverified = writ_token::decode(presented.as_str())?;
    let key = WritCache::key(presented.as_str());
    let verified = match gw.writs.get(&key) {
        Some(hit) => hit,
        None => {
            let verified = Arc::new(unverified.verify(&gw.keys().trusted)?);
            gw.writs.insert(key, verified.clone(), gw.clock.now());
            verified
        }
    };
    // Checked on every request, cached or not: a revocation applies to the next request.
    if gw.is_revoked(&verified) {
        return Err(WritError::Revoked.into());
    }
    Ok(verified)
}
