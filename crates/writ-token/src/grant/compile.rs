//! Grants → Datalog. Only generated names go into source text; every value is bound as a
//! parameter, so no grant value can change the meaning of the code around it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use biscuit_auth::builder::{BlockBuilder, Term};
use biscuit_auth::error;

use super::{ArgValue, Constraint, Grant, GrantError, invalid};

/// Adds `grants` to `block`: one check whose alternatives are the access grants, budget
/// and single-use facts, and raw Datalog checks.
pub(crate) fn compile_block(
    block: BlockBuilder,
    grants: &[Grant],
) -> Result<BlockBuilder, error::Token> {
    let mut query = Query::default();
    let mut alternatives = Vec::new();
    let mut mcp: BTreeMap<String, McpGranted> = BTreeMap::new();
    let mut facts = Vec::new();
    let mut raw = Vec::new();
    for (i, grant) in grants.iter().enumerate() {
        match grant {
            Grant::Llm(g) => {
                let mut parts = vec![
                    "api(\"llm\")".to_string(),
                    query.eq("upstream", i, &g.upstream),
                ];
                if let Some(actions) = &g.actions {
                    parts.push(format!(
                        "operation($op_{i}), {}.contains($op_{i})",
                        query.set(&format!("actions_{i}"), actions)
                    ));
                }
                if let Some(models) = &g.models {
                    parts.push(format!(
                        "model($model_{i}), {}.contains($model_{i})",
                        query.set(&format!("models_{i}"), models)
                    ));
                }
                if let Some(cap) = g.max_output_tokens {
                    let p = query.param(
                        &format!("cap_{i}"),
                        Term::from(i64::try_from(cap).unwrap_or(i64::MAX)),
                    );
                    parts.push(format!("max_output_tokens($max_{i}), $max_{i} <= {p}"));
                }
                alternatives.push(parts.join(", "));
                single_use(&mut facts, g.single_use);
            }
            Grant::Tool(g) => {
                alternatives.push(mcp_call(
                    &mut query,
                    i,
                    [("upstream", &g.upstream), ("tool", &g.tool)],
                    "tool_call",
                    &g.arguments,
                    g.additional_arguments,
                ));
                mcp.entry(g.upstream.clone())
                    .or_default()
                    .tools
                    .insert(g.tool.clone());
                single_use(&mut facts, g.single_use);
            }
            Grant::Prompt(g) => {
                alternatives.push(mcp_call(
                    &mut query,
                    i,
                    [("upstream", &g.upstream), ("prompt", &g.prompt)],
                    "prompt_get",
                    &g.arguments,
                    g.additional_arguments,
                ));
                mcp.entry(g.upstream.clone())
                    .or_default()
                    .prompts
                    .insert(g.prompt.clone());
            }
            Grant::Resource(g) => {
                let upstream = query.eq("upstream", i, &g.upstream);
                // `uri` is stated once per request; the constraint binds it to a variable.
                let uri = match &g.uri {
                    Constraint::Exact(v) => {
                        format!("uri({})", query.param(&format!("uri_{i}"), term(v)))
                    }
                    Constraint::Rule(r) => {
                        let var = format!("$uri_{i}");
                        let mut parts = vec![format!("uri({var})")];
                        if let Some(values) = &r.one_of {
                            let set: BTreeSet<Term> = values.iter().map(term).collect();
                            let p = query.param(&format!("urioneof_{i}"), Term::Set(set));
                            parts.push(format!("{p}.contains({var})"));
                        }
                        if let Some(prefix) = &r.prefix {
                            let p =
                                query.param(&format!("uriprefix_{i}"), Term::from(prefix.as_str()));
                            parts.push(format!("{var}.starts_with({p}).try_or(false)"));
                        }
                        parts.join(", ")
                    }
                };
                alternatives.push(format!(
                    "api(\"tool\"), {upstream}, operation(\"resource_read\"), {uri}"
                ));
                mcp.entry(g.upstream.clone()).or_default().resources = true;
            }
            Grant::Http(g) => {
                let mut parts = vec![
                    "api(\"http\")".to_string(),
                    query.eq("upstream", i, &g.upstream),
                ];
                if let Some(methods) = &g.methods {
                    parts.push(format!(
                        "method($method_{i}), {}.contains($method_{i})",
                        query.set(&format!("methods_{i}"), methods)
                    ));
                }
                let regex = query.param(
                    &format!("path_{i}"),
                    Term::from(template_regex(&g.path).as_str()),
                );
                parts.push(format!("path($path_{i}), $path_{i}.matches({regex})"));
                for (j, (index, name)) in template_segments(&g.path).into_iter().enumerate() {
                    if let Some(constraint) = g.params.get(&name) {
                        let index_p =
                            query.param(&format!("seg_{i}_{j}"), Term::from(index as i64));
                        let constraint = normalize_segment_constraint(constraint);
                        parts.push(constrain(
                            &mut query,
                            "path_segment",
                            &index_p,
                            &format!("p{i}_{j}"),
                            &constraint,
                        ));
                    }
                }
                alternatives.push(parts.join(", "));
                single_use(&mut facts, g.single_use);
            }
            Grant::Admin(g) => {
                let mut parts = vec![
                    "api(\"admin\")".to_string(),
                    "operation(\"admin\")".to_string(),
                ];
                if let Some(tenant) = &g.tenant {
                    parts.push(query.eq("admin_tenant", i, tenant));
                }
                alternatives.push(parts.join(", "));
            }
            Grant::Budget(b) => {
                if let Some(n) = b.usd_micros {
                    facts.push((
                        "budget_usd_micros",
                        Term::from(i64::try_from(n).unwrap_or(i64::MAX)),
                    ));
                }
                if let Some(n) = b.tokens {
                    facts.push((
                        "budget_tokens",
                        Term::from(i64::try_from(n).unwrap_or(i64::MAX)),
                    ));
                }
            }
            Grant::Datalog(d) => raw.push(d.code.as_str()),
        }
    }
    mcp_session_alternatives(&mut query, &mut alternatives, &mcp);
    let mut block = if alternatives.is_empty() {
        block
    } else {
        let source = format!("check if {};", alternatives.join(" or "));
        block.code_with_params(source, query.params, HashMap::new())?
    };
    facts.dedup();
    for (name, value) in facts {
        block = block.fact(biscuit_auth::builder::fact(name, &[value]))?;
    }
    for code in raw {
        block = block.code(code)?;
    }
    Ok(block)
}

/// The alternative of one MCP call with arguments (a tool's or a prompt's): the upstream and
/// the name (`named`, as facts equal to the values), the operation, one `arg(name, …)`
/// constraint per argument, and unless `additional`, no argument the grant does not name.
fn mcp_call(
    query: &mut Query,
    i: usize,
    named: [(&str, &String); 2],
    operation: &str,
    arguments: &std::collections::BTreeMap<String, Constraint>,
    additional: bool,
) -> String {
    let mut parts = vec!["api(\"tool\")".to_string()];
    parts.extend(named.iter().map(|(fact, value)| query.eq(fact, i, value)));
    parts.push(format!("operation(\"{operation}\")"));
    for (j, (name, constraint)) in arguments.iter().enumerate() {
        let name_p = query.param(&format!("arg_{i}_{j}"), Term::from(name.as_str()));
        parts.push(constrain(
            query,
            "arg",
            &name_p,
            &format!("{i}_{j}"),
            constraint,
        ));
    }
    if !additional {
        let names: Vec<String> = arguments.keys().cloned().collect();
        let allowed = query.set(&format!("named_{i}"), &names);
        parts.push(format!(
            "arg_names($names_{i}), $names_{i}.all($n_{i} -> {allowed}.contains($n_{i}))"
        ));
    }
    parts.join(", ")
}

/// What a block's MCP grants name on one upstream, for the alternatives they share.
#[derive(Default)]
struct McpGranted {
    tools: BTreeSet<String>,
    prompts: BTreeSet<String>,
    resources: bool,
}

/// The alternatives a block's MCP grants share, once per upstream however many grants name
/// it: the session around calls (`initialize`, `server/discover`, `ping`, the lists,
/// notifications), which names nothing; the tools and prompts a filtered list shows (each
/// may be used, with some arguments); resource templates, which cannot be matched to URIs
/// and are listed where any resource is granted; completions, for prompts and resources.
fn mcp_session_alternatives(
    query: &mut Query,
    alternatives: &mut Vec<String>,
    granted: &BTreeMap<String, McpGranted>,
) {
    for (k, (upstream, g)) in granted.iter().enumerate() {
        let up = query.param(&format!("mcp_upstream_{k}"), Term::from(upstream.as_str()));
        let on = format!("api(\"tool\"), upstream({up})");
        alternatives.push(format!("{on}, operation(\"tool_session\")"));
        if !g.tools.is_empty() {
            let names: Vec<String> = g.tools.iter().cloned().collect();
            let set = query.set(&format!("mcp_tools_{k}"), &names);
            alternatives.push(format!(
                "{on}, operation(\"tool_listed\"), tool($listed_tool_{k}), {set}.contains($listed_tool_{k})"
            ));
        }
        if !g.prompts.is_empty() {
            let names: Vec<String> = g.prompts.iter().cloned().collect();
            let set = query.set(&format!("mcp_prompts_{k}"), &names);
            alternatives.push(format!(
                "{on}, operation(\"prompt_listed\"), prompt($listed_prompt_{k}), {set}.contains($listed_prompt_{k})"
            ));
        }
        if g.resources {
            alternatives.push(format!("{on}, operation(\"resource_template_listed\")"));
        }
        if g.resources || !g.prompts.is_empty() {
            alternatives.push(format!("{on}, operation(\"completion\")"));
        }
    }
}

fn single_use(facts: &mut Vec<(&'static str, Term)>, yes: bool) {
    if yes && !facts.iter().any(|(n, _)| *n == "single_use") {
        facts.push(("single_use", Term::from(true)));
    }
}

/// Parameters of one check, named by position so names never collide.
#[derive(Default)]
struct Query {
    params: HashMap<String, Term>,
}

impl Query {
    fn param(&mut self, name: &str, value: Term) -> String {
        self.params.insert(name.to_string(), value);
        format!("{{{name}}}")
    }

    /// `fact({param})`, binding `value`.
    fn eq(&mut self, fact: &str, i: usize, value: &str) -> String {
        let p = self.param(&format!("{fact}_{i}"), Term::from(value));
        format!("{fact}({p})")
    }

    fn set(&mut self, name: &str, values: &[String]) -> String {
        let set: BTreeSet<Term> = values.iter().map(|v| Term::from(v.as_str())).collect();
        self.param(name, Term::Set(set))
    }
}

fn term(v: &ArgValue) -> Term {
    match v {
        ArgValue::Null => Term::Null,
        ArgValue::Bool(b) => Term::from(*b),
        ArgValue::Int(n) => Term::from(*n),
        ArgValue::Str(s) => Term::from(s.as_str()),
    }
}

/// `fact(key, …)` constrained by `c`. Comparisons use `try_or(false)` so a value of the
/// wrong type fails this alternative instead of aborting the evaluation.
fn constrain(q: &mut Query, fact: &str, key: &str, id: &str, c: &Constraint) -> String {
    match c {
        Constraint::Exact(v) => {
            let p = q.param(&format!("v_{id}"), term(v));
            format!("{fact}({key}, {p})")
        }
        Constraint::Rule(r) => {
            let var = format!("$v_{id}");
            let mut parts = vec![format!("{fact}({key}, {var})")];
            if let Some(values) = &r.one_of {
                let set: BTreeSet<Term> = values.iter().map(term).collect();
                let p = q.param(&format!("oneof_{id}"), Term::Set(set));
                parts.push(format!("{p}.contains({var})"));
            }
            if let Some(max) = r.max {
                let p = q.param(&format!("max_{id}"), Term::from(max));
                parts.push(format!("({var} <= {p}).try_or(false)"));
            }
            if let Some(min) = r.min {
                let p = q.param(&format!("min_{id}"), Term::from(min));
                parts.push(format!("({var} >= {p}).try_or(false)"));
            }
            if let Some(prefix) = &r.prefix {
                let p = q.param(&format!("prefix_{id}"), Term::from(prefix.as_str()));
                parts.push(format!("{var}.starts_with({p}).try_or(false)"));
            }
            parts.join(", ")
        }
    }
}

/// Path segments that are canonical decimal integers are stated as integers (so `max` and
/// `min` apply); an exact string constraint that looks like one is compared the same way.
fn normalize_segment_constraint(c: &Constraint) -> Constraint {
    match c {
        Constraint::Exact(ArgValue::Str(s)) => match canonical_int(s) {
            Some(n) => Constraint::Exact(ArgValue::Int(n)),
            None => c.clone(),
        },
        _ => c.clone(),
    }
}

/// `s` as an integer if it is written the one way `i64` prints it.
pub(crate) fn canonical_int(s: &str) -> Option<i64> {
    s.parse::<i64>().ok().filter(|n| n.to_string() == s)
}

/// Validates a path template and returns its parameter names.
pub(crate) fn template_params(template: &str) -> Result<Vec<String>, GrantError> {
    if !template.starts_with('/') || template.len() > 1024 {
        return Err(invalid(
            "path",
            "a template starts with / and is at most 1024 bytes",
        ));
    }
    let mut names: Vec<String> = Vec::new();
    for segment in template[1..].split('/') {
        let is_param = segment.starts_with('{') || segment.ends_with('}');
        if is_param {
            let name = segment
                .strip_prefix('{')
                .and_then(|s| s.strip_suffix('}'))
                .filter(|n| {
                    !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                })
                .ok_or_else(|| {
                    invalid(
                        "path",
                        format!("`{segment}`: a parameter is a whole segment, such as {{id}}"),
                    )
                })?;
            if names.iter().any(|n| n == name) {
                return Err(invalid("path", format!("parameter `{name}` appears twice")));
            }
            names.push(name.to_string());
        } else if segment.contains(['{', '}', '?', '#']) || segment.chars().any(char::is_control) {
            return Err(invalid(
                "path",
                format!("`{segment}` is not a valid literal segment"),
            ));
        }
    }
    // The template is matched by a regular expression, which verification refuses if it
    // compiles past the bound on a check's program: a template accepted here must pass
    // there, or the gateway would mint writs it then refuses.
    regex::RegexBuilder::new(&template_regex(template))
        .size_limit(crate::evaluation_cost::MAX_REGEX_PROGRAM_BYTES)
        .build()
        .map_err(|_| {
            invalid(
                "path",
                "the template is too long to match; use fewer or shorter literal segments",
            )
        })?;
    Ok(names)
}

/// `(segment index, parameter name)` for each parameter of a valid template.
fn template_segments(template: &str) -> Vec<(usize, String)> {
    template[1..]
        .split('/')
        .enumerate()
        .filter_map(|(i, s)| {
            s.strip_prefix('{')
                .and_then(|s| s.strip_suffix('}'))
                .map(|n| (i, n.to_string()))
        })
        .collect()
}

/// An anchored regex matching exactly the paths of a valid template.
fn template_regex(template: &str) -> String {
    let mut regex = String::from("^");
    for segment in template[1..].split('/') {
        regex.push('/');
        if segment.starts_with('{') {
            regex.push_str("[^/]+");
        } else {
            for c in segment.chars() {
                if "\\.+*?()|[]{}^$#&-~".contains(c) {
                    regex.push('\\');
                }
                regex.push(c);
            }
        }
    }
    regex.push('$');
    regex
}

/// Raw Datalog must parse and hold only checks: facts or rules in a block would read as
/// claims to a careless reader, though they could not widen anything.
pub(crate) fn check_datalog(code: &str) -> Result<(), GrantError> {
    let parsed = biscuit_auth::parser::parse_block_source(code)
        .map_err(|_| invalid("code", "not valid Biscuit Datalog"))?;
    if !parsed.facts.is_empty() || !parsed.rules.is_empty() || !parsed.scopes.is_empty() {
        return Err(invalid(
            "code",
            "only checks are accepted (check if …; reject if …;)",
        ));
    }
    if parsed.checks.is_empty() {
        return Err(invalid("code", "no check in the code"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_regex_is_anchored_and_escaped() {
        assert_eq!(template_regex("/v1/bookings/{id}"), "^/v1/bookings/[^/]+$");
        assert_eq!(template_regex("/a.b/{x}/c"), "^/a\\.b/[^/]+/c$");
        assert_eq!(
            template_segments("/v1/bookings/{id}/legs/{leg}"),
            vec![(2, "id".to_string()), (4, "leg".to_string())]
        );
    }

    /// Found by the `grant_datalog` fuzz target (issue 26): a long literal template passed
    /// validation, but its regular expression was over the bound verification enforces,
    /// so the writ minted from it never verified.
    #[test]
    fn a_template_whose_regex_is_over_the_bound_is_refused() {
        let long = format!("/{}/{{id}}", "a]".repeat(400));
        assert!(long.len() <= 1024);
        let over = regex::RegexBuilder::new(&template_regex(&long))
            .size_limit(crate::evaluation_cost::MAX_REGEX_PROGRAM_BYTES)
            .build();
        assert!(over.is_err(), "the test template must be over the bound");
        assert!(matches!(
            template_params(&long),
            Err(GrantError::InvalidField { field: "path", .. })
        ));
        let fits = format!("/{}/{{id}}", "a".repeat(200));
        assert_eq!(template_params(&fits), Ok(vec!["id".to_string()]));
    }

    #[test]
    fn canonical_integers_only() {
        assert_eq!(canonical_int("42"), Some(42));
        assert_eq!(canonical_int("-7"), Some(-7));
        assert_eq!(canonical_int("042"), None);
        assert_eq!(canonical_int("+4"), None);
        assert_eq!(canonical_int("4x"), None);
    }
}
