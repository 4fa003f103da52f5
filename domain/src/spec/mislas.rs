//! `[stage2.mislas]`: the settings of MiSLAS's second stage (Zhong et al., CVPR 2021), each
//! defaulting to what their code does on CIFAR-100-LT ratio 100 (dvlab-research/MiSLAS,
//! `config/cifar100/cifar100_imb001_stage2_mislas.yaml` and `train_stage2.py`); a list is an
//! axis of MiSLAS's jobs alone.

use serde::Deserialize;

use super::Axis;
use super::defaults;
use crate::baseline::Choice;
use crate::stage2::{
    BnMode, MislasClassifier, MislasSettings, SmoothShape, Stage2Method, WeightScaling,
};

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MislasSetting {
    /// `num_epochs: 10`.
    #[serde(default = "epochs")]
    pub epochs: Axis<u32>,
    /// `lr: 0.1`, the weight scales' rate, down to 0 on `adjust_learning_rate`'s cosine.
    #[serde(default = "lr")]
    pub lr: Axis<f64>,
    /// `lr_factor: 0.2`: the classifier trains at `lr * lr_factor`.
    #[serde(default = "lr_factor")]
    pub lr_factor: Axis<f64>,
    /// `weight_decay: 2e-4`, on the classifier and the scales alike.
    #[serde(default = "weight_decay")]
    pub weight_decay: Axis<f64>,
    /// `smooth_head: 0.4`: the smoothing factor of the most frequent class.
    #[serde(default = "smooth_head")]
    pub smooth_head: Axis<f64>,
    /// `smooth_tail: 0.1`: the smoothing factor of the rarest class.
    #[serde(default = "smooth_tail")]
    pub smooth_tail: Axis<f64>,
    /// `concave` (`LabelAwareSmoothing`'s default, the one `train_stage2.py` uses), `linear` or
    /// `convex`.
    #[serde(default = "defaults::first")]
    pub shape: Choice<SmoothShape>,
    /// The frozen backbone's BatchNorm: `train` (their `shift_bn: True`, `model.train()`: the
    /// running statistics follow the class-balanced batches) or `frozen`.
    #[serde(default = "defaults::first")]
    pub bn: Choice<BnMode>,
    /// `stage1` (their `resume` loads the stage-1 classifier) or `fresh`.
    #[serde(default = "defaults::first")]
    pub classifier: Choice<MislasClassifier>,
    /// `learned` (`LearnableWeightScaling`) or `none`.
    #[serde(default = "defaults::first")]
    pub scaling: Choice<WeightScaling>,
}

fn epochs() -> Axis<u32> {
    Axis::One(10)
}
fn lr() -> Axis<f64> {
    Axis::One(0.1)
}
fn lr_factor() -> Axis<f64> {
    Axis::One(0.2)
}
fn weight_decay() -> Axis<f64> {
    Axis::One(2e-4)
}
fn smooth_head() -> Axis<f64> {
    Axis::One(0.4)
}
fn smooth_tail() -> Axis<f64> {
    Axis::One(0.1)
}

impl Default for MislasSetting {
    fn default() -> Self {
        toml::from_str("").expect("every mislas setting has a default")
    }
}

impl MislasSetting {
    /// One method per combination of the settings' values, in the order of the keys.
    pub(super) fn methods(&self) -> Vec<Stage2Method> {
        let mut methods = Vec::new();
        for &epochs in self.epochs.values() {
            for &lr in self.lr.values() {
                for &lr_factor in self.lr_factor.values() {
                    for &weight_decay in self.weight_decay.values() {
                        for &smooth_head in self.smooth_head.values() {
                            for &smooth_tail in self.smooth_tail.values() {
                                for &shape in self.shape.values() {
                                    for &bn in self.bn.values() {
                                        for &classifier in self.classifier.values() {
                                            for &scaling in self.scaling.values() {
                                                methods.push(Stage2Method::Mislas(
                                                    MislasSettings {
                                                        epochs,
                                                        lr,
                                                        lr_factor,
                                                        weight_decay,
                                                        smooth_head,
                                                        smooth_tail,
                                                        shape,
                                                        bn,
                                                        classifier,
                                                        scaling,
                                                    },
                                                ));
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        methods
    }
}

#[cfg(test)]
mod tests;
