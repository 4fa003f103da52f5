//! `ltsweep train SPEC.toml --plan P --seed S --out DIR [--resume]`: one job on this machine,
//! with a progress bar, `DIR/result.json` and a checkpoint in DIR.

use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use ltsweep_data::Prepared;
use ltsweep_domain::{BaseKind, EpochMetrics, JobSpec, LossPlan, SweepSpec};
use ltsweep_worker::train::{self, Observer, Outcome, TrainError, Trainer};

use crate::cli::TrainArgs;
use crate::exit::BadInput;

const CHECKPOINT: &str = "checkpoint.ltsw";

pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    let (_, spec) = super::load_spec(&args.spec)?;
    let job = pick_job(&spec, args)?;
    let device = resolve_device(&args.device)?;
    if let Some(threads) = args.threads {
        tch::set_num_threads(threads);
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let data =
        ltsweep_data::prepare(&job.dataset, &args.data_root).map_err(super::data::bad_data)?;
    let mut trainer = match data {
        Prepared::Memory(data) => Trainer::new(&job, &data, device),
        Prepared::Files(files) => {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            Trainer::streaming(&job, files, device, args.loader_threads.unwrap_or(cores))
        }
    };
    if !args.resume {
        // A resumed job's checkpoint replaces every variable: the init weights need no reading.
        trainer
            .load_init(&args.data_root)
            .map_err(|e| BadInput(e.to_string()))?;
    }
    let checkpoint = args.out.join(CHECKPOINT);
    if args.resume {
        let bytes = std::fs::read(&checkpoint).map_err(|e| {
            BadInput(format!(
                "--resume: cannot read {}: {e}",
                checkpoint.display()
            ))
        })?;
        trainer
            .resume(&bytes)
            .with_context(|| format!("cannot resume from {}", checkpoint.display()))?;
    }
    let bar = ProgressBar::new(u64::from(job.train.epochs));
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] epoch {pos}/{len} {msg} ({elapsed})")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("{} seed {}", job.plan, job.seed));
    bar.set_position(u64::from(trainer.epoch()));
    let mut observer = BarObserver {
        bar: bar.clone(),
        checkpoint,
        last_accuracy: None,
        base: job.losses.base.kind(),
    };
    let outcome = trainer.run(&mut observer, args.stop_after)?;
    bar.finish();
    match outcome {
        Outcome::Finished(result) => {
            let path = args.out.join("result.json");
            write_atomically(&path, &serde_json::to_vec_pretty(&result)?)?;
            let pct = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{:.2}", 100.0 * v));
            println!(
                "top-1 %: all {} head {} tail {} (many {} medium {} few {}) in {:.1} s on {}; {}",
                pct(result.accuracy.acc_all),
                pct(result.accuracy.acc_head),
                pct(result.accuracy.acc_tail),
                pct(result.accuracy.acc_many),
                pct(result.accuracy.acc_medium),
                pct(result.accuracy.acc_few),
                result.train_seconds,
                result.device,
                path.display()
            );
            Ok(())
        }
        Outcome::Stopped { epoch } | Outcome::Preempted { epoch } => {
            println!(
                "stopped after epoch {epoch}; continue with --resume ({})",
                args.out.join(CHECKPOINT).display()
            );
            Ok(())
        }
        Outcome::Cancelled { epoch } => anyhow::bail!("cancelled after epoch {epoch}"),
        Outcome::Diverged { epoch, reason } => {
            anyhow::bail!("the run diverged in epoch {epoch}: {reason}")
        }
    }
}

/// The stage-1 job of the spec's grid with this plan, seed and axis values.
fn pick_job(spec: &SweepSpec, args: &TrainArgs) -> anyhow::Result<JobSpec> {
    let plan: LossPlan = args
        .plan
        .parse()
        .map_err(|e| BadInput(format!("--plan: {e}")))?;
    if !spec.plans().contains(&plan) {
        let plans: Vec<String> = spec.plans().iter().map(ToString::to_string).collect();
        return Err(BadInput(format!(
            "--plan {plan} is not in the spec's grid ({})",
            plans.join("; ")
        ))
        .into());
    }
    if !spec.seeds().contains(&args.seed) {
        return Err(BadInput(format!(
            "--seed {} is not among the spec's seeds {:?}",
            args.seed,
            spec.seeds()
        ))
        .into());
    }
    let base = pick("--base", args.base.as_deref(), spec.bases())?;
    let sampler = pick("--sampler", args.sampler.as_deref(), spec.samplers())?;
    let policy = pick(
        "--policy",
        args.policy.as_deref(),
        spec.augment.policy.values(),
    )?;
    let mix = pick("--mix", args.mix.as_deref(), spec.augment.mix.values())?;
    let mut chosen = Vec::new();
    for text in &args.axes {
        let (name, value) = text
            .split_once('=')
            .ok_or_else(|| BadInput(format!("--axis {text}: expected NAME=VALUE")))?;
        let value: f64 = value
            .parse()
            .map_err(|_| BadInput(format!("--axis {text}: {value} is not a number")))?;
        chosen.push((name.to_owned(), value));
    }
    for (name, values) in spec.axes() {
        if !chosen.iter().any(|(n, _)| n == name) {
            let values: Vec<String> = values.iter().map(f64::to_string).collect();
            return Err(BadInput(format!(
                "the spec gives {name} as a list ({}); choose one with --axis {name}=VALUE",
                values.join(", ")
            ))
            .into());
        }
    }
    spec.jobs()
        .into_iter()
        .find(|job| {
            // A stage-2 job needs its stage-1 job's model: this command trains stage-1 jobs.
            job.stage2.is_none()
                && job.plan == plan
                && job.seed == args.seed
                && job.losses.base.kind() == base
                && job.train.sampler == sampler
                && job.train.augmentation.policy.kind() == policy
                && job.train.augmentation.mix.kind() == mix
                && job
                    .axes
                    .iter()
                    .all(|a| chosen.contains(&(a.name.clone(), a.value)))
        })
        .ok_or_else(|| BadInput("no job of the spec has these --axis values".to_owned()).into())
}

/// The value of a name axis (base loss, sampler, policy, mixing) a flag chooses: the spec's only one when the
/// flag is absent, or one of the spec's.
fn pick<T>(flag: &str, given: Option<&str>, values: &[T]) -> anyhow::Result<T>
where
    T: Copy + PartialEq + std::fmt::Display + std::str::FromStr<Err = String>,
{
    let listed = || {
        values
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match given {
        None if values.len() == 1 => Ok(values[0]),
        None => Err(BadInput(format!(
            "the spec lists several ({}); choose one with {flag}",
            listed()
        ))
        .into()),
        Some(text) => {
            let value: T = text.parse().map_err(|e| BadInput(format!("{flag}: {e}")))?;
            if values.contains(&value) {
                Ok(value)
            } else {
                Err(BadInput(format!(
                    "{flag} {value} is not in the spec's grid ({})",
                    listed()
                ))
                .into())
            }
        }
    }
}

/// `auto` is the first GPU when libtorch sees one.
pub fn resolve_device(text: &str) -> anyhow::Result<tch::Device> {
    if text == "auto" {
        return Ok(tch::Device::cuda_if_available());
    }
    let device = train::parse_device(text).map_err(BadInput)?;
    if let tch::Device::Cuda(i) = device {
        let gpus = tch::Cuda::device_count();
        if i as i64 >= gpus {
            return Err(BadInput(format!("--device {text}: libtorch sees {gpus} GPU(s)")).into());
        }
    }
    Ok(device)
}

struct BarObserver {
    bar: ProgressBar,
    checkpoint: PathBuf,
    last_accuracy: Option<f64>,
    /// The base loss, named in the progress line.
    base: BaseKind,
}

impl Observer for BarObserver {
    fn epoch(&mut self, m: &EpochMetrics) {
        if let Some(acc) = m.accuracy.as_ref().and_then(|a| a.acc_all) {
            self.last_accuracy = Some(acc);
        }
        let acc = self
            .last_accuracy
            .map_or(String::new(), |a| format!(" test {:.1}%", 100.0 * a));
        self.bar.set_message(format!(
            "{} {:.3} comp {:.3} pc {:.3}{acc} {:.0} img/s",
            self.base, m.loss_base, m.loss_comp, m.loss_pc, m.images_per_second
        ));
        self.bar.set_position(u64::from(m.epoch));
    }

    fn checkpoint(&mut self, _epoch: u32, bytes: Vec<u8>) -> Result<(), TrainError> {
        write_atomically(&self.checkpoint, &bytes)
            .map_err(|e| TrainError::CheckpointNotKept(e.into()))
    }
}

/// Writes through a temporary file and a rename, so a kill never leaves half a file.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
