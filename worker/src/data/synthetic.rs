//! The built-in synthetic data set: each class is a colour plus a periodic grating, shifted at
//! random in each image, with a random colour cast per image and noise per pixel. The colour
//! cast makes the classes overlap in mean colour, so a model must learn the gratings, and
//! the frequent classes are learnt first, as in real long-tailed data. It needs no download, has any size and class count,
//! and a small ResNet learns it in seconds, which makes it the data of the quickstart and tests.
//!
//! The set depends only on its settings, never on a job's seed, as a real data set would.

use std::f64::consts::TAU;

use ltsweep_domain::SyntheticConfig;

use super::{ImageSet, Splits};
use crate::rng::{Rng, purpose};

/// A class's noise-free pattern, `[C, S, S]`, in units of the noise's standard deviation.
fn template(class: usize, channels: usize, size: usize) -> Vec<f32> {
    let mut rng = Rng::derive(0, &[purpose::SYNTHETIC, class as u64]);
    let colour: Vec<f64> = (0..channels).map(|_| 1.2 * rng.unit() - 0.6).collect();
    // Whole cycles across the image keep the pattern periodic, so a shift has no seam.
    let (fx, fy) = loop {
        let f = (rng.below(4) as f64, rng.below(4) as f64);
        if f != (0.0, 0.0) {
            break f;
        }
    };
    let phase: Vec<f64> = (0..channels).map(|_| TAU * rng.unit()).collect();
    let mut out = Vec::with_capacity(channels * size * size);
    for c in 0..channels {
        for y in 0..size {
            for x in 0..size {
                let angle = TAU * (fx * x as f64 + fy * y as f64) / size as f64 + phase[c];
                out.push((colour[c] + 0.8 * angle.sin()) as f32);
            }
        }
    }
    out
}

/// `per_class` images of each class, drawn from the stream `split`.
fn generate(classes: usize, per_class: usize, config: &SyntheticConfig, split: u64) -> ImageSet {
    let (channels, size) = (config.channels as usize, config.image_size as usize);
    let templates: Vec<Vec<f32>> = (0..classes).map(|c| template(c, channels, size)).collect();
    let noise = config.noise as f32;
    let mut pixels = Vec::with_capacity(classes * per_class * channels * size * size);
    let mut labels = Vec::with_capacity(classes * per_class);
    for (class, pattern) in templates.iter().enumerate() {
        let mut rng = Rng::derive(split, &[purpose::SYNTHETIC, class as u64]);
        for _ in 0..per_class {
            let (dy, dx) = (
                rng.below(size as u64) as usize,
                rng.below(size as u64) as usize,
            );
            for c in 0..channels {
                for y in 0..size {
                    let row = &pattern[(c * size + (y + dy) % size) * size..][..size];
                    for x in 0..size {
                        let value = row[(x + dx) % size] + noise * gaussian(&mut rng);
                        pixels.push((128.0 + 40.0 * value).clamp(0.0, 255.0) as u8);
                    }
                }
            }
            labels.push(class as i64);
        }
    }
    ImageSet {
        pixels,
        labels,
        channels,
        height: size,
        width: size,
        num_classes: classes,
    }
}

/// Roughly standard normal from one draw: the sum of four uniform 16-bit parts (Irwin-Hall),
/// an order of magnitude cheaper than Box-Muller, for millions of pixels.
fn gaussian(rng: &mut Rng) -> f32 {
    let bits = rng.next_u64();
    let sum: u64 = (0..4).map(|i| (bits >> (16 * i)) & 0xffff).sum();
    // Four uniforms on [0, 1) have mean 2 and variance 1/3.
    ((sum as f32 / 65536.0) - 2.0) * 1.732_050_8
}

/// The balanced training and test sets.
pub fn splits(classes: usize, config: &SyntheticConfig) -> Splits {
    Splits {
        train: generate(classes, config.train_per_class as usize, config, 1),
        val: None,
        test: generate(classes, config.test_per_class as usize, config, 2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SyntheticConfig {
        SyntheticConfig {
            train_per_class: 5,
            test_per_class: 2,
            image_size: 8,
            channels: 3,
            noise: 0.5,
        }
    }

    #[test]
    fn the_set_is_deterministic_and_splits_differ() {
        let a = splits(4, &config());
        let b = splits(4, &config());
        assert_eq!(a.train, b.train);
        assert_eq!(a.train.len(), 20);
        assert_eq!(a.test.len(), 8);
        assert_ne!(a.train.image(0), a.test.image(0));
        assert_eq!(a.train.class_counts(), vec![5; 4]);
    }

    #[test]
    fn classes_differ_in_their_mean_colour() {
        let set = generate(
            3,
            50,
            &SyntheticConfig {
                noise: 1.0,
                ..config()
            },
            1,
        );
        let mean = |class: usize| -> f64 {
            let imgs: Vec<usize> = (0..set.len())
                .filter(|&i| set.labels[i] == class as i64)
                .collect();
            let total: f64 = imgs.iter().map(|&i| f64::from(set.image(i)[0])).sum();
            total / imgs.len() as f64
        };
        let means = [mean(0), mean(1), mean(2)];
        assert!(
            (means[0] - means[1]).abs() > 3.0 || (means[1] - means[2]).abs() > 3.0,
            "{means:?}"
        );
    }
}
