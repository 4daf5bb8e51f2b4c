//! `kind = "mcp"` with `command`: what a launched server's settings accept and refuse.

use std::path::Path;

use crate::provider::{BuildError, ConfigSource, FieldProblem, Provider, ProviderConfig};

/// Resolves `${env:TOKEN}` only; files are never there.
struct Vars;

#[derive(Debug, PartialEq, Eq)]
struct Unset(&'static str);

impl ConfigSource for Vars {
    type Error = Unset;

    fn expand(&self, field: &'static str, value: &str) -> Result<String, Unset> {
        match value {
            "${env:TOKEN}" => Ok("tok-from-env-0123456789".to_string()),
            v if v.contains("${") => Err(Unset(field)),
            v => Ok(v.to_string()),
        }
    }

    fn read_file(&self, field: &'static str, _: &Path) -> Result<String, Unset> {
        Err(Unset(field))
    }
}

fn build(text: &str) -> Result<Provider, BuildError<Unset>> {
    let config: ProviderConfig = toml::from_str(text).expect("parses");
    config.build(&Vars)
}

/// The field and the problem's text of a refused config.
fn refused(text: &str) -> (&'static str, String) {
    match build(text) {
        Err(BuildError::Invalid {
            field,
            problem: FieldProblem::Form(p),
        }) => (field, p.to_string()),
        other => panic!("{text}: expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_launched_server_gets_exactly_its_configured_environment() {
    let p = build(
        "kind = \"mcp\"\ncommand = [\"/usr/bin/python3\", \"-m\", \"files\"]\n\
         env = { HOME = \"/tmp\", FILES_TOKEN = \"${env:TOKEN}\" }\ncwd = \"/srv\"",
    )
    .expect("valid");
    let launch = p.launch().expect("a launched server");
    assert_eq!(launch.program(), Path::new("/usr/bin/python3"));
    assert_eq!(launch.args(), ["-m", "files"]);
    assert_eq!(launch.cwd(), Path::new("/srv"));
    let env: Vec<_> = launch.env().collect();
    assert_eq!(
        env,
        [("FILES_TOKEN", "tok-from-env-0123456789"), ("HOME", "/tmp")]
    );
    // Only referenced values are secrets: `/tmp` is not scrubbed from answers.
    let secrets: Vec<_> = p.secrets().iter().map(|s| s.expose()).collect();
    assert_eq!(secrets, ["tok-from-env-0123456789"]);
    assert!(p.credential_headers().is_empty());
    assert_eq!(p.default_base_url(), None);
    let shown = format!("{p:?}");
    assert!(!shown.contains("tok-from-env"), "{shown}");
    assert!(shown.contains("FILES_TOKEN"), "{shown}");
}

#[test]
fn defaults_are_no_environment_and_the_root_directory() {
    let p = build("kind = \"mcp\"\ncommand = [\"/bin/server\"]").expect("valid");
    let launch = p.launch().expect("a launched server");
    assert_eq!(launch.env().count(), 0);
    assert!(launch.args().is_empty());
    assert_eq!(launch.cwd(), Path::new("/"));
    assert!(p.secrets().is_empty());
    let remote = build("kind = \"mcp\"\napi_key = \"k\"").expect("valid");
    assert!(remote.launch().is_none());
}

#[test]
fn bad_launch_settings_are_refused_saying_what_to_do() {
    for (text, field, says) in [
        ("command = []", "command", "must name a program"),
        (
            "command = [\"python3\", \"-m\", \"x\"]",
            "command",
            "absolute path",
        ),
        ("command = [\"./server\"]", "command", "absolute path"),
        ("command = [\"/bin/s\", \"a\\u0000b\"]", "command", "NUL"),
        (
            "command = [\"/bin/s\", \"--token=${env:TOKEN}\"]",
            "command",
            "pass secrets in env",
        ),
        ("command = [\"/bin/s\"]\ncwd = \"srv\"", "cwd", "absolute"),
        (
            "command = [\"/bin/s\"]\nenv = { \"A=B\" = \"x\" }",
            "env",
            "names",
        ),
        (
            "command = [\"/bin/s\"]\nenv = { \"\" = \"x\" }",
            "env",
            "names",
        ),
        (
            "command = [\"/bin/s\"]\nenv = { 1A = \"x\" }",
            "env",
            "names",
        ),
        (
            "command = [\"/bin/s\"]\nenv = { A = \"x\\u0000\" }",
            "env",
            "NUL",
        ),
        (
            "command = [\"/bin/s\"]\napi_key = \"k\"",
            "api_key",
            "put its credential in env",
        ),
        (
            "command = [\"/bin/s\"]\nauth_header = \"x-key\"",
            "auth_header",
            "in env",
        ),
        (
            "api_key = \"k\"\nenv = { A = \"b\" }",
            "env",
            "only to a server started with `command`",
        ),
        (
            "api_key = \"k\"\ncwd = \"/\"",
            "cwd",
            "only to a server started with `command`",
        ),
    ] {
        let (got_field, problem) = refused(&format!("kind = \"mcp\"\n{text}"));
        assert_eq!(got_field, field, "{text}");
        assert!(problem.contains(says), "{text}: {problem}");
    }
    // An unset reference is the source's error, naming the field.
    assert!(matches!(
        build("kind = \"mcp\"\ncommand = [\"/bin/s\"]\nenv = { A = \"${env:NOPE}\" }"),
        Err(BuildError::Source(Unset("env")))
    ));
    // Remote servers still need their key; `http` upstreams cannot be launched.
    assert!(build("kind = \"mcp\"").is_err());
    let err = toml::from_str::<ProviderConfig>("kind = \"http\"\ncommand = [\"/bin/s\"]")
        .expect_err("http has no command");
    assert!(
        err.message().starts_with("unknown field `command`"),
        "{err}"
    );
}
