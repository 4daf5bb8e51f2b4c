//! The audit trail of operator actions taken outside a running gateway: each `writ`
//! command that changes local state (agents, keys, an offline revocation) or issues a writ
//! from the root key appends its records to a log of its own, signed with the deployment's
//! audit key, so `writ audit verify` checks them with every gateway instance's logs.
//!
//! One command run is one instance (`cli-<ulid>`): a log of a few records and one signed
//! checkpoint over all of them. Two commands running at once never share a chain, so no lock
//! is needed, and a command that fails before writing leaves no partial log behind.

use writ_audit::sink::SinkError;
use writ_audit::{AuditLog, AuditRecord, Kind, Pseudonymizer};
use writ_store::DataDir;
use writ_token::{Clock, SystemClock};

use crate::audit::{AuditKeyError, load_key, open_sink, origin};
use crate::config::AuditConfig;

/// Who is acting: the operator's name, as records and admin writs carry it.
///
/// Taken from `WRIT_OPERATOR`, else the login name (`USER`, `LOGNAME`), else `operator`;
/// a name that is empty, longer than 64 bytes or holds other characters than
/// `A-Z a-z 0-9 _ . - @` is replaced by `operator`, so a record's subject is always a
/// plain name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator(String);

impl Operator {
    /// The operator named `name`, if it is a plain name (see [`Operator`]).
    pub fn named(name: &str) -> Option<Self> {
        let plain = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-@".contains(&b));
        plain.then(|| Self(name.to_string()))
    }

    /// The operator of this process, from its environment (see [`Operator`]).
    pub fn from_env() -> Self {
        ["WRIT_OPERATOR", "USER", "LOGNAME"]
            .iter()
            .filter_map(|v| std::env::var(v).ok())
            .find_map(|n| Self::named(&n))
            .unwrap_or_else(|| Self("operator".to_string()))
    }

    /// The operator's name: plain, as [`Operator::named`] admits it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why an operator action could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum OperatorLogError {
    /// The data directory's master key (which pseudonyms derive from) could not be read.
    #[error("cannot read the data directory's keys: {0}")]
    MasterKey(writ_store::StoreError),
    /// The audit key could not be loaded.
    #[error("cannot read the data directory's keys: {0}")]
    AuditKey(AuditKeyError),
    /// The audit sink could not be opened or refused the write.
    #[error("cannot write the audit log: {0}")]
    Sink(SinkError),
    /// The command's log could not be created for its origin line.
    #[error("cannot write the audit log: {0}")]
    Log(writ_audit::CheckpointError),
}

/// The records of one command run, written together by [`OperatorLog::commit`].
pub struct OperatorLog<'a> {
    config: &'a AuditConfig,
    data: &'a DataDir,
    operator: Operator,
    pseudonyms: Pseudonymizer,
    records: Vec<AuditRecord>,
}

impl<'a> OperatorLog<'a> {
    /// A trail for `operator`'s actions on the deployment whose audit settings and data
    /// directory these are.
    pub fn new(
        config: &'a AuditConfig,
        data: &'a DataDir,
        operator: Operator,
    ) -> Result<Self, OperatorLogError> {
        let master = data.master_key().map_err(OperatorLogError::MasterKey)?;
        Ok(Self {
            config,
            data,
            operator,
            pseudonyms: crate::audit::pseudonymizer(master.expose()),
            records: Vec::new(),
        })
    }

    /// The operator these records name.
    pub fn operator(&self) -> &Operator {
        &self.operator
    }

    /// The audit pseudonym of a writ's token id (the same a gateway records for it).
    pub fn pseudonym(&self, token_id: &str) -> String {
        self.pseudonyms.pseudonym(token_id)
    }

    /// Adds a record of `kind` for `operation`, naming the operator in `detail.by`.
    /// Returns it so the caller can fill in tenant, agent, writ and more detail.
    pub fn record(&mut self, kind: Kind, operation: &str) -> &mut AuditRecord {
        let mut record = AuditRecord::new(kind, SystemClock.now());
        record.operation = Some(operation.to_string());
        let mut detail = serde_json::Map::new();
        detail.insert("by".into(), self.operator.as_str().into());
        detail.insert("via".into(), "cli".into());
        record.detail = Some(detail);
        self.records.push(record);
        let last = self.records.len() - 1;
        &mut self.records[last]
    }

    /// Writes the records and a checkpoint signed over them; nothing when there are none.
    pub async fn commit(self) -> Result<(), OperatorLogError> {
        if self.records.is_empty() {
            return Ok(());
        }
        let key = load_key(self.data).map_err(OperatorLogError::AuditKey)?;
        let sink_error = OperatorLogError::Sink;
        let sink = open_sink(self.config, self.data)
            .await
            .map_err(sink_error)?;
        let instance = format!("cli-{}", ulid::Ulid::new());
        let mut log =
            AuditLog::new(instance.clone(), origin(&instance)).map_err(OperatorLogError::Log)?;
        let lines: Vec<String> = self.records.into_iter().map(|r| log.append(r).0).collect();
        sink.prepare().await.map_err(sink_error)?;
        sink.append(&instance, 0, &lines)
            .await
            .map_err(sink_error)?;
        sink.put_checkpoint(&instance, log.size(), &log.checkpoint(&key))
            .await
            .map_err(sink_error)?;
        sink.sync().await.map_err(sink_error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Operator;

    #[test]
    fn operator_names_are_plain() {
        assert_eq!(Operator::named("alice").unwrap().as_str(), "alice");
        assert_eq!(
            Operator::named("ops@example.com").unwrap().as_str(),
            "ops@example.com"
        );
        for bad in ["", "a b", "x\ny", "\"quoted\"", &"a".repeat(65)] {
            assert!(Operator::named(bad).is_none(), "{bad:?}");
        }
    }
}
