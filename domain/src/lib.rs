//! What a sweep is, with nothing of how it travels: the TOML sweep spec, validated
//! ([`SweepSpec`]), its grid of [`JobSpec`]s, what a finished job produced ([`JobResult`]),
//! a sweep's and a worker's status as a client reads them, and the network and precision a
//! job trains with ([`arch`]). The wire protocol and its conversions are `ltsweep-proto`'s.
//!
//! ```
//! use ltsweep_domain::{LossPlan, SweepSpec};
//!
//! let spec = SweepSpec::parse(
//!     "name = \"table1\"\nseeds = [0, 1, 2]\n[dataset]\nkind = \"cifar100\"\npath = \"cifar-100-binary\"",
//! )?;
//! let jobs = spec.jobs();
//! assert_eq!(jobs.len(), 27);
//! assert_eq!(jobs[26].plan.to_string(), "comp=tail,pc=head");
//! assert_eq!(jobs[0].plan, LossPlan::CE_ONLY);
//! # Ok::<(), ltsweep_domain::SpecError>(())
//! ```

mod string_enum;

pub mod arch;
pub mod augment;
pub mod baseline;
mod grid;
pub mod job;
pub mod result;
pub mod sha256;
pub mod spec;
pub mod stage2;
pub mod status;
pub mod time;
pub mod workers;

pub use arch::{Arch, Precision};
pub use augment::{Augmentation, Mix, MixKind, Policy, PolicyKind};
pub use baseline::{BaseKind, BaseLoss, Sampler};
pub use job::{
    AxisValue, ClassScope, CompMode, DatasetConfig, DatasetKind, HeadSplit, JobId, JobSpec,
    JobState, LeaseId, ListConfig, ListPreset, LossConfig, LossPlan, LrSchedule, ModelConfig,
    Normalization, PRESETS, Stage2, SweepId, SyntheticConfig, TrainConfig, WorkerId,
};
pub use result::{
    ChosenEpoch, ClassGroup, ClassMetrics, EpochMetrics, GroupAccuracy, JobResult, PosthocAccuracy,
    Shot,
};
pub use sha256::{NotSha256, Sha256, Sha256Hasher};
pub use spec::{SearchMethod, SearchMetric, SpecError, SubsetSeed, SweepSpec, hyperband_brackets};
pub use stage2::{
    BnMode, MaxNormEvery, MislasClassifier, MislasSettings, NcmFeatures, SmoothShape, Stage2Kind,
    Stage2Method, Stage2Sampler, TauBias, WeightBalancingSettings, WeightScaling,
};
pub use status::{
    ConfigurationStatus, JobSearchStatus, JobStatus, RungStanding, SweepCounts, SweepEvent,
    SweepStatus, SweepSummary,
};
pub use workers::{SlurmPlacement, WORKER_COLUMNS, WorkerInfo};
