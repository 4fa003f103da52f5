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
#[cfg_attr(
    not(feature = "train"),
    command(after_help = crate::commands::untrained::NOTE)
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
    #[cfg(feature = "train")]
    Doctor,
    /// Train one job of a spec on this machine.
    #[cfg(feature = "train")]
    Train(TrainArgs),
    /// Inspect data sets, or write synthetic ones in an official format.
    #[command(subcommand)]
    Data(DataCommand),
    /// Benchmarks: print our figures (the scripts in bench/ run the peers beside them).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Submit a sweep to a coordinator (the same spec twice is the same sweep).
    Submit(SubmitArgs),
    /// A sweep's jobs and their states (the latest sweep when none is named).
    Status(StatusArgs),
    /// Progress bars of a sweep until it ends.
    Watch(SweepArgs),
    /// Cancel a sweep's pending and running jobs.
    Cancel(SweepArgs),
    /// Put a sweep's failed and cancelled jobs back in the queue.
    RetryFailed(SweepArgs),
    /// The workers the coordinator knows.
    Workers(RemoteArgs),
    /// The sweeps the coordinator knows.
    Sweeps(RemoteArgs),
    /// Table 1, recall tables and figures of a sweep (or of exported results).
    Report(ReportArgs),
    /// A sweep's results as Parquet files, one a frame: jobs.parquet (one row a job),
    /// per_class.parquet and epochs.parquet (`report --results` reads the folder back).
    Export(ExportArgs),
    /// A whole study on this machine: a coordinator and workers in this process, then the
    /// report. Rerun the same command to resume an interrupted study.
    #[cfg(feature = "train")]
    Run(RunArgs),
    /// Run a coordinator: the gRPC server workers and users call.
    Coordinator(CoordinatorArgs),
    /// Run a worker: pull jobs from a coordinator and train them on this machine's devices.
    #[cfg(feature = "train")]
    Worker(WorkerArgs),
    /// Delete a sweep whose jobs all ended (or a cancelled one): its jobs, results,
    /// checkpoints and models. `ltsweep export` it first to keep its results.
    Delete(SweepArgs),
    /// Write a job's kept model (its final weights) as a safetensors file.
    Model(ModelArgs),
    /// Start workers through a cluster's scheduler: a Slurm job array, or Kubernetes manifests.
    #[command(subcommand)]
    Launch(crate::commands::launch::LaunchCommand),
    /// Any other command: in a build without the trainer, the training commands are refused
    /// with a note on how to get a build that trains.
    #[cfg(not(feature = "train"))]
    #[command(external_subcommand)]
    Untrained(Vec<String>),
}

/// `90s`, `500ms`, `2m`, `1h`, or a number of seconds.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 30s or 500ms"))?;
    let seconds = match unit {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return Err(format!("`{text}`: the unit is ms, s, m or h")),
    };
    std::time::Duration::try_from_secs_f64(seconds)
        .map_err(|_| format!("`{text}` is too long a duration"))
}

/// `1048576`, `512KiB`, `64MiB`, `1GiB` (or K, M, G: powers of 1,024 too).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size like 1GiB, 64MiB or 4096"))?;
    let shift = match unit.trim() {
        "" | "B" => 0,
        "K" | "KiB" => 10,
        "M" | "MiB" => 20,
        "G" | "GiB" => 30,
        "T" | "TiB" => 40,
        _ => return Err(format!("`{text}`: the unit is KiB, MiB, GiB or TiB")),
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("`{text}` is too large"))
}

#[derive(clap::Args, Debug)]
pub struct CoordinatorArgs {
    #[arg(long, env = "LTSWEEP_LISTEN", default_value = "127.0.0.1:7070")]
    pub listen: String,
    /// Holds the SQLite database and the checkpoints; a restart on it resumes everything.
    #[arg(long, env = "LTSWEEP_STATE_DIR")]
    pub state_dir: PathBuf,
    /// A file holding one token for every role (else LTSWEEP_TOKEN): a laptop's or a single
    /// user's set-up. On a shared machine give each role its own token instead. Without any
    /// token, anyone who reaches the port can submit.
    #[arg(long, env = "LTSWEEP_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// The workers' token (lease jobs, report on them, checkpoints: nothing else); else the
    /// systemd credential `worker-token`.
    #[arg(long, env = "LTSWEEP_WORKER_TOKEN_FILE")]
    pub worker_token_file: Option<PathBuf>,
    /// The users' token (submit, cancel, retry, delete, and every read); else the systemd
    /// credential `user-token`.
    #[arg(long, env = "LTSWEEP_USER_TOKEN_FILE")]
    pub user_token_file: Option<PathBuf>,
    /// The viewers' token (status, sweeps, workers, results, watch, the web page: read only);
    /// else the systemd credential `viewer-token`.
    #[arg(long, env = "LTSWEEP_VIEWER_TOKEN_FILE")]
    pub viewer_token_file: Option<PathBuf>,
    /// A lease without progress for this long expires and its job goes back to the queue.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub lease_ttl: std::time::Duration,
    /// How often workers send progress (told to them at registration).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub heartbeat: std::time::Duration,
    /// How long a worker's poll for work waits before answering none.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub poll_timeout: std::time::Duration,
    /// A worker unseen this long, holding no lease, is forgotten (it registers again if it
    /// comes back); longer than the lease ttl.
    #[arg(long, env = "LTSWEEP_WORKER_EXPIRY", default_value = "1h", value_parser = parse_duration)]
    pub worker_expiry: std::time::Duration,
    /// TLS certificate chain (PEM); with --tls-key, plaintext clients are refused.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// `full` syncs every commit to disk (power-cut safe); `normal` is safe against a killed
    /// process and faster.
    #[arg(long, value_enum, default_value = "normal")]
    pub durability: DurabilityArg,
    /// Also serve the web page (sweeps, jobs, workers, live tables and figures) on this
    /// address, with the same tokens and TLS settings as gRPC.
    #[arg(long, env = "LTSWEEP_HTTP")]
    pub http: Option<String>,
    /// A name the web page answers to besides its addresses and localhost (a DNS name, a
    /// proxy's); repeat it, or separate names with commas. Any other `Host` is refused.
    #[arg(long, env = "LTSWEEP_HTTP_HOST", value_delimiter = ',')]
    pub http_host: Vec<String>,
    /// Serve without a token on an address other than loopback: anyone who reaches the port
    /// can then submit and take jobs.
    #[arg(long)]
    pub insecure: bool,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// What callers may make the coordinator hold; a call past a limit is refused naming it.
#[derive(clap::Args, Debug)]
pub struct LimitArgs {
    /// The largest sweep spec accepted.
    #[arg(long, default_value = "1MiB", value_parser = parse_bytes)]
    pub max_spec_bytes: u64,
    /// The most jobs one sweep may hold.
    #[arg(long, default_value_t = 200_000)]
    pub max_jobs_per_sweep: u64,
    /// The most jobs the coordinator holds, all sweeps together (`ltsweep delete` frees them).
    #[arg(long, default_value_t = 1_000_000)]
    pub max_jobs: u64,
    /// The largest checkpoint of one job.
    #[arg(long, default_value = "1GiB", value_parser = parse_bytes)]
    pub max_checkpoint_bytes: u64,
    /// The most workers registered at once; a registration into a full registry forgets the
    /// longest-unseen worker that is neither alive nor holding a lease.
    #[arg(long, default_value_t = 10_000)]
    pub max_workers: usize,
    /// Checkpoint, model and result writes are refused when they would leave less free disk
    /// in the state dir, counting the writes under way at their announced sizes.
    #[arg(long, default_value = "1GiB", value_parser = parse_bytes)]
    pub min_free_disk_bytes: u64,
    /// The largest job result a worker may send (an honest 1,000-class result of 90 evaluated epochs is about 4 MB).
    #[arg(long, env = "LTSWEEP_MAX_RESULT_BYTES", default_value = "32MiB", value_parser = parse_bytes)]
    pub max_result_bytes: u64,
    /// Streams (`watch`, results, the web page's live events) open at once.
    #[arg(long, default_value_t = 256)]
    pub max_streams: usize,
    /// Streams open at once with one token.
    #[arg(long, default_value_t = 64)]
    pub max_streams_per_credential: usize,
    /// HTTP/2's concurrent streams on one gRPC connection.
    #[arg(long, default_value_t = 128)]
    pub max_streams_per_connection: u32,
    /// Wrong tokens one client address may send a minute (gRPC and the web page together);
    /// past it, its wrong tokens are refused until the minute is over. A right token is
    /// always accepted.
    #[arg(long, default_value_t = 10)]
    pub auth_failures_per_minute: u32,
    /// Connections open at once, gRPC and the web page together (each worker keeps one); also
    /// kept below the process's file-descriptor limit.
    #[arg(long, env = "LTSWEEP_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
    /// Connections open at once from one client address (IPv6: its /64); workers behind one
    /// NAT share one.
    #[arg(
        long,
        env = "LTSWEEP_MAX_CONNECTIONS_PER_ADDRESS",
        default_value_t = 1024
    )]
    pub max_connections_per_address: usize,
    /// Logins to the web page one client address may make a minute (each opens a session).
    #[arg(long, env = "LTSWEEP_LOGINS_PER_MINUTE", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub logins_per_minute: u32,
    /// Live web page sessions one token may hold; a login past it ends that token's oldest.
    #[arg(long, env = "LTSWEEP_MAX_SESSIONS_PER_CREDENTIAL", default_value_t = 2_500,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_sessions_per_credential: u64,
    /// A connection's first authenticated request (on the web page: every request's headers,
    /// then its body, and the next request on a kept-alive connection) must arrive within
    /// this.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: std::time::Duration,
    /// A connection without a request in flight, started or ended for this long is closed.
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    pub idle_timeout: std::time::Duration,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum DurabilityArg {
    Normal,
    Full,
}

#[cfg(feature = "train")]
#[derive(clap::Args, Debug)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// `auto` (every GPU, else the CPU), `cpu`, or GPUs such as `cuda:0,cuda:1`.
    #[arg(long, env = "LTSWEEP_DEVICES", default_value = "auto")]
    pub devices: String,
    /// Jobs at once per device (several small jobs fit on one GPU).
    #[arg(long, env = "LTSWEEP_SLOTS_PER_DEVICE", default_value_t = 1)]
    pub slots_per_device: u32,
    /// The folder the spec's data paths are relative to.
    #[arg(long, env = "LTSWEEP_DATA_ROOT", default_value = ".")]
    pub data_root: PathBuf,
    /// libtorch threads per job (default: the cores shared among the slots).
    #[arg(long, env = "LTSWEEP_THREADS")]
    pub threads: Option<i32>,
    /// Threads that decode and augment list data's images, per job (default: the cores each
    /// job's slot owns).
    #[arg(long, env = "LTSWEEP_LOADER_THREADS")]
    pub loader_threads: Option<usize>,
    /// Jobs of one shape each slot leases and trains as one fused array: a number, `off`, or
    /// `auto` (off on the CPU, 32 per array on a GPU).
    #[arg(long, env = "LTSWEEP_FUSE", default_value = "off")]
    pub fuse: ltsweep_worker::runtime::Fuse,
}

#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// Sweep ids (the latest sweep when neither one nor --results is given). Two or more
    /// sweeps or files (of different data sets or imbalance ratios) make one report across
    /// them: aggregate.md (IQM of normalised scores, probability of improvement over CE),
    /// datasets.md (each side by side), and each one's own report in a folder of its name.
    pub sweeps: Vec<String>,
    /// Exported results (an `ltsweep export` folder, a report's folder, or the single file an
    /// earlier version exported), instead of or beside sweeps.
    #[arg(long, num_args = 1..)]
    pub results: Vec<PathBuf>,
    /// The folder for table1.md, table1.csv, table1.tex, recall.csv, figures and Parquet files.
    #[arg(long)]
    pub out: PathBuf,
    /// Which epoch of each job the tables report: `final` (the last), `best` (the evaluated
    /// epoch of the highest All accuracy on the validation set: needs `[dataset]
    /// val_per_class`), or `best-test` (chosen on the test set: optimistic, so captioned).
    #[arg(long, default_value = "final", value_parser = ["final", "best", "best-test"])]
    pub metric: String,
    /// A grid axis (pc_weight, la_tau, ...) whose value each row takes as the one of the highest
    /// mean validation All accuracy over seeds; the tables report the test set there. Or a
    /// stage-2 method's settings chosen so for each row: `stage2.tau_norm.tau` (one setting),
    /// `stage2.crt` (its numeric settings together), `stage2` (every method's numeric
    /// settings: one row per method).
    #[arg(long, value_name = "AXIS|stage2[.METHOD[.SETTING]]")]
    pub select: Option<String>,
    /// How each difference to CE is tested: `t` (paired t-test, Student t interval),
    /// `permutation` (sign-flip test, exact up to 16 seeds) or `bootstrap` (paired bootstrap
    /// interval); p-values are Holm-adjusted over each table either way.
    #[arg(long, default_value = "t", value_parser = ["t", "permutation", "bootstrap"])]
    pub test: String,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ExportArgs {
    #[command(subcommand)]
    pub to: Option<ExportTo>,
    #[arg(required = true)]
    pub sweep: Option<String>,
    /// The folder to write jobs.parquet, per_class.parquet and epochs.parquet into.
    #[arg(long, required = true)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// Where else a sweep's results can go.
#[derive(clap::Subcommand, Debug)]
pub enum ExportTo {
    /// Every job with a result as an MLflow run (axes as parameters, per-epoch metrics) under
    /// a run of the sweep holding Table 1; a second export adds only the runs still missing.
    Mlflow(MlflowArgs),
}

#[derive(clap::Args, Debug)]
pub struct MlflowArgs {
    pub sweep: String,
    /// The MLflow tracking server, `https://host[:port]` or `http://host:port` (its REST API;
    /// artifacts go through its artifact proxy, on by default in `mlflow server`).
    #[arg(long, env = "MLFLOW_TRACKING_URI")]
    pub tracking_uri: String,
    /// Send MLFLOW_TRACKING_TOKEN over plain http to a host other than loopback (anyone on
    /// the way can read it).
    #[arg(long)]
    pub insecure: bool,
    /// The MLflow experiment (created if missing); default: the sweep id.
    #[arg(long)]
    pub experiment: Option<String>,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(clap::Args, Debug)]
pub struct ModelArgs {
    pub sweep: String,
    /// The job (a stage-1 job of a sweep with stage-2 jobs or `keep_models = true`).
    pub job: String,
    /// The safetensors file to write.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[cfg(feature = "train")]
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The sweep spec (TOML).
    pub spec: PathBuf,
    /// Jobs trained at once.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// The study's folder: its state (for resuming) and its report.
    #[arg(long)]
    pub out: PathBuf,
    /// The folder the spec's data paths are relative to.
    #[arg(long, env = "LTSWEEP_DATA_ROOT", default_value = ".")]
    pub data_root: PathBuf,
    /// `auto` (the GPUs, shared among the workers, else the CPU), `cpu`, or `cuda:0,cuda:1`.
    #[arg(long, default_value = "auto")]
    pub devices: String,
    /// libtorch threads per job (default: the cores shared among the workers).
    #[arg(long)]
    pub threads: Option<i32>,
    /// Threads that decode and augment list data's images, per job (default: the cores each
    /// job's slot owns).
    #[arg(long, env = "LTSWEEP_LOADER_THREADS")]
    pub loader_threads: Option<usize>,
    /// Jobs of one shape each worker trains as one fused array: a number, `off`, or `auto`
    /// (off on the CPU, 32 per array on a GPU).
    #[arg(long, env = "LTSWEEP_FUSE", default_value = "off")]
    pub fuse: ltsweep_worker::runtime::Fuse,
}

/// How to reach a coordinator.
#[derive(clap::Args, Debug, Clone)]
pub struct RemoteArgs {
    #[arg(
        long,
        env = "LTSWEEP_COORDINATOR",
        default_value = "http://127.0.0.1:7070"
    )]
    pub coordinator: String,
    /// A file holding your token: the user's, the viewer's, or (for a worker) the workers'
    /// (else LTSWEEP_TOKEN).
    #[arg(long, env = "LTSWEEP_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// The CA certificate (PEM) that signed the coordinator's TLS certificate.
    #[arg(long, env = "LTSWEEP_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct SubmitArgs {
    pub spec: PathBuf,
    /// Show progress bars until the sweep ends.
    #[arg(long)]
    pub watch: bool,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// A sweep id; the most recent sweep when omitted.
    pub sweep: Option<String>,
    /// {"sweep", "total", "pending", "running", "succeeded", "failed", "cancelled", "jobs": [...]}.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(clap::Args, Debug)]
pub struct SweepArgs {
    pub sweep: String,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Training throughput of the full loop (shuffle, augmentation, forward, backward, SGD).
    #[cfg(feature = "train")]
    Train(BenchTrainArgs),
    /// A load generator standing in for many workers (instant jobs) against a real coordinator
    /// process: completions/s, PollWork and CompleteJob latency, the coordinator's peak memory.
    Coordinator(BenchCoordinatorArgs),
    /// Sweep overhead: the paper's 9 plans x N seeds of one-step jobs through a coordinator and
    /// worker processes, from submit to the last result.
    #[cfg(feature = "train")]
    Sweep(BenchSweepArgs),
    /// The list data loader alone: images/s of decoded, augmented, normalised float batches.
    #[cfg(feature = "train")]
    Loader(BenchLoaderArgs),
    /// `bench train`, `bench sweep` and `bench loader` in a build without the trainer.
    #[cfg(not(feature = "train"))]
    #[command(external_subcommand)]
    Untrained(Vec<String>),
}

#[cfg(feature = "train")]
#[derive(clap::Args, Debug)]
pub struct BenchLoaderArgs {
    /// The folder the list's paths are relative to.
    #[arg(long)]
    pub path: PathBuf,
    /// The list (`relative/path.jpg label` a line), relative to --path.
    #[arg(long)]
    pub list: String,
    /// A packed copy to read instead, relative to --path.
    #[arg(long)]
    pub packed: Option<String>,
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    #[arg(long, default_value_t = 224)]
    pub crop: u32,
    #[arg(long, default_value_t = 0.0)]
    pub color_jitter: f64,
    /// Decode every JPEG at full size, as `dataset.reduced_decode = false` does (an A/B of the
    /// reduced IDCT scales).
    #[arg(long)]
    pub full_size_decode: bool,
    /// Loader threads (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Timed passes over the list, after one untimed.
    #[arg(long, default_value_t = 2)]
    pub passes: u32,
    /// No loader: decode every JPEG whole on this thread alone, the files read beforehand (the
    /// decoder's own rate, beside the peers' libjpeg-turbo in `bench/loader.sh`).
    #[arg(long, conflicts_with_all = ["packed", "threads", "full_size_decode", "color_jitter"])]
    pub decode_only: bool,
}

#[derive(clap::Args, Debug)]
pub struct BenchCoordinatorArgs {
    /// Simulated workers, each with its own connection.
    #[arg(long, default_value_t = 1000)]
    pub workers: usize,
    /// Jobs in each of the two runs (paced, then saturating).
    #[arg(long, default_value_t = 100_000)]
    pub jobs: usize,
    /// Jobs per second the simulated workers offer in the paced run: each polls again
    /// `workers / rate` seconds after its last poll, as workers whose jobs take that long.
    #[arg(long, default_value_t = 1200.0)]
    pub rate: f64,
    #[arg(long, value_enum, default_value = "normal")]
    pub durability: DurabilityArg,
    /// Also serve the web page (sweeps, jobs, workers, live tables and figures) on this
    /// address, with the same token and TLS settings as gRPC.
    #[arg(long, env = "LTSWEEP_HTTP")]
    pub http: Option<String>,
}

#[cfg(feature = "train")]
#[derive(clap::Args, Debug)]
pub struct BenchSweepArgs {
    #[arg(long, default_value_t = 10)]
    pub seeds: u64,
    /// Worker processes (one CPU slot each).
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
}

#[cfg(feature = "train")]
#[derive(clap::Args, Debug)]
pub struct BenchTrainArgs {
    /// The CIFAR ResNet's depth (without --arch).
    #[arg(long, default_value_t = 20)]
    pub depth: u32,
    /// An ImageNet architecture instead (`resnet10` ... `resnet152`, `resnext50_32x4d`).
    #[arg(long)]
    pub arch: Option<String>,
    /// The side of the square random images.
    #[arg(long, default_value_t = 32)]
    pub image_size: u32,
    /// `fp32` or `bf16` (ImageNet architectures; default: the spec's, bf16).
    #[arg(long)]
    pub precision: Option<String>,
    /// Channels-last activations (ImageNet architectures; default: the spec's, on).
    #[arg(long)]
    pub channels_last: Option<bool>,
    /// Images in the (random, balanced) training set: one timed epoch covers them all.
    #[arg(long, default_value_t = 4096)]
    pub images: usize,
    #[arg(long, default_value_t = 128)]
    pub batch: u32,
    #[arg(long, default_value_t = 100)]
    pub classes: usize,
    /// Timed epochs, after one untimed warm-up epoch.
    #[arg(long, default_value_t = 2)]
    pub epochs: u32,
    /// The loss plan to time (cross entropy alone, as the PyTorch peer).
    #[arg(long, default_value = "comp=none,pc=none")]
    pub plan: String,
    /// Random crop and flip (off: the model's math and the optimiser alone).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub augment: bool,
    #[arg(long, default_value = "auto")]
    pub device: String,
    #[arg(long)]
    pub threads: Option<i32>,
    /// Jobs (seeds 0..N) trained as one fused array; the figure is their images/s summed.
    #[arg(long, default_value_t = 1)]
    pub fuse: u32,
    /// The image policy after the crop and flip (`[augment] policy`).
    #[arg(long, default_value = "standard")]
    pub policy: String,
    /// Cutout's side in pixels (`[augment] cutout`; 0 is off).
    #[arg(long, default_value_t = 0)]
    pub cutout: u32,
    /// The batch mixing (`[augment] mix`).
    #[arg(long, default_value = "none")]
    pub mix: String,
}

#[cfg(feature = "train")]
#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// The sweep spec (TOML).
    pub spec: PathBuf,
    /// The loss plan, e.g. `comp=tail,pc=head` (cross entropy is always on).
    #[arg(long, default_value = "comp=none,pc=none")]
    pub plan: String,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The base loss (`ce`, `focal`, `cb`, `la`, `ldam_drw`); needed when the spec lists several.
    #[arg(long)]
    pub base: Option<String>,
    /// The sampler (`instance`, `class_balanced`, `sqrt`); needed when the spec lists several.
    #[arg(long)]
    pub sampler: Option<String>,
    /// The image policy (`[augment] policy`); needed when the spec lists several.
    #[arg(long)]
    pub policy: Option<String>,
    /// The batch mixing (`[augment] mix`); needed when the spec lists several.
    #[arg(long)]
    pub mix: Option<String>,
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
    /// Threads that decode and augment list data's images (default: every core).
    #[arg(long, env = "LTSWEEP_LOADER_THREADS")]
    pub loader_threads: Option<usize>,
}

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// The long-tailed training set a spec would train on: counts and class groups.
    Summary(DataSummaryArgs),
    /// Write a synthetic data set in the official CIFAR binary format.
    Synth(DataSynthArgs),
    /// Decode every image of list data once, in parallel, and list each unreadable one.
    Check(DataCheckArgs),
    /// Write a packed copy of list data: every image re-encoded once at a shorter side, in one
    /// memory-mapped file (`dataset.packed` in a spec reads it).
    Pack(DataPackArgs),
}

/// Which list data set: its kind, folder and lists.
#[derive(clap::Args, Debug, Clone)]
pub struct ListArgs {
    /// The training list, relative to --path (`relative/path.jpg label` a line, or .json);
    /// presets know theirs.
    #[arg(long)]
    pub train_list: Option<String>,
    #[arg(long)]
    pub val_list: Option<String>,
    #[arg(long)]
    pub test_list: Option<String>,
    /// A packed copy to read instead of the image files, relative to --path.
    #[arg(long)]
    pub packed: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct DataCheckArgs {
    /// list, imagenet-lt, places-lt or inat2018.
    #[arg(long)]
    pub kind: String,
    /// The data set's folder: the root of the lists' paths.
    #[arg(long)]
    pub path: PathBuf,
    #[command(flatten)]
    pub lists: ListArgs,
    /// For kind list: the number of classes (default: from the training list's labels).
    #[arg(long)]
    pub classes: Option<u32>,
    /// Decoding threads (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(clap::Args, Debug)]
pub struct DataPackArgs {
    /// list, imagenet-lt, places-lt or inat2018.
    #[arg(long)]
    pub kind: String,
    /// The data set's folder: the root of the lists' paths.
    #[arg(long)]
    pub path: PathBuf,
    #[command(flatten)]
    pub lists: ListArgs,
    #[arg(long)]
    pub classes: Option<u32>,
    /// The pack to write (`dataset.packed` names it relative to the data set's folder).
    #[arg(long)]
    pub out: PathBuf,
    /// Images with a longer shorter side are resized to it; smaller ones are copied as they are.
    /// The default keeps a 500 x 375 photograph whole: at 256, 81% of its training crops are
    /// upsampled (33% from the original); docs/guide/large-datasets.md has the table.
    #[arg(long, default_value_t = ltsweep_data::pack::DEFAULT_SHORTER_SIDE)]
    pub shorter_side: u32,
    /// JPEG quality of the re-encoded images.
    #[arg(long, default_value_t = 90)]
    pub quality: u8,
    /// Threads (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(clap::Args, Debug)]
pub struct DataSummaryArgs {
    /// cifar10, cifar100, fashion-mnist, mnist, synthetic, or list data: list, imagenet-lt,
    /// places-lt, inat2018.
    #[arg(long)]
    pub kind: String,
    /// The data set's folder (not for synthetic).
    #[arg(long)]
    pub path: Option<PathBuf>,
    #[command(flatten)]
    pub lists: ListArgs,
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
    /// Images of every class held out of the training images as the validation set (as the
    /// spec's `[dataset] val_per_class`).
    #[arg(long, default_value_t = 0)]
    pub val_per_class: u32,
    /// Print JSON: {"train_total", "val_total", "test_total", "class_counts", "head_classes", ...}.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_duration_is_an_error_not_a_panic() {
        let err = parse_duration("99999999999999999999999").unwrap_err();
        assert!(err.contains("too long"), "{err}");
        assert_eq!(
            parse_duration("1.5s").unwrap(),
            std::time::Duration::from_millis(1500)
        );
    }

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert_eq!(parse_bytes("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("1G").unwrap(), 1 << 30);
        assert!(parse_bytes("1XB").is_err());
        assert!(parse_bytes("99999999999999999999TiB").is_err());
    }
}
