//! End-to-end tests: the real `ltsweep` binary, and real coordinators and workers on loopback.

mod cluster_support;
mod proxy;
mod report_cli;
mod slurm_support;
mod support;
mod webdriver;

mod chaos;
mod cluster;
mod data_root;
mod fused_worker;
mod hostile;
mod kept_model;
mod launch;
mod preemption;
mod slurm;
mod spec_cli;
mod tls;
mod train_cli;
mod two_stage;
mod web;
