//! Turns on the runtime's worker threads: how many slices of one plugin's
//! guest code may run at once.
//!
//! Guest code runs on the async runtime's workers in slices: it yields every
//! so much fuel, at every epoch tick, and whenever it waits in a host call.
//! Without a bound, a plugin with as many busy calls as there are workers
//! holds every worker, and another plugin's call (or a served connection's
//! I/O) waits for the runtime's fairness interval each time. With
//! [`Turns`], a plugin runs at most `share` slices at a time (by default one
//! fewer than the workers, at least one), so at least one worker is always
//! free of it. A call without a turn waits, queued, without holding a worker;
//! each slice that ends wakes the next call in line.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

/// One plugin's turns.
pub(crate) struct Turns {
    share: usize,
    running: AtomicUsize,
    /// Calls waiting for a turn (their tasks' wakers, in arrival order).
    waiting: Mutex<VecDeque<Waker>>,
    /// `waiting`'s length, read without the lock when a slice ends.
    queued: AtomicUsize,
}

impl Turns {
    /// Turns for a plugin on the current runtime: one fewer than its worker
    /// threads, at least one.
    pub(crate) fn for_runtime() -> Turns {
        let workers = tokio::runtime::Handle::try_current()
            .map(|h| h.metrics().num_workers())
            .unwrap_or(1);
        Turns::new(workers.saturating_sub(1).max(1))
    }

    pub(crate) fn new(share: usize) -> Turns {
        Turns {
            share,
            running: AtomicUsize::new(0),
            waiting: Mutex::new(VecDeque::new()),
            queued: AtomicUsize::new(0),
        }
    }

    /// `fut`, each of whose polls (one slice of guest code) runs in a turn.
    pub(crate) fn run<F: Future + Unpin>(&self, fut: F) -> InTurns<'_, F> {
        InTurns {
            turns: self,
            fut,
            queued: None,
        }
    }

    fn try_take(&self) -> bool {
        self.running
            .fetch_update(SeqCst, SeqCst, |n| (n < self.share).then_some(n + 1))
            .is_ok()
    }

    /// Takes a turn, or queues `waker` (once) for the next free one.
    fn take_or_queue(&self, waker: &Waker) -> bool {
        if self.try_take() {
            return true;
        }
        let mut waiting = self.lock();
        // Counted before the second look: a slice ending now either frees
        // the turn this look takes, or sees the count and wakes a call.
        self.queued.fetch_add(1, SeqCst);
        if self.try_take() {
            self.queued.fetch_sub(1, SeqCst);
            return true;
        }
        if waiting.iter().any(|w| w.will_wake(waker)) {
            self.queued.fetch_sub(1, SeqCst);
        } else {
            waiting.push_back(waker.clone());
        }
        false
    }

    fn give_back(&self) {
        self.running.fetch_sub(1, SeqCst);
        self.wake_next();
    }

    /// Wakes the first call in line, if any.
    fn wake_next(&self) {
        if self.queued.load(SeqCst) == 0 {
            return;
        }
        let next = {
            let mut waiting = self.lock();
            let next = waiting.pop_front();
            if next.is_some() {
                self.queued.fetch_sub(1, SeqCst);
            }
            next
        };
        if let Some(w) = next {
            w.wake();
        }
    }

    /// A call that leaves while queued: out of line if it is still there;
    /// if its wake was taken already, that wake goes to the next call.
    fn leave(&self, waker: &Waker) {
        let removed = {
            let mut waiting = self.lock();
            let at = waiting.iter().position(|w| w.will_wake(waker));
            at.and_then(|i| waiting.remove(i)).inspect(|_| {
                self.queued.fetch_sub(1, SeqCst);
            })
        };
        if removed.is_none() {
            self.wake_next();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Waker>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A future run in a plugin's turns ([`Turns::run`]).
pub(crate) struct InTurns<'a, F> {
    turns: &'a Turns,
    fut: F,
    /// The waker this call is queued with, until it has a turn.
    queued: Option<Waker>,
}

impl<F: Future + Unpin> Future for InTurns<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        if !this.turns.take_or_queue(cx.waker()) {
            this.queued = Some(cx.waker().clone());
            return Poll::Pending;
        }
        this.queued = None;
        // Given back when the slice ends, even by a panic in a host call.
        let _turn = Turn(this.turns);
        Pin::new(&mut this.fut).poll(cx)
    }
}

/// A turn taken; given back when dropped.
struct Turn<'a>(&'a Turns);

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.0.give_back();
    }
}

impl<F> Drop for InTurns<'_, F> {
    fn drop(&mut self) {
        if let Some(waker) = &self.queued {
            self.turns.leave(waker);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A future that is pending `n` times (waking itself), then ready, and
    /// counts how many polls of its kind run at once.
    struct Slices {
        left: usize,
        now: Arc<AtomicUsize>,
        most: Arc<AtomicUsize>,
    }

    impl Future for Slices {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            let n = self.now.fetch_add(1, SeqCst) + 1;
            self.most.fetch_max(n, SeqCst);
            std::thread::sleep(std::time::Duration::from_micros(200));
            self.now.fetch_sub(1, SeqCst);
            if self.left == 0 {
                return Poll::Ready(());
            }
            self.left -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn at_most_share_slices_run_at_once_and_every_call_ends() {
        let turns = Arc::new(Turns::new(2));
        let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..12 {
            let (turns, now, most) = (turns.clone(), now.clone(), most.clone());
            set.spawn(async move {
                turns.run(Slices { left: 5, now, most }).await;
            });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap();
        }
        assert_eq!(most.load(SeqCst), 2, "two turns, and both used");
        assert_eq!(turns.running.load(SeqCst), 0);
        assert_eq!(turns.queued.load(SeqCst), 0);
    }

    /// A waker that counts its wakes.
    struct Count(AtomicUsize);

    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    fn counting() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    /// Polls `fut` once with `waker`; whether it was ready.
    fn poll_once<F: Future + Unpin>(fut: &mut F, waker: &Waker) -> bool {
        Pin::new(fut)
            .poll(&mut Context::from_waker(waker))
            .is_ready()
    }

    #[test]
    fn a_slice_that_panics_gives_its_turn_back() {
        let turns = Turns::new(1);
        let (_, waker) = counting();
        let mut panicking = turns.run(std::future::poll_fn(|_| -> Poll<()> {
            panic!("a host call panicked")
        }));
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            poll_once(&mut panicking, &waker)
        }));
        assert!(caught.is_err());
        assert_eq!(turns.running.load(SeqCst), 0, "the turn came back");
        let mut next = turns.run(std::future::ready(()));
        assert!(poll_once(&mut next, &waker), "the next call runs");
    }

    #[test]
    fn a_call_that_leaves_the_line_never_takes_the_next_ones_wake() {
        for woken_before_leaving in [false, true] {
            let turns = Turns::new(1);
            assert!(turns.try_take(), "a slice of another call runs");
            let (x_count, x_waker) = counting();
            let (w_count, w_waker) = counting();
            let mut x = turns.run(std::future::ready(()));
            let mut w = turns.run(std::future::ready(()));
            assert!(!poll_once(&mut x, &x_waker), "no turn: queued");
            assert!(!poll_once(&mut w, &w_waker), "no turn: queued");
            assert!(!poll_once(&mut w, &w_waker), "queued once");
            if woken_before_leaving {
                turns.give_back();
                assert_eq!(x_count.0.load(SeqCst), 1, "first in line woken");
                drop(x);
                assert_eq!(w_count.0.load(SeqCst), 1, "its wake passed on");
            } else {
                drop(x);
                turns.give_back();
                assert_eq!(w_count.0.load(SeqCst), 1, "next in line woken");
            }
            assert!(poll_once(&mut w, &w_waker), "and it runs");
            assert_eq!(turns.queued.load(SeqCst), 0);
            assert!(turns.lock().is_empty());
        }
    }
}
