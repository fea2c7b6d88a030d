//! Out-of-band signals to sessions: forced shutdown and periodic timeout
//! checks. A session pays one atomic load per wake-up for them, instead of
//! polling timers and a shared cancellation token on every packet.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Waker;
use std::time::Duration;

use dashmap::DashMap;
use tokio_util::sync::CancellationToken;

/// Bits of [`Control::signal`].
pub const CHECK_TIMERS: u8 = 1;
pub const SHUTDOWN: u8 = 2;

/// One session's mailbox.
#[derive(Debug, Default)]
pub struct Control {
    signal: AtomicU8,
    waker: Mutex<Option<Waker>>,
}

impl Control {
    /// Remember the task's waker; `known` is the session's own copy, so the
    /// lock is only taken when the waker changes (rarely, if ever).
    pub fn register(&self, known: &mut Option<Waker>, waker: &Waker) {
        if known.as_ref().is_some_and(|k| k.will_wake(waker)) {
            return;
        }
        *known = Some(waker.clone());
        *self.waker.lock().unwrap_or_else(|e| e.into_inner()) = Some(waker.clone());
    }

    /// Take pending signals (0 when none).
    pub fn take(&self) -> u8 {
        if self.signal.load(Ordering::Acquire) == 0 {
            return 0;
        }
        self.signal.swap(0, Ordering::AcqRel)
    }

    fn raise(&self, bits: u8) {
        self.signal.fetch_or(bits, Ordering::AcqRel);
        let waker = self.waker.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// All live sessions, so that shutdown and the timer sweep can reach them.
#[derive(Debug, Default)]
pub struct Registry {
    sessions: DashMap<u64, Arc<Control>>,
    next_id: AtomicU64,
    shutting_down: AtomicBool,
}

/// Removes the session from the registry when dropped.
pub struct Registration {
    registry: Arc<Registry>,
    id: u64,
    pub control: Arc<Control>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.sessions.remove(&self.id);
    }
}

impl Registry {
    pub fn register(self: &Arc<Self>) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let control = Arc::new(Control::default());
        if self.shutting_down.load(Ordering::Acquire) {
            control.signal.store(SHUTDOWN, Ordering::Release);
        }
        self.sessions.insert(id, control.clone());
        Registration {
            registry: self.clone(),
            id,
            control,
        }
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Tell every session to end now.
    pub fn shutdown_all(&self) {
        self.shutting_down.store(true, Ordering::Release);
        for c in self.controls() {
            c.raise(SHUTDOWN);
        }
    }

    /// Copy the controls out, so no map guard is held while waking.
    fn controls(&self) -> Vec<Arc<Control>> {
        self.sessions.iter().map(|e| e.value().clone()).collect()
    }

    /// Every `period`, ask sessions to check their timers and report their
    /// byte counts.
    pub async fn sweep(self: Arc<Self>, period: Duration, stop: CancellationToken) {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.cancelled() => return,
            }
            for c in self.controls() {
                c.raise(CHECK_TIMERS);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use std::task::Poll;

    #[tokio::test]
    async fn shutdown_wakes_a_waiting_session() {
        let registry = Arc::new(Registry::default());
        let reg = registry.register();
        let control = reg.control.clone();
        let waiter = tokio::spawn(async move {
            let mut known = None;
            poll_fn(|cx| {
                control.register(&mut known, cx.waker());
                match control.take() {
                    0 => Poll::Pending,
                    bits => Poll::Ready(bits),
                }
            })
            .await
        });
        tokio::task::yield_now().await;
        registry.shutdown_all();
        assert_eq!(waiter.await.unwrap() & SHUTDOWN, SHUTDOWN);
        assert_eq!(registry.len(), 1);
        drop(reg);
        assert!(registry.is_empty());
        // Sessions that start after shutdown began see it at once.
        assert_eq!(registry.register().control.take(), SHUTDOWN);
    }
}
