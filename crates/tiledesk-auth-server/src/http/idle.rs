//! Which open connections are idle (no request under way), oldest first: near the connection cap the accept loop
//! closes the one idle longest, so idle keep-alive connections, or clients that connected and said nothing, give
//! way to new clients instead of leaving them in the kernel's queue until the read deadline frees a slot.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio::time::Instant;

/// The open connections, and which of them are idle since when.
#[derive(Debug, Default)]
pub(super) struct IdleConnections {
    next_id: AtomicU64,
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    /// Idle connections by when they went idle, then id: the first is the one idle longest.
    idle: BTreeSet<(Instant, u64)>,
    /// Every open connection: since when it is idle (none while a request is under way), and how to close it.
    open: HashMap<u64, (Option<Instant>, Arc<Notify>)>,
}

/// One open connection, idle from the start (nothing asked yet); forgotten when dropped.
#[derive(Debug)]
pub(super) struct Connection {
    set: Arc<IdleConnections>,
    id: u64,
    /// Notified when the accept loop wants this connection closed (after any request under way).
    pub(super) close: Arc<Notify>,
}

impl IdleConnections {
    /// A newly accepted connection.
    pub(super) fn open(self: &Arc<Self>) -> Connection {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let close = Arc::new(Notify::new());
        let now = Instant::now();
        let mut table = self.lock();
        table.idle.insert((now, id));
        table.open.insert(id, (Some(now), Arc::clone(&close)));
        drop(table);
        Connection {
            set: Arc::clone(self),
            id,
            close,
        }
    }

    /// Asks the connection idle longest to close; `false` when none is idle.
    pub(super) fn close_oldest(&self) -> bool {
        let mut table = self.lock();
        let Some((_, id)) = table.idle.pop_first() else {
            return false;
        };
        if let Some((since, close)) = table.open.get_mut(&id) {
            // Not picked twice; a request that comes before it closes marks it busy, and hyper finishes that first.
            *since = None;
            close.notify_one();
        }
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    #[cfg(test)]
    fn idle_count(&self) -> usize {
        self.lock().idle.len()
    }
}

impl Connection {
    /// A request has come: not idle until it is answered.
    pub(super) fn busy(&self) {
        let mut table = self.set.lock();
        if let Some((since, _)) = table.open.get_mut(&self.id)
            && let Some(at) = since.take()
        {
            table.idle.remove(&(at, self.id));
        }
    }

    /// Its request is answered: idle from now.
    pub(super) fn idle(&self) {
        let now = Instant::now();
        let mut table = self.set.lock();
        let Table { idle, open } = &mut *table;
        if let Some((since, _)) = open.get_mut(&self.id) {
            if let Some(at) = since.replace(now) {
                idle.remove(&(at, self.id));
            }
            idle.insert((now, self.id));
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let mut table = self.set.lock();
        if let Some((Some(at), _)) = table.open.remove(&self.id) {
            table.idle.remove(&(at, self.id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_connection_idle_longest_is_asked_to_close_and_a_busy_one_never() {
        let set = Arc::new(IdleConnections::default());
        let first = set.open();
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        let second = set.open();
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        let third = set.open();
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        // The first is answering a request; the second then goes idle again after one of its own.
        first.busy();
        second.busy();
        second.idle();
        assert_eq!(set.idle_count(), 2);
        // The third has been idle longest now.
        assert!(set.close_oldest());
        assert!(third.close.notified().now_or_never_ready());
        assert!(set.close_oldest());
        assert!(second.close.notified().now_or_never_ready());
        assert!(!set.close_oldest(), "the busy one is never picked");
        assert!(!first.close.notified().now_or_never_ready());
        // Answered, it can be; closed connections are forgotten.
        first.idle();
        drop(first);
        assert!(!set.close_oldest());
        drop((second, third));
        assert!(set.lock().open.is_empty());
    }

    trait NowOrNever {
        fn now_or_never_ready(self) -> bool;
    }

    impl<F: std::future::Future> NowOrNever for F {
        fn now_or_never_ready(self) -> bool {
            let waker = std::task::Waker::noop();
            let mut cx = std::task::Context::from_waker(waker);
            std::pin::pin!(self).poll(&mut cx).is_ready()
        }
    }
}
