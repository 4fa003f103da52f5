//! End-to-end tests: the real `ltsweep` binary, and real coordinators and workers on loopback.

mod cluster_support;
mod support;

mod cluster;
mod spec_cli;
mod train_cli;
