//! The coordinator over real gRPC: a server on 127.0.0.1:0 and the generated clients.

mod bounded;
mod checkpoints;
mod delete;
mod helpers;
mod leases;
mod limits;
mod models;
mod security;
mod stalled;
mod sweeps;
