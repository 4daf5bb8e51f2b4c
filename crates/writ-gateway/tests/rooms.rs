//! The gateway crate's rooms hold: no file imports one that (through others) imports it
//! back, and `impl Gateway` appears only in the gateway's own module.
//!
//! Imports are read from the source: every `crate::`, `super::` and `self::` path (and
//! each member of a `{…}` group) names the file of the longest module prefix it reaches.
//! Unit-test modules and test-only files are left out: tests may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, relative to `root`.
fn sources(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("source directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            sources(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(
                path.strip_prefix(root)
                    .expect("under the source root")
                    .to_path_buf(),
            );
        }
    }
}

/// The module path of a file: `pipeline/meter.rs` → `["pipeline", "meter"]`.
fn module_of(file: &Path) -> Vec<String> {
    let mut parts: Vec<String> = file
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "lib" || p == "mod") {
        parts.pop();
    }
    parts
}

/// The code of a file without comments and without its unit-test module.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|line| match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The `::`-separated identifiers at the start of `s`, and what follows them.
fn path_at(s: &str) -> (Vec<String>, &str) {
    let mut parts = Vec::new();
    let mut rest = s;
    loop {
        let end = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        parts.push(rest[..end].to_string());
        rest = &rest[end..];
        match rest.strip_prefix("::") {
            Some(r) if r.starts_with(is_ident) => rest = r,
            _ => break,
        }
    }
    (parts, rest)
}

/// The members of a `{…}` group at the start of `s` (after `::`), as paths.
fn group_at(s: &str) -> Vec<Vec<String>> {
    let Some(s) = s.strip_prefix("::{") else {
        return Vec::new();
    };
    let mut depth = 1;
    let mut members = Vec::new();
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    members.push(&s[start..i]);
                    break;
                }
            }
            ',' if depth == 1 => {
                members.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    members
        .into_iter()
        .map(|m| {
            let mut path = path_at(m.trim()).0;
            path.retain(|p| p != "self");
            path
        })
        .filter(|p| !p.is_empty())
        .collect()
}

/// The modules `code`, in module `me`, names through `crate::`, `super::` or `self::`.
fn named_paths(me: &[String], code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (i, _) in code.match_indices("::") {
        let before = &code[..i];
        let word_start = before.rfind(|c: char| !is_ident(c)).map_or(0, |j| j + 1);
        let word = &before[word_start..];
        let base: Vec<String> = match word {
            "crate" => Vec::new(),
            "super" => me[..me.len().saturating_sub(1)].to_vec(),
            "self" => me.to_vec(),
            _ => continue,
        };
        // `super::super::x` is read once, from its first `super`.
        if before[..word_start].ends_with("::") {
            continue;
        }
        let (mut path, rest) = path_at(&code[i + 2..]);
        let mut base = base;
        while path.first().is_some_and(|p| p == "super") {
            path.remove(0);
            base.pop();
        }
        let full: Vec<String> = base.iter().cloned().chain(path).collect();
        for member in group_at(rest) {
            out.push(full.iter().cloned().chain(member).collect());
        }
        out.push(full);
    }
    out
}

#[test]
fn no_file_of_the_gateway_imports_itself_through_others() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &root, &mut files);
    let modules: BTreeMap<Vec<String>, String> = files
        .iter()
        .map(|f| (module_of(f), f.to_string_lossy().into_owned()))
        .collect();
    let resolve = |path: &[String]| {
        (1..=path.len())
            .rev()
            .find_map(|n| modules.get(&path[..n]).cloned())
    };
    let mut imports: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let name = file.to_string_lossy().into_owned();
        if name.ends_with("tests.rs") || name.ends_with("fixture.rs") {
            continue;
        }
        let text = std::fs::read_to_string(root.join(file)).expect("source file");
        let me = module_of(file);
        let named = imports.entry(name.clone()).or_default();
        for path in named_paths(&me, &code(&text)) {
            if let Some(target) = resolve(&path)
                && target != name
            {
                named.insert(target);
            }
        }
    }
    // A file that reaches itself through its imports is in a circle.
    let mut circles = Vec::new();
    for start in imports.keys() {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<(&String, Vec<&String>)> = vec![(start, vec![start])];
        while let Some((file, trail)) = todo.pop() {
            for next in imports.get(file).into_iter().flatten() {
                if next == start {
                    let names: Vec<&str> = trail.iter().map(|s| s.as_str()).collect();
                    circles.push(format!("{} → {start}", names.join(" → ")));
                } else if seen.insert(next) {
                    let mut trail = trail.clone();
                    trail.push(next);
                    todo.push((next, trail));
                }
            }
        }
    }
    assert!(
        circles.is_empty(),
        "import circles between the gateway's files:\n{}",
        circles.join("\n")
    );
    // The check reads imports at all: the gateway's own module names its parts.
    assert!(
        imports["gateway.rs"]
            .iter()
            .any(|f| f.starts_with("detect/")),
        "{:?}",
        imports["gateway.rs"]
    );
}

#[test]
fn only_the_gateway_module_implements_gateway() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &root, &mut files);
    let outside: Vec<String> = files
        .iter()
        .filter(|f| f.as_path() != Path::new("gateway.rs"))
        .filter(|f| {
            let text = std::fs::read_to_string(root.join(f)).expect("source file");
            code(&text).lines().any(|l| {
                let l = l.trim_start();
                l.starts_with("impl Gateway ")
                    || (l.starts_with("impl ") && l.contains(" for Gateway "))
            })
        })
        .map(|f| f.to_string_lossy().into_owned())
        .collect();
    assert!(
        outside.is_empty(),
        "impl Gateway outside gateway.rs: {outside:?}"
    );
}
