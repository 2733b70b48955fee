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

struct Race<'a, T> {
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

/// The output of whichever of `first` and `second` finishes first; the other is dropped.
pub(crate) async fn first<'a, T>(
    first: impl Future<Output = T> + 'a,
    second: impl Future<Output = T> + 'a,
) -> T {
    Race {
        first: Box::pin(first),
        second: Box::pin(second),
    }
    .await
}

/// Resolves after `ms` milliseconds. Dropping it clears the browser timer.
pub(crate) async fn sleep(ms: u32) {
    let (sender, fired) = oneshot::channel();
    let _timer = Timeout::new(ms, move || sender.send(()));
    fired.await;
}

/// Runs `step`, failing with `AuthError::Timeout(what)` after `ms` milliseconds.
pub(crate) async fn with_timeout<T>(
    ms: u32,
    what: &'static str,
    step: impl Future<Output = Result<T, AuthError>>,
) -> Result<T, AuthError> {
    let timer = async move {
        sleep(ms).await;
        Err(AuthError::Timeout(what))
    };
    first(step, timer).await
}
