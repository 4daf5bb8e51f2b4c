//! The metered calls of the last 30 days, read from the audit log (the one source every
//! instance shares) and kept for a couple of seconds, so that however many usage pages
//! are open and polling, the log is read at most once per [`FRESH_FOR`], by one request
//! while the others wait for its answer.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use writ_audit::AuditRecord;

use super::series::{Call, Window};

/// How long one reading of the log answers every usage page.
pub(crate) const FRESH_FOR: Duration = Duration::from_secs(2);

/// The calls read last, and when (by the process's monotonic clock: the gateway clock
/// can stand still in tests, and freshness is about work done, not about the log's time).
struct Reading {
    at: Instant,
    calls: Arc<Vec<Call>>,
}

/// The shared, briefly kept reading of the log's metered calls.
#[derive(Default)]
pub(crate) struct MeteredCalls {
    last: tokio::sync::Mutex<Option<Reading>>,
}

impl MeteredCalls {
    /// The metered calls no older than the longest window at `now_ms`: the last reading
    /// when it is fresher than [`FRESH_FOR`], otherwise `read` (the log's lines) parsed
    /// anew. A failed read is returned and not kept.
    pub(crate) async fn get<F, Fut, E>(&self, now_ms: u64, read: F) -> Result<Arc<Vec<Call>>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<String>, E>>,
    {
        let mut last = self.last.lock().await;
        if let Some(reading) = last.as_ref()
            && reading.at.elapsed() < FRESH_FOR
        {
            return Ok(reading.calls.clone());
        }
        let lines = read().await?;
        let calls = Arc::new(calls_since(&lines, oldest_kept(now_ms)));
        *last = Some(Reading {
            at: Instant::now(),
            calls: calls.clone(),
        });
        Ok(calls)
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

    #[tokio::test]
    async fn a_fresh_reading_answers_without_reading_again() {
        let metered = MeteredCalls::default();
        let reads = AtomicUsize::new(0);
        let read = || async {
            reads.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(vec![line(Kind::RequestAllowed, NOW, "acme", true)])
        };
        for _ in 0..5 {
            let calls = metered.get(NOW, read).await.unwrap();
            assert_eq!(calls.len(), 1);
        }
        assert_eq!(
            reads.load(Ordering::SeqCst),
            1,
            "one reading for five pages"
        );
    }

    #[tokio::test]
    async fn a_failed_read_is_not_kept() {
        let metered = MeteredCalls::default();
        let failed = metered
            .get(NOW, || async { Err::<Vec<String>, _>("sink down") })
            .await;
        assert_eq!(failed.err(), Some("sink down"));
        let calls = metered
            .get(NOW, || async {
                Ok::<_, &str>(vec![line(Kind::RequestAllowed, NOW, "acme", true)])
            })
            .await
            .unwrap();
        assert_eq!(calls.len(), 1, "the next page reads again");
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
