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
