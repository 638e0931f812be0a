//! A connection's outbox: the frames its chat has for it that its socket has not taken
//! yet. The room holds the sending end of each connection's outbox, the connection's task
//! the receiving end.
//!
//! A chat's connection waits far more than it writes, and a node holds a hundred thousand
//! of them: an empty outbox is one small allocation (a channel of the runtime's reserves
//! a block of slots for each), and frames take memory only while they wait. At most
//! [`OUTBOX`] frames wait: a page further behind is not reading, and its outbox is closed
//! (its connection ends) rather than its frames kept without bound; it gets what it
//! missed from the store when it resumes.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Frames that may wait for one connection.
pub const OUTBOX: usize = 512;

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    ready: Notify,
}

#[derive(Default)]
struct State {
    frames: VecDeque<String>,
    /// No frame will come any more: the room let the connection go, or dropped it.
    closed: bool,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A new outbox: the room's end, and the connection's.
pub fn outbox() -> (Sender, Receiver) {
    let shared = Arc::new(Shared::default());
    (Sender(shared.clone()), Receiver(shared))
}

/// The room's end. Dropping it closes the outbox: the connection reads what is left,
/// then the end.
pub struct Sender(Arc<Shared>);

impl Sender {
    /// Queues a frame; false (and the outbox closed) when [`OUTBOX`] frames are waiting
    /// already, or the connection has gone.
    pub fn send(&self, frame: String) -> bool {
        let mut s = self.0.lock();
        if s.closed || Arc::strong_count(&self.0) < 2 {
            return false;
        }
        if s.frames.len() >= OUTBOX {
            s.closed = true;
            drop(s);
            self.0.ready.notify_one();
            return false;
        }
        s.frames.push_back(frame);
        drop(s);
        self.0.ready.notify_one();
        true
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.ready.notify_one();
    }
}

/// The connection's end.
pub struct Receiver(Arc<Shared>);

impl Receiver {
    /// The next frame, waiting for one; `None` once the outbox is closed and empty.
    pub async fn recv(&mut self) -> Option<String> {
        loop {
            if let Some(frame) = self.try_recv() {
                return Some(frame);
            }
            if self.0.lock().closed {
                return None;
            }
            // A frame queued since the look above left a permit: this returns at once.
            self.0.ready.notified().await;
        }
    }

    /// The next frame if one is waiting.
    pub fn try_recv(&mut self) -> Option<String> {
        let mut s = self.0.lock();
        let frame = s.frames.pop_front();
        // The room is given back once every frame has been read: a quiet chat's outbox
        // holds nothing between its frames (a frame's slot is a small allocation again
        // when the next comes).
        if s.frames.is_empty() && s.frames.capacity() > 0 {
            s.frames = VecDeque::new();
        }
        frame
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_come_in_order_and_the_end_after_the_last() {
        let (tx, mut rx) = outbox();
        assert!(tx.send("a".into()) && tx.send("b".into()));
        drop(tx);
        assert_eq!(rx.recv().await.as_deref(), Some("a"));
        assert_eq!(rx.recv().await.as_deref(), Some("b"));
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn a_waiting_connection_is_woken_by_its_next_frame() {
        let (tx, mut rx) = outbox();
        let reader = tokio::spawn(async move { rx.recv().await });
        tokio::task::yield_now().await;
        assert!(tx.send("late".into()));
        assert_eq!(reader.await.unwrap().as_deref(), Some("late"));
    }

    #[test]
    fn a_full_outbox_closes_and_a_gone_connection_takes_nothing() {
        let (tx, mut rx) = outbox();
        for n in 0..OUTBOX {
            assert!(tx.send(n.to_string()));
        }
        assert!(!tx.send("one too many".into()));
        assert!(!tx.send("and after".into()), "closed stays closed");
        assert_eq!(rx.try_recv().as_deref(), Some("0"));
        let (tx, rx) = outbox();
        drop(rx);
        assert!(!tx.send("nobody reads".into()));
    }
}
