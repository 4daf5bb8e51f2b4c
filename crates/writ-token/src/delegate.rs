//! Delegation (RFC 8693 token exchange): the gateway appends a block to a verified writ
//! for a sub-agent. The new writ allows at most what the subject writ allowed, what the
//! requested grants allow, and what the sub-agent's own ceiling allows.
//!
//! The block is a Biscuit third-party block signed by a root key, so the delegation it
//! states can be told apart from one a holder wrote into an attenuation block: only
//! signed delegations name the acting agent (for audit and for revoking the actor).

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use biscuit_auth::builder::{BlockBuilder, Term};

use crate::encoding::{MAX_BLOCKS, WRIT_PREFIX};
use crate::error::WritError;
use crate::grant::{Grant, compile_block, validate};
use crate::keys::RootKeyPair;
use crate::verify::VerifiedWrit;

/// What a delegation block says.
#[derive(Debug, Clone)]
pub struct Delegation<'a> {
    /// Grants asked for by the sub-agent.
    pub grants: &'a [Grant],
    /// The sub-agent's own ceiling.
    pub actor_ceiling: &'a [Grant],
    /// The sub-agent the writ is delegated to (`tenant/agent`).
    pub delegated_to: &'a str,
    /// The new writ expires at this time or the subject's expiry, whichever is sooner.
    pub expires_at: SystemTime,
    /// The root key that signs the delegation block (the gateway's signing key).
    pub signer: &'a RootKeyPair,
    /// The resource (RFC 8707 audience) the new writ is for. A subject bound to an
    /// audience keeps it whatever this says; naming another is refused.
    pub audience: Option<&'a str>,
}

impl VerifiedWrit {
    /// Appends a delegation block, signed by `d.signer` as a third-party block, and
    /// returns the new writ. The block records
    /// `delegation(<block index>, <delegated by>, <delegated to>)`; delegating a delegated
    /// writ adds another block, so the chain reads block by block. With `d.audience`, a
    /// subject bound to no audience gets that one; a subject bound to another is refused
    /// ([`WritError::AudienceConflict`]).
    pub fn delegate(&self, d: &Delegation<'_>) -> Result<String, WritError> {
        validate(d.grants)?;
        let added_audience = match (&self.claims().audience, d.audience) {
            (Some(current), Some(asked)) if current != asked => {
                return Err(WritError::AudienceConflict {
                    current: current.clone(),
                });
            }
            // The subject's own check already holds every block to it.
            (Some(_), _) | (None, None) => None,
            (None, Some(asked)) => Some(asked),
        };
        if self.claims().block_count >= MAX_BLOCKS {
            return Err(WritError::TooManyBlocks {
                count: self.claims().block_count + 1,
                max: MAX_BLOCKS,
            });
        }
        let build = |e: biscuit_auth::error::Token| WritError::Build(e.to_string());
        let secs = d
            .expires_at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |t| t.as_secs());
        let expires_at = (UNIX_EPOCH + Duration::from_secs(secs)).min(self.claims().expires_at);
        let holder = match self.delegation_chain().last().cloned() {
            Some((_, to)) => to,
            None => format!("{}/{}", self.claims().tenant, self.claims().agent),
        };
        let index = i64::try_from(self.claims().block_count).unwrap_or(i64::MAX);
        let params = HashMap::from([
            ("index".to_string(), Term::from(index)),
            ("by".to_string(), Term::from(holder.as_str())),
            ("to".to_string(), Term::from(d.delegated_to)),
            ("exp".to_string(), Term::from(expires_at)),
        ]);
        let block = BlockBuilder::new()
            .code_with_params(
                "delegation({index}, {by}, {to}); check if time($time), $time <= {exp};",
                params,
                HashMap::new(),
            )
            .map_err(build)?;
        let block = match added_audience {
            None => block,
            Some(audience) => crate::audience::bind(block, audience)?,
        };
        let block = compile_block(block, d.grants).map_err(build)?;
        let block = compile_block(block, d.actor_ceiling).map_err(build)?;
        let biscuit = self.biscuit()?;
        let signed = biscuit
            .third_party_request()
            .and_then(|request| request.create_block(&d.signer.pair().private(), block))
            .map_err(build)?;
        let token = biscuit
            .append_third_party(d.signer.public(), signed)
            .map_err(build)?;
        let b64 = token.to_base64().map_err(build)?;
        Ok(format!("{WRIT_PREFIX}{b64}"))
    }
}
