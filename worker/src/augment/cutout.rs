//! Cutout (DeVries & Taylor 2017) as its authors' `util/cutout.py` (uoguelph-mlrg/Cutout)
//! computes it: one square an image, its centre uniform over the image, its corners
//! `centre ∓ side // 2` clipped at the borders, multiplied by 0 after normalisation. (torchvision
//! has no Cutout; `RandomErasing` draws its box differently.)

use ltsweep_data::rng::{Rng, purpose};
use tch::{Device, Kind, Tensor};

/// Cutout of one side on images of one size.
pub struct Cutout {
    side: i64,
    height: i64,
    width: i64,
    rows: Tensor,
    cols: Tensor,
}

/// The squares' centres of one epoch, in its sample order.
pub struct CutoutDraws {
    y: Tensor,
    x: Tensor,
}

impl Cutout {
    /// `None` for side 0 (off).
    pub fn new(side: u32, height: i64, width: i64, device: Device) -> Option<Self> {
        (side > 0).then(|| Self {
            side: i64::from(side),
            height,
            width,
            rows: Tensor::arange(height, (Kind::Int64, device)).view([1, height, 1]),
            cols: Tensor::arange(width, (Kind::Int64, device)).view([1, 1, width]),
        })
    }

    /// The centres of `n` images: `np.random.randint(h)`, `np.random.randint(w)`.
    pub fn draw(&self, n: usize, seed: u64, epoch: u32, device: Device) -> CutoutDraws {
        let mut rng = Rng::derive(seed, &[purpose::CUTOUT, u64::from(epoch)]);
        let mut y = Vec::with_capacity(n);
        let mut x = Vec::with_capacity(n);
        for _ in 0..n {
            y.push(rng.below(self.height as u64) as i64);
            x.push(rng.below(self.width as u64) as i64);
        }
        CutoutDraws {
            y: Tensor::from_slice(&y).to_device(device),
            x: Tensor::from_slice(&x).to_device(device),
        }
    }

    /// Zeroes the squares of the epoch's images `from..from + len` in their normalised batch.
    pub fn apply(&self, images: &Tensor, draws: &CutoutDraws, from: i64, len: i64) -> Tensor {
        let half = self.side / 2;
        let y = draws.y.narrow(0, from, len).view([-1, 1, 1]);
        let x = draws.x.narrow(0, from, len).view([-1, 1, 1]);
        // `np.clip(c ∓ length // 2, 0, size)`; rows y1 <= r < y2, as `mask[y1:y2, x1:x2] = 0`.
        let inside = |c: &Tensor, index: &Tensor, size: i64| {
            let low = (c - half).clamp(0, size);
            let high = (c + half).clamp(0, size);
            index.ge_tensor(&low).logical_and(&index.lt_tensor(&high))
        };
        let square = inside(&y, &self.rows, self.height)
            .logical_and(&inside(&x, &self.cols, self.width))
            .unsqueeze(1);
        // `img * mask`, the mask 0 in the square.
        images * square.logical_not().to_kind(images.kind())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_square_is_clipped_at_the_borders_as_the_authors_mask() {
        let cutout = Cutout::new(4, 6, 6, Device::Cpu).unwrap();
        let images = Tensor::ones([2, 1, 6, 6], (Kind::Float, Device::Cpu));
        let draws = CutoutDraws {
            y: Tensor::from_slice(&[3i64, 0]),
            x: Tensor::from_slice(&[3i64, 5]),
        };
        let out = cutout.apply(&images, &draws, 0, 2);
        // Centre (3, 3): rows and columns 1..5, a 4×4 square.
        let first = out.get(0).get(0);
        assert_eq!(first.sum(Kind::Float).double_value(&[]), 36.0 - 16.0);
        assert_eq!(first.double_value(&[1, 1]), 0.0);
        assert_eq!(first.double_value(&[0, 0]), 1.0);
        assert_eq!(first.double_value(&[4, 4]), 0.0);
        assert_eq!(first.double_value(&[5, 5]), 1.0);
        // Centre (0, 5): rows 0..2 (clipped from -2), columns 3..6 (clipped from 7): 2×3.
        let second = out.get(1).get(0);
        assert_eq!(second.sum(Kind::Float).double_value(&[]), 36.0 - 6.0);
        assert_eq!(second.double_value(&[1, 3]), 0.0);
        assert_eq!(second.double_value(&[2, 3]), 1.0);
        assert_eq!(second.double_value(&[0, 2]), 1.0);
    }
}
