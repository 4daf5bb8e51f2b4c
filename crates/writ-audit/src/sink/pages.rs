//! Reading the log in pages instead of whole: which instances have records, and one
//! instance's records after a sequence number (oldest first) or before one (newest
//! first). On the database sinks each page is a range of the `(instance, seq)` key
//! (SQLite's rowid, see `sqlite_schema`), so a reader that follows the log (or looks
//! only at its latest records) pays for what it reads, not for the size of the log. The
//! file sink has no index: it reads the file and keeps the page.

use super::{Sink, SinkError, sqlite_schema};

/// One record line and its sequence number in its instance's log.
pub type Numbered = (u64, String);

/// PostgreSQL's queries; SQLite's are in `sqlite_schema`.
///
/// Every instance, by name: one index probe per instance (a loose index scan).
const INSTANCES: &str = "WITH RECURSIVE i(name) AS ( \
       SELECT MIN(instance) FROM audit_records \
       UNION ALL \
       SELECT (SELECT MIN(instance) FROM audit_records WHERE instance > i.name) \
       FROM i WHERE i.name IS NOT NULL) \
     SELECT name FROM i WHERE name IS NOT NULL";
const AFTER: &str = "SELECT seq, line FROM audit_records WHERE instance = $1 AND seq > $2 \
     ORDER BY seq LIMIT $3";
const BEFORE: &str = "SELECT seq, line FROM audit_records WHERE instance = $1 AND seq < $2 \
     ORDER BY seq DESC LIMIT $3";

fn seq(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn numbered(rows: Vec<(i64, String)>) -> Vec<Numbered> {
    rows.into_iter().map(|(n, line)| (seq(n), line)).collect()
}

/// A bound for a `seq` column: `i64::MAX` for "no bound above".
fn bound(n: Option<u64>, none: i64) -> i64 {
    n.map_or(none, |n| i64::try_from(n).unwrap_or(i64::MAX))
}

impl Sink {
    /// The instances that have written records, by name.
    pub async fn instances(&self) -> Result<Vec<String>, SinkError> {
        let rows: Vec<(String,)> = match self {
            Sink::Sqlite(pool, _) => sqlx::query_as(sqlite_schema::INSTANCES)
                .fetch_all(pool)
                .await
                .map_err(SinkError::SqlitePool)?,
            Sink::Postgres(pool) => sqlx::query_as(INSTANCES)
                .fetch_all(pool)
                .await
                .map_err(SinkError::Postgres)?,
            Sink::File(..) => {
                let mut names: Vec<String> = self
                    .file_records()
                    .await?
                    .into_iter()
                    .map(|(instance, _, _)| instance)
                    .collect();
                names.sort();
                names.dedup();
                return Ok(names);
            }
        };
        Ok(rows.into_iter().map(|(name,)| name).collect())
    }

    /// Up to `limit` of `instance`'s records numbered after `after` (from the first when
    /// `None`), oldest first.
    pub async fn records_after(
        &self,
        instance: &str,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Vec<Numbered>, SinkError> {
        let after = bound(after, -1);
        let rows = match self {
            Sink::Sqlite(pool, _) => sqlx::query_as(sqlite_schema::AFTER)
                .bind(instance)
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
                .map_err(SinkError::SqlitePool)?,
            Sink::Postgres(pool) => sqlx::query_as(AFTER)
                .bind(instance)
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
                .map_err(SinkError::Postgres)?,
            Sink::File(..) => {
                let mut rows: Vec<(i64, String)> = self.file_rows(instance).await?;
                rows.retain(|(n, _)| *n > after);
                rows.sort_by_key(|(n, _)| *n);
                rows.truncate(limit as usize);
                rows
            }
        };
        Ok(numbered(rows))
    }

    /// Up to `limit` of `instance`'s records numbered before `before` (from the latest
    /// when `None`), newest first.
    pub async fn records_before(
        &self,
        instance: &str,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<Numbered>, SinkError> {
        let before = bound(before, i64::MAX);
        let rows = match self {
            Sink::Sqlite(pool, _) => sqlx::query_as(sqlite_schema::BEFORE)
                .bind(instance)
                .bind(before)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
                .map_err(SinkError::SqlitePool)?,
            Sink::Postgres(pool) => sqlx::query_as(BEFORE)
                .bind(instance)
                .bind(before)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
                .map_err(SinkError::Postgres)?,
            Sink::File(..) => {
                let mut rows: Vec<(i64, String)> = self.file_rows(instance).await?;
                rows.retain(|(n, _)| *n < before);
                rows.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
                rows.truncate(limit as usize);
                rows
            }
        };
        Ok(numbered(rows))
    }

    /// `instance`'s record lines in the file, numbered.
    async fn file_rows(&self, instance: &str) -> Result<Vec<(i64, String)>, SinkError> {
        Ok(self
            .file_records()
            .await?
            .into_iter()
            .filter(|(i, _, _)| i == instance)
            .map(|(_, n, line)| (n, line))
            .collect())
    }

    /// Every record line of the file sink with its instance and number (checkpoint lines
    /// and lines that are not records are left out); nothing for the database sinks.
    async fn file_records(&self) -> Result<Vec<(String, i64, String)>, SinkError> {
        let Sink::File(path, _) = self else {
            return Ok(Vec::new());
        };
        let text = match tokio::fs::read_to_string(path).await {
            Ok(text) => text,
            // Opened on first write: no file yet is an empty log.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        Ok(text
            .lines()
            .filter_map(|line| {
                let v: serde_json::Value = serde_json::from_str(line).ok()?;
                let instance = v.get("instance")?.as_str()?.to_string();
                let n = i64::try_from(v.get("seq")?.as_u64()?).ok()?;
                Some((instance, n, line.to_string()))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn filled(sink: &Sink) {
        sink.prepare().await.unwrap();
        for instance in ["b", "a"] {
            let lines: Vec<String> = (0..5)
                .map(|n| format!(r#"{{"v":1,"seq":{n},"instance":"{instance}"}}"#))
                .collect();
            sink.append(instance, 0, &lines).await.unwrap();
        }
    }

    fn seqs(page: &[Numbered]) -> Vec<u64> {
        page.iter().map(|(n, _)| *n).collect()
    }

    #[tokio::test]
    async fn pages_of_an_instance_in_either_direction() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = Sink::sqlite(&dir.path().join("audit.db")).await.unwrap();
        let file = Sink::file(dir.path().join("audit.jsonl"));
        // No file yet: an empty log.
        assert!(file.records_after("a", None, 10).await.unwrap().is_empty());
        for sink in [&sqlite, &file] {
            filled(sink).await;
            assert_eq!(sink.instances().await.unwrap(), vec!["a", "b"]);
            let page = |r: Result<Vec<Numbered>, SinkError>| seqs(&r.unwrap());
            assert_eq!(page(sink.records_after("a", None, 2).await), vec![0, 1]);
            assert_eq!(
                page(sink.records_after("a", Some(1), 10).await),
                vec![2, 3, 4]
            );
            assert_eq!(
                page(sink.records_after("a", Some(4), 10).await),
                Vec::<u64>::new()
            );
            assert_eq!(page(sink.records_before("b", None, 2).await), vec![4, 3]);
            assert_eq!(
                page(sink.records_before("b", Some(2), 10).await),
                vec![1, 0]
            );
            assert_eq!(
                page(sink.records_before("c", None, 10).await),
                Vec::<u64>::new()
            );
            let lines = sink.records_after("b", Some(3), 1).await.unwrap();
            assert_eq!(lines[0].1, r#"{"v":1,"seq":4,"instance":"b"}"#);
        }
    }
}
