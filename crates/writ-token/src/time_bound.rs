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
//! Pure: it reads the blocks as the library evaluates them (the serialized token, whose
//! signatures were checked), without printing or parsing Datalog, and does no I/O.

use biscuit_auth::format::schema;

use crate::blocks::Blocks;
use crate::evaluation_cost::symbol;

type Content = schema::term::Content;

/// The last second (UNIX time) through which decisions on the token of `blocks`
/// do not depend on the time stated to the authorizer, or `None` if they may change from
/// one second to the next (or the token cannot be read). `Some(u64::MAX)` when no block
/// reads the time at all.
pub(crate) fn holds_through(blocks: &Blocks) -> Option<u64> {
    let mut bound = u64::MAX;
    for b in blocks.iter() {
        let queries = b.block.checks.iter().flat_map(|c| c.queries.iter());
        for rule in b.block.rules.iter().chain(queries) {
            bound = bound.min(rule_bound(rule, b.symbols)?);
        }
    }
    Some(bound)
}

/// The bound one rule (or check query) puts on the time, `None` if it uses the time other
/// than as an upper bound.
fn rule_bound(rule: &schema::Rule, symbols: &[String]) -> Option<u64> {
    let mut bound = u64::MAX;
    for (i, predicate) in rule.body.iter().enumerate() {
        if symbol(symbols, predicate.name)? != "time" {
            continue;
        }
        let [
            schema::Term {
                content: Some(Content::Variable(var)),
            },
        ] = predicate.terms.as_slice()
        else {
            return None;
        };
        let var = *var;
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
fn upper_bound(ops: &[schema::Op], var: u32) -> Option<u64> {
    use schema::op::Content as O;
    use schema::op_binary::Kind;
    let value = |op: &schema::Op| match &op.content {
        Some(O::Value(schema::Term { content })) => content.clone(),
        _ => None,
    };
    let [
        a,
        b,
        schema::Op {
            content: Some(O::Binary(binary)),
        },
    ] = ops
    else {
        return None;
    };
    if binary.ffi_name.is_some() {
        return None;
    }
    let kind = Kind::from_i32(binary.kind)?;
    // Read `d op $var` as `$var op' d`, then take the two upper-bound operators.
    let (d, kind) = match (value(a)?, value(b)?) {
        (Content::Variable(v), Content::Date(d)) if v == var => (d, kind),
        (Content::Date(d), Content::Variable(v)) if v == var => match kind {
            Kind::GreaterOrEqual => (d, Kind::LessOrEqual),
            Kind::GreaterThan => (d, Kind::LessThan),
            _ => return None,
        },
        _ => return None,
    };
    match kind {
        Kind::LessOrEqual => Some(d),
        Kind::LessThan => d.checked_sub(1),
        _ => None,
    }
}

fn mentions(term: &schema::Term, var: u32) -> bool {
    match &term.content {
        Some(Content::Variable(v)) => *v == var,
        Some(Content::Set(set)) => set.set.iter().any(|t| mentions(t, var)),
        Some(Content::Array(array)) => array.array.iter().any(|t| mentions(t, var)),
        Some(Content::Map(map)) => map.entries.iter().any(|e| mentions(&e.value, var)),
        _ => false,
    }
}

fn op_mentions(op: &schema::Op, var: u32) -> bool {
    use schema::op::Content as O;
    match &op.content {
        Some(O::Value(term)) => mentions(term, var),
        Some(O::Closure(closure)) => {
            closure.params.contains(&var) || closure.ops.iter().any(|op| op_mentions(op, var))
        }
        Some(O::Unary(_)) | Some(O::Binary(_)) | None => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const T: u64 = 1_800_000_000; // 2027-01-15T08:00:00Z

    use biscuit_auth::builder::BlockBuilder;
    use biscuit_auth::{Biscuit, KeyPair};

    /// The bound of a token whose blocks, authority first, are `blocks`.
    fn bound(blocks: &[&str]) -> Option<u64> {
        let root = KeyPair::new();
        let (authority, rest) = blocks.split_first().unwrap();
        let mut token = Biscuit::builder()
            .code(*authority)
            .unwrap()
            .build(&root)
            .unwrap();
        for source in rest {
            token = token
                .append(BlockBuilder::new().code(*source).unwrap())
                .unwrap();
        }
        holds_through(&Blocks::decode(&token.to_vec().unwrap()).unwrap())
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
