//! End-to-end tests: the real `ltsweep` binary, and real coordinators and workers on loopback.
//! The runner is ours ([`harness`]): a test whose service is missing here is ignored, with why.

mod cluster_support;
mod harness;
mod proxy;
mod report_cli;
mod runner;
mod slurm_support;
mod support;
mod webdriver;

mod architecture;
mod bounded;
mod bounded_files;
mod chaos;
mod cluster;
mod confined;
mod data_root;
mod deploy_checks;
mod docs;
mod fused_worker;
mod hostile;
mod kept_model;
mod launch;
mod list_cli;
mod lockout;
mod mlflow;
mod preemption;
mod roles;
mod search_cli;
mod search_cluster;
mod slurm;
mod spec_cli;
mod tls;
mod train_cli;
mod two_stage;
mod web;
mod worker_identity;

fn main() -> std::process::ExitCode {
    harness::main()
}
