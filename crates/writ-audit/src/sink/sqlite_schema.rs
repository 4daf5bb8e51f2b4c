//! The SQLite sink's tables, and the migration of a database written before records were
//! keyed by their rowid.
//!
//! A record's rowid is its instance's number (`audit_instances`) times 2^40 plus its
//! `seq`: the table is its own `(instance, seq)` index, and a commit writes one b-tree
//! instead of a table and an index beside it (measured: 1.7 WAL frames per commit of two
//! records instead of 3.1; a `WITHOUT ROWID` table took 4.1). The `instance` and `seq`
//! columns stay, so the table reads as it did.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

/// Bits of a rowid that hold the record's `seq`; those above hold its instance's number.
const SEQ_BITS: u32 = 40;

/// The `user_version` of a database whose records are keyed by rowid.
const VERSION: i64 = 2;

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS audit_instances (no INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
    "CREATE TABLE IF NOT EXISTS audit_records (id INTEGER PRIMARY KEY, instance TEXT NOT NULL, seq INTEGER NOT NULL, line TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS audit_checkpoints (id INTEGER PRIMARY KEY AUTOINCREMENT, instance TEXT NOT NULL, size INTEGER NOT NULL, note TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS audit_probe (id INTEGER PRIMARY KEY)",
];

/// Moves the records of a database of the first schema (`PRIMARY KEY (instance, seq)`, a
/// table and an index) to rowid-keyed ones, numbering the instances in the order they
/// first wrote.
const MIGRATION: &[&str] = &[
    "INSERT INTO audit_instances (name) SELECT instance FROM audit_records GROUP BY instance ORDER BY MIN(rowid)",
    "CREATE TABLE audit_records_keyed (id INTEGER PRIMARY KEY, instance TEXT NOT NULL, seq INTEGER NOT NULL, line TEXT NOT NULL)",
    "INSERT INTO audit_records_keyed (id, instance, seq, line) \
     SELECT (i.no << 40) + r.seq, r.instance, r.seq, r.line \
     FROM audit_records r JOIN audit_instances i ON i.name = r.instance ORDER BY i.no, r.seq",
    "DROP TABLE audit_records",
    "ALTER TABLE audit_records_keyed RENAME TO audit_records",
];

/// Every instance that has records, by name: one rowid probe per instance.
pub(super) const INSTANCES: &str = "SELECT name FROM audit_instances i WHERE EXISTS \
     (SELECT 1 FROM audit_records r WHERE r.id >= i.no << 40 AND r.id < (i.no + 1) << 40) \
     ORDER BY name";
/// `$1`'s records numbered after `$2` (-1: all), oldest first, at most `$3`.
pub(super) const AFTER: &str = "SELECT r.seq, r.line FROM audit_instances i JOIN audit_records r \
     ON r.id > (i.no << 40) + MIN($2, 1099511627776) AND r.id < (i.no + 1) << 40 \
     WHERE i.name = $1 ORDER BY r.id LIMIT $3";
/// `$1`'s records numbered before `$2`, newest first, at most `$3`.
pub(super) const BEFORE: &str = "SELECT r.seq, r.line FROM audit_instances i JOIN audit_records r \
     ON r.id >= i.no << 40 AND r.id < (i.no << 40) + MIN($2, 1099511627776) \
     WHERE i.name = $1 ORDER BY r.id DESC LIMIT $3";
/// Every record, per instance by name, in `seq` order.
pub(super) const EXPORT: &str = "SELECT r.instance, r.seq, r.line FROM audit_instances i \
     JOIN audit_records r ON r.id >= i.no << 40 AND r.id < (i.no + 1) << 40 \
     ORDER BY i.name, r.id";

/// Creates the tables, or migrates those of the first schema, in one transaction that
/// takes the write lock first: two processes opening one database take turns, and the
/// second finds the work done. A database of a schema newer than this one is left as is.
pub(super) fn prepare(conn: &mut Connection) -> rusqlite::Result<()> {
    // A database that is ready is only read: no write lock taken at every open.
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version >= VERSION {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version >= VERSION {
        return tx.commit();
    }
    let keyed_by_pair: bool = tx.query_row(
        "SELECT NOT EXISTS (SELECT 1 FROM pragma_table_info('audit_records') WHERE name = 'id') \
             AND EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'audit_records')",
        [],
        |r| r.get(0),
    )?;
    for statement in SCHEMA {
        tx.execute(statement, [])?;
    }
    if keyed_by_pair {
        for statement in MIGRATION {
            tx.execute(statement, [])?;
        }
    }
    tx.pragma_update(None, "user_version", VERSION)?;
    tx.commit()
}

/// The number of instance `name`, given one on its first use.
pub(super) fn instance_number(conn: &Connection, name: &str) -> rusqlite::Result<i64> {
    let find = |conn: &Connection| {
        conn.prepare_cached("SELECT no FROM audit_instances WHERE name = ?1")?
            .query_row([name], |r| r.get(0))
            .optional()
    };
    if let Some(no) = find(conn)? {
        return Ok(no);
    }
    conn.execute(
        "INSERT OR IGNORE INTO audit_instances (name) VALUES (?1)",
        [name],
    )?;
    find(conn)?.ok_or(rusqlite::Error::QueryReturnedNoRows)
}

/// The rowid of record `seq` of instance number `no`; an error past what a rowid holds
/// (2^40 records of an instance, 2^23 instances).
pub(super) fn row_id(no: i64, seq: u64) -> rusqlite::Result<i64> {
    let out_of_range = || {
        rusqlite::Error::ToSqlConversionFailure(
            format!("audit record {seq} of instance number {no} is past what a rowid holds").into(),
        )
    };
    if seq >= 1 << SEQ_BITS || !(0..1 << (63 - SEQ_BITS)).contains(&no) {
        return Err(out_of_range());
    }
    let seq = i64::try_from(seq).map_err(|_| out_of_range())?;
    Ok((no << SEQ_BITS) + seq)
}

#[cfg(test)]
#[path = "sqlite_schema_tests.rs"]
mod tests;
