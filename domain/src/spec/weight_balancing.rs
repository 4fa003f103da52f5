//! `[stage2.weight_balancing]`: the settings of weight balancing (Alshammari et al., CVPR 2022),
//! each defaulting to what their code does on CIFAR-100-LT (ShadeAlsha/LTR-weight-balancing,
//! `demo2_second-stage-training.py`); a list is an axis of weight balancing's jobs alone.

use serde::Deserialize;

use super::Axis;
use super::defaults;
use crate::baseline::Choice;
use crate::stage2::{BnMode, MaxNormEvery, Stage2Method, WeightBalancingSettings};

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightBalancingSetting {
    /// `total_epoch_num = 10`.
    #[serde(default = "epochs")]
    pub epochs: Axis<u32>,
    /// `base_lr = 0.01`, down to 0 on `CosineAnnealingLR`.
    #[serde(default = "lr")]
    pub lr: Axis<f64>,
    /// The classifier's own weight decay, `weight_decay = 0.1` (the job's is stage 1's).
    #[serde(default = "weight_decay")]
    pub weight_decay: Axis<f64>,
    /// The class-balanced loss's β, `CB_loss(..., "softmax", 0.9999, ...)`.
    #[serde(default = "cb_beta")]
    pub cb_beta: Axis<f64>,
    /// MaxNorm's threshold `thresh = 0.1`: the radius is the smallest stage-1 row norm plus
    /// this fraction of the spread to the largest (`MaxNorm_via_PGD.setPerLayerThresh`).
    #[serde(default = "max_norm")]
    pub max_norm: Axis<f64>,
    /// The frozen backbone's BatchNorm: `train` (their `model.train()`) or `frozen`.
    #[serde(default = "defaults::first")]
    pub bn: Choice<BnMode>,
    /// `epoch` (their `train_model` projects after each epoch's training) or `step`.
    #[serde(default = "defaults::first")]
    pub max_norm_every: Choice<MaxNormEvery>,
}

fn epochs() -> Axis<u32> {
    Axis::One(10)
}
fn lr() -> Axis<f64> {
    Axis::One(0.01)
}
fn weight_decay() -> Axis<f64> {
    Axis::One(0.1)
}
fn cb_beta() -> Axis<f64> {
    Axis::One(0.9999)
}
fn max_norm() -> Axis<f64> {
    Axis::One(0.1)
}

impl Default for WeightBalancingSetting {
    fn default() -> Self {
        toml::from_str("").expect("every weight_balancing setting has a default")
    }
}

impl WeightBalancingSetting {
    /// One method per combination of the settings' values, in the order of the keys.
    pub(super) fn methods(&self) -> Vec<Stage2Method> {
        let mut methods = Vec::new();
        for &epochs in self.epochs.values() {
            for &lr in self.lr.values() {
                for &weight_decay in self.weight_decay.values() {
                    for &cb_beta in self.cb_beta.values() {
                        for &max_norm in self.max_norm.values() {
                            for &bn in self.bn.values() {
                                for &max_norm_every in self.max_norm_every.values() {
                                    methods.push(Stage2Method::WeightBalancing(
                                        WeightBalancingSettings {
                                            epochs,
                                            lr,
                                            weight_decay,
                                            cb_beta,
                                            max_norm,
                                            bn,
                                            max_norm_every,
                                        },
                                    ));
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
mod tests {
    use super::*;
    use crate::spec::SweepSpec;

    fn parse(extra: &str) -> Result<SweepSpec, crate::spec::SpecError> {
        SweepSpec::parse(&format!(
            "name = \"t\"\nseeds = [0]\n[dataset]\nkind = \"synthetic\"\n\
             [losses]\nplans = [{{}}]\n{extra}"
        ))
    }

    fn labels(spec: &SweepSpec) -> Vec<String> {
        spec.jobs()
            .iter()
            .filter_map(|j| j.stage2.as_ref().map(|s| s.method.to_string()))
            .collect()
    }

    #[test]
    fn each_setting_is_an_axis_of_weight_balancings_jobs_alone() {
        let spec = parse(
            "[stage2]\nmethod = [\"none\", \"weight_balancing\", \"ncm\"]\n\
             [stage2.weight_balancing]\nweight_decay = [0.1, 0.01]\nmax_norm_every = [\"epoch\", \"step\"]",
        )
        .unwrap();
        assert_eq!(
            labels(&spec),
            [
                "weight_balancing(epochs=10,lr=0.01,weight_decay=0.1,cb_beta=0.9999,max_norm=0.1)",
                "weight_balancing(epochs=10,lr=0.01,weight_decay=0.1,cb_beta=0.9999,max_norm=0.1,max_norm_every=step)",
                "weight_balancing(epochs=10,lr=0.01,weight_decay=0.01,cb_beta=0.9999,max_norm=0.1)",
                "weight_balancing(epochs=10,lr=0.01,weight_decay=0.01,cb_beta=0.9999,max_norm=0.1,max_norm_every=step)",
                "ncm",
            ]
        );
        let jobs = spec.jobs();
        assert!(
            jobs[1..]
                .iter()
                .all(|j| j.stage2.as_ref().unwrap().parent == jobs[0].id)
        );
        // The defaults written out are the spec without them, ids and all.
        let written = parse(
            "[stage2]\nmethod = [\"none\", \"weight_balancing\"]\n\
             [stage2.weight_balancing]\nepochs = 10\nlr = 0.01\nweight_decay = 0.1\n\
             cb_beta = 0.9999\nmax_norm = 0.1\nbn = \"train\"\nmax_norm_every = \"epoch\"",
        )
        .unwrap();
        let plain = parse("[stage2]\nmethod = [\"none\", \"weight_balancing\"]").unwrap();
        assert_eq!(written.jobs(), plain.jobs());
        assert_eq!(plain.jobs().len(), 2);
    }

    #[test]
    fn the_example_is_their_cifar100_lt_recipe() {
        let text = include_str!("../../../examples/weight-balancing-cifar100-lt.toml");
        let spec = SweepSpec::parse(text).unwrap();
        let jobs = spec.jobs();
        // Per seed: the stage-1 job and its weight-balancing job.
        assert_eq!(jobs.len(), 3 * 2);
        for pair in jobs.chunks(2) {
            let (stage1, stage2) = (&pair[0], &pair[1]);
            assert!(stage1.stage2.is_none());
            let t = &stage1.train;
            assert_eq!((t.epochs, t.batch_size), (320, 64));
            assert_eq!((t.lr, t.momentum, t.weight_decay), (0.01, 0.9, 5e-3));
            let wb = stage2.stage2.as_ref().unwrap();
            assert_eq!(wb.parent, stage1.id);
            assert_eq!(wb.method, Stage2Method::weight_balancing());
        }
    }

    #[test]
    fn a_bad_setting_is_refused_by_name() {
        let wb = "[stage2]\nmethod = [\"weight_balancing\"]\n[stage2.weight_balancing]\n";
        for (setting, message) in [
            (
                "epochs = 0",
                "stage2.weight_balancing.epochs: must be at least 1",
            ),
            (
                "lr = 0",
                "stage2.weight_balancing.lr: 0 is not a positive number",
            ),
            (
                "weight_decay = -0.1",
                "stage2.weight_balancing.weight_decay: -0.1 is not",
            ),
            (
                "cb_beta = 1",
                "stage2.weight_balancing.cb_beta: 1 is outside [0, 1)",
            ),
            (
                "max_norm = 1.5",
                "stage2.weight_balancing.max_norm: 1.5 is outside [0, 1]",
            ),
            (
                "max_norm = [0.1, 0.1]",
                "stage2.weight_balancing.max_norm: 0.1 is listed twice",
            ),
            (
                "max_norm_every = \"batch\"",
                "stage2.weight_balancing.max_norm_every",
            ),
            ("bn = \"eval\"", "stage2.weight_balancing.bn"),
            ("thresh = 0.1", "thresh"),
        ] {
            let err = parse(&format!("{wb}{setting}")).unwrap_err().to_string();
            assert!(err.contains(message), "{setting}: {err}");
        }
        let err = parse("[stage2]\nmethod = [\"crt\"]\n[stage2.weight_balancing]\nlr = 0.1")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("stage2.weight_balancing: settings of `weight_balancing`, which stage2.method does not list"),
            "{err}"
        );
        // A cosine classifier has no norms for MaxNorm to balance.
        assert!(parse("[stage2]\nmethod = [\"weight_balancing\"]").is_ok());
        let err = SweepSpec::parse(
            "name = \"t\"\nseeds = [0]\n[dataset]\nkind = \"synthetic\"\n\
             [losses]\nplans = [{}]\nbase = [\"ce\", \"ldam_drw\"]\n\
             [stage2]\nmethod = [\"weight_balancing\"]",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(
                "stage2.method: `weight_balancing` re-trains a linear classifier, and `ldam_drw`"
            ),
            "{err}"
        );
    }

    #[test]
    fn the_defaults_are_their_cifar100_lt_settings() {
        assert_eq!(
            WeightBalancingSetting::default().methods(),
            vec![Stage2Method::weight_balancing()]
        );
    }
}
