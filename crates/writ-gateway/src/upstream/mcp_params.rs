//! What an MCP server's tools mirror into `Mcp-Param-*` headers, learned from its
//! `tools/list` answers as they pass the filter phase and checked on each `tools/call`.
//!
//! Held per instance, in memory: an instance that has not yet seen the server's list
//! passes the headers on unchecked (the server validates them itself, as the spec asks of
//! every server that reads the body), and the next list it filters teaches it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use writ_providers::mcp::param_headers::ParamHeader;

/// Most tools remembered per upstream; past it, the table is cleared and learnt again.
const MAX_TOOLS: usize = 4096;

/// Annotated tools by name.
#[derive(Debug, Default)]
pub(crate) struct McpParams(RwLock<HashMap<String, Arc<[ParamHeader]>>>);

impl McpParams {
    /// Remembers `tool`'s annotations (forgets the tool when it has none).
    pub(crate) fn learn(&self, tool: &str, params: Vec<ParamHeader>) {
        let Ok(mut table) = self.0.write() else {
            return;
        };
        if params.is_empty() {
            table.remove(tool);
            return;
        }
        if table.len() >= MAX_TOOLS && !table.contains_key(tool) {
            table.clear();
        }
        table.insert(tool.to_string(), params.into());
    }

    /// `tool`'s annotations, if a list named any.
    pub(crate) fn of(&self, tool: &str) -> Option<Arc<[ParamHeader]>> {
        self.0.read().ok()?.get(tool).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_forgets_and_stays_bounded() {
        let params = McpParams::default();
        let p = || {
            vec![ParamHeader {
                header: "mcp-param-region".into(),
                path: vec!["region".into()],
            }]
        };
        params.learn("sql", p());
        assert_eq!(params.of("sql").expect("learnt").len(), 1);
        params.learn("sql", vec![]);
        assert!(params.of("sql").is_none());
        for i in 0..=MAX_TOOLS {
            params.learn(&format!("t{i}"), p());
        }
        assert!(params.0.read().expect("lock").len() <= MAX_TOOLS);
        assert!(params.of(&format!("t{MAX_TOOLS}")).is_some());
    }
}
