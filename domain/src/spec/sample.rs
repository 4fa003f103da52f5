//! Sampled settings (`lr = { log_uniform = [0.01, 0.5] }`): `[search] samples` points drawn
//! jointly over every sampled setting from a scrambled Halton sequence, seeded by `[search]
//! seed`, so that the same spec gives the same configurations and the same job ids.
//!
//! Halton's sequence fills the unit cube evenly where independent draws leave gaps and clumps
//! (the first `b^m` points put exactly one in each interval of length `b^-m` of a dimension in
//! base `b`), which matters at the few dozen configurations a study affords. Its plain form
//! correlates the dimensions of large prime bases; scrambling each digit position of each
//! dimension by its own random permutation of the digits (as SciPy's `qmc.Halton(scramble =
//! True)` does, with other random numbers) removes that and keeps the even fill.

use super::Distribution;

/// A sampled setting as the grid sees it: its name, its distribution and bounds or choices (as
/// reals), and whether it is a whole number.
#[derive(Clone, Debug, PartialEq)]
pub struct SampledAxis {
    pub name: &'static str,
    pub distribution: Distribution,
    pub values: Vec<f64>,
    pub whole: bool,
}

/// The first primes: one Halton base per sampled setting, so a spec samples at most this many.
const PRIMES: [u64; 40] = [
    2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97,
    101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167, 173,
];

/// The most settings one spec may sample.
pub const MAX_SAMPLED_SETTINGS: usize = PRIMES.len();

/// Significant digits a drawn real keeps: a job's label reads as its value, and a last-bit
/// difference between two machines' `exp` cannot change a job id.
const SIGNIFICANT_DIGITS: usize = 4;

impl SampledAxis {
    /// The setting's value at `u` in [0, 1).
    pub fn draw(&self, u: f64) -> f64 {
        let v = &self.values;
        let pick = |n: usize| ((u * n as f64) as usize).min(n - 1);
        match (self.distribution, self.whole) {
            (Distribution::Choice, _) => v[pick(v.len())],
            (Distribution::Uniform, false) => round(v[0] + u * (v[1] - v[0])),
            (Distribution::LogUniform, false) => {
                round((v[0].ln() + u * (v[1].ln() - v[0].ln())).exp())
            }
            // Each whole number of the range in equal measure: [low, high + 1) floored.
            (Distribution::Uniform, true) => v[0] + pick((v[1] - v[0]) as usize + 1) as f64,
            (Distribution::LogUniform, true) => {
                let x = (v[0].ln() + u * ((v[1] + 1.0).ln() - v[0].ln())).exp();
                x.floor().clamp(v[0], v[1])
            }
        }
    }
}

fn round(x: f64) -> f64 {
    format!("{x:.*e}", SIGNIFICANT_DIGITS - 1)
        .parse()
        .expect("a formatted float parses")
}

/// `count` points of the scrambled Halton sequence in `dims` dimensions (at most
/// [`MAX_SAMPLED_SETTINGS`]), each coordinate in [0, 1).
pub fn halton(count: usize, dims: usize, seed: u64) -> Vec<Vec<f64>> {
    let scramblers: Vec<Scrambler> = PRIMES[..dims]
        .iter()
        .enumerate()
        .map(|(dim, &base)| Scrambler::new(base, seed, dim as u64))
        .collect();
    (0..count as u64)
        .map(|i| scramblers.iter().map(|s| s.point(i)).collect())
        .collect()
}

/// One dimension's base and its digit permutations, one per digit position.
struct Scrambler {
    base: u64,
    permutations: Vec<Vec<u64>>,
}

impl Scrambler {
    fn new(base: u64, seed: u64, dim: u64) -> Self {
        // Enough digits that the scrambled tail below the last one is under 2^-32.
        let mut digits = 0;
        let mut reach = 1u64;
        while reach < 1 << 32 {
            reach *= base;
            digits += 1;
        }
        let permutations = (0..digits)
            .map(|position| {
                let mut rng = SplitMix64(seed ^ mix(dim << 32 | position));
                let mut perm: Vec<u64> = (0..base).collect();
                // Fisher-Yates.
                for k in (1..perm.len()).rev() {
                    let j = (rng.next() % (k as u64 + 1)) as usize;
                    perm.swap(k, j);
                }
                perm
            })
            .collect();
        Self { base, permutations }
    }

    /// The radical inverse of `index` with each digit permuted by its position's permutation;
    /// the leading zeros are permuted too, so every position is scrambled.
    fn point(&self, mut index: u64) -> f64 {
        let mut value = 0.0;
        let mut scale = 1.0 / self.base as f64;
        for perm in &self.permutations {
            value += perm[(index % self.base) as usize] as f64 * scale;
            index /= self.base;
            scale /= self.base as f64;
        }
        value
    }
}

/// Steele, Lea and Flood's SplitMix64: a small, well-mixed generator for the permutations.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_b_to_the_m_points_fill_each_interval_of_a_dimension_once_per_its_share() {
        // 2^6 points in base 2: each eighth of [0, 1) holds 8; 3^4 in base 3: each ninth 9.
        // Independent draws would fill them unevenly.
        for (dim, count, bins) in [(0, 64, 8), (1, 81, 9), (2, 125, 25)] {
            let points = halton(count, 3, 7);
            let mut filled = vec![0; bins];
            for p in &points {
                assert!((0.0..1.0).contains(&p[dim]), "{}", p[dim]);
                filled[(p[dim] * bins as f64) as usize] += 1;
            }
            assert!(
                filled.iter().all(|&n| n == count / bins),
                "dim {dim}: {filled:?}"
            );
        }
    }

    #[test]
    fn the_seed_scrambles_and_the_same_seed_gives_the_same_points() {
        assert_eq!(halton(20, 4, 1), halton(20, 4, 1));
        assert_ne!(halton(20, 4, 1), halton(20, 4, 2));
        // Scrambled: the plain sequence's first point is the origin.
        assert!(halton(1, 4, 1)[0].iter().all(|&u| u > 0.0));
    }

    #[test]
    fn draws_keep_to_their_distribution() {
        let log = SampledAxis {
            name: "lr",
            distribution: Distribution::LogUniform,
            values: vec![0.01, 1.0],
            whole: false,
        };
        // Uniform in the logarithm: the middle of [0, 1) is the geometric mean.
        assert_eq!(log.draw(0.5), 0.1);
        assert_eq!(log.draw(0.0), 0.01);
        assert_eq!(log.draw(0.123456), 0.01766);
        let whole = SampledAxis {
            name: "warmup_epochs",
            distribution: Distribution::Uniform,
            values: vec![2.0, 4.0],
            whole: true,
        };
        let drawn: Vec<f64> = [0.0, 0.34, 0.67, 0.9999].map(|u| whole.draw(u)).to_vec();
        assert_eq!(drawn, [2.0, 3.0, 4.0, 4.0]);
        let choice = SampledAxis {
            name: "pc_weight",
            distribution: Distribution::Choice,
            values: vec![0.1, 1.0, 10.0],
            whole: false,
        };
        assert_eq!(choice.draw(0.5), 1.0);
        assert_eq!(choice.draw(0.99), 10.0);
    }
}
