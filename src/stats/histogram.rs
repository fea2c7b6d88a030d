//! A compact log-linear latency histogram (4 sub-buckets per power of two,
//! 1 µs to ~1 hour): 512 bytes per series, quantiles within about ±10%,
//! mergeable, which is what per-window, per-tenant statement stats need.

/// Sub-buckets per power of two.
const SUB: u32 = 4;
/// Powers of two covered, from 1 µs.
const OCTAVES: u32 = 32;
const BUCKETS: usize = (SUB * OCTAVES) as usize;

#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    counts: Box<[u32; BUCKETS]>,
    total: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: Box::new([0; BUCKETS]),
            total: 0,
        }
    }
}

fn bucket_of(us: u64) -> usize {
    let v = us.max(1);
    let octave = 63 - v.leading_zeros();
    // The two bits after the leading one pick the sub-bucket.
    let sub = if octave >= 2 {
        (v >> (octave - 2)) & 0b11
    } else {
        (v << (2 - octave)) & 0b11
    } as u32;
    ((octave.min(OCTAVES - 1)) * SUB + sub) as usize
}

/// The upper bound, in µs, of bucket `i`.
fn upper_of(i: usize) -> u64 {
    let octave = i as u32 / SUB;
    let sub = i as u32 % SUB;
    let base = 1u64 << octave;
    base + ((base * (sub as u64 + 1)) / SUB as u64)
}

impl Histogram {
    pub fn record_us(&mut self, us: u64) {
        self.counts[bucket_of(us)] += 1;
        self.total += 1;
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a = a.saturating_add(*b);
        }
        self.total += other.total;
    }

    /// The `q` quantile (0..=1) in µs, as the upper bound of its bucket.
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            seen += *c as u64;
            if seen >= rank {
                return upper_of(i);
            }
        }
        upper_of(BUCKETS - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_bucket_precision() {
        let mut h = Histogram::default();
        for us in 1..=10_000u64 {
            h.record_us(us);
        }
        let p50 = h.quantile_us(0.5) as f64;
        let p95 = h.quantile_us(0.95) as f64;
        assert!((p50 / 5000.0 - 1.0).abs() < 0.3, "p50 {p50}");
        assert!((p95 / 9500.0 - 1.0).abs() < 0.3, "p95 {p95}");
        assert_eq!(h.count(), 10_000);
    }

    #[test]
    fn buckets_are_monotonic_and_merge_adds() {
        let mut last = 0;
        for us in [1u64, 2, 3, 5, 8, 100, 1_000, 1_000_000, u64::MAX / 2] {
            let b = bucket_of(us);
            assert!(b >= last);
            last = b;
        }
        let mut a = Histogram::default();
        let mut b = Histogram::default();
        a.record_us(10);
        b.record_us(1_000_000);
        a.merge(&b);
        assert_eq!(a.count(), 2);
        assert!(a.quantile_us(1.0) >= 1_000_000);
        assert_eq!(Histogram::default().quantile_us(0.95), 0);
    }
}
