//! A step with a deadline: the first of the step and a timer to finish wins.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use gloo_timers::callback::Timeout;

use crate::error::AuthError;
use crate::oneshot;

/// A future whose type is erased: one `Race::poll` for every pair of futures with the same output, instead of
/// one per pair of future types (each copy inlined whole state machines: kilobytes of the module).
type Erased<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

pub(crate) struct Race<'a, T> {
    first: Erased<'a, T>,
    second: Erased<'a, T>,
}

impl<T> Future for Race<'_, T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let this = self.get_mut();
        if let Poll::Ready(value) = this.first.as_mut().poll(cx) {
            return Poll::Ready(value);
        }
        this.second.as_mut().poll(cx)
    }
}

/// The output of whichever of `first` and `second` finishes first; the other is dropped. A plain function
/// returning the race, not an `async fn`: no state machine of its own per pair of future types.
pub(crate) fn first<'a, T>(
    first: impl Future<Output = T> + 'a,
    second: impl Future<Output = T> + 'a,
) -> Race<'a, T> {
    Race {
        first: Box::pin(first),
        second: Box::pin(second),
    }
}

/// Resolves after `ms` milliseconds. Dropping it clears the browser timer.
pub(crate) async fn sleep(ms: u32) {
    let (sender, fired) = oneshot::channel();
    let _timer = Timeout::new(ms, move || sender.send(()));
    fired.await;
}

/// Runs `step`, failing with `AuthError::Timeout(what)` after `ms` milliseconds.
pub(crate) fn with_timeout<'a, T: 'a>(
    ms: u32,
    what: &'static str,
    step: impl Future<Output = Result<T, AuthError>> + 'a,
) -> Race<'a, Result<T, AuthError>> {
    let timer = async move {
        sleep(ms).await;
        Err(AuthError::Timeout(what))
    };
    first(step, timer)
}

/// A future the browser runs for as long as this handle lives: dropping the handle stops the future before its next
/// step (it is never polled again), so work that belonged to a phase cannot act once the phase is gone.
#[must_use = "dropping the handle stops the task"]
#[allow(dead_code, reason = "the sender is held for its Drop, which stops the task")]
pub(crate) struct Task(oneshot::Sender<()>);

impl Task {
    pub(crate) fn spawn(work: impl Future<Output = ()> + 'static) -> Self {
        Self::spawn_erased(Box::pin(work))
    }

    /// One copy of the spawning code for every kind of work.
    fn spawn_erased(work: Erased<'static, ()>) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        // The stop is polled first: once the handle is gone, the work does not take another step.
        wasm_bindgen_futures::spawn_local(Race {
            first: Box::pin(async move {
                stopped.await;
            }),
            second: work,
        });
        Self(stop)
    }
}
