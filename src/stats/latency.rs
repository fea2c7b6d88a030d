//! Recent latency per (statement fingerprint, tenant) in short time slices,
//! so that the indexer can compare the same statements' measured latency in
//! a window before a build with a window after it. A ring of slices per
//! series: 16 bytes a slice, old slices overwritten in place.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Calls and their summed latency over some span of time.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Measured {
    pub calls: u64,
    pub total_us: u64,
}

impl Measured {
    pub fn mean_ms(&self) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            self.total_us as f64 / self.calls as f64 / 1000.0
        }
    }

    pub fn add(&mut self, other: Measured) {
        self.calls += other.calls;
        self.total_us += other.total_us;
    }
}

/// How finely and how far back latency is remembered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resolution {
    pub slice: Duration,
    pub slices: usize,
}

impl Resolution {
    /// Slices of a twelfth of `window` (at least 100 ms), enough of them to
    /// cover `window` plus two slices of slack.
    pub fn covering(window: Duration) -> Resolution {
        let slice = (window / 12).max(Duration::from_millis(100));
        let slices = (window.as_millis() / slice.as_millis()) as usize + 3;
        Resolution { slice, slices }
    }

    fn slice_of(&self, t: SystemTime) -> u64 {
        let ms = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
        ms / (self.slice.as_millis() as u64).max(1)
    }
}

impl Default for Resolution {
    fn default() -> Resolution {
        Resolution::covering(Duration::from_secs(60))
    }
}

/// One series' ring: (slice id, calls, total µs).
#[derive(Clone, Debug)]
pub struct Ring {
    slots: Box<[(u64, u32, u64)]>,
}

impl Ring {
    pub fn new(resolution: Resolution) -> Ring {
        Ring {
            slots: vec![(u64::MAX, 0, 0); resolution.slices.max(1)].into_boxed_slice(),
        }
    }

    pub fn record(&mut self, resolution: Resolution, at: SystemTime, latency_us: u64) {
        let id = resolution.slice_of(at);
        let n = self.slots.len() as u64;
        let slot = &mut self.slots[(id % n) as usize];
        if slot.0 != id {
            *slot = (id, 0, 0);
        }
        slot.1 = slot.1.saturating_add(1);
        slot.2 = slot.2.saturating_add(latency_us);
    }

    /// Whether every remembered slice has fallen out of the ring's span.
    pub fn is_stale(&self, resolution: Resolution, now: SystemTime) -> bool {
        let oldest_kept = resolution
            .slice_of(now)
            .saturating_sub(self.slots.len() as u64);
        self.slots
            .iter()
            .all(|&(id, _, _)| id == u64::MAX || id < oldest_kept)
    }

    /// What was recorded after the slice holding `from` (which may hold
    /// earlier calls) up to and including the slice holding `to`, as far as
    /// still remembered. With `to` = now, that last slice holds only calls
    /// up to now: before a build, all of them are "before".
    pub fn between(&self, resolution: Resolution, from: SystemTime, to: SystemTime) -> Measured {
        let last = resolution.slice_of(to);
        // Slots older than the ring's span before `to` are stale leftovers.
        let oldest = last.saturating_sub(self.slots.len() as u64 - 1);
        let first = (resolution.slice_of(from) + 1).max(oldest);
        let mut out = Measured::default();
        for &(id, calls, total) in self.slots.iter() {
            if id != u64::MAX && id >= first && id <= last {
                out.add(Measured {
                    calls: u64::from(calls),
                    total_us: total,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_inside_the_span_are_summed_and_old_ones_forgotten() {
        let r = Resolution {
            slice: Duration::from_secs(1),
            slices: 5,
        };
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000);
        let mut ring = Ring::new(r);
        for s in 0..3 {
            ring.record(r, t0 + Duration::from_secs(s), 1000 * (s + 1));
        }
        let m = ring.between(
            r,
            t0 - Duration::from_millis(1),
            t0 + Duration::from_secs(3),
        );
        assert_eq!(m.calls, 3);
        assert_eq!(m.total_us, 6000);
        assert!((m.mean_ms() - 2.0).abs() < 1e-9);
        // The slice holding `from` is left out, the one holding `to` counts.
        let m = ring.between(
            r,
            t0 + Duration::from_millis(500),
            t0 + Duration::from_millis(2500),
        );
        assert_eq!(m.calls, 2);
        // Ten seconds on, the ring has wrapped: the old slices are gone.
        ring.record(r, t0 + Duration::from_secs(10), 7);
        let m = ring.between(r, t0 - Duration::from_secs(1), t0 + Duration::from_secs(11));
        assert_eq!(
            m,
            Measured {
                calls: 1,
                total_us: 7
            }
        );
        assert!(!ring.is_stale(r, t0 + Duration::from_secs(10)));
        assert!(ring.is_stale(r, t0 + Duration::from_secs(20)));
    }

    #[test]
    fn covering_resolution() {
        let r = Resolution::covering(Duration::from_secs(60));
        assert_eq!(r.slice, Duration::from_secs(5));
        assert_eq!(r.slices, 15);
        let r = Resolution::covering(Duration::from_secs(1));
        assert_eq!(r.slice, Duration::from_millis(100));
    }
}
