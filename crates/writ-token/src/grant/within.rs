//! Whether requested grants lie within a ceiling, decided before minting so a request
//! beyond it gets a clear error instead of a writ that can never be used.
//!
//! The check is conservative: when it cannot prove a grant is covered it says no. The
//! writ would be safe either way; its blocks are checked on every request.

use std::collections::BTreeMap;

use super::{ArgValue, Constraint, Grant};

/// The index of the first access grant in `requested` that no grant of `ceiling` covers.
pub fn first_outside(requested: &[Grant], ceiling: &[Grant]) -> Option<usize> {
    requested
        .iter()
        .enumerate()
        .filter(|(_, g)| g.is_access())
        .find(|(_, r)| !ceiling.iter().any(|c| covers(c, r)))
        .map(|(i, _)| i)
}

fn covers(c: &Grant, r: &Grant) -> bool {
    match (c, r) {
        (Grant::Llm(c), Grant::Llm(r)) => {
            c.upstream == r.upstream
                && superset(c.actions.as_deref(), r.actions.as_deref())
                && superset(c.models.as_deref(), r.models.as_deref())
                && match (c.max_output_tokens, r.max_output_tokens) {
                    (None, _) => true,
                    (Some(cap), Some(asked)) => asked <= cap,
                    (Some(_), None) => false,
                }
        }
        (Grant::Tool(c), Grant::Tool(r)) => {
            c.upstream == r.upstream
                && c.tool == r.tool
                && arguments_cover(
                    (&c.arguments, c.additional_arguments),
                    (&r.arguments, r.additional_arguments),
                )
        }
        (Grant::Prompt(c), Grant::Prompt(r)) => {
            c.upstream == r.upstream
                && c.prompt == r.prompt
                && arguments_cover(
                    (&c.arguments, c.additional_arguments),
                    (&r.arguments, r.additional_arguments),
                )
        }
        (Grant::Resource(c), Grant::Resource(r)) => {
            c.upstream == r.upstream && implies(&r.uri, &c.uri)
        }
        (Grant::Http(c), Grant::Http(r)) => {
            c.upstream == r.upstream
                && c.path == r.path
                && superset(c.methods.as_deref(), r.methods.as_deref())
                && c.params
                    .iter()
                    .all(|(name, cc)| r.params.get(name).is_some_and(|rc| implies(rc, cc)))
        }
        (Grant::Admin(c), Grant::Admin(r)) => c.tenant.is_none() || c.tenant == r.tenant,
        _ => false,
    }
}

/// Whether the arguments a ceiling allows (constraints, and whether others may be sent)
/// cover those a request allows.
fn arguments_cover(
    (c, c_more): (&BTreeMap<String, Constraint>, bool),
    (r, r_more): (&BTreeMap<String, Constraint>, bool),
) -> bool {
    c.iter()
        .all(|(name, cc)| r.get(name).is_some_and(|rc| implies(rc, cc)))
        && (c_more || (!r_more && r.keys().all(|k| c.contains_key(k))))
}

/// `None` allows anything; a list allows its members.
fn superset(c: Option<&[String]>, r: Option<&[String]>) -> bool {
    match (c, r) {
        (None, _) => true,
        (Some(c), Some(r)) => r.iter().all(|x| c.contains(x)),
        (Some(_), None) => false,
    }
}

/// Whether every value `r` allows is allowed by `c`.
fn implies(r: &Constraint, c: &Constraint) -> bool {
    match r {
        Constraint::Exact(v) => satisfies(v, c),
        Constraint::Rule(rr) => {
            if let Some(values) = &rr.one_of {
                return values.iter().all(|v| satisfies(v, c));
            }
            let Constraint::Rule(cr) = c else {
                return false;
            };
            cr.one_of.is_none()
                && cr.max.is_none_or(|m| rr.max.is_some_and(|x| x <= m))
                && cr.min.is_none_or(|m| rr.min.is_some_and(|x| x >= m))
                && cr.prefix.as_ref().is_none_or(|p| {
                    rr.prefix
                        .as_ref()
                        .is_some_and(|q| q.starts_with(p.as_str()))
                })
        }
    }
}

fn satisfies(v: &ArgValue, c: &Constraint) -> bool {
    match c {
        Constraint::Exact(w) => v == w,
        Constraint::Rule(r) => {
            r.one_of.as_ref().is_none_or(|s| s.contains(v))
                && r.max
                    .is_none_or(|m| matches!(v, ArgValue::Int(n) if *n <= m))
                && r.min
                    .is_none_or(|m| matches!(v, ArgValue::Int(n) if *n >= m))
                && r.prefix
                    .as_ref()
                    .is_none_or(|p| matches!(v, ArgValue::Str(s) if s.starts_with(p.as_str())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::parse_grants;

    fn outside(requested: &str, ceiling: &str) -> Option<usize> {
        first_outside(
            &parse_grants(requested).unwrap(),
            &parse_grants(ceiling).unwrap(),
        )
    }

    #[test]
    fn resource_and_prompt_grants() {
        let ceiling = r#"[{"type":"writ:resource","upstream":"u","uri":{"prefix":"files://a/"}},
            {"type":"writ:prompt","upstream":"u","prompt":"p","arguments":{"x":{"one_of":["1","2"]}}}]"#;
        for inside in [
            r#"{"type":"writ:resource","upstream":"u","uri":"files://a/b"}"#,
            r#"{"type":"writ:resource","upstream":"u","uri":{"prefix":"files://a/b/"}}"#,
            r#"{"type":"writ:resource","upstream":"u","uri":{"one_of":["files://a/1","files://a/2"]}}"#,
            r#"{"type":"writ:prompt","upstream":"u","prompt":"p","arguments":{"x":"1"}}"#,
        ] {
            assert_eq!(outside(inside, ceiling), None, "{inside}");
        }
        for beyond in [
            r#"{"type":"writ:resource","upstream":"u","uri":"files://b"}"#,
            r#"{"type":"writ:resource","upstream":"u","uri":{"prefix":"files://"}}"#,
            r#"{"type":"writ:resource","upstream":"v","uri":"files://a/b"}"#,
            r#"{"type":"writ:prompt","upstream":"u","prompt":"p","arguments":{"x":"3"}}"#,
            r#"{"type":"writ:prompt","upstream":"u","prompt":"q"}"#,
            r#"{"type":"writ:prompt","upstream":"u","prompt":"p","additional_arguments":true}"#,
        ] {
            assert_eq!(outside(beyond, ceiling), Some(0), "{beyond}");
        }
        for invalid in [
            r#"{"type":"writ:resource","upstream":"u","uri":""}"#,
            r#"{"type":"writ:resource","upstream":"u","uri":7}"#,
            r#"{"type":"writ:resource","upstream":"u","uri":{"max":3}}"#,
            r#"{"type":"writ:resource","upstream":"u","uri":{}}"#,
            r#"{"type":"writ:resource","upstream":"u","uri":{"one_of":[]}}"#,
            r#"{"type":"writ:prompt","upstream":"u","prompt":""}"#,
        ] {
            assert!(parse_grants(invalid).is_err(), "{invalid}");
        }
    }

    #[test]
    fn llm_grants() {
        let ceiling =
            r#"{"type":"writ:llm","upstream":"u","models":["a","b"],"max_output_tokens":100}"#;
        assert_eq!(
            outside(
                r#"{"type":"writ:llm","upstream":"u","models":["a"],"max_output_tokens":50}"#,
                ceiling
            ),
            None
        );
        assert_eq!(
            outside(
                r#"{"type":"writ:llm","upstream":"u","models":["c"],"max_output_tokens":50}"#,
                ceiling
            ),
            Some(0)
        );
        assert_eq!(
            outside(
                r#"{"type":"writ:llm","upstream":"u","models":["a"]}"#,
                ceiling
            ),
            Some(0)
        );
        assert_eq!(
            outside(
                r#"{"type":"writ:llm","upstream":"u","models":["a"],"max_output_tokens":101}"#,
                ceiling
            ),
            Some(0)
        );
        assert_eq!(
            outside(
                r#"{"type":"writ:llm","upstream":"v"}"#,
                r#"{"type":"writ:llm","upstream":"u"}"#
            ),
            Some(0)
        );
        assert_eq!(
            outside(
                r#"[{"type":"writ:llm","upstream":"u"},{"type":"writ:budget","tokens":5}]"#,
                r#"{"type":"writ:llm","upstream":"u"}"#
            ),
            None
        );
    }

    #[test]
    fn tool_grants() {
        let ceiling = r#"{"type":"writ:tool","upstream":"t","tool":"book","arguments":{"seats":{"max":4},"to":{"one_of":["FRA","MUC"]}}}"#;
        let ok = [
            r#"{"type":"writ:tool","upstream":"t","tool":"book","arguments":{"seats":2,"to":"FRA"}}"#,
            r#"{"type":"writ:tool","upstream":"t","tool":"book","arguments":{"seats":{"max":3},"to":{"one_of":["MUC"]}}}"#,
        ];
        for r in ok {
            assert_eq!(outside(r, ceiling), None, "{r}");
        }
        let bad = [
            r#"{"type":"writ:tool","upstream":"t","tool":"book","arguments":{"seats":5,"to":"FRA"}}"#,
            r#"{"type":"writ:tool","upstream":"t","tool":"book","arguments":{"seats":{"max":9},"to":"FRA"}}"#,
            r#"{"type":"writ:tool","upstream":"t","tool":"book","arguments":{"seats":2}}"#,
            r#"{"type":"writ:tool","upstream":"t","tool":"book","arguments":{"seats":2,"to":"FRA","extra":1}}"#,
            r#"{"type":"writ:tool","upstream":"t","tool":"book","arguments":{"seats":2,"to":"FRA"},"additional_arguments":true}"#,
            r#"{"type":"writ:tool","upstream":"t","tool":"cancel","arguments":{"seats":2,"to":"FRA"}}"#,
        ];
        for r in bad {
            assert_eq!(outside(r, ceiling), Some(0), "{r}");
        }
    }

    #[test]
    fn http_and_admin_grants() {
        let ceiling = r#"[{"type":"writ:http","upstream":"c","methods":["GET","PUT"],"path":"/b/{id}","params":{"id":{"prefix":"bk_"}}},{"type":"writ:admin","tenant":"acme"}]"#;
        assert_eq!(
            outside(
                r#"{"type":"writ:http","upstream":"c","methods":["GET"],"path":"/b/{id}","params":{"id":"bk_1"}}"#,
                ceiling
            ),
            None
        );
        assert_eq!(
            outside(
                r#"{"type":"writ:http","upstream":"c","path":"/b/{id}","params":{"id":"bk_1"}}"#,
                ceiling
            ),
            Some(0)
        );
        assert_eq!(
            outside(
                r#"{"type":"writ:http","upstream":"c","methods":["GET"],"path":"/b/{id}","params":{"id":"x"}}"#,
                ceiling
            ),
            Some(0)
        );
        assert_eq!(
            outside(r#"{"type":"writ:admin","tenant":"acme"}"#, ceiling),
            None
        );
        assert_eq!(outside(r#"{"type":"writ:admin"}"#, ceiling), Some(0));
    }
}
