//! The workload simulator (issue 6): a multi-tenant CRM ([`seed`]: schema
//! and data, tenant sizes skewed, custom fields used by some tenants), a
//! deterministic query sequence run by concurrent clients through the proxy
//! ([`workload`]), and the [`Scenario`]s that size them.

pub mod demo;
pub mod phase;
pub mod progress;
pub mod seed;
pub mod simulate;
pub mod workload;

use serde::Serialize;

/// How big a run is. Every field can be overridden from the command line.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scenario {
    pub name: String,
    pub tenants: u32,
    /// Contacts over all tenants (organizations: a tenth of that,
    /// interactions: twice that).
    pub contacts: u64,
    /// Queries per measured run of a phase.
    pub queries: u64,
    /// Concurrent clients.
    pub concurrency: u32,
    /// Measured runs per phase (figures are medians over them).
    pub trials: u32,
    /// Queries before measuring (same for both phases).
    pub warmup: u64,
    /// Seed of every random choice: same seed, same data, same queries.
    pub seed: u64,
}

impl Scenario {
    /// `tiny` (CI), `small` (the seed report's 10 tenants × 200 queries),
    /// `medium`, `large` (1,000 tenants, 10M contacts).
    pub fn named(name: &str) -> Option<Scenario> {
        let (tenants, contacts, queries, concurrency, trials, warmup) = match name {
            "tiny" => (20, 40_000, 1_500, 4, 3, 300),
            "small" => (10, 1_500, 2_000, 4, 3, 500),
            "medium" => (200, 1_000_000, 6_000, 8, 3, 1_000),
            "large" => (1_000, 10_000_000, 4_000, 8, 3, 500),
            _ => return None,
        };
        Some(Scenario {
            name: name.to_string(),
            tenants,
            contacts,
            queries,
            concurrency,
            trials,
            warmup,
            seed: 42,
        })
    }
}

/// A small deterministic generator (SplitMix64): the same seed gives the
/// same data and the same query sequence on every machine.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n.max(1))) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Zipf-like tenant sizes: tenant `i` (0-based) gets a share proportional
/// to `1 / (i + 1)`; the shares sum to 1.
pub fn tenant_shares(tenants: u32) -> Vec<f64> {
    let weights: Vec<f64> = (0..tenants).map(|i| 1.0 / f64::from(i + 1)).collect();
    let total: f64 = weights.iter().sum();
    weights.into_iter().map(|w| w / total).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_deterministic_and_uniform_enough() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let xs: Vec<u64> = (0..5).map(|_| a.below(100)).collect();
        let ys: Vec<u64> = (0..5).map(|_| b.below(100)).collect();
        assert_eq!(xs, ys);
        let mut r = Rng::new(1);
        let mean = (0..10_000).map(|_| r.unit()).sum::<f64>() / 10_000.0;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
    }

    #[test]
    fn shares_are_skewed_and_sum_to_one() {
        let s = tenant_shares(1000);
        assert!((s.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert!(s[0] > 50.0 * s[999]);
        assert!(Scenario::named("large").unwrap().contacts >= 10_000_000);
        assert!(Scenario::named("nope").is_none());
    }
}
