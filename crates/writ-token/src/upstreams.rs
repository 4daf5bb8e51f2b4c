//! Which upstreams a writ can reach at all, read from the structure of its checks, so a
//! request that names no upstream can be routed to the one its writ's grants name.
//!
//! This only proposes a route: the request is still authorized against every block with
//! the chosen upstream as a fact, so a wrong or hostile reading can cost a refusal, never
//! an upstream the writ does not allow.

use std::collections::BTreeSet;

use biscuit_auth::AuthorizerBuilder;
use biscuit_auth::builder::{CheckKind, Term};

use crate::verify::VerifiedWrit;

impl VerifiedWrit {
    /// The upstreams every `check if` of the writ limits it to: a check limits when each of
    /// its alternatives states `upstream("<name>")`, and the writ reaches only the names all
    /// limiting checks share. `None` when no check limits the upstream (or the writ cannot
    /// be read). Read once per verified writ (its checks are fixed) and kept with it, so
    /// every later request presenting it routes without reading its blocks again.
    pub fn named_upstreams(&self) -> Option<&BTreeSet<String>> {
        self.verification()
            .named_upstreams
            .get_or_init(|| self.read_named_upstreams())
            .as_ref()
    }

    fn read_named_upstreams(&self) -> Option<BTreeSet<String>> {
        let biscuit = self.biscuit().ok()?;
        let authorizer = AuthorizerBuilder::new().build(&biscuit).ok()?;
        let (_, _, checks, _) = authorizer.dump();
        let mut reachable: Option<BTreeSet<String>> = None;
        for check in checks.iter().filter(|c| c.kind == CheckKind::One) {
            let mut names = BTreeSet::new();
            let limits = check.queries.iter().all(|query| {
                let stated: Vec<&str> = query
                    .body
                    .iter()
                    .filter(|p| p.name == "upstream")
                    .filter_map(|p| match p.terms.as_slice() {
                        [Term::Str(name)] => Some(name.as_str()),
                        _ => None,
                    })
                    .collect();
                names.extend(stated.iter().map(|s| s.to_string()));
                !stated.is_empty()
            });
            if limits {
                reachable = Some(match reachable {
                    None => names,
                    Some(before) => before.intersection(&names).cloned().collect(),
                });
            }
        }
        reachable
    }
}
