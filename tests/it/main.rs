//! End-to-end tests: the real `ltsweep` binary, and real coordinators and workers on loopback.

mod support;

mod spec_cli;
mod train_cli;
