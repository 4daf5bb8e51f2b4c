//! The metered calls of the last 30 days, read from the audit log (the one source every
//! instance shares) and kept, added up by minute: each reading asks the sink only for the lines appended since
//! the last one ([`writ_audit::sink::Sink::records_since`]), and a reading answers every
//! usage page for [`FRESH_FOR`], so however many pages are open and polling, the log is
//! read at most that often, by one request while the others wait for its answer.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use writ_audit::AuditRecord;
use writ_audit::sink::ReadMarks;

use super::series::{Call, Minutes, Window};

/// How long one reading of the log answers every usage page.
pub(crate) const FRESH_FOR: Duration = Duration::from_secs(2);

/// The most lines asked of the sink at once: a log read for the first time is read in
/// pieces, so its lines are never all in memory together.
pub(crate) const PIECE_LINES: usize = 10_000;

/// The calls read so far, how far each instance's log was read, and when (by the
/// process's monotonic clock: the gateway clock can stand still in tests, and freshness
/// is about work done, not about the log's time).
#[derive(Default)]
struct Reading {
    at: Option<Instant>,
    marks: ReadMarks,
    minutes: Arc<Minutes>,
}

/// The shared, kept reading of the log's metered calls.
#[derive(Default)]
pub(crate) struct MeteredCalls {
    last: tokio::sync::Mutex<Reading>,
}

impl MeteredCalls {
    /// The metered calls no older than the longest window at `now_ms`, by minute: the
    /// last reading when it is fresher than [`FRESH_FOR`]; otherwise the lines `read`
    /// gives for the marks and limit it is handed (at most [`PIECE_LINES`] of those
    /// appended since; it moves the marks past them) counted in, piece by piece until a
    /// piece is short, and minutes older than the longest window forgotten. A failed read
    /// is returned; what the pieces before it counted is kept with their marks, and the
    /// next call reads on from there.
    pub(crate) async fn get<F, Fut, E>(&self, now_ms: u64, mut read: F) -> Result<Arc<Minutes>, E>
    where
        F: FnMut(ReadMarks, usize) -> Fut,
        Fut: Future<Output = Result<(Vec<String>, ReadMarks), E>>,
    {
        let mut last = self.last.lock().await;
        if last.at.is_some_and(|at| at.elapsed() < FRESH_FOR) {
            return Ok(last.minutes.clone());
        }
        let since = oldest_kept(now_ms);
        let reading = &mut *last;
        // In place when no page still holds the previous reading (the usual case).
        Arc::make_mut(&mut reading.minutes).forget_before(since);
        loop {
            let (lines, marks) = read(reading.marks.clone(), PIECE_LINES).await?;
            let minutes = Arc::make_mut(&mut reading.minutes);
            for call in calls_since(&lines, since) {
                minutes.add(&call);
            }
            reading.marks = marks;
            if lines.len() < PIECE_LINES {
                break;
            }
        }
        reading.at = Some(Instant::now());
        Ok(reading.minutes.clone())
    }
}

/// The earliest time a usage page can show at `now_ms`: the start of the month window.
fn oldest_kept(now_ms: u64) -> u64 {
    Window::Month.start_ms(now_ms)
}

/// The metered calls among `lines` (audit record lines and checkpoint lines, as exported)
/// recorded at or after `since_ms`. Lines that cannot carry usage are skipped before being
/// parsed: most of a log is not metered calls.
pub(crate) fn calls_since(lines: &[String], since_ms: u64) -> Vec<Call> {
    lines
        .iter()
        .filter(|line| line.contains("\"usage\":{"))
        .filter_map(|line| AuditRecord::from_line(line).ok())
        .filter_map(|record| Call::from_record(&record))
        .filter(|call| call.at_ms >= since_ms)
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::UNIX_EPOCH;

    use writ_audit::Kind;

    use super::*;

    const NOW: u64 = 1_796_553_015_000;

    fn line(kind: Kind, at_ms: u64, tenant: &str, metered: bool) -> String {
        let mut r = AuditRecord::new(kind, UNIX_EPOCH + Duration::from_millis(at_ms));
        r.tenant = Some(tenant.to_string());
        r.agent = Some("bot".to_string());
        if metered {
            r.usage = Some(writ_audit::record::Usage {
                input_tokens: 5,
                output_tokens: 7,
                cached_tokens: None,
            });
            r.cost_usd_micros = Some(3);
        }
        r.to_line()
    }

    #[test]
    fn only_metered_calls_of_the_kept_span_are_read() {
        let month_start = Window::Month.start_ms(NOW);
        let lines = vec![
            line(Kind::RequestAllowed, NOW, "acme", true),
            line(Kind::RequestAllowed, NOW, "acme", false),
            line(Kind::RequestOutcome, NOW - 1_000, "globex", true),
            line(Kind::RequestAllowed, month_start - 1, "acme", true),
            line(Kind::WritMinted, NOW, "acme", false),
            r#"{"checkpoint":"note","instance":"i","size":3}"#.to_string(),
            "not json, \"usage\":{".to_string(),
        ];
        let calls = calls_since(&lines, oldest_kept(NOW));
        assert_eq!(calls.len(), 2);
        assert_eq!(
            (calls[0].tenant.as_str(), calls[0].output_tokens),
            ("acme", 7)
        );
        assert_eq!(calls[1].tenant, "globex");
    }

    /// What a reader gives: the lines and the marks moved past them.
    type Read = std::future::Ready<Result<(Vec<String>, ReadMarks), String>>;

    /// A reader over a growing list of lines, as the sink reads them: those past the mark.
    fn reader<'a>(
        log: &'a std::sync::Mutex<Vec<String>>,
        reads: &'a AtomicUsize,
    ) -> impl FnMut(ReadMarks, usize) -> Read + 'a {
        move |mut marks, limit| {
            reads.fetch_add(1, Ordering::SeqCst);
            let log = log.lock().unwrap();
            let next = marks.entry("i".to_string()).or_insert(0);
            let from = usize::try_from(*next).unwrap();
            let new: Vec<String> = log[from..].iter().take(limit).cloned().collect();
            *next += new.len() as u64;
            std::future::ready(Ok((new, marks)))
        }
    }

    #[tokio::test]
    async fn a_fresh_reading_answers_without_reading_again() {
        let metered = MeteredCalls::default();
        let log = std::sync::Mutex::new(vec![line(Kind::RequestAllowed, NOW, "acme", true)]);
        let reads = AtomicUsize::new(0);
        for _ in 0..5 {
            let calls = metered.get(NOW, reader(&log, &reads)).await.unwrap();
            assert_eq!(calls.len(), 1);
        }
        assert_eq!(
            reads.load(Ordering::SeqCst),
            1,
            "one reading for five pages"
        );
    }

    #[tokio::test]
    async fn later_readings_add_only_the_new_lines_and_forget_old_minutes() {
        let metered = MeteredCalls::default();
        let old = NOW - Window::Month.span_ms() - 1;
        let log = std::sync::Mutex::new(vec![
            line(Kind::RequestAllowed, NOW - 60_000, "acme", true),
            line(Kind::RequestAllowed, NOW, "acme", true),
        ]);
        let reads = AtomicUsize::new(0);
        let first = metered.get(NOW, reader(&log, &reads)).await.unwrap();
        assert_eq!(first.len(), 2);
        log.lock()
            .unwrap()
            .push(line(Kind::RequestAllowed, NOW, "globex", true));
        log.lock()
            .unwrap()
            .push(line(Kind::RequestAllowed, old, "acme", true));
        metered.last.lock().await.at = None; // as if FRESH_FOR had passed
        let second = metered.get(NOW, reader(&log, &reads)).await.unwrap();
        assert_eq!(second.len(), 3, "the new call added, the too-old one not");
        let globex = super::super::series::aggregate(&second, "globex", None, Window::Hour, NOW);
        assert_eq!(globex.total.requests, 1);
        assert_eq!(first.len(), 2, "a page holding the first reading keeps it");
        // A month later every one of them is out of every window.
        metered.last.lock().await.at = None;
        let later = NOW + Window::Month.span_ms() + Window::Month.bucket_ms();
        let third = metered.get(later, reader(&log, &reads)).await.unwrap();
        assert_eq!(third.len(), 0);
        assert_eq!(reads.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_long_log_is_read_in_pieces() {
        let metered = MeteredCalls::default();
        // Each call in a minute of its own, so every one is an entry.
        let log = std::sync::Mutex::new(
            (0..2 * PIECE_LINES as u64 + 5)
                .map(|i| line(Kind::RequestAllowed, NOW - i * 60_000, "acme", true))
                .collect::<Vec<_>>(),
        );
        let reads = AtomicUsize::new(0);
        let minutes = metered.get(NOW, reader(&log, &reads)).await.unwrap();
        assert_eq!(
            reads.load(Ordering::SeqCst),
            3,
            "two full pieces and a short one"
        );
        assert_eq!(minutes.len(), 2 * PIECE_LINES + 5);
    }

    #[tokio::test]
    async fn a_failed_read_keeps_the_pieces_before_it_and_the_next_reads_on() {
        let metered = MeteredCalls::default();
        let full: Vec<String> = (0..PIECE_LINES as u64)
            .map(|i| line(Kind::RequestAllowed, NOW - i * 60_000, "acme", true))
            .collect();
        let mut pieces = 0;
        let failed = metered
            .get(NOW, |mut marks: ReadMarks, _| {
                pieces += 1;
                let answer = if pieces == 1 {
                    marks.insert("i".to_string(), PIECE_LINES as u64);
                    Ok((full.clone(), marks))
                } else {
                    Err("sink down")
                };
                std::future::ready(answer)
            })
            .await;
        assert_eq!(failed.err(), Some("sink down"));
        let minutes = metered
            .get(NOW, |marks: ReadMarks, _| {
                assert_eq!(marks["i"], PIECE_LINES as u64, "on from the first piece");
                std::future::ready(Ok::<_, &str>((
                    vec![line(Kind::RequestAllowed, NOW, "globex", true)],
                    marks,
                )))
            })
            .await
            .unwrap();
        assert_eq!(
            minutes.len(),
            PIECE_LINES + 1,
            "the first piece counted once"
        );
    }

    /// 100 000 record lines, a third of them metered calls: read and parsed in one go.
    /// (The report of the work gives the time this takes.)
    #[test]
    fn a_hundred_thousand_lines_are_read() {
        let lines: Vec<String> = (0..100_000u64)
            .map(|i| line(Kind::RequestAllowed, NOW - i * 1_000, "acme", i % 3 == 0))
            .collect();
        let began = Instant::now();
        let calls = calls_since(&lines, oldest_kept(NOW));
        eprintln!("reading 100 000 lines took {:?}", began.elapsed());
        assert_eq!(calls.len(), 33_334);
    }
}
