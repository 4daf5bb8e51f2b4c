//! How long an authorization decision holds: the last second up to which a writ's Datalog
//! gives every request the same answer, whatever the time.
//!
//! The authorizer states one time-dependent fact, `time(now)`. When every use of it, in
//! every block, is `time($t)` with `$t` bound nowhere else and compared only as an upper
//! bound (`$t <= date`, `$t < date`), then at any second up to the smallest such bound all
//! of those comparisons are true: each rule and check sees the same world at every such
//! second, so a decision made at one of them holds at the others. A writ minted here
//! qualifies (its one time check is its expiry), and so does every attenuation that only
//! narrows expiry. Any other use of `time` — a lower bound, arithmetic, a literal date, a
//! rule that passes the time on — gets no bound, and the gateway decides again each second.
//!
//! Pure: it reads the blocks as parsed Datalog and does no I/O.

use biscuit_auth::builder::{Binary, BlockBuilder, Op, Rule, Term};

/// The last second (UNIX time) through which decisions on `blocks` do not depend on the
/// time stated to the authorizer, or `None` if they may change from one second to the
/// next. `Some(u64::MAX)` when no block reads the time at all.
pub(crate) fn holds_through(blocks: &[BlockBuilder]) -> Option<u64> {
    let mut bound = u64::MAX;
    for block in blocks {
        let queries = block.checks.iter().flat_map(|c| c.queries.iter());
        for rule in block.rules.iter().chain(queries) {
            bound = bound.min(rule_bound(rule)?);
        }
    }
    Some(bound)
}

/// The bound one rule (or check query) puts on the time, `None` if it uses the time other
/// than as an upper bound.
fn rule_bound(rule: &Rule) -> Option<u64> {
    let mut bound = u64::MAX;
    for (i, predicate) in rule.body.iter().enumerate() {
        if predicate.name != "time" {
            continue;
        }
        let [Term::Variable(var)] = predicate.terms.as_slice() else {
            return None;
        };
        let bound_elsewhere = rule.head.terms.iter().any(|t| mentions(t, var))
            || rule
                .body
                .iter()
                .enumerate()
                .any(|(j, other)| j != i && other.terms.iter().any(|t| mentions(t, var)));
        if bound_elsewhere {
            return None;
        }
        for expression in &rule.expressions {
            if expression.ops.iter().any(|op| op_mentions(op, var)) {
                bound = bound.min(upper_bound(&expression.ops, var)?);
            }
        }
    }
    Some(bound)
}

/// `$var <= d` / `d >= $var` → `d`; `$var < d` / `d > $var` → `d - 1`; anything else `None`.
fn upper_bound(ops: &[Op], var: &str) -> Option<u64> {
    // Read `d op $var` as `$var op' d`, then take the two upper-bound operators.
    let (d, op) = match ops {
        [
            Op::Value(Term::Variable(v)),
            Op::Value(Term::Date(d)),
            Op::Binary(op),
        ] if v == var => (*d, op.clone()),
        [
            Op::Value(Term::Date(d)),
            Op::Value(Term::Variable(v)),
            Op::Binary(op),
        ] if v == var => {
            let mirrored = match op {
                Binary::GreaterOrEqual => Binary::LessOrEqual,
                Binary::GreaterThan => Binary::LessThan,
                _ => return None,
            };
            (*d, mirrored)
        }
        _ => return None,
    };
    match op {
        Binary::LessOrEqual => Some(d),
        Binary::LessThan => d.checked_sub(1),
        _ => None,
    }
}

fn mentions(term: &Term, var: &str) -> bool {
    match term {
        Term::Variable(v) | Term::Parameter(v) => v == var,
        Term::Set(terms) => terms.iter().any(|t| mentions(t, var)),
        Term::Array(terms) => terms.iter().any(|t| mentions(t, var)),
        Term::Map(entries) => entries.values().any(|t| mentions(t, var)),
        _ => false,
    }
}

fn op_mentions(op: &Op, var: &str) -> bool {
    match op {
        Op::Value(term) => mentions(term, var),
        Op::Closure(params, ops) => {
            params.iter().any(|p| p == var) || ops.iter().any(|op| op_mentions(op, var))
        }
        Op::Unary(_) | Op::Binary(_) => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const T: u64 = 1_800_000_000; // 2027-01-15T08:00:00Z

    fn bound(blocks: &[&str]) -> Option<u64> {
        let parsed: Vec<BlockBuilder> = blocks
            .iter()
            .map(|source| BlockBuilder::new().code(*source).unwrap())
            .collect();
        holds_through(&parsed)
    }

    #[test]
    fn upper_bounds_hold_through_the_smallest() {
        let authority = "tenant(\"t\"); check if time($time), $time <= 2027-01-15T08:00:30Z;";
        assert_eq!(bound(&[authority]), Some(T + 30));
        // An attenuation that narrows expiry, in either spelling, strict or not.
        assert_eq!(
            bound(&[
                authority,
                "check if time($t), $t < 2027-01-15T08:00:10Z, operation(\"chat\");"
            ]),
            Some(T + 9)
        );
        assert_eq!(
            bound(&[
                authority,
                "check if time($t), 2027-01-15T08:00:20Z >= $t or model(\"m\");"
            ]),
            Some(T + 20)
        );
        // A rule deriving a fact from an upper bound derives it at every earlier second.
        assert_eq!(
            bound(&[
                authority,
                "fresh(true) <- time($t), $t <= 2027-01-15T08:00:05Z; check if fresh(true);"
            ]),
            Some(T + 5)
        );
        assert_eq!(bound(&["check if model(\"m\");"]), Some(u64::MAX));
    }

    #[test]
    fn any_other_use_of_time_has_no_bound() {
        let authority = "check if time($time), $time <= 2027-01-15T08:00:30Z;";
        for hostile in [
            // Lower bounds: not valid before, then valid.
            "check if time($t), $t >= 2027-01-15T08:00:03Z;",
            "reject if time($t), $t > 2027-01-15T08:00:03Z;",
            "check if time($t), 2027-01-15T08:00:03Z < $t;",
            // Equality, arithmetic, methods, compound expressions.
            "check if time($t), $t == 2027-01-15T08:00:03Z;",
            "check if time($t), $t <= 2027-01-15T08:00:30Z && $t >= 2027-01-15T08:00:03Z;",
            "check if time($t), ($t <= 2027-01-15T08:00:30Z);",
            "check if time($t), $t.type() == \"date\";",
            // A literal time, the time bound in another predicate or passed on.
            "check if time(2027-01-15T08:00:03Z);",
            "check if time($t), seen($t);",
            "at($t) <- time($t); check if at($u), $u <= 2027-01-15T08:00:30Z;",
            // Compared with another variable.
            "check if time($t), deadline($d), $t <= $d;",
        ] {
            assert_eq!(bound(&[authority, hostile]), None, "{hostile}");
        }
    }

    #[test]
    fn bounds_at_the_epoch_do_not_underflow() {
        assert_eq!(
            bound(&["check if time($t), $t < 1970-01-01T00:00:00Z;"]),
            None
        );
        assert_eq!(
            bound(&["check if time($t), $t <= 1970-01-01T00:00:00Z;"]),
            Some(0)
        );
    }
}
