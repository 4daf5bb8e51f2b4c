//! The README's Rust example of "Use writ from a long-running agent" is the example this
//! crate compiles (`examples/long_running_agent.rs`), word for word.
#![allow(clippy::unwrap_used)]

#[test]
fn the_readme_rust_example_is_the_compiled_example() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let section = readme
        .split("## Use writ from a long-running agent")
        .nth(1)
        .expect("the README has the section")
        .split("\n## ")
        .next()
        .unwrap();
    let in_readme = section
        .split("```rust\n")
        .nth(1)
        .expect("the section has a Rust block")
        .split("```")
        .next()
        .unwrap();
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/long_running_agent.rs"
    ))
    .unwrap();
    let compiled: String = example
        .split("    // README begin\n")
        .nth(1)
        .unwrap()
        .split("    // README end")
        .next()
        .unwrap()
        .lines()
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();
    assert_eq!(in_readme, compiled);
}
