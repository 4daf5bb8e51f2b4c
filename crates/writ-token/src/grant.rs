//! The grant language: RFC 9396-style JSON grants, their validation, and (in
//! [`compile`]) their compilation to Datalog.
//!
//! Access grants (`writ:llm`, `writ:tool`, `writ:http`, `writ:admin`) are alternatives: a
//! block's grants compile to one check that passes when the request satisfies any of them.
//! `writ:budget` states budgets as facts and `writ:datalog` adds raw checks; both apply
//! to the whole block.

mod compile;
mod de;
mod within;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub(crate) use compile::{canonical_int, compile_block};
pub use within::first_outside;

/// Longest name (upstream, model, action, tool, argument) accepted in a grant.
const MAX_NAME_LEN: usize = 256;
/// Most entries accepted in one list or map of a grant.
const MAX_LIST_LEN: usize = 256;
/// Longest raw Datalog accepted.
const MAX_DATALOG_LEN: usize = 4096;
/// Most grants accepted in one block.
pub const MAX_GRANTS: usize = 64;

/// Every grant `type`, as `authorization_details` spells it: what the token endpoint
/// accepts, and what discovery metadata lists as `authorization_details_types_supported`
/// (RFC 9396 §10).
pub const GRANT_TYPES: [&str; 8] = [
    "writ:llm",
    "writ:tool",
    "writ:prompt",
    "writ:resource",
    "writ:http",
    "writ:admin",
    "writ:budget",
    "writ:datalog",
];

/// One thing a writ allows or states. The `type` field selects the kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Grant {
    /// Calls to a model API upstream.
    #[serde(rename = "writ:llm")]
    Llm(LlmGrant),
    /// One tool, with constrained arguments.
    #[serde(rename = "writ:tool")]
    Tool(ToolGrant),
    /// One prompt of an MCP server, with constrained arguments.
    #[serde(rename = "writ:prompt")]
    Prompt(PromptGrant),
    /// Resources of an MCP server, by URI.
    #[serde(rename = "writ:resource")]
    Resource(ResourceGrant),
    /// HTTP calls to a plain upstream, by method and path template.
    #[serde(rename = "writ:http")]
    Http(HttpGrant),
    /// The admin API.
    #[serde(rename = "writ:admin")]
    Admin(AdminGrant),
    /// Budgets for the writ; the smallest stated in any block applies.
    #[serde(rename = "writ:budget")]
    Budget(BudgetGrant),
    /// Raw Datalog checks, the escape hatch.
    #[serde(rename = "writ:datalog")]
    Datalog(DatalogGrant),
}

/// A `writ:llm` grant: which upstream, which operations, which models, what output cap.
/// A field left out does not constrain the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmGrant {
    /// Name of the configured upstream.
    pub upstream: String,
    /// Allowed operations, such as `chat` or `embeddings`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<Vec<String>>,
    /// Allowed model names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
    /// The largest output-token cap a request may state. When set, requests must state one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
    /// The writ may be used once.
    #[serde(default, skip_serializing_if = "is_false")]
    pub single_use: bool,
}

/// A `writ:tool` grant: one tool on one upstream, with constraints on its arguments.
///
/// Arguments are named by dotted paths (`passenger.name`, `legs.0.from`). Unless
/// `additional_arguments` is true, a call with an argument the grant does not name is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolGrant {
    /// Name of the configured upstream.
    pub upstream: String,
    /// The tool's name.
    pub tool: String,
    /// Constraints by argument name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub arguments: BTreeMap<String, Constraint>,
    /// Allow arguments the grant does not name.
    #[serde(default, skip_serializing_if = "is_false")]
    pub additional_arguments: bool,
    /// The writ may be used once.
    #[serde(default, skip_serializing_if = "is_false")]
    pub single_use: bool,
}

/// A `writ:prompt` grant: one prompt (`prompts/get`) on one MCP upstream, with
/// constraints on its arguments, as a `writ:tool` grant has for a tool's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptGrant {
    /// Name of the configured upstream.
    pub upstream: String,
    /// The prompt's name.
    pub prompt: String,
    /// Constraints by argument name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub arguments: BTreeMap<String, Constraint>,
    /// Allow arguments the grant does not name.
    #[serde(default, skip_serializing_if = "is_false")]
    pub additional_arguments: bool,
}

/// A `writ:resource` grant: `resources/read` of the URIs a constraint allows (a URI, a
/// list of them with `one_of`, or a `prefix`) on one MCP upstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceGrant {
    /// Name of the configured upstream.
    pub upstream: String,
    /// The URIs allowed.
    pub uri: Constraint,
}

/// A `writ:http` grant: methods and a path template such as `/v1/bookings/{id}`, with
/// constraints on the template's parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpGrant {
    /// Name of the configured upstream.
    pub upstream: String,
    /// Allowed methods (upper case); any when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<String>>,
    /// Path template: literal segments and `{name}` parameters, each a whole segment.
    pub path: String,
    /// Constraints by template parameter name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, Constraint>,
    /// The writ may be used once.
    #[serde(default, skip_serializing_if = "is_false")]
    pub single_use: bool,
}

/// A `writ:admin` grant: the admin API, for one tenant or (when left out) all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminGrant {
    /// The tenant administered; all tenants when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

/// A `writ:budget` statement. Enforced by the limiter; the smallest in any block applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetGrant {
    /// Most spend, in millionths of a US dollar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usd_micros: Option<u64>,
    /// Most tokens, input and output together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
}

/// A `writ:datalog` statement: Biscuit checks added to the block as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatalogGrant {
    /// Biscuit Datalog source: checks only (`check if …;`, `check all …;`, `reject if …;`).
    pub code: String,
}

/// A constraint on one argument or path parameter: a bare value means equality.
///
/// Read by hand rather than as an untagged enum, so a wrong one is refused with the shapes
/// allowed rather than "did not match any variant".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Constraint {
    /// Equal to this value.
    Exact(ArgValue),
    /// Every stated rule holds.
    Rule(ConstraintRule),
}

/// The rules of a [`Constraint`]; every one stated must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConstraintRule {
    /// One of these values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_of: Option<Vec<ArgValue>>,
    /// A number at most this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<i64>,
    /// A number at least this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<i64>,
    /// A string starting with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// A scalar argument value, as stated to the authorizer by `arg(name, value)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(untagged)]
pub enum ArgValue {
    /// JSON `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A string.
    Str(String),
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A grant could not be parsed or is out of bounds.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GrantError {
    /// The text is not JSON.
    #[error("not valid JSON: {0}")]
    Json(String),
    /// The JSON is not a grant or list of grants; says which field and what is allowed.
    #[error("not a grant: {0}")]
    Shape(String),
    /// The JSON holds a key twice in one object. Last-wins parsing would grant the last
    /// value while a reviewer or a proxy reading the first approves another, so it is
    /// refused.
    #[error("grant JSON has the key `{path}` more than once; send each key once")]
    DuplicateKey {
        /// The repeated key's path, as `[0].models`.
        path: writ_json::KeyPath,
    },
    /// No grant was given.
    #[error("at least one grant is required")]
    Empty,
    /// A writ must allow something: the ceiling and the mint-time grants need an access grant.
    #[error("at least one access grant (writ:llm, writ:tool, writ:http, writ:admin) is required")]
    NoAccessGrant,
    /// Too many grants in one block.
    #[error("{count} grants given, at most {max} accepted")]
    TooMany {
        /// Grants given.
        count: usize,
        /// Most accepted.
        max: usize,
    },
    /// A field is empty, too long, or otherwise invalid.
    #[error("grant field `{field}` is invalid: {reason}")]
    InvalidField {
        /// The field name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

fn invalid(field: &'static str, reason: impl Into<String>) -> GrantError {
    GrantError::InvalidField {
        field,
        reason: reason.into(),
    }
}

/// Parses grants from JSON: one grant object or an array of them. Strict: a key repeated
/// in any object is refused ([`GrantError::DuplicateKey`]), not read last-wins.
pub fn parse_grants(json: &str) -> Result<Vec<Grant>, GrantError> {
    let value: serde_json::Value = writ_json::from_str(json).map_err(|e| match e {
        writ_json::JsonError::DuplicateKey { path } => GrantError::DuplicateKey { path },
        writ_json::JsonError::Syntax(e) | writ_json::JsonError::Shape(e) => {
            GrantError::Json(e.to_string())
        }
        other => GrantError::Json(other.to_string()),
    })?;
    let grants: Vec<Grant> = match value {
        serde_json::Value::Array(_) => serde_json::from_value(value),
        other => serde_json::from_value(other).map(|g| vec![g]),
    }
    .map_err(|e| GrantError::Shape(e.to_string()))?;
    validate(&grants)?;
    Ok(grants)
}

impl Grant {
    /// Its `type` in `authorization_details`, one of [`GRANT_TYPES`].
    pub fn type_name(&self) -> &'static str {
        match self {
            Grant::Llm(_) => "writ:llm",
            Grant::Tool(_) => "writ:tool",
            Grant::Prompt(_) => "writ:prompt",
            Grant::Resource(_) => "writ:resource",
            Grant::Http(_) => "writ:http",
            Grant::Admin(_) => "writ:admin",
            Grant::Budget(_) => "writ:budget",
            Grant::Datalog(_) => "writ:datalog",
        }
    }

    /// Whether this grant allows requests (rather than stating budgets or raw checks).
    pub fn is_access(&self) -> bool {
        matches!(
            self,
            Grant::Llm(_)
                | Grant::Tool(_)
                | Grant::Prompt(_)
                | Grant::Resource(_)
                | Grant::Http(_)
                | Grant::Admin(_)
        )
    }

    /// Whether this grant says the writ may be used once.
    pub fn is_single_use(&self) -> bool {
        match self {
            Grant::Llm(g) => g.single_use,
            Grant::Tool(g) => g.single_use,
            Grant::Http(g) => g.single_use,
            _ => false,
        }
    }

    /// The upstream an access grant names.
    pub fn upstream(&self) -> Option<&str> {
        match self {
            Grant::Llm(g) => Some(&g.upstream),
            Grant::Tool(g) => Some(&g.upstream),
            Grant::Prompt(g) => Some(&g.upstream),
            Grant::Resource(g) => Some(&g.upstream),
            Grant::Http(g) => Some(&g.upstream),
            _ => None,
        }
    }
}

/// Checks bounds on a list of grants: at least one grant, every name sane.
pub fn validate(grants: &[Grant]) -> Result<(), GrantError> {
    if grants.is_empty() {
        return Err(GrantError::Empty);
    }
    if grants.len() > MAX_GRANTS {
        return Err(GrantError::TooMany {
            count: grants.len(),
            max: MAX_GRANTS,
        });
    }
    for grant in grants {
        match grant {
            Grant::Llm(g) => {
                check_name("upstream", &g.upstream)?;
                check_list("actions", g.actions.as_deref())?;
                check_list("models", g.models.as_deref())?;
                if g.max_output_tokens.is_some_and(|n| n > i64::MAX as u64) {
                    return Err(invalid("max_output_tokens", "too large"));
                }
            }
            Grant::Tool(g) => {
                check_name("upstream", &g.upstream)?;
                check_name("tool", &g.tool)?;
                check_constraints("arguments", &g.arguments)?;
            }
            Grant::Prompt(g) => {
                check_name("upstream", &g.upstream)?;
                check_name("prompt", &g.prompt)?;
                check_constraints("arguments", &g.arguments)?;
            }
            Grant::Resource(g) => {
                check_name("upstream", &g.upstream)?;
                check_uri_constraint(&g.uri)?;
            }
            Grant::Http(g) => {
                check_name("upstream", &g.upstream)?;
                if let Some(methods) = &g.methods {
                    check_list("methods", Some(methods))?;
                    if methods
                        .iter()
                        .any(|m| !m.bytes().all(|b| b.is_ascii_uppercase()))
                    {
                        return Err(invalid(
                            "methods",
                            "methods are upper-case words, such as GET",
                        ));
                    }
                }
                let params = compile::template_params(&g.path)?;
                check_constraints("params", &g.params)?;
                if let Some(unknown) = g.params.keys().find(|k| !params.contains(k)) {
                    return Err(invalid(
                        "params",
                        format!("`{unknown}` is not a parameter of the path template"),
                    ));
                }
            }
            Grant::Admin(g) => {
                if let Some(t) = &g.tenant {
                    check_name("tenant", t)?;
                }
            }
            Grant::Budget(b) => {
                if b.usd_micros.is_none() && b.tokens.is_none() {
                    return Err(invalid("writ:budget", "state usd_micros, tokens, or both"));
                }
                if b.usd_micros
                    .or(b.tokens)
                    .is_some_and(|n| n > i64::MAX as u64)
                {
                    return Err(invalid("writ:budget", "too large"));
                }
            }
            Grant::Datalog(d) => {
                if d.code.len() > MAX_DATALOG_LEN {
                    return Err(invalid("code", "longer than 4096 bytes"));
                }
                compile::check_datalog(&d.code)?;
            }
        }
    }
    Ok(())
}

fn check_list(field: &'static str, list: Option<&[String]>) -> Result<(), GrantError> {
    let Some(list) = list else { return Ok(()) };
    if list.is_empty() {
        return Err(invalid(
            field,
            "empty list (leave the field out to allow any)",
        ));
    }
    if list.len() > MAX_LIST_LEN {
        return Err(invalid(field, "too many entries"));
    }
    list.iter().try_for_each(|name| check_name(field, name))
}

fn check_constraints(
    field: &'static str,
    map: &BTreeMap<String, Constraint>,
) -> Result<(), GrantError> {
    if map.len() > MAX_LIST_LEN {
        return Err(invalid(field, "too many entries"));
    }
    for (name, constraint) in map {
        check_name(field, name)?;
        match constraint {
            Constraint::Exact(v) => check_value(field, v)?,
            Constraint::Rule(r) => {
                if *r == ConstraintRule::default() {
                    return Err(invalid(
                        field,
                        format!("`{name}`: state one_of, max, min or prefix"),
                    ));
                }
                if let Some(values) = &r.one_of {
                    if values.is_empty() || values.len() > MAX_LIST_LEN {
                        return Err(invalid(
                            field,
                            format!("`{name}`: one_of needs 1 to 256 values"),
                        ));
                    }
                    values.iter().try_for_each(|v| check_value(field, v))?;
                }
                if let Some(p) = &r.prefix {
                    check_value(field, &ArgValue::Str(p.clone()))?;
                }
            }
        }
    }
    Ok(())
}

fn check_value(field: &'static str, value: &ArgValue) -> Result<(), GrantError> {
    match value {
        ArgValue::Str(s) if s.len() > 4096 => Err(invalid(field, "value longer than 4096 bytes")),
        _ => Ok(()),
    }
}

/// A resource grant's `uri`: a string, `one_of` strings, or a `prefix`; nothing numeric.
fn check_uri_constraint(c: &Constraint) -> Result<(), GrantError> {
    let uri = |v: &ArgValue| match v {
        ArgValue::Str(s)
            if !s.is_empty() && s.len() <= 2048 && !s.chars().any(char::is_control) =>
        {
            Ok(())
        }
        _ => Err(invalid(
            "uri",
            "a URI is a non-empty string of at most 2048 bytes without control characters",
        )),
    };
    match c {
        Constraint::Exact(v) => uri(v),
        Constraint::Rule(r) => {
            if r.max.is_some() || r.min.is_some() {
                return Err(invalid(
                    "uri",
                    "a URI is constrained by value, one_of or prefix",
                ));
            }
            match (&r.one_of, &r.prefix) {
                (None, None) => Err(invalid("uri", "say which URIs: a value, one_of or prefix")),
                (one_of, prefix) => {
                    if let Some(values) = one_of {
                        if values.is_empty() || values.len() > MAX_LIST_LEN {
                            return Err(invalid("uri", "one_of holds 1 to 256 URIs"));
                        }
                        values.iter().try_for_each(uri)?;
                    }
                    if let Some(p) = prefix {
                        uri(&ArgValue::Str(p.clone()))?;
                    }
                    Ok(())
                }
            }
        }
    }
}

fn check_name(field: &'static str, name: &str) -> Result<(), GrantError> {
    if name.is_empty() {
        return Err(invalid(field, "empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(invalid(field, "longer than 256 bytes"));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid(field, "contains control characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
