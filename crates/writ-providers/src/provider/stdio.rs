//! `kind = "mcp"` with `command`: an MCP server the gateway starts as a child process and
//! speaks to over stdin and stdout. Validates how it is launched (argv, environment,
//! working directory) into a [`Launch`]; starting and supervising it is the gateway's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::config::{BuildError, Expand, FieldProblem, RawSecret};
use crate::secret::UpstreamSecret;

/// How a stdio MCP server is started: the program and its arguments (no shell), the only
/// environment it gets, and its working directory. `Debug` shows the variables' names,
/// never their values.
#[derive(Clone)]
pub struct Launch {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, UpstreamSecret)>,
    cwd: PathBuf,
    /// The values that came from `${env:…}` references or were given literally (from a
    /// vault): secrets, scrubbed from answers.
    secrets: Vec<UpstreamSecret>,
}

impl std::fmt::Debug for Launch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Launch")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field("cwd", &self.cwd)
            .finish()
    }
}

impl Launch {
    /// The program, an absolute path (it is not looked up in any `PATH`).
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// Its arguments, passed as they are: no shell reads them.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// The whole environment the child gets, names and values.
    pub fn env(&self) -> impl Iterator<Item = (&str, &str)> {
        self.env.iter().map(|(k, v)| (k.as_str(), v.expose()))
    }

    /// Where it runs: the configured absolute directory, or `/`.
    pub fn cwd(&self) -> &Path {
        &self.cwd
    }

    /// The environment values read from `${env:…}` references: the child's credentials.
    pub fn secrets(&self) -> &[UpstreamSecret] {
        &self.secrets
    }
}

/// `command`, `env` and `cwd` as written.
pub(super) struct LaunchFields<'a> {
    pub(super) command: &'a [String],
    pub(super) env: &'a BTreeMap<String, RawSecret>,
    pub(super) cwd: Option<&'a Path>,
}

fn invalid<E>(field: &'static str, problem: &'static str) -> BuildError<E> {
    BuildError::Invalid {
        field,
        problem: FieldProblem::Form(problem),
    }
}

impl LaunchFields<'_> {
    /// Validates the launch settings; `expand` resolves the `${env:…}` references of the
    /// environment's values (the only place they are read: arguments are visible to every
    /// user of the host in its process list, so a reference there is refused).
    pub(super) fn launch<E>(&self, expand: &Expand<'_, E>) -> Result<Launch, BuildError<E>> {
        let (program, args) = self.command.split_first().ok_or_else(|| {
            invalid(
                "command",
                "must name a program: command = [\"/usr/bin/python3\", \"-m\", \"server\"]",
            )
        })?;
        if self.command.iter().any(|a| a.contains('\0')) {
            return Err(invalid("command", "holds a NUL byte"));
        }
        if self.command.iter().any(|a| a.contains("${")) {
            return Err(invalid(
                "command",
                "holds a ${…} reference; pass secrets in env, which no other user of the host can read",
            ));
        }
        let program = PathBuf::from(program);
        if !program.is_absolute() {
            return Err(invalid(
                "command",
                "the program must be an absolute path such as /usr/bin/python3 (it is not looked up in PATH; `command -v <name>` prints it)",
            ));
        }
        let mut env = Vec::with_capacity(self.env.len());
        let mut secrets = Vec::new();
        for (name, raw) in self.env {
            let name_ok = !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !name.as_bytes()[0].is_ascii_digit();
            if !name_ok {
                return Err(invalid(
                    "env",
                    "variable names are letters, digits and _, not starting with a digit",
                ));
            }
            let value = raw.resolve("env", expand)?;
            if value.contains('\0') {
                return Err(invalid("env", "a value holds a NUL byte"));
            }
            let value = UpstreamSecret::new(value);
            if raw.is_literal() || raw.expose().contains("${") {
                secrets.push(value.clone());
            }
            env.push((name.clone(), value));
        }
        let cwd = match self.cwd {
            None => PathBuf::from("/"),
            Some(dir) if dir.is_absolute() => dir.to_path_buf(),
            Some(_) => {
                return Err(invalid("cwd", "must be an absolute path"));
            }
        };
        Ok(Launch {
            program,
            args: args.to_vec(),
            env,
            cwd,
            secrets,
        })
    }
}

#[cfg(test)]
mod tests;
