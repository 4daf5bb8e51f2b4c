//! `${env:NAME}` references: resolved from the environment by the gateway, deferred by
//! operator commands that never use the secrets they name.

use std::cell::RefCell;

use super::ConfigError;

/// How `${env:NAME}` references in a config are treated.
#[derive(Clone, Copy)]
pub enum Secrets<'a> {
    /// Each reference is read with this function; an unset variable is an error
    /// ([`ConfigError::MissingEnv`], one per variable). `writ serve` and `writ config
    /// check` load this way.
    Resolve(&'a dyn Fn(&str) -> Option<String>),
    /// Each reference this function knows is read; a section that references an unset
    /// variable is left out of the config (an upstream, a webhook) or kept at its default
    /// (the limiter, the audit sink, detection) and listed in [`super::Config::deferred`].
    /// Operator commands (`revoke`, `token mint`, `agent …`) load this way: they need no
    /// provider key. A config with deferred secrets cannot start a gateway.
    Defer(&'a dyn Fn(&str) -> Option<String>),
}

impl std::fmt::Debug for Secrets<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Secrets::Resolve(_) => "Secrets::Resolve",
            Secrets::Defer(_) => "Secrets::Defer",
        })
    }
}

/// A `${env:NAME}` reference left unresolved because `NAME` is not set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeferredSecret {
    /// The config key holding the reference, such as `upstreams.openai.api_key`.
    pub field: String,
    /// The variable it names.
    pub variable: String,
}

/// The references met while validating one config.
pub(crate) struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    unset: RefCell<Vec<DeferredSecret>>,
}

impl<'a> Env<'a> {
    pub(crate) fn new(secrets: Secrets<'a>) -> Self {
        let lookup = match secrets {
            Secrets::Resolve(f) | Secrets::Defer(f) => f,
        };
        Self {
            lookup,
            unset: RefCell::new(Vec::new()),
        }
    }

    /// How many unset references were met so far: a section that raised it holds
    /// stand-ins, and its value and errors are not to be used.
    pub(crate) fn unset_count(&self) -> usize {
        self.unset.borrow().len()
    }

    /// Every unset reference met, in the order met.
    pub(crate) fn into_unset(self) -> Vec<DeferredSecret> {
        self.unset.into_inner()
    }

    /// Replaces every `${env:NAME}` in `value` with the variable's value. An unset
    /// variable is recorded and its reference kept as written (a stand-in the caller
    /// must not use; see [`Env::unset_count`]). Anything else in `${…}` is an error.
    pub(crate) fn expand(&self, field: &str, value: &str) -> Result<String, ConfigError> {
        let mut out = String::with_capacity(value.len());
        let mut rest = value;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or_else(|| ConfigError::BadReference {
                field: field.to_string(),
            })?;
            let name = after[..end]
                .strip_prefix("env:")
                .filter(|n| !n.is_empty())
                .ok_or_else(|| ConfigError::BadReference {
                    field: field.to_string(),
                })?;
            match (self.lookup)(name) {
                Some(resolved) => out.push_str(&resolved),
                None => {
                    self.unset.borrow_mut().push(DeferredSecret {
                        field: field.to_string(),
                        variable: name.to_string(),
                    });
                    out.push_str(&rest[start..start + 2 + end + 1]);
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}
