//! Reading only what was appended since the last reading: each instance's record lines
//! past the `seq` a reader got to, read through [`Sink::records_after`]'s index range of
//! the `(instance, seq)` key rather than by reading the whole log again.

use std::collections::BTreeMap;

use super::{Sink, SinkError};

/// How far a reader has read each instance's log: the next `seq` it has not read.
pub type ReadMarks = BTreeMap<String, u64>;

impl Sink {
    /// At most `limit` record lines appended since `marks` — of each instance, those from
    /// its mark on; of an instance `marks` does not name, all — in `(instance, seq)` order,
    /// and `marks` moved past them. A mark moves only over lines without a gap before
    /// them, so a line committed after a later one of its instance is read when it
    /// appears, not skipped. Checkpoints are not returned. Call again while `limit` lines
    /// come back.
    pub async fn records_since(
        &self,
        marks: &mut ReadMarks,
        limit: usize,
    ) -> Result<Vec<String>, SinkError> {
        let mut rows = Vec::new();
        for instance in self.instances().await? {
            let room = limit.saturating_sub(rows.len());
            if room == 0 {
                break;
            }
            let after = marks.get(&instance).and_then(|next| next.checked_sub(1));
            let page = self
                .records_after(&instance, after, u32::try_from(room).unwrap_or(u32::MAX))
                .await?;
            rows.extend(
                page.into_iter()
                    .map(|(seq, line)| (instance.clone(), seq, line)),
            );
        }
        Ok(advance(marks, rows))
    }
}

/// The lines of `rows` (in `(instance, seq)` order) that continue each instance's mark
/// without a gap, the marks moved past them.
fn advance(marks: &mut ReadMarks, rows: Vec<(String, u64, String)>) -> Vec<String> {
    let mut out = Vec::with_capacity(rows.len());
    for (instance, seq, line) in rows {
        let next = marks.entry(instance).or_insert(0);
        if seq == *next {
            out.push(line);
            *next += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::{AuditRecord, Kind};

    fn lines(instance: &str, from: u64, n: u64) -> Vec<String> {
        (from..from + n)
            .map(|seq| {
                let mut r =
                    AuditRecord::new(Kind::RequestAllowed, UNIX_EPOCH + Duration::from_secs(seq));
                r.seq = seq;
                r.instance = instance.to_string();
                r.prev = "0".repeat(64);
                r.to_line()
            })
            .collect()
    }

    async fn reads_only_what_is_new(sink: &Sink) {
        let mut marks = ReadMarks::new();
        assert!(
            sink.records_since(&mut marks, 1_000_000)
                .await
                .unwrap()
                .is_empty()
        );
        sink.append("a", 0, &lines("a", 0, 3)).await.unwrap();
        sink.append("b", 0, &lines("b", 0, 2)).await.unwrap();
        sink.put_checkpoint("a", 3, "note").await.unwrap();
        let first = sink.records_since(&mut marks, 1_000_000).await.unwrap();
        assert_eq!(first.len(), 5, "{first:?}");
        assert_eq!(marks, ReadMarks::from([("a".into(), 3), ("b".into(), 2)]));
        assert!(
            sink.records_since(&mut marks, 1_000_000)
                .await
                .unwrap()
                .is_empty(),
            "nothing new"
        );
        sink.append("a", 3, &lines("a", 3, 2)).await.unwrap();
        sink.append("c", 0, &lines("c", 0, 1)).await.unwrap();
        let second = sink.records_since(&mut marks, 1_000_000).await.unwrap();
        assert_eq!(second, [lines("a", 3, 2), lines("c", 0, 1)].concat());
        assert_eq!(marks["a"], 5);
        // A limit reads in pieces, each where the last stopped.
        sink.append("b", 2, &lines("b", 2, 3)).await.unwrap();
        let piece = sink.records_since(&mut marks, 2).await.unwrap();
        assert_eq!(piece, lines("b", 2, 2));
        let rest = sink.records_since(&mut marks, 2).await.unwrap();
        assert_eq!(rest, lines("b", 4, 1));
        assert_eq!(marks["b"], 5);
    }

    #[tokio::test]
    async fn sqlite_reads_only_what_is_new() {
        let dir = tempfile::tempdir().unwrap();
        let sink = Sink::sqlite(&dir.path().join("audit.db")).await.unwrap();
        reads_only_what_is_new(&sink).await;
    }

    #[tokio::test]
    async fn the_file_sink_reads_only_what_is_new() {
        let dir = tempfile::tempdir().unwrap();
        let sink = Sink::file(dir.path().join("audit.jsonl"));
        reads_only_what_is_new(&sink).await;
    }

    /// 100 000 lines of three instances: read whole once, then only the ten appended
    /// after. (The report of the work gives the times.)
    #[tokio::test]
    async fn a_hundred_thousand_lines_then_ten_more() {
        let dir = tempfile::tempdir().unwrap();
        let sink = Sink::sqlite_with(
            &dir.path().join("audit.db"),
            super::super::Durability::Committed,
        )
        .await
        .unwrap();
        let mut next = BTreeMap::new();
        for batch in 0..100u64 {
            let instance = ["a", "b", "c"][usize::try_from(batch % 3).unwrap()];
            let from = next.entry(instance).or_insert(0u64);
            sink.append(instance, *from, &lines(instance, *from, 1_000))
                .await
                .unwrap();
            *from += 1_000;
        }
        let mut marks = ReadMarks::new();
        let began = std::time::Instant::now();
        let all = sink.records_since(&mut marks, 1_000_000).await.unwrap();
        eprintln!("reading 100 000 lines took {:?}", began.elapsed());
        assert_eq!(all.len(), 100_000);
        sink.append("b", next["b"], &lines("b", next["b"], 10))
            .await
            .unwrap();
        let began = std::time::Instant::now();
        let new = sink.records_since(&mut marks, 1_000_000).await.unwrap();
        eprintln!(
            "reading the 10 appended after them took {:?}",
            began.elapsed()
        );
        assert_eq!(new, lines("b", next["b"], 10));
    }

    #[test]
    fn a_mark_waits_at_a_gap() {
        let mut marks = ReadMarks::from([("a".to_string(), 1)]);
        let rows = vec![
            ("a".to_string(), 1, "a1".to_string()),
            ("a".to_string(), 3, "a3".to_string()),
            ("b".to_string(), 0, "b0".to_string()),
            ("c".to_string(), 2, "c2".to_string()),
        ];
        assert_eq!(advance(&mut marks, rows), ["a1", "b0"]);
        assert_eq!(
            marks,
            ReadMarks::from([("a".into(), 2), ("b".into(), 1), ("c".into(), 0)])
        );
    }
}
