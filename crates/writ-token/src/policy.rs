//! Operator policies: per-tenant Biscuit Datalog checks applied to every data-plane request
//! of the tenant, on top of the writ's own checks (issue 22, DESIGN §2).
//!
//! A policy holds checks (`check if`, `check all`, `reject if`) and approval rules,
//! `requires_approval("why") <- body;`: a request matching the body is held until a person
//! approves it (the reason is what they are told). An approval rule is read as the check
//! `reject if body`, so it costs and is bounded exactly as one; nothing else a rule could
//! derive is accepted. A policy is evaluated in an
//! authorizer that holds no token: it sees exactly the request facts the writ's authorizer
//! sees ([`RequestFacts`]) and nothing else, so it can only refuse, never grant, and nothing
//! it states can stand in for a request fact. Rules are refused too: the library's run
//! limits are checked only between whole evaluation steps, so one rule could join its way
//! through millions of facts before a limit is looked at. The checks are instead bounded
//! before each evaluation by the same static work bound as a writ's attenuation blocks
//! (`evaluation_cost`); a request they could cost too much for is denied (fail closed), as
//! is a request whose evaluation hits a run limit.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use biscuit_auth::builder::{self, AuthorizerBuilder, Check, Policy};
use biscuit_auth::error::{FailedCheck, Logic, Token};
use biscuit_auth::{Algorithm, Biscuit, KeyPair};

use crate::evaluation_cost::{CheckShapes, DatalogError};
use crate::facts::{Api, RequestFacts};
use source::{parse, valid_name};

/// Largest policy source accepted, in bytes.
pub const MAX_POLICY_BYTES: usize = 16 * 1024;
/// Most checks all of a tenant's policies may state together.
pub const MAX_POLICY_CHECKS: usize = 64;
/// Longest policy name accepted, in bytes.
pub const MAX_POLICY_NAME_BYTES: usize = 64;

/// The one place operators are told what a policy may hold.
const ONLY_CHECKS: &str =
    "only `check if`, `check all`, `reject if` and `requires_approval(\"why\") <- …` are allowed";

/// What a policy stated that policies may not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForbiddenConstruct {
    /// A fact: it could stand in for a request fact.
    Fact,
    /// A rule other than `requires_approval("why") <- …`: it derives facts, which the
    /// evaluation bound does not cover.
    Rule,
    /// An `allow if` or `deny if` policy: the writ decides what is allowed.
    AllowOrDeny,
    /// A `trusting` scope: a policy sees the request, no token and no other key.
    Trusting,
    /// A `{parameter}`: a policy is stored as written, nothing fills it in.
    Parameter,
    /// A call of an external function: the gateway provides none.
    ExternalFunction,
}

impl std::fmt::Display for ForbiddenConstruct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ForbiddenConstruct::Fact => {
                "a fact is not allowed (policies read the request's facts, they do not state any)"
            }
            ForbiddenConstruct::Rule => {
                "a rule is not allowed, except `requires_approval(\"why\") <- …` with one quoted reason (write its condition into the check itself)"
            }
            ForbiddenConstruct::AllowOrDeny => {
                "`allow if` and `deny if` are not allowed (the writ decides what is allowed; a policy can only refuse)"
            }
            ForbiddenConstruct::Trusting => {
                "`trusting` scopes are not allowed (a policy sees only the request)"
            }
            ForbiddenConstruct::Parameter => {
                "`{parameters}` are not allowed (write the value itself)"
            }
            ForbiddenConstruct::ExternalFunction => {
                "`extern::` functions are not allowed (the gateway provides none)"
            }
        })
    }
}

/// Why a policy source was refused, in words an operator can act on; names the policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The name is empty, too long, or has characters other than letters, digits, `-`,
    /// `_` and `.`.
    #[error(
        "policy name {name:?} is invalid: use 1 to {MAX_POLICY_NAME_BYTES} letters, digits, `-`, `_` or `.`"
    )]
    InvalidName {
        /// The name as given.
        name: String,
    },
    /// Two sources have one name.
    #[error("policy `{policy}` is given twice: each policy of a tenant needs its own name")]
    DuplicateName {
        /// The name given twice.
        policy: String,
    },
    /// The source is larger than [`MAX_POLICY_BYTES`].
    #[error(
        "policy `{policy}` is {len} bytes, more than the {max} allowed: split it into several policies or simplify it"
    )]
    TooLarge {
        /// The policy.
        policy: String,
        /// Its size in bytes.
        len: usize,
        /// The largest size allowed.
        max: usize,
    },
    /// The tenant's policies state more than [`MAX_POLICY_CHECKS`] checks together.
    #[error(
        "the tenant's policies state {count} checks, more than the {max} allowed: combine checks with `or`, or remove a policy"
    )]
    TooManyChecks {
        /// Checks stated by all the policies.
        count: usize,
        /// The most allowed.
        max: usize,
    },
    /// The source is not valid Biscuit Datalog.
    #[error("policy `{policy}`: line {line}: not valid Datalog{}: {ONLY_CHECKS}, each ending with `;`", near.as_ref().map(|n| format!(" near {n:?}")).unwrap_or_default())]
    Syntax {
        /// The policy.
        policy: String,
        /// The line (from 1) where parsing failed.
        line: usize,
        /// The start of the text that could not be parsed (at most 40 characters).
        near: Option<String>,
    },
    /// The source states something policies may not hold.
    #[error("policy `{policy}`: line {line}: {construct}; {ONLY_CHECKS}")]
    Forbidden {
        /// The policy.
        policy: String,
        /// The line (from 1) of the statement.
        line: usize,
        /// What it stated.
        construct: ForbiddenConstruct,
    },
    /// The source states no check (only comments or nothing).
    #[error("policy `{policy}` states no check: {ONLY_CHECKS}")]
    NoCheck {
        /// The policy.
        policy: String,
    },
    /// A check is shaped so that evaluating it could cost too much.
    #[error("policy `{policy}`: {}", cost_words(cause))]
    TooCostly {
        /// The policy.
        policy: String,
        /// The bound it breaks.
        cause: DatalogError,
    },
}

/// A [`DatalogError`] about a policy's checks, in the operator's terms (no block numbers).
fn cost_words(cause: &DatalogError) -> String {
    match cause {
        DatalogError::TooManyPredicates { count, max, .. } => format!(
            "a check joins {count} predicates, more than the {max} allowed: split it into several checks"
        ),
        DatalogError::RegexNotLiteral { .. } => {
            "`.matches()` must be given a literal pattern (a quoted string)".to_string()
        }
        DatalogError::RegexTooLarge { .. } => {
            "a `.matches()` pattern is invalid or compiles too large: simplify it".to_string()
        }
        DatalogError::TooCostly { .. } => format!(
            "its checks could cost more than the {} units of work allowed even for the smallest request, so it would deny every request: join fewer predicates per check",
            crate::MAX_WORK_PER_WRIT
        ),
        DatalogError::RulesInBlock { .. } | DatalogError::TooManyFacts { .. } => {
            format!("{cause}: {ONLY_CHECKS}")
        }
        DatalogError::Unreadable { .. } => "its checks cannot be encoded".to_string(),
    }
}

/// Why a tenant policy refused a request. The check text is the operator's own and holds no
/// secret, so it may be shown to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyDenial {
    /// A check of a policy failed (the first, in the order the policies were given).
    #[error("denied by tenant policy `{policy}`: {check}")]
    FailedCheck {
        /// The policy.
        policy: String,
        /// The line (from 1) of the check in the policy.
        line: usize,
        /// The check as the operator wrote it, on one line.
        check: String,
    },
    /// A policy's checks could cost more to evaluate for this request than allowed, so the
    /// request is denied without evaluating them.
    #[error(
        "denied by tenant policy `{policy}`: its checks could cost more than allowed to evaluate for this request (fail closed)"
    )]
    TooCostly {
        /// The policy.
        policy: String,
    },
    /// Evaluating the tenant's policies hit a run limit (facts, iterations or time).
    #[error(
        "denied by the tenant's policies: their evaluation exceeded its limits for this request (fail closed)"
    )]
    RunLimit,
    /// The authorizer refused to evaluate the policies (an expression that fails on this
    /// request's values, say): denied rather than skipped.
    #[error(
        "denied by the tenant's policies: they could not be evaluated for this request (fail closed)"
    )]
    Unevaluable,
}

impl PolicyDenial {
    /// The policy that refused, when one policy can be named.
    pub fn policy(&self) -> Option<&str> {
        match self {
            PolicyDenial::FailedCheck { policy, .. } | PolicyDenial::TooCostly { policy } => {
                Some(policy)
            }
            PolicyDenial::RunLimit | PolicyDenial::Unevaluable => None,
        }
    }
}

/// One check of a policy, ready to add to an authorizer.
struct CompiledCheck {
    /// Index of its policy in `OperatorPolicy::names`.
    policy: usize,
    line: usize,
    /// The operator's text, on one line.
    text: String,
    check: Check,
    /// For an approval rule (read as `reject if body`), the reason it states.
    approval: Option<String>,
}

/// A tenant's policies, compiled once and checked against every request of the tenant.
///
/// Holds no secret. Cheap to check when a request repeats the last allowed one within the
/// same second (the answer is remembered); a tenant without policies should hold none at
/// all (`Option<Arc<OperatorPolicy>>`), though an empty one also allows without work.
pub struct OperatorPolicy {
    names: Vec<String>,
    checks: Vec<CompiledCheck>,
    /// The approval rules, each as `reject if body`.
    approvals: Vec<CompiledCheck>,
    /// The checks' shapes, one block per policy (block `i + 1` is policy `i`), to bound
    /// their cost for each request before it runs.
    shapes: CheckShapes,
    /// The tenant the policies belong to, when the caller said (for messages).
    tenant: Option<String>,
    /// The last allowed request: its second (UNIX time) and its facts' encoding.
    last_allowed: Mutex<Option<(u64, Box<[u8]>)>>,
}

impl std::fmt::Debug for OperatorPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorPolicy")
            .field("names", &self.names)
            .field("checks", &self.checks.len())
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

/// Checks that `text` is a policy [`OperatorPolicy::compile`] would accept under `name`
/// (on its own: the tenant-wide bound on checks is checked when all are compiled together).
/// For the admin API, before it stores a policy.
pub fn validate_policy(name: &str, text: &str) -> Result<(), PolicyError> {
    OperatorPolicy::compile(&[(name, text)]).map(|_| ())
}

impl OperatorPolicy {
    /// Compiles named policy sources, in the order given (a denial names the first policy
    /// whose check failed). Refuses an invalid or repeated name, a source over
    /// [`MAX_POLICY_BYTES`], anything but checks, and more than [`MAX_POLICY_CHECKS`]
    /// checks in all.
    pub fn compile<N: AsRef<str>, T: AsRef<str>>(sources: &[(N, T)]) -> Result<Self, PolicyError> {
        let mut names: Vec<String> = Vec::with_capacity(sources.len());
        let mut checks = Vec::new();
        let mut approvals = Vec::new();
        for (index, (name, text)) in sources.iter().enumerate() {
            let (name, text) = (name.as_ref(), text.as_ref());
            valid_name(name)?;
            if names.iter().any(|n| n == name) {
                return Err(PolicyError::DuplicateName {
                    policy: name.to_string(),
                });
            }
            names.push(name.to_string());
            if text.len() > MAX_POLICY_BYTES {
                return Err(PolicyError::TooLarge {
                    policy: name.to_string(),
                    len: text.len(),
                    max: MAX_POLICY_BYTES,
                });
            }
            for (line, text, check, approval) in parse(name, text)? {
                let compiled = CompiledCheck {
                    policy: index,
                    line,
                    text,
                    check,
                    approval,
                };
                if compiled.approval.is_some() {
                    approvals.push(compiled);
                } else {
                    checks.push(compiled);
                }
            }
        }
        if checks.len() + approvals.len() > MAX_POLICY_CHECKS {
            return Err(PolicyError::TooManyChecks {
                count: checks.len() + approvals.len(),
                max: MAX_POLICY_CHECKS,
            });
        }
        let shapes = bound_shapes(&names, checks.iter().chain(&approvals))?;
        Ok(Self {
            names,
            checks,
            approvals,
            shapes,
            tenant: None,
            last_allowed: Mutex::new(None),
        })
    }

    /// The same policies, said to belong to `tenant` (denials can then say where to look).
    pub fn with_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// The tenant, if [`with_tenant`](Self::with_tenant) named one.
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// The policies' names, in the order given.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Whether there are no checks and no approval rules at all (every request is
    /// allowed without work).
    pub fn is_empty(&self) -> bool {
        self.checks.is_empty() && self.approvals.is_empty()
    }

    /// Whether any approval rule is stated.
    pub fn asks_approval(&self) -> bool {
        !self.approvals.is_empty()
    }

    /// The reason of the first approval rule (in the order the policies were given) whose
    /// body the request matches, or `None` when no rule asks for approval. A request the
    /// rules could cost too much for, or whose evaluation fails, is refused as
    /// [`check`](Self::check) refuses it (fail closed).
    pub fn approval_required(
        &self,
        facts: &RequestFacts,
        now: SystemTime,
    ) -> Result<Option<ApprovalReason>, PolicyDenial> {
        if self.approvals.is_empty() {
            return Ok(None);
        }
        self.evaluation_work(facts)?;
        let now_secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let now = UNIX_EPOCH + Duration::from_secs(now_secs);
        match self.run(&self.approvals, facts, now) {
            Ok(()) => Ok(None),
            Err(Failed::Check(id)) => Ok(self.approvals.get(id).map(|c| ApprovalReason {
                policy: self.names[c.policy].clone(),
                line: c.line,
                reason: c.approval.clone().unwrap_or_default(),
            })),
            Err(Failed::RunLimit) => Err(PolicyDenial::RunLimit),
            Err(Failed::Other) => Err(PolicyDenial::Unevaluable),
        }
    }

    /// A bound on the units of work (about 10 ns each, as for a writ) evaluating the checks
    /// for `facts` could cost, or the denial [`check`](Self::check) would give when it is over
    /// [`crate::MAX_WORK_PER_WRIT`]. Pure and cheap, so a caller can decide where to run a
    /// costly evaluation.
    pub fn evaluation_work(&self, facts: &RequestFacts) -> Result<u64, PolicyDenial> {
        self.shapes.work(facts).map_err(|e| match e {
            DatalogError::TooCostly { block, .. } => PolicyDenial::TooCostly {
                policy: self.policy_of_block(block),
            },
            _ => PolicyDenial::Unevaluable,
        })
    }

    /// Checks the request facts against every policy at time `now` (to the second, as the
    /// writ's authorizer states it). `Ok` when every check passes; otherwise the first
    /// failed check and its policy. A request the checks could cost too much for, or whose
    /// evaluation hits a run limit, is denied.
    pub fn check(&self, facts: &RequestFacts, now: SystemTime) -> Result<(), PolicyDenial> {
        if self.checks.is_empty() {
            return Ok(());
        }
        let now_secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let now = UNIX_EPOCH + Duration::from_secs(now_secs);
        let mut encoded = Vec::with_capacity(128);
        facts.encode_into(&mut encoded);
        // Datalog is deterministic and `time` is stated to the second: the same facts in the
        // same second get the same answer. Every request of the tenant passes here, so the
        // memo is skipped rather than waited for when another request holds it.
        if let Ok(last) = self.last_allowed.try_lock()
            && let Some((second, allowed)) = last.as_ref()
            && *second == now_secs
            && **allowed == *encoded
        {
            return Ok(());
        }
        self.evaluation_work(facts)?;
        self.evaluate(facts, now)?;
        if let Ok(mut last) = self.last_allowed.try_lock() {
            *last = Some((now_secs, encoded.into_boxed_slice()));
        }
        Ok(())
    }

    fn evaluate(&self, facts: &RequestFacts, now: SystemTime) -> Result<(), PolicyDenial> {
        self.run(&self.checks, facts, now)
            .map_err(|failed| self.check_denial(failed))
    }

    #[cfg(test)]
    fn denial(&self, e: Token) -> PolicyDenial {
        self.check_denial(failed(e))
    }

    fn check_denial(&self, failed: Failed) -> PolicyDenial {
        match failed {
            Failed::Check(id) => self.checks.get(id).map_or(PolicyDenial::Unevaluable, |c| {
                PolicyDenial::FailedCheck {
                    policy: self.names[c.policy].clone(),
                    line: c.line,
                    check: c.text.clone(),
                }
            }),
            Failed::RunLimit => PolicyDenial::RunLimit,
            Failed::Other => PolicyDenial::Unevaluable,
        }
    }

    /// Runs `checks` against the request facts in an authorizer holding nothing else.
    fn run(
        &self,
        checks: &[CompiledCheck],
        facts: &RequestFacts,
        now: SystemTime,
    ) -> Result<(), Failed> {
        let other = |_| Failed::Other;
        let mut builder = AuthorizerBuilder::new().set_limits(crate::verify::run_limits());
        for fact in facts.to_facts(now) {
            builder = builder.fact(fact).map_err(other)?;
        }
        for c in checks {
            builder = builder.check(c.check.clone()).map_err(other)?;
        }
        // The one allow policy matches every request (each states its `api`): a policy
        // only refuses, through its checks; what is allowed is the writ's to say.
        let mut authorizer = builder
            .policy(allow_every_request())
            .map_err(other)?
            .build_unauthenticated()
            .map_err(failed)?;
        authorizer.authorize().map(|_| ()).map_err(failed)
    }

    fn policy_of_block(&self, block: usize) -> String {
        block
            .checked_sub(1)
            .and_then(|i| self.names.get(i))
            .cloned()
            .unwrap_or_default()
    }
}

/// Why a run of checks failed: the first failed check (its index), a run limit, or
/// anything else.
enum Failed {
    Check(usize),
    RunLimit,
    Other,
}

fn failed(e: Token) -> Failed {
    match e {
        Token::FailedLogic(Logic::Unauthorized { checks, .. })
        | Token::FailedLogic(Logic::NoMatchingPolicy { checks }) => checks
            .iter()
            .filter_map(|c| match c {
                FailedCheck::Authorizer(a) => usize::try_from(a.check_id).ok(),
                FailedCheck::Block(_) => None,
            })
            .min()
            .map_or(Failed::Other, Failed::Check),
        Token::RunLimit(_) => Failed::RunLimit,
        _ => Failed::Other,
    }
}

/// The approval rule a request matched: its reason, and where it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalReason {
    /// The policy holding the rule.
    pub policy: String,
    /// The line (from 1) of the rule in the policy.
    pub line: usize,
    /// The reason the rule states (what the person deciding is told), as written.
    pub reason: String,
}

fn allow_every_request() -> Policy {
    Policy {
        queries: vec![builder::rule(
            "allow",
            &[builder::var("api")],
            &[builder::pred("api", &[builder::var("api")])],
        )],
        kind: builder::PolicyKind::Allow,
    }
}

/// The checks' shapes for the static work bound, read the way a writ's blocks are read: as
/// the blocks of a token (signed by a throwaway key, never used as a credential), one per
/// policy. Refuses a policy that breaks a structural bound or that would cost too much even
/// for the smallest request.
fn bound_shapes<'a>(
    names: &[String],
    checks: impl Iterator<Item = &'a CompiledCheck> + Clone,
) -> Result<CheckShapes, PolicyError> {
    let unreadable = |policy: &str| PolicyError::TooCostly {
        policy: policy.to_string(),
        cause: DatalogError::Unreadable { block: 0 },
    };
    let first = names.first().map_or("", String::as_str);
    let key = KeyPair::new_with_rng(Algorithm::Ed25519, &mut rand::rngs::OsRng);
    let mut token = Biscuit::builder()
        .build(&key)
        .map_err(|_| unreadable(first))?;
    for (index, name) in names.iter().enumerate() {
        let mut block = builder::BlockBuilder::new();
        for c in checks.clone().filter(|c| c.policy == index) {
            block = block.check(c.check.clone()).map_err(|_| unreadable(name))?;
        }
        token = token.append(block).map_err(|_| unreadable(name))?;
    }
    let bytes = token.to_vec().map_err(|_| unreadable(first))?;
    let blame = |e: DatalogError| {
        let block = match &e {
            DatalogError::RulesInBlock { block }
            | DatalogError::TooManyFacts { block, .. }
            | DatalogError::TooManyPredicates { block, .. }
            | DatalogError::TooCostly { block, .. }
            | DatalogError::RegexNotLiteral { block }
            | DatalogError::RegexTooLarge { block }
            | DatalogError::Unreadable { block } => *block,
        };
        PolicyError::TooCostly {
            policy: block
                .checked_sub(1)
                .and_then(|i| names.get(i))
                .map_or(first, String::as_str)
                .to_string(),
            cause: e,
        }
    };
    let shapes = CheckShapes::read(&bytes).map_err(blame)?;
    shapes
        .work(&RequestFacts::new(Api::Llm, "chat", "POST", "/"))
        .map_err(blame)?;
    Ok(shapes)
}

mod source;

#[cfg(test)]
mod tests;
