//! The command line, as clap sees it. Raw flags are turned into validated settings by each
//! command before use.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "ltsweep",
    version,
    about = "Sweeps of long-tailed recognition training runs across GPU machines"
)]
pub struct Cli {
    /// More log output on stderr (-v: info, -vv: debug); RUST_LOG overrides it.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check a sweep spec and print its grid of jobs.
    Validate(ValidateArgs),
    /// Report the libtorch version, CUDA and GPUs, and the thread count.
    Doctor,
    /// Train one job of a spec on this machine.
    Train(TrainArgs),
    /// Inspect data sets, or write synthetic ones in an official format.
    #[command(subcommand)]
    Data(DataCommand),
}

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// The sweep spec (TOML).
    pub spec: PathBuf,
    /// The loss plan, e.g. `comp=tail,pc=head` (cross entropy is always on).
    #[arg(long, default_value = "comp=none,pc=none")]
    pub plan: String,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A value for each setting the spec gives as a list: `--axis pc_weight=0.1`.
    #[arg(long = "axis", value_name = "NAME=VALUE")]
    pub axes: Vec<String>,
    /// `auto` (the first GPU if there is one), `cpu`, `cuda` or `cuda:N`.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Where result.json and the checkpoint go.
    #[arg(long)]
    pub out: PathBuf,
    /// Continue from the checkpoint in --out.
    #[arg(long)]
    pub resume: bool,
    /// Stop after this many epochs (with a checkpoint), e.g. to fit a time-limited allocation.
    #[arg(long, value_name = "EPOCHS")]
    pub stop_after: Option<u32>,
    /// The folder the spec's data paths are relative to.
    #[arg(long, env = "LTSWEEP_DATA_ROOT", default_value = ".")]
    pub data_root: PathBuf,
    /// libtorch threads (default: libtorch's choice, one per core).
    #[arg(long)]
    pub threads: Option<i32>,
}

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// The long-tailed training set a spec would train on: counts and class groups.
    Summary(DataSummaryArgs),
    /// Write a synthetic data set in the official CIFAR binary format.
    Synth(DataSynthArgs),
}

#[derive(clap::Args, Debug)]
pub struct DataSummaryArgs {
    /// cifar10, cifar100, fashion-mnist, mnist or synthetic.
    #[arg(long)]
    pub kind: String,
    /// The data set's folder (not for synthetic).
    #[arg(long)]
    pub path: Option<PathBuf>,
    #[arg(long, default_value_t = 100.0)]
    pub imbalance: f64,
    /// Head classes have at least this many training images.
    #[arg(long, conflicts_with = "head_fraction")]
    pub head_min_count: Option<u32>,
    /// Head classes are this most frequent fraction of classes.
    #[arg(long)]
    pub head_fraction: Option<f64>,
    /// Use only the first N classes.
    #[arg(long)]
    pub classes: Option<u32>,
    #[arg(long, default_value_t = 0)]
    pub sampling_seed: u64,
    /// Print JSON: {"train_total", "test_total", "class_counts", "head_classes", ...}.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum CifarFormat {
    Cifar10,
    Cifar100,
}

#[derive(clap::Args, Debug)]
pub struct DataSynthArgs {
    #[arg(long, value_enum)]
    pub format: CifarFormat,
    #[arg(long)]
    pub classes: u32,
    #[arg(long)]
    pub train_per_class: u32,
    #[arg(long)]
    pub test_per_class: u32,
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct ValidateArgs {
    /// The sweep spec (TOML).
    pub spec: PathBuf,
    /// Print the grid as JSON: {"sweep", "jobs": [{"id", "plan", "seed", ...}]}.
    #[arg(long)]
    pub json: bool,
}
