//! An agent's ceiling as a person reads it: each grant one line saying what it allows, in
//! words, with its constraints (`amount at most 100`), instead of its JSON.

use writ_token::{ArgValue, Constraint, Grant};

/// One grant in words: what kind of access, on which upstream, within what limits. Text
/// from the grant is returned as is; the caller makes it inert.
pub(crate) fn describe(grant: &Grant) -> String {
    match grant {
        Grant::Llm(g) => {
            let mut parts = vec![format!("Model calls to {}", g.upstream)];
            if let Some(actions) = &g.actions {
                parts.push(format!("operations {}", actions.join(", ")));
            }
            if let Some(models) = &g.models {
                parts.push(format!("models {}", models.join(", ")));
            }
            if let Some(max) = g.max_output_tokens {
                parts.push(format!("at most {max} output tokens"));
            }
            if g.single_use {
                parts.push("once".to_string());
            }
            parts.join("; ")
        }
        Grant::Tool(g) => {
            let mut line = format!("Tool {} on {}", g.tool, g.upstream);
            line.push_str(&arguments(&g.arguments, g.additional_arguments));
            if g.single_use {
                line.push_str("; once");
            }
            line
        }
        Grant::Prompt(g) => format!(
            "Prompt {} on {}{}",
            g.prompt,
            g.upstream,
            arguments(&g.arguments, g.additional_arguments)
        ),
        Grant::Resource(g) => format!(
            "Resources on {} whose URI is {}",
            g.upstream,
            constraint(&g.uri)
        ),
        Grant::Http(g) => {
            let methods = g
                .methods
                .as_ref()
                .map_or_else(|| "Any method".to_string(), |m| m.join(", "));
            let mut line = format!("{methods} {} on {}", g.path, g.upstream);
            for (name, c) in &g.params {
                line.push_str(&format!("; {name} {}", constraint(c)));
            }
            if g.single_use {
                line.push_str("; once");
            }
            line
        }
        Grant::Admin(g) => match &g.tenant {
            Some(t) => format!("The admin API of tenant {t}"),
            None => "The admin API of every tenant".to_string(),
        },
        Grant::Budget(g) => {
            let mut parts = Vec::new();
            if let Some(micros) = g.usd_micros {
                parts.push(format!(
                    "US$ {}.{:06}",
                    micros / 1_000_000,
                    micros % 1_000_000
                ));
            }
            if let Some(tokens) = g.tokens {
                parts.push(format!("{tokens} tokens"));
            }
            if parts.is_empty() {
                "Budget: none stated".to_string()
            } else {
                format!("Budget: at most {}", parts.join(" and "))
            }
        }
        Grant::Datalog(g) => format!("Datalog checks: {}", g.code),
    }
}

/// The argument constraints of a tool or prompt grant, after its name.
fn arguments(args: &std::collections::BTreeMap<String, Constraint>, additional: bool) -> String {
    let mut out = String::new();
    for (name, c) in args {
        out.push_str(&format!("; {name} {}", constraint(c)));
    }
    out.push_str(match (args.is_empty(), additional) {
        (true, true) => "; any arguments",
        (true, false) => "; no arguments",
        (false, true) => "; other arguments allowed",
        (false, false) => "; no other arguments",
    });
    out
}

/// A constraint in words.
fn constraint(c: &Constraint) -> String {
    match c {
        Constraint::Exact(v) => format!("is {}", value(v)),
        Constraint::Rule(r) => {
            let mut parts = Vec::new();
            if let Some(values) = &r.one_of {
                let values: Vec<String> = values.iter().map(value).collect();
                parts.push(format!("one of {}", values.join(", ")));
            }
            if let Some(min) = r.min {
                parts.push(format!("at least {min}"));
            }
            if let Some(max) = r.max {
                parts.push(format!("at most {max}"));
            }
            if let Some(prefix) = &r.prefix {
                parts.push(format!("starting with \"{prefix}\""));
            }
            if parts.is_empty() {
                "is anything".to_string()
            } else {
                parts.join(" and ")
            }
        }
    }
}

fn value(v: &ArgValue) -> String {
    match v {
        ArgValue::Null => "null".to_string(),
        ArgValue::Bool(b) => b.to_string(),
        ArgValue::Int(i) => i.to_string(),
        ArgValue::Str(s) => format!("\"{s}\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(json: &str) -> String {
        let grants = writ_token::parse_grants(json).unwrap_or_default();
        grants.first().map(describe).unwrap_or_default()
    }

    #[test]
    fn grants_read_as_words() {
        assert_eq!(
            one(
                r#"{"type":"writ:tool","upstream":"pay","tool":"pay","arguments":{"amount":{"max":100},"to":{"one_of":["a","b"]}}}"#
            ),
            r#"Tool pay on pay; amount at most 100; to one of "a", "b"; no other arguments"#
        );
        assert_eq!(
            one(
                r#"{"type":"writ:llm","upstream":"openai","models":["gpt-4o"],"max_output_tokens":500}"#
            ),
            "Model calls to openai; models gpt-4o; at most 500 output tokens"
        );
        assert_eq!(
            one(
                r#"{"type":"writ:http","upstream":"api","methods":["GET"],"path":"/v1/{id}","params":{"id":{"prefix":"b-"}}}"#
            ),
            r#"GET /v1/{id} on api; id starting with "b-""#
        );
        assert_eq!(
            one(r#"{"type":"writ:budget","usd_micros":2500000}"#),
            "Budget: at most US$ 2.500000"
        );
        assert_eq!(
            one(r#"{"type":"writ:admin"}"#),
            "The admin API of every tenant"
        );
    }
}
