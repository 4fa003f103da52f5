//! The sweep spec: TOML text → a validated [`SweepSpec`].
//!
//! Every error names the key it is about and the key's line in the file, whether it comes from
//! the TOML syntax, from a type or an unknown key (serde), or from a check of values against each
//! other (`lr_decay_epochs` past `epochs`).
//!
//! ```
//! let spec = ltsweep_domain::SweepSpec::parse(r#"
//!     name = "demo"
//!     seeds = [0, 1]
//!     [dataset]
//!     kind = "synthetic"
//!     [losses]
//!     pc_weight = [0.1, 1.0]
//! "#).unwrap();
//! assert_eq!(spec.jobs().len(), 9 * 2 * 2);
//! ```

mod augment;
mod axis;
mod defaults;
mod error;
mod limits;
mod mislas;
mod sample;
mod search;
#[cfg(test)]
mod search_tests;
mod sections;
#[cfg(test)]
mod tests;
mod validate;
mod weight_balancing;

use serde::Deserialize;
use toml::de::DeTable;

pub use augment::{AugmentSection, MAGNITUDE_BINS, MAX_NUM_OPS};
pub use axis::{Axis, Distribution, MAX_CHOICES};
pub use error::SpecError;
pub use limits::{
    DEFAULT_CROP, MAX_ATTEMPTS, MAX_CLASSES, MAX_IMAGE_SIZE, MAX_IMAGES_PER_CLASS, MAX_INIT_BYTES,
    MAX_JOBS, MAX_NAME_CHARS, MAX_PATH_BYTES, MAX_SYNTHETIC_BYTES, MIN_CROP, leaves_its_folder,
};
pub use mislas::MislasSetting;
pub(crate) use sample::halton;
pub use sample::{MAX_SAMPLED_SETTINGS, SampledAxis};
pub use search::{
    MAX_REDUCTION_FACTOR, MAX_SAMPLES, SearchMethod, SearchMetric, SearchSection,
    hyperband_brackets,
};
pub use sections::{
    DatasetSection, EvalSection, GridPreset, LossesSection, ModelSection, NcmSetting,
    Stage2Section, SubsetSeed, TauNormSetting, TauSetting, TrainSection, TrainedStage2,
};
pub use weight_balancing::WeightBalancingSetting;

use crate::baseline::{BaseKind, BaseLoss, Sampler};
use crate::job::LossPlan;
use crate::stage2::{Stage2Kind, Stage2Method};
use error::{key_at, line_of, span_of, syntax_error};
use validate::Invalid;

/// A validated sweep spec. [`SweepSpec::jobs`] expands it into its grid.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    pub name: String,
    #[serde(default)]
    pub seeds: Option<Vec<u64>>,
    /// Attempts per job before a retryable failure becomes final.
    #[serde(default = "defaults::max_attempts")]
    pub max_attempts: u32,
    pub dataset: DatasetSection,
    #[serde(default)]
    pub model: ModelSection,
    #[serde(default)]
    pub train: TrainSection,
    #[serde(default)]
    pub losses: LossesSection,
    #[serde(default)]
    pub eval: EvalSection,
    #[serde(default)]
    pub stage2: Stage2Section,
    #[serde(default)]
    pub search: SearchSection,
    /// An image policy, Cutout and batch mixing (in-memory data).
    #[serde(default)]
    pub augment: AugmentSection,
    /// Keep every stage-1 job's final model until the sweep is deleted (`ltsweep model` writes
    /// one out), not only while a stage-2 job still needs it.
    #[serde(default)]
    pub keep_models: bool,
}

impl SweepSpec {
    /// Parses and validates a spec; every error names its key and line.
    pub fn parse(text: &str) -> Result<SweepSpec, SpecError> {
        let document = DeTable::parse(text).map_err(|e| syntax_error(text, &e))?;
        let spec: SweepSpec = toml::from_str(text).map_err(|e| {
            // An empty span is the document as a whole (a missing top-level key).
            let span = e.span().filter(|s| !s.is_empty());
            SpecError::Key {
                key: span
                    .as_ref()
                    .and_then(|s| key_at(document.get_ref(), s.start, ""))
                    .unwrap_or_default(),
                line: span.map(|s| line_of(text, s.start)),
                message: e.message().replace("field", "key"),
            }
        })?;
        spec.validate().map_err(|Invalid { key, message }| {
            let line = span_of(document.get_ref(), &key).map(|offset| line_of(text, offset));
            SpecError::Key { key, line, message }
        })?;
        Ok(spec)
    }

    /// The `keep_models` of a spec's text, read without validating the rest: a spec stored by
    /// an earlier version may hold what this one refuses, and its sweep must still load.
    pub fn keeps_models(text: &str) -> bool {
        toml::from_str::<toml::Table>(text)
            .ok()
            .and_then(|table| table.get("keep_models")?.as_bool())
            .unwrap_or(false)
    }

    /// Whether a spec's text asks for a search other than a grid, read without validating the
    /// rest: a store loading many sweeps parses in full only the searched ones.
    pub fn searches(text: &str) -> bool {
        toml::from_str::<toml::Table>(text)
            .ok()
            .and_then(|table| Some(table.get("search")?.get("method")?.as_str()? != "grid"))
            .unwrap_or(false)
    }

    /// The loss plans of the grid, in order.
    pub fn plans(&self) -> Vec<LossPlan> {
        match (&self.losses.plans, self.losses.grid) {
            (Some(plans), _) => plans.clone(),
            (None, Some(GridPreset::Full)) => LossPlan::full(),
            (None, _) => LossPlan::PAPER.to_vec(),
        }
    }

    pub fn seeds(&self) -> &[u64] {
        self.seeds.as_deref().unwrap_or_default()
    }

    /// The base losses of the grid, in the spec's order.
    pub fn bases(&self) -> &[BaseKind] {
        self.losses.base.values()
    }

    /// The samplers of the grid, in the spec's order.
    pub fn samplers(&self) -> &[Sampler] {
        self.train.sampler.values()
    }

    /// The stage-2 methods each stage-1 job is followed by, in the spec's order, each with every
    /// value of its own settings (`none` is the stage-1 job itself and is not among them).
    pub fn stage2_methods(&self) -> Vec<Stage2Method> {
        let st = &self.stage2;
        let mut methods = Vec::new();
        for &kind in st.method.values() {
            match kind {
                Stage2Kind::None => {}
                Stage2Kind::Crt | Stage2Kind::Lws => {
                    let trained = match kind {
                        Stage2Kind::Crt => st.crt.clone(),
                        _ => st.lws.clone(),
                    }
                    .unwrap_or_default();
                    for &epochs in trained.epochs.values() {
                        for &lr in trained.lr.values() {
                            for &bn in trained.bn.values() {
                                for &sampler in trained.sampler.values() {
                                    methods.push(match kind {
                                        Stage2Kind::Crt => Stage2Method::Crt {
                                            epochs,
                                            lr,
                                            bn,
                                            sampler,
                                        },
                                        _ => Stage2Method::Lws {
                                            epochs,
                                            lr,
                                            bn,
                                            sampler,
                                        },
                                    });
                                }
                            }
                        }
                    }
                }
                Stage2Kind::TauNorm => {
                    let settings = st.tau_norm.clone().unwrap_or_default();
                    for &tau in settings.tau.values() {
                        for &bias in settings.bias.values() {
                            methods.push(Stage2Method::TauNorm { tau, bias });
                        }
                    }
                }
                Stage2Kind::Ncm => {
                    let settings = st.ncm.clone().unwrap_or_default();
                    methods.extend(
                        settings
                            .features
                            .values()
                            .iter()
                            .map(|&features| Stage2Method::Ncm { features }),
                    );
                }
                Stage2Kind::PosthocLa => {
                    let taus = st.posthoc_la.clone().unwrap_or_default();
                    methods.extend(
                        taus.tau
                            .values()
                            .iter()
                            .map(|&tau| Stage2Method::PosthocLa { tau }),
                    );
                }
                Stage2Kind::WeightBalancing => {
                    methods.extend(st.weight_balancing.clone().unwrap_or_default().methods())
                }
                Stage2Kind::Mislas => {
                    methods.extend(st.mislas.clone().unwrap_or_default().methods())
                }
            }
        }
        methods
    }

    /// A base loss with the spec's settings, for a job of `epochs` epochs.
    pub fn base_loss(&self, kind: BaseKind, epochs: u32) -> BaseLoss {
        let l = &self.losses;
        match kind {
            BaseKind::Ce => BaseLoss::Ce,
            BaseKind::Focal => BaseLoss::Focal {
                gamma: l.focal_gamma.first(),
            },
            BaseKind::Cb => BaseLoss::Cb {
                beta: l.cb_beta.first(),
            },
            BaseKind::La => BaseLoss::La {
                tau: l.la_tau.first(),
            },
            BaseKind::LdamDrw => BaseLoss::LdamDrw {
                max_margin: l.ldam_max_margin.first(),
                s: l.ldam_s.first(),
                drw_epoch: l.drw_epoch.as_ref().map_or(epochs * 4 / 5, Axis::first),
            },
        }
    }

    /// How many jobs the grid holds, without expanding it (saturating).
    pub fn job_count(&self) -> u128 {
        self.axes()
            .iter()
            .map(|(_, values)| values.len() as u128)
            .chain([
                self.sample_count() as u128,
                self.plans().len() as u128,
                self.seeds().len() as u128,
                self.bases().len() as u128,
                self.samplers().len() as u128,
                1 + self.stage2_methods().len() as u128,
            ])
            .fold(1u128, u128::saturating_mul)
    }
}
