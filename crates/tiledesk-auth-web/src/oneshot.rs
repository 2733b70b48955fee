//! A single-threaded one-shot channel: one value from a callback to the future waiting for it.
//! (The module runs on the browser's one thread; `futures-channel` costs 5 KB of wasm for the same.)

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

struct Slot<T> {
    value: Option<T>,
    waker: Option<Waker>,
    closed: bool,
}

/// The sending half: `send` once; dropping it unsent closes the channel.
pub(crate) struct Sender<T>(Rc<RefCell<Slot<T>>>);

/// The receiving half: a future of `Some(value)`, or `None` once the sender is gone without sending.
pub(crate) struct Receiver<T>(Rc<RefCell<Slot<T>>>);

pub(crate) fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let slot = Rc::new(RefCell::new(Slot {
        value: None,
        waker: None,
        closed: false,
    }));
    (Sender(Rc::clone(&slot)), Receiver(slot))
}

impl<T> Sender<T> {
    pub(crate) fn send(self, value: T) {
        self.0.borrow_mut().value = Some(value);
        // Drop wakes the receiver.
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut slot = self.0.borrow_mut();
            slot.closed = true;
            slot.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Future for Receiver<T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut slot = self.0.borrow_mut();
        if let Some(value) = slot.value.take() {
            return Poll::Ready(Some(value));
        }
        if slot.closed {
            return Poll::Ready(None);
        }
        slot.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll<T>(receiver: &mut Receiver<T>) -> Poll<Option<T>> {
        Pin::new(receiver).poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn delivers_the_value_sent_after_the_first_poll() {
        let (sender, mut receiver) = channel();
        assert!(poll(&mut receiver).is_pending());
        sender.send(7);
        assert_eq!(poll(&mut receiver), Poll::Ready(Some(7)));
    }

    #[test]
    fn a_dropped_sender_ends_the_wait_with_none() {
        let (sender, mut receiver) = channel::<u8>();
        assert!(poll(&mut receiver).is_pending());
        drop(sender);
        assert_eq!(poll(&mut receiver), Poll::Ready(None));
    }
}
