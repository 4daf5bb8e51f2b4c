//! Realigning the audit writer with the sink after the sink lost records it had
//! acknowledged, or kept a write whose answer was lost: the lines written since the last
//! checkpoint, kept for that, and the arithmetic of starting again where the sink's log
//! really ends.
//!
//! PostgreSQL with `durability = "committed"` acknowledges a record before its WAL is
//! flushed (`synchronous_commit = off`); a server crash then loses the last records, and
//! the next write would leave a gap no verifier accepts. Only a checkpoint's commit waits
//! for the flush (and with it every record before it), so the lines since the last
//! checkpoint are all that can be lost: the writer keeps them and writes them again.

/// The lines written since the last checkpoint (seq `from` onwards).
#[derive(Debug, Default)]
pub(super) struct SinceCheckpoint {
    from: u64,
    lines: Vec<String>,
}

impl SinceCheckpoint {
    /// The next lines were written (right after the ones kept).
    pub(super) fn written(&mut self, lines: impl IntoIterator<Item = String>) {
        self.lines.extend(lines);
    }

    /// A checkpoint at `size` is durable, and everything below it: those lines are let go.
    pub(super) fn checkpointed(&mut self, size: u64) {
        let durable = usize::try_from(size.saturating_sub(self.from))
            .unwrap_or(usize::MAX)
            .min(self.lines.len());
        self.lines.drain(..durable);
        self.from = self.from.max(size);
    }
}

/// The sink holds `held` records of the instance, where the writer had `written` (and
/// `pending` lines from `written` on to write). Moves `written` to `held` and returns the
/// lines to write from there: the lines the sink lost put back before `pending`, or
/// `pending` without the lines the sink already holds. Fails, changing nothing and giving
/// `pending` back, when the sink lost records below the last checkpoint (they are not
/// kept) or holds more than was ever given to it.
pub(super) fn realign(
    held: u64,
    written: &mut u64,
    pending: Vec<String>,
    since: &mut SinceCheckpoint,
) -> Result<Vec<String>, Vec<String>> {
    if held < *written {
        let Some(at) = held
            .checked_sub(since.from)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| *n <= since.lines.len())
        else {
            return Err(pending);
        };
        let mut lines = since.lines.split_off(at);
        lines.extend(pending);
        *written = held;
        Ok(lines)
    } else {
        let stored = usize::try_from(held - *written).unwrap_or(usize::MAX);
        if stored > pending.len() {
            return Err(pending);
        }
        let mut pending = pending;
        let rest = pending.split_off(stored);
        since.written(pending);
        *written = held;
        Ok(rest)
    }
}

/// [`realign`], logged: the lines to write from `*written` (which is `held` when the
/// writer could realign, and unchanged, with `pending` given back, when it could not).
pub(super) fn realign_logged(
    held: u64,
    written: &mut u64,
    pending: Vec<String>,
    since: &mut SinceCheckpoint,
) -> Vec<String> {
    let before = *written;
    match realign(held, written, pending, since) {
        Ok(lines) => {
            tracing::warn!(
                held,
                written = before,
                "audit sink's log ends elsewhere; realigned"
            );
            lines
        }
        Err(pending) => {
            tracing::error!(
                held,
                written = before,
                "audit sink lost records below the last checkpoint; the log cannot be mended"
            );
            pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(range: std::ops::Range<u64>) -> Vec<String> {
        range.map(|n| format!("line {n}")).collect()
    }

    /// Checkpointed at 3, written up to 7, 7..9 pending.
    fn writer() -> (u64, SinceCheckpoint) {
        let mut since = SinceCheckpoint::default();
        since.written(lines(0..5));
        since.checkpointed(3);
        since.written(lines(5..7));
        (7, since)
    }

    #[test]
    fn lines_the_sink_lost_are_written_again_before_the_pending_ones() {
        let (mut written, mut since) = writer();
        let again = realign(4, &mut written, lines(7..9), &mut since).unwrap();
        assert_eq!(again, lines(4..9));
        assert_eq!(written, 4);
        assert_eq!(since.lines, lines(3..4));
    }

    #[test]
    fn lines_the_sink_kept_unbeknown_are_not_written_twice() {
        let (mut written, mut since) = writer();
        let rest = realign(8, &mut written, lines(7..9), &mut since).unwrap();
        assert_eq!(rest, lines(8..9));
        assert_eq!(written, 8);
        assert_eq!(since.lines, lines(3..8));
        // All of them kept: nothing left to write.
        let (mut written, mut since) = writer();
        assert!(
            realign(9, &mut written, lines(7..9), &mut since)
                .unwrap()
                .is_empty()
        );
        assert_eq!(written, 9);
    }

    #[test]
    fn a_loss_below_the_last_checkpoint_or_a_surplus_cannot_be_mended() {
        let (mut written, mut since) = writer();
        assert_eq!(
            realign(2, &mut written, lines(7..9), &mut since),
            Err(lines(7..9))
        );
        assert_eq!(
            realign(10, &mut written, lines(7..9), &mut since),
            Err(lines(7..9))
        );
        assert_eq!(written, 7, "unchanged");
        assert_eq!(since.lines, lines(3..7));
    }
}
