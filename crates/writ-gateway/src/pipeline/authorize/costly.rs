//! Where evaluations too costly for a serving thread run: one at a time, on the blocking
//! pool.

use std::sync::Arc;

use tokio::sync::Semaphore;

/// Where costly evaluations run: one at a time, off the serving threads.
#[derive(Debug)]
pub(crate) struct CostlyEvaluations(pub(crate) Arc<Semaphore>);

impl Default for CostlyEvaluations {
    fn default() -> Self {
        Self(Arc::new(Semaphore::new(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_evaluation_at_a_time() {
        let costly = CostlyEvaluations::default();
        let first = costly.0.clone().try_acquire_owned().unwrap();
        assert!(costly.0.try_acquire().is_err(), "a second waits");
        drop(first);
        assert!(
            costly.0.try_acquire().is_ok(),
            "and runs once the first is done"
        );
    }
}
