//! What a writ's Datalog may cost to evaluate: a bound computed from the token's own bytes
//! before anything runs, so that no holder can make the gateway do more than a small,
//! fixed amount of work for one request.
//!
//! # Why a static bound
//!
//! Any holder can append a block (that is what offline attenuation is). The Biscuit
//! library's run limits do not bound such a block's cost: its time limit is checked only
//! between whole evaluation steps (one step of `p($a,$b,$c,$d) <- n($a), n($b), n($c),
//! n($d)` over 40 facts is 2.5 million joins), and checks run with no time limit at all.
//! So the cost is bounded before evaluation:
//!
//! - Blocks after the authority block may state **no rules** (writ's own grants compile to
//!   checks; `writ:datalog` grants are checks too): what a holder adds can only be tested,
//!   never derive new facts.
//! - They state at most [`MAX_FACTS_PER_BLOCK`] facts, and each check query joins at most
//!   [`MAX_PREDICATES_PER_QUERY`] predicates.
//! - A regular expression's pattern must be a literal that compiles within
//!   [`MAX_REGEX_PROGRAM_BYTES`] (the library compiles it again at every evaluation).
//! - The work of every check query is bounded from the shape of its body and the number of
//!   facts the request states, and the bound of each block is held under
//!   [`MAX_WORK_PER_WRIT`] (summed over the blocks after the authority) when the request
//!   is authorized.
//!
//! # The unit of work
//!
//! The library joins a query's predicates by nested loops, in body order, each loop
//! visiting every fact in scope; expressions run once per complete match. So a query
//! `p1, …, pn, e1, …, ek` visits at most `F·(1 + m1 + m1·m2 + … + m1⋯m(n-1))` facts and
//! evaluates its expressions `m1⋯mn` times, where `F` is the number of facts in scope and
//! `mi` the number of facts `pi` can match. A unit is about 10 ns of one core (measured
//! by the `bounded` group of `cargo bench -p writ-token`): a fact visited costs 2, a match
//! 20, a complete match 100, an expression operation 1 plus 1 per 64 bytes of string it
//! reads, a regular expression [`REGEX_UNITS`] (compiled on every evaluation), and
//! `.all`/`.any` their closure once per element of the collection.
//!
//! The analysis reads the protobuf blocks the library evaluates (not their printed
//! source, which a crafted string could make read differently), and is pure.

use std::collections::HashMap;

use biscuit_auth::format::schema;

use crate::blocks::Blocks;

use crate::facts::{Api, RequestFacts};

/// Most facts a block after the authority block may state (budgets, single use,
/// delegation: a handful each).
pub const MAX_FACTS_PER_BLOCK: usize = 32;
/// Most predicates one check query may join.
pub const MAX_PREDICATES_PER_QUERY: usize = 64;
/// Most units of work the blocks after the authority block may cost for one request.
/// A unit is about 10–40 ns here, so the bound is a few milliseconds of one core.
pub const MAX_WORK_PER_WRIT: u64 = 400_000;
/// Units charged for each evaluation of `.matches()`: the library compiles the regular
/// expression every time (at most [`MAX_REGEX_PROGRAM_BYTES`] of program).
pub const REGEX_UNITS: u64 = 20_000;
/// Largest compiled program a regular expression in a holder's block may need. A short
/// pattern can compile to a large program (`(a{1,100}){1,100}`), so patterns are compiled
/// once with this limit when the writ is verified.
pub const MAX_REGEX_PROGRAM_BYTES: usize = 16 * 1024;

/// Bytes of string one unit of work covers.
const BYTES_PER_UNIT: u64 = 64;
/// Units for visiting one fact while joining (a filter on its name and constants).
const VISIT_UNITS: u64 = 2;
/// Units for a fact that matches (its variables are bound: a map cloned).
const MATCH_UNITS: u64 = 20;
/// Units for a complete match (its bindings collected, expressions set up).
const COMPLETE_UNITS: u64 = 100;
/// First symbol index of a token's own symbols; lower indices are Biscuit's defaults.
const SYMBOL_OFFSET: u64 = 1024;
/// Biscuit's default symbols (`biscuit_auth::datalog::SymbolTable`), in index order.
const DEFAULT_SYMBOLS: [&str; 28] = [
    "read",
    "write",
    "resource",
    "operation",
    "right",
    "time",
    "role",
    "owner",
    "tenant",
    "namespace",
    "user",
    "team",
    "service",
    "admin",
    "email",
    "group",
    "member",
    "ip_address",
    "client",
    "client_ip",
    "domain",
    "path",
    "version",
    "cluster",
    "node",
    "hostname",
    "nonce",
    "query",
];

/// Why a writ's Datalog was refused before evaluation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatalogError {
    /// A block the holder could have appended states rules.
    #[error(
        "block {block} states rules; only checks and facts may be added after the authority block"
    )]
    RulesInBlock {
        /// Index of the block (1 = grants at mint, later = attenuations).
        block: usize,
    },
    /// A block states more facts than accepted.
    #[error("block {block} states {count} facts, more than the {max} accepted")]
    TooManyFacts {
        /// Index of the block.
        block: usize,
        /// Facts stated.
        count: usize,
        /// Most accepted.
        max: usize,
    },
    /// A check query joins more predicates than accepted.
    #[error("a check in block {block} joins {count} predicates, more than the {max} accepted")]
    TooManyPredicates {
        /// Index of the block.
        block: usize,
        /// Predicates in the query.
        count: usize,
        /// Most accepted.
        max: usize,
    },
    /// Evaluating the checks for this request could cost more than allowed.
    #[error(
        "evaluating block {block}'s checks could cost more than the {max} units of work allowed"
    )]
    TooCostly {
        /// The block whose checks passed the bound.
        block: usize,
        /// The bound.
        max: u64,
    },
    /// A regular expression's pattern is not a literal string (a request could state it).
    #[error("a check in block {block} matches a pattern that is not a literal string")]
    RegexNotLiteral {
        /// Index of the block.
        block: usize,
    },
    /// A regular expression compiles to more than [`MAX_REGEX_PROGRAM_BYTES`], or not at all.
    #[error("a regular expression in block {block} is invalid or too large")]
    RegexTooLarge {
        /// Index of the block.
        block: usize,
    },
    /// The token's blocks could not be read for the analysis.
    #[error("block {block} cannot be read")]
    Unreadable {
        /// Index of the block.
        block: usize,
    },
}

/// The shape of every check a writ states after its authority block, kept with the
/// verified writ so that each authorization can bound its cost for the request at hand.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct CheckShapes {
    queries: Vec<Query>,
    /// Facts stated by all blocks, and by predicate name.
    token_facts: u64,
    token_names: HashMap<String, u64>,
    /// Elements of every collection literal in the token (a bound on any collection an
    /// expression can build from them: union is their sum at most).
    collections: u64,
    /// Elements of collections nested inside other collections: a bound on the size of
    /// any collection that is an element (a closure's parameter, say).
    nested: u64,
    /// The longest string symbol in the token.
    longest_string: u64,
}

#[derive(Debug, PartialEq)]
struct Query {
    block: usize,
    predicates: Vec<Pred>,
    expressions: Vec<Vec<Op>>,
}

#[derive(Debug, PartialEq)]
struct Pred {
    name: String,
    /// The first term is a constant or a variable bound by an earlier predicate.
    first_fixed: bool,
}

/// An expression operation, reduced to what its cost depends on.
#[derive(Debug, PartialEq)]
enum Op {
    Variable(u32),
    Str(u64),
    Collection(u64),
    Scalar,
    Unary,
    Binary(i32),
    Closure(Vec<u32>, Vec<Op>),
}

impl CheckShapes {
    /// Reads the blocks of `token` (the serialized Biscuit, signatures already verified)
    /// and refuses one that breaks the structural limits.
    pub(crate) fn read(token: &[u8]) -> Result<Self, DatalogError> {
        let blocks = Blocks::decode(token).map_err(|block| DatalogError::Unreadable { block })?;
        Self::of(&blocks)
    }

    /// [`CheckShapes::read`] of a token's decoded blocks.
    pub(crate) fn of(blocks: &Blocks) -> Result<Self, DatalogError> {
        let mut shapes = CheckShapes::default();
        for b in blocks.iter() {
            shapes.add_block(b.index, b.block, b.symbols)?;
        }
        Ok(shapes)
    }

    fn add_block(
        &mut self,
        index: usize,
        block: &schema::Block,
        symbols: &[String],
    ) -> Result<(), DatalogError> {
        let name = |i: u64| symbol(symbols, i).ok_or(DatalogError::Unreadable { block: index });
        if index > 0 {
            if !block.rules.is_empty() {
                return Err(DatalogError::RulesInBlock { block: index });
            }
            if block.facts.len() > MAX_FACTS_PER_BLOCK {
                return Err(DatalogError::TooManyFacts {
                    block: index,
                    count: block.facts.len(),
                    max: MAX_FACTS_PER_BLOCK,
                });
            }
        }
        for s in &block.symbols {
            self.longest_string = self.longest_string.max(s.len() as u64);
        }
        for fact in &block.facts {
            self.token_facts += 1;
            *self
                .token_names
                .entry(name(fact.predicate.name)?.to_string())
                .or_default() += 1;
            for term in &fact.predicate.terms {
                self.count_collection(term);
            }
        }
        // The authority block is the gateway's own statement (claims and the ceiling the
        // operator registered): its checks are not a holder's to inflate.
        if index == 0 {
            return Ok(());
        }
        for check in &block.checks {
            for rule in &check.queries {
                if rule.body.len() > MAX_PREDICATES_PER_QUERY {
                    return Err(DatalogError::TooManyPredicates {
                        block: index,
                        count: rule.body.len(),
                        max: MAX_PREDICATES_PER_QUERY,
                    });
                }
                let mut bound = Vec::new();
                let mut predicates = Vec::with_capacity(rule.body.len());
                for p in &rule.body {
                    let first_fixed = match p.terms.first().and_then(|t| t.content.as_ref()) {
                        Some(schema::term::Content::Variable(v)) => bound.contains(v),
                        Some(_) => true,
                        None => false,
                    };
                    for t in &p.terms {
                        if let Some(schema::term::Content::Variable(v)) = &t.content {
                            bound.push(*v);
                        }
                        self.count_collection(t);
                    }
                    predicates.push(Pred {
                        name: name(p.name)?.to_string(),
                        first_fixed,
                    });
                }
                let mut expressions = Vec::with_capacity(rule.expressions.len());
                for e in &rule.expressions {
                    expressions.push(self.ops(&e.ops, symbols, index)?);
                }
                self.queries.push(Query {
                    block: index,
                    predicates,
                    expressions,
                });
            }
        }
        Ok(())
    }

    /// Adds a term's collections to the token's totals; returns its own length.
    fn count_collection(&mut self, term: &schema::Term) -> u64 {
        let (len, nested) = collection_len(term);
        self.collections = self.collections.saturating_add(len).saturating_add(nested);
        self.nested = self.nested.saturating_add(nested);
        len
    }

    fn ops(
        &mut self,
        ops: &[schema::Op],
        symbols: &[String],
        block: usize,
    ) -> Result<Vec<Op>, DatalogError> {
        use schema::op::Content;
        use schema::term::Content as T;
        let mut out = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            if let Some(Content::Binary(b)) = &op.content
                && b.kind == schema::op_binary::Kind::Regex as i32
            {
                // The pattern is the operand just before: it must be a literal string.
                let pattern = match i.checked_sub(1).and_then(|p| ops[p].content.as_ref()) {
                    Some(Content::Value(schema::Term {
                        content: Some(T::String(s)),
                    })) => symbol(symbols, *s).ok_or(DatalogError::Unreadable { block })?,
                    _ => return Err(DatalogError::RegexNotLiteral { block }),
                };
                regex::RegexBuilder::new(pattern)
                    .size_limit(MAX_REGEX_PROGRAM_BYTES)
                    .build()
                    .map_err(|_| DatalogError::RegexTooLarge { block })?;
            }
            out.push(match &op.content {
                Some(Content::Value(term)) => match &term.content {
                    Some(T::Variable(v)) => Op::Variable(*v),
                    Some(T::String(i)) => Op::Str(
                        symbol(symbols, *i)
                            .ok_or(DatalogError::Unreadable { block })?
                            .len() as u64,
                    ),
                    Some(T::Set(_) | T::Array(_) | T::Map(_)) => {
                        Op::Collection(self.count_collection(term))
                    }
                    Some(T::Bytes(b)) => Op::Str(b.len() as u64),
                    _ => Op::Scalar,
                },
                Some(Content::Unary(_)) => Op::Unary,
                Some(Content::Binary(b)) => Op::Binary(b.kind),
                Some(Content::Closure(c)) => {
                    Op::Closure(c.params.clone(), self.ops(&c.ops, symbols, block)?)
                }
                None => return Err(DatalogError::Unreadable { block }),
            });
        }
        Ok(out)
    }

    /// The units of work evaluating the checks after the authority block could cost for
    /// `request`; refused if more than [`MAX_WORK_PER_WRIT`].
    pub(crate) fn work(&self, request: &RequestFacts) -> Result<u64, DatalogError> {
        let scope = Scope::of(self, request);
        let mut total: u64 = 0;
        for q in &self.queries {
            total = total.saturating_add(q.work(&scope));
            if total > MAX_WORK_PER_WRIT {
                return Err(DatalogError::TooCostly {
                    block: q.block,
                    max: MAX_WORK_PER_WRIT,
                });
            }
        }
        Ok(total)
    }
}

/// What one request puts in scope beside the token's own facts.
struct Scope<'a> {
    shapes: &'a CheckShapes,
    facts: u64,
    /// Facts per predicate name the request states.
    segments: u64,
    args: u64,
    /// Upper bounds for a value whose shape is not known statically.
    collection: u64,
    string: u64,
}

impl<'a> Scope<'a> {
    fn of(shapes: &'a CheckShapes, r: &RequestFacts) -> Self {
        let segments = r.path.trim_start_matches('/').split('/').count() as u64;
        let tool = r.api == Api::Tool;
        let args = if tool { r.args.len() as u64 } else { 0 };
        let optional = [
            &r.upstream,
            &r.model,
            &r.tool,
            &r.admin_tenant,
            &r.dpop_jkt,
            &r.resource,
            &r.mcp_method,
            &r.prompt,
            &r.uri,
        ];
        let approver = r.approved_by.as_ref().map(|(p, m)| p.len().max(m.len()));
        let mut string = [r.operation.len(), r.method.len(), r.path.len()]
            .into_iter()
            .chain(optional.iter().filter_map(|o| o.as_ref().map(String::len)))
            .chain(approver)
            .max()
            .unwrap_or(0) as u64;
        for (name, value) in &r.args {
            string = string.max(name.len() as u64);
            if let crate::ArgValue::Str(s) = value {
                string = string.max(s.len() as u64);
            }
        }
        // time, api, operation, method, path, stream; the optional ones; max_output_tokens;
        // path segments; arguments and their names.
        let facts = 6
            + optional.iter().filter(|o| o.is_some()).count() as u64
            + u64::from(r.max_output_tokens.is_some())
            + u64::from(r.approved_by.is_some())
            + segments
            + args
            + u64::from(tool);
        Scope {
            shapes,
            facts: facts + shapes.token_facts,
            segments,
            args,
            collection: shapes.collections + args,
            string: string.max(shapes.longest_string),
        }
    }

    /// How many facts a predicate can match.
    fn matches(&self, p: &Pred) -> u64 {
        let stated = self.shapes.token_names.get(&p.name).copied().unwrap_or(0);
        // `arg` is unique by name and `path_segment` by index, so a fixed first term
        // selects one of the request's at most.
        let from_request = match p.name.as_str() {
            "arg" if p.first_fixed => self.args.min(1),
            "arg" => self.args,
            "path_segment" if p.first_fixed => 1,
            "path_segment" => self.segments,
            "time" | "api" | "operation" | "method" | "path" | "stream" => 1,
            "upstream" | "model" | "tool" | "admin_tenant" | "dpop_jkt" | "resource"
            | "mcp_method" | "prompt" | "uri" | "approved_by" | "max_output_tokens" => 1,
            "arg_names" => u64::from(self.args > 0),
            _ => 0,
        };
        stated.saturating_add(from_request)
    }
}

impl Query {
    fn work(&self, scope: &Scope<'_>) -> u64 {
        let mut work: u64 = 0;
        let mut combinations: u64 = 1;
        for p in &self.predicates {
            work = work.saturating_add(
                combinations
                    .saturating_mul(scope.facts)
                    .saturating_mul(VISIT_UNITS),
            );
            combinations = combinations.saturating_mul(scope.matches(p));
            work = work.saturating_add(combinations.saturating_mul(MATCH_UNITS));
        }
        let per_match = self.expressions.iter().fold(COMPLETE_UNITS, |acc, e| {
            acc.saturating_add(expression_cost(e, scope, &[]))
        });
        work.saturating_add(combinations.saturating_mul(per_match))
    }
}

/// An abstract value on the evaluation stack: bounds on its size.
#[derive(Clone, Copy)]
enum Abstract {
    Value { string: u64, collection: u64 },
    Closure { cost: u64 },
}

/// The cost of one evaluation of `ops`, by running them over bounds instead of values.
fn expression_cost(ops: &[Op], scope: &Scope<'_>, params: &[u32]) -> u64 {
    use schema::op_binary::Kind;
    let unknown = Abstract::Value {
        string: scope.string,
        collection: scope.collection,
    };
    // A closure's parameter is one element of the collection it runs over.
    let element = Abstract::Value {
        string: scope.string,
        collection: scope.shapes.nested,
    };
    let scalar = Abstract::Value {
        string: 0,
        collection: 0,
    };
    let mut stack: Vec<Abstract> = Vec::new();
    let mut cost: u64 = 0;
    let sizes = |v: Abstract| match v {
        Abstract::Value { string, collection } => (string, collection),
        Abstract::Closure { .. } => (0, 0),
    };
    for op in ops {
        cost = cost.saturating_add(1);
        match op {
            Op::Variable(v) if params.contains(v) => stack.push(element),
            Op::Variable(_) => stack.push(unknown),
            Op::Str(n) => stack.push(Abstract::Value {
                string: *n,
                collection: 0,
            }),
            Op::Collection(n) => stack.push(Abstract::Value {
                string: scope.string,
                collection: *n,
            }),
            Op::Scalar => stack.push(scalar),
            Op::Unary => {
                let v = stack.pop().unwrap_or(unknown);
                let (s, c) = sizes(v);
                cost = cost.saturating_add(s / BYTES_PER_UNIT + c);
                stack.push(v);
            }
            Op::Closure(own, body) => {
                let params: Vec<u32> = params.iter().chain(own).copied().collect();
                stack.push(Abstract::Closure {
                    cost: expression_cost(body, scope, &params),
                });
            }
            Op::Binary(kind) => {
                let right = stack.pop().unwrap_or(unknown);
                let left = stack.pop().unwrap_or(unknown);
                let (ls, lc) = sizes(left);
                let (rs, rc) = sizes(right);
                let closure = match right {
                    Abstract::Closure { cost } => cost,
                    Abstract::Value { .. } => 0,
                };
                let kind = Kind::from_i32(*kind).unwrap_or(Kind::Ffi);
                let (work, result) = match kind {
                    Kind::All | Kind::Any => {
                        (lc.max(1).saturating_mul(closure.saturating_add(1)), scalar)
                    }
                    Kind::LazyAnd | Kind::LazyOr | Kind::TryOr => (closure, unknown),
                    Kind::Regex => (REGEX_UNITS.saturating_add(ls.saturating_add(rs)), scalar),
                    Kind::Add => (
                        (ls + rs) / BYTES_PER_UNIT,
                        Abstract::Value {
                            string: ls.saturating_add(rs),
                            collection: 0,
                        },
                    ),
                    Kind::Union => (
                        lc.saturating_add(rc),
                        Abstract::Value {
                            string: ls.max(rs),
                            collection: lc.saturating_add(rc),
                        },
                    ),
                    Kind::Intersection => (
                        lc.saturating_add(rc),
                        Abstract::Value {
                            string: ls.max(rs),
                            collection: lc.min(rc),
                        },
                    ),
                    Kind::Get => (1, unknown),
                    _ => (
                        (ls.saturating_add(rs)) / BYTES_PER_UNIT + lc.saturating_add(rc),
                        scalar,
                    ),
                };
                cost = cost.saturating_add(work);
                stack.push(result);
            }
        }
    }
    cost
}

/// The name of symbol `index` of a block whose symbol table is `table`.
pub(crate) fn symbol(table: &[String], index: u64) -> Option<&str> {
    if index < SYMBOL_OFFSET {
        DEFAULT_SYMBOLS.get(usize::try_from(index).ok()?).copied()
    } else {
        table
            .get(usize::try_from(index - SYMBOL_OFFSET).ok()?)
            .map(String::as_str)
    }
}

/// Elements of a collection term: its own, and those of the collections inside it.
fn collection_len(term: &schema::Term) -> (u64, u64) {
    use schema::term::Content;
    let items: Vec<&schema::Term> = match &term.content {
        Some(Content::Set(s)) => s.set.iter().collect(),
        Some(Content::Array(a)) => a.array.iter().collect(),
        Some(Content::Map(m)) => m.entries.iter().map(|e| &e.value).collect(),
        _ => return (0, 0),
    };
    let nested = items.iter().fold(0u64, |n, t| {
        let (own, inner) = collection_len(t);
        n.saturating_add(own).saturating_add(inner)
    });
    (items.len() as u64, nested)
}
