//! Work a use case hands off: best-effort work the answer must not wait for, a write that
//! must not be cut apart from what follows it, and the cache updates that ride on them.

use std::sync::Arc;
use std::task::{Context, Waker};

use factors_domain::{Decision, UserSnapshot};
use tracing::Instrument;

use crate::ports::{SnapshotCache, Unexpected};

/// Keeps the state `decision` (made on `snapshot` and applied) left, for this process's
/// next decisions ([`SnapshotCache::keep`]), without making the answer wait ([`detach`]): a
/// cache that fails costs nothing but the next decision's speed.
pub(crate) fn keep_after(cache: Option<&Arc<dyn SnapshotCache>>, snapshot: &UserSnapshot, decision: &Decision) {
    if let (Some(cache), Some(after)) = (cache, snapshot.after(decision)) {
        let cache = cache.clone();
        detach(async move { cache.keep(&after).await });
    }
}

/// Shares what a read saw ([`SnapshotCache::put`]), without making the answer wait.
pub(crate) fn share(cache: Arc<dyn SnapshotCache>, snapshot: UserSnapshot) {
    detach(async move { cache.put(&snapshot).await });
}

/// Runs best-effort work the answer must not wait for: here, up to its first wait, and
/// from there on a task of its own, still in the current span (its logs and its trace
/// spans stay the request's). The in-process cache never waits, so what it keeps is in
/// place before the answer leaves (the client's next request finds it) and costs no task;
/// a round trip to Redis goes on a task.
fn detach(work: impl Future<Output = ()> + Send + 'static) {
    let mut work = Box::pin(work);
    // A future that answers `Pending` has left this waker with what it waits for; the new
    // task polls it again at once, which hands over the task's own waker. Here the work
    // runs in the current span already; only the task needs it handed on.
    if work.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending() {
        tokio::spawn(work.in_current_span());
    }
}

/// Runs `work` on a task of its own, in the current span: a write and what must follow it
/// (sending its SMS, taking it back when the send fails) are not cut apart by a caller that
/// goes away or by a request deadline.
pub(crate) async fn on_own_task<T, E>(work: impl Future<Output = Result<T, E>> + Send + 'static) -> Result<T, E>
where
    T: Send + 'static,
    E: From<Unexpected> + Send + 'static,
{
    tokio::spawn(work.in_current_span())
        .await
        .map_err(|e| E::from(Unexpected(anyhow::Error::new(e).context("the use case's task failed"))))?
}

#[cfg(test)]
mod tests {
    use super::*;

    // A plain test, outside any runtime: spawning a task would panic.
    #[test]
    fn work_that_never_waits_is_done_before_detach_returns() {
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = done.clone();
        detach(async move { flag.store(true, std::sync::atomic::Ordering::SeqCst) });
        assert!(done.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[tokio::test]
    async fn work_that_waits_is_finished_by_a_task_of_its_own() {
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let (done, finished) = tokio::sync::oneshot::channel();
        detach(async move {
            let _ = wait.await;
            let _ = done.send(());
        });
        go.send(()).expect("the work was kept, still waiting");
        let finished = tokio::time::timeout(std::time::Duration::from_secs(5), finished).await;
        assert_eq!(finished.expect("finished in time"), Ok(()));
    }
}
