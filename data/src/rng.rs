//! Deterministic randomness for data: shuffles, crops, flips, synthetic images.
//!
//! libtorch's generator is global to the process, and several jobs train at once in one worker;
//! a per-job generator derived from `(seed, purpose, epoch)` keeps every job reproducible
//! whatever runs beside it, and makes a resumed epoch draw exactly what it would have drawn.

/// SplitMix64: tiny, fast, and good enough for shuffling and augmentation.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for one purpose: `Rng::derive(seed, &[SHUFFLE, epoch])`.
    pub fn derive(seed: u64, path: &[u64]) -> Rng {
        let mut state = mix(seed ^ 0x6c74_7377_6565_7021);
        for &part in path {
            state = mix(state ^ mix(part.wrapping_add(0x9e37_79b9_7f4a_7c15)));
        }
        Rng(state)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; the bias for n far below 2^64 is negligible).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u = 1.0 - self.unit();
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// Fisher-Yates shuffle in place.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Purposes, so that two uses of one seed never draw the same numbers.
pub mod purpose {
    pub const SHUFFLE: u64 = 1;
    pub const AUGMENT: u64 = 2;
    pub const SUBSET: u64 = 3;
    pub const SYNTHETIC: u64 = 4;
    pub const SAMPLER: u64 = 5;
    pub const VALIDATION: u64 = 6;
    /// A list data image's crop, flip and jitter: `[LIST_AUGMENT, epoch, position]`.
    pub const LIST_AUGMENT: u64 = 7;
    /// A stage-2 job's own draws (its order, crops and fresh classifier).
    pub const STAGE2: u64 = 8;
    /// An in-memory epoch's policy ops (AutoAugment, RandAugment, TrivialAugmentWide).
    pub const POLICY: u64 = 9;
    /// An in-memory epoch's Cutout squares.
    pub const CUTOUT: u64 = 10;
    /// A batch's mixing: `[MIX, epoch, position of its first image]`.
    pub const MIX: u64 = 11;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4)
            .map({
                let mut r = Rng::derive(7, &[1, 3]);
                move |_| r.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..4)
            .map({
                let mut r = Rng::derive(7, &[1, 3]);
                move |_| r.next_u64()
            })
            .collect();
        let c: Vec<u64> = (0..4)
            .map({
                let mut r = Rng::derive(7, &[1, 4]);
                move |_| r.next_u64()
            })
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut items: Vec<u32> = (0..1000).collect();
        Rng::derive(1, &[]).shuffle(&mut items);
        assert_ne!(items, (0..1000).collect::<Vec<_>>());
        items.sort_unstable();
        assert_eq!(items, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut rng = Rng::derive(3, &[]);
        let mut seen = [false; 9];
        for _ in 0..1000 {
            seen[rng.below(9) as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }
}
