//! The chaos run's only source of randomness: the simulator's seeded SplitMix64, seeded per
//! iteration and per use (workload of worker k, fault schedule), so one seed replays the same
//! choices; with the draws the workload and the fault table need.

#[derive(Debug, Clone)]
pub struct Rng(vast_sim::Rng);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(vast_sim::Rng::new(seed))
    }

    /// The seed of sub-stream `tag` of `seed` (iteration `i` of a run, worker `k`, ...).
    pub fn derive(seed: u64, tag: u64) -> u64 {
        Rng::new(seed ^ tag.wrapping_mul(0xD1B5_4A32_D192_ED03)).next_u64()
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.0.next_f64() < p
    }

    /// One of `items` (not empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.next_u64() as usize % items.len()]
    }

    /// An index into `weights`, each chosen in proportion to its weight.
    pub fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut x = self.next_u64() % total.max(1);
        for (i, &w) in weights.iter().enumerate() {
            if x < u64::from(w) {
                return i;
            }
            x -= u64::from(w);
        }
        weights.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_choices() {
        let draw = |s| {
            let mut r = Rng::new(Rng::derive(s, 3));
            (0..20).map(|_| r.weighted(&[1, 0, 5])).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        assert!(!draw(7).contains(&1), "a zero weight is never chosen");
    }
}
