//! Finding every unknown key of a `writ.toml` in one pass of the operator, not one per
//! run: the strict parser stops at the first, so each is located by its span, set aside
//! and the parse retried.

use std::ops::Range;

use toml::de::{DeTable, DeValue};

use super::{ConfigError, RawConfig};

/// More unknown keys than this are not worth listing one by one.
const MAX_UNKNOWN: usize = 64;

/// One step of a path into a TOML document.
#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

pub(super) fn parse(text: &str) -> (Option<RawConfig>, Vec<ConfigError>) {
    let mut problems = Vec::new();
    let mut current = text.to_string();
    for _ in 0..MAX_UNKNOWN {
        let err = match toml::from_str::<RawConfig>(&current) {
            Ok(raw) => {
                // Found in the parser's order; shown in the file's.
                problems.sort_by_key(|p| match p {
                    ConfigError::UnknownKey { line, .. } => *line,
                    _ => usize::MAX,
                });
                return (Some(raw), problems);
            }
            Err(e) => e,
        };
        let Some(path) = unknown_key_path(&current, &err) else {
            // Not an unknown key: report it as the parser words it. Once keys were set
            // aside the text is no longer the operator's, so only the message is kept.
            problems.push(if problems.is_empty() {
                ConfigError::Parse(err.to_string())
            } else {
                ConfigError::Parse(err.message().to_string())
            });
            return (None, problems);
        };
        problems.push(ConfigError::UnknownKey {
            key: dotted(&path),
            line: line_in(text, &path).unwrap_or(0),
            detail: err.message().trim().to_string(),
        });
        let Some(next) = without(&current, &path) else {
            return (None, problems);
        };
        current = next;
    }
    (None, problems)
}

/// The path of the key an "unknown field" error points at: the key the message names,
/// where the error's span is the key's own or, when the key was refused by a table's
/// flattened part (an upstream's provider settings), the table's.
fn unknown_key_path(text: &str, err: &toml::de::Error) -> Option<Vec<Step>> {
    let named = err
        .message()
        .strip_prefix("unknown field `")?
        .split('`')
        .next()?;
    let span = err.span()?;
    let doc = DeTable::parse(text).ok()?;
    find(doc.get_ref(), named, &span, &mut Vec::new())
}

/// The first key named `named` whose span lies within `span`, or of a table whose span
/// meets `span`, depth first.
fn find(
    table: &DeTable<'_>,
    named: &str,
    span: &Range<usize>,
    path: &mut Vec<Step>,
) -> Option<Vec<Step>> {
    for (key, value) in table {
        path.push(Step::Key(key.get_ref().to_string()));
        let k = key.span();
        if key.get_ref() == named && k.start >= span.start && k.end <= span.end {
            return Some(path.clone());
        }
        // A table refused as a whole is pointed at by its span (its header's): the key is
        // its own.
        let v = value.span();
        if let DeValue::Table(t) = value.get_ref()
            && v.start < span.end
            && span.start < v.end
            && let Some((own, _)) = t.iter().find(|(own, _)| own.get_ref() == named)
        {
            path.push(Step::Key(own.get_ref().to_string()));
            return Some(path.clone());
        }
        if let Some(found) = find_value(value.get_ref(), named, span, path) {
            return Some(found);
        }
        path.pop();
    }
    None
}

fn find_value(
    value: &DeValue<'_>,
    named: &str,
    span: &Range<usize>,
    path: &mut Vec<Step>,
) -> Option<Vec<Step>> {
    match value {
        DeValue::Table(t) => find(t, named, span, path),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(Step::Index(i));
                if let Some(found) = find_value(item.get_ref(), named, span, path) {
                    return Some(found);
                }
                path.pop();
            }
            None
        }
        _ => None,
    }
}

/// `server.tls_cafile`, `limit[0].scope`.
fn dotted(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(k) if out.is_empty() => out.push_str(k),
            Step::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// The 1-based line of the key at `path` in the operator's text.
fn line_in(text: &str, path: &[Step]) -> Option<usize> {
    let doc = DeTable::parse(text).ok()?;
    let mut table = doc.get_ref();
    let mut value: Option<&DeValue<'_>> = None;
    let mut start = None;
    for step in path {
        match (step, value) {
            (Step::Key(k), None) => {
                let (key, v) = table.iter().find(|(key, _)| key.get_ref() == k)?;
                start = Some(key.span().start);
                value = Some(v.get_ref());
            }
            (Step::Key(k), Some(DeValue::Table(t))) => {
                table = t;
                let (key, v) = table.iter().find(|(key, _)| key.get_ref() == k)?;
                start = Some(key.span().start);
                value = Some(v.get_ref());
            }
            (Step::Index(i), Some(DeValue::Array(items))) => {
                value = Some(items.get(*i)?.get_ref());
            }
            _ => return None,
        }
    }
    let start = start?;
    Some(text.get(..start)?.matches('\n').count() + 1)
}

/// `text` with the key at `path` removed, re-serialized.
fn without(text: &str, path: &[Step]) -> Option<String> {
    let mut doc: toml::Table = toml::from_str(text).ok()?;
    let (last, parents) = path.split_last()?;
    let mut table = &mut doc;
    let mut steps = parents.iter().peekable();
    while let Some(step) = steps.next() {
        let Step::Key(k) = step else { return None };
        let mut value = table.get_mut(k)?;
        while let Some(Step::Index(i)) = steps.peek() {
            value = value.as_array_mut()?.get_mut(*i)?;
            steps.next();
        }
        table = value.as_table_mut()?;
    }
    let Step::Key(last) = last else { return None };
    table.remove(last)?;
    toml::to_string(&doc).ok()
}
