//! The claims a writ states as plain facts, read straight from its signed protobuf blocks:
//! what the verification queries (`verify.rs`) would find, without loading the token into
//! a Datalog authorizer (about 30 µs of a first use of a writ minted by another instance).
//!
//! Only the plain form is read, the one every writ minted by a writ gateway has: no rule in
//! any block, no third-party block, each claim stated once with the type the query reads,
//! and few facts. Then no fact is derived, the authority block's facts are what the
//! authority-scoped queries see and every block's facts what the budget queries see, so
//! reading the facts is answering the queries. Anything else (`None`) is left to the
//! queries themselves, which stay the reference: debug builds run both and compare.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use biscuit_auth::format::schema;

use crate::blocks::{Block, Blocks};
use crate::evaluation_cost::symbol;
use crate::verify::WritClaims;

/// Most facts (all blocks together) a token may state to be read here; more are left to
/// the authorizer, whose run limits decide. Writs minted here state ten or so.
const MOST_FACTS: usize = 64;

/// The authority block's claims as read so far: each stated at most once.
#[derive(Default)]
struct Authority {
    version: Option<i64>,
    tenant: Option<String>,
    agent: Option<String>,
    token_id: Option<String>,
    issued_at: Option<SystemTime>,
    expires_at: Option<SystemTime>,
    cnf_jkt: Option<String>,
    audience: Option<String>,
}

/// Sets `slot` to `value` unless a value is there already (a claim stated twice, even
/// alike, is left to the queries).
fn once<T>(slot: &mut Option<T>, value: Option<T>) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value?);
    Some(())
}

/// The claims of the token of `blocks` (signatures already verified, signed by root key
/// `key_id`) if it is in the plain form; `None` otherwise.
pub(crate) fn read(blocks: &Blocks, key_id: Option<u32>) -> Option<WritClaims> {
    let mut authority = Authority::default();
    let (mut usd, mut tokens, mut single_use) = (None::<u64>, None::<u64>, false);
    let mut facts = 0usize;
    for Block {
        index,
        block,
        symbols,
        external,
    } in blocks.iter()
    {
        if external || !block.rules.is_empty() {
            return None;
        }
        facts += block.facts.len();
        if facts > MOST_FACTS {
            return None;
        }
        for fact in &block.facts {
            let predicate = &fact.predicate;
            let name = symbol(symbols, predicate.name)?;
            // Facts of other names are not read by any query; every query reads a single term.
            let read_here = index == 0 && is_authority_claim(name);
            if !read_here && !matches!(name, "budget_usd_micros" | "budget_tokens" | "single_use") {
                continue;
            }
            let [term] = predicate.terms.as_slice() else {
                return None;
            };
            let string = || match term.content {
                Some(schema::term::Content::String(s)) => symbol(symbols, s).map(str::to_string),
                _ => None,
            };
            let date = || match term.content {
                Some(schema::term::Content::Date(d)) => {
                    UNIX_EPOCH.checked_add(Duration::from_secs(d))
                }
                _ => None,
            };
            let integer = match term.content {
                Some(schema::term::Content::Integer(n)) => Some(n),
                _ => None,
            };
            let a = &mut authority;
            match name {
                "writ_version" => once(&mut a.version, integer)?,
                "tenant" => once(&mut a.tenant, string())?,
                "agent" => once(&mut a.agent, string())?,
                "token_id" => once(&mut a.token_id, string())?,
                "issued_at" => once(&mut a.issued_at, date())?,
                "expires_at" => once(&mut a.expires_at, date())?,
                "cnf_jkt" => once(&mut a.cnf_jkt, string())?,
                "audience" => once(&mut a.audience, string())?,
                "budget_usd_micros" => smallest(&mut usd, integer?),
                "budget_tokens" => smallest(&mut tokens, integer?),
                _ => match term.content {
                    Some(schema::term::Content::Bool(b)) => single_use |= b,
                    _ => return None,
                },
            }
        }
    }
    if authority.version != Some(1) {
        return None;
    }
    Some(WritClaims {
        tenant: authority.tenant?,
        agent: authority.agent?,
        token_id: authority.token_id?,
        key_id,
        issued_at: authority.issued_at?,
        expires_at: authority.expires_at?,
        block_count: blocks.len(),
        budget_usd_micros: usd,
        budget_tokens: tokens,
        single_use,
        cnf_jkt: authority.cnf_jkt,
        audience: authority.audience,
    })
}

/// Names the authority-scoped queries read.
fn is_authority_claim(name: &str) -> bool {
    matches!(
        name,
        "writ_version"
            | "tenant"
            | "agent"
            | "token_id"
            | "issued_at"
            | "expires_at"
            | "cnf_jkt"
            | "audience"
    )
}

/// Lowers `slot` to `n` (negative read as 0), as the budget queries' minimum does.
fn smallest(slot: &mut Option<u64>, n: i64) {
    let n = n.max(0) as u64;
    *slot = Some(slot.map_or(n, |m| m.min(n)));
}

#[cfg(test)]
mod tests;
