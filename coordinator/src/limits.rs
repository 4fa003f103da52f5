//! The coordinator's bounds on what callers may make it hold: spec text, jobs, workers,
//! checkpoint bytes, the free disk it keeps, open streams, connections (how many, and their
//! deadlines) and wrong tokens.
//!
//! A holder of the token must not be able to exhaust the coordinator's memory or disk, so every
//! input that the coordinator stores has a limit. Each refusal names the limit and the flag of
//! `ltsweep coordinator` that changes it. Limits of the spec itself (name length, paths, the
//! synthetic data set's sizes) live with the spec in `ltsweep-domain`, so that `ltsweep
//! validate` refuses the same specs.

use std::path::Path;
use std::time::Duration;

use crate::error::CoordinatorError;
use crate::scheduler::{Change, Scheduler};

type Result<T> = std::result::Result<T, CoordinatorError>;

/// The longest id, host name or version string a request may carry, in bytes. Every id the
/// coordinator hands out is far shorter.
pub(crate) const MAX_FIELD_BYTES: usize = 256;

/// The most devices a worker may register: more than any node holds.
pub(crate) const MAX_DEVICES: usize = 64;

/// The most bytes a worker's device names may take together, so that a registration (kept
/// until the worker expires) stays a few kilobytes.
pub(crate) const MAX_DEVICE_NAME_BYTES: usize = 4_096;

/// A failure reason is kept up to this many bytes (cut at a character boundary), not refused:
/// the worker must always be able to report a failure.
pub(crate) const MAX_REASON_BYTES: usize = 4_096;

/// What the coordinator accepts. The defaults fit the largest studies it is built for (the
/// benchmark's 2 x 100,000 jobs) with room to spare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest sweep spec, in bytes (`--max-spec-bytes`).
    pub max_spec_bytes: usize,
    /// The most jobs one sweep may hold (`--max-jobs-per-sweep`).
    pub max_jobs_per_sweep: u64,
    /// The most jobs the coordinator holds, over all sweeps (`--max-jobs`).
    pub max_jobs: u64,
    /// The largest checkpoint of one job, in bytes (`--max-checkpoint-bytes`).
    pub max_checkpoint_bytes: u64,
    /// The most workers registered at once (`--max-workers`); a registration into a full
    /// registry forgets the longest-unseen worker that is neither alive nor holding a lease.
    pub max_workers: usize,
    /// Uploads are refused when they would leave less free disk than this in the state dir
    /// (`--min-free-disk-bytes`).
    pub min_free_disk_bytes: u64,
    /// The largest job result a worker may send, encoded (`--max-result-bytes`).
    pub max_result_bytes: usize,
    /// Streams (`WatchSweep`, `GetResults`, the page's live events) open at once
    /// (`--max-streams`).
    pub max_streams: usize,
    /// Streams open at once with one token (`--max-streams-per-credential`).
    pub max_streams_per_credential: usize,
    /// HTTP/2's concurrent streams on one gRPC connection (`--max-streams-per-connection`).
    pub max_streams_per_connection: u32,
    /// Wrong tokens one client address may send a minute (`--auth-failures-per-minute`).
    pub auth_failures_per_minute: u32,
    /// Connections open at once, gRPC and the web page together (`--max-connections`); kept
    /// below the process's file-descriptor limit besides.
    pub max_connections: usize,
    /// Connections open at once from one client address, IPv6 by its /64
    /// (`--max-connections-per-address`).
    pub max_connections_per_address: usize,
    /// A connection's first authenticated request (HTTP: every request's headers, then its
    /// body) must arrive within this (`--header-read-timeout`).
    pub header_read_timeout: Duration,
    /// A connection without a request in flight, started or ended for this long is closed
    /// (`--idle-timeout`).
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_spec_bytes: 1 << 20,
            max_jobs_per_sweep: 200_000,
            max_jobs: 1_000_000,
            max_checkpoint_bytes: 1 << 30,
            max_workers: 10_000,
            min_free_disk_bytes: 1 << 30,
            // An honest result of 1,000 classes (ImageNet-LT) evaluated at each of 90 epochs
            // is about 4 MB (see the size test below): room for runs eight times as long.
            max_result_bytes: 32 << 20,
            max_streams: 256,
            max_streams_per_credential: 64,
            max_streams_per_connection: 128,
            auth_failures_per_minute: 10,
            max_connections: 4096,
            max_connections_per_address: 1024,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
        }
    }
}

impl Limits {
    /// Zero limits would refuse everything: a mistake in the flags, found at start.
    pub(crate) fn validate(&self) -> Result<()> {
        for (flag, value) in [
            ("--max-spec-bytes", self.max_spec_bytes as u64),
            ("--max-jobs-per-sweep", self.max_jobs_per_sweep),
            ("--max-jobs", self.max_jobs),
            ("--max-checkpoint-bytes", self.max_checkpoint_bytes),
            ("--max-workers", self.max_workers as u64),
            ("--max-result-bytes", self.max_result_bytes as u64),
            ("--max-streams", self.max_streams as u64),
            (
                "--max-streams-per-credential",
                self.max_streams_per_credential as u64,
            ),
            (
                "--max-streams-per-connection",
                u64::from(self.max_streams_per_connection),
            ),
            (
                "--auth-failures-per-minute",
                u64::from(self.auth_failures_per_minute),
            ),
            ("--max-connections", self.max_connections as u64),
            (
                "--max-connections-per-address",
                self.max_connections_per_address as u64,
            ),
            (
                "--header-read-timeout",
                self.header_read_timeout.as_millis() as u64,
            ),
            ("--idle-timeout", self.idle_timeout.as_millis() as u64),
        ] {
            if value == 0 {
                return Err(CoordinatorError::Config(format!(
                    "{flag} is 0, which would refuse everything: give a positive limit"
                )));
            }
        }
        Ok(())
    }

    /// The gRPC decoding limit of the user service: room for the largest spec the limit
    /// allows, so that a spec just over it gets this module's message, not the transport's.
    pub(crate) fn sweep_message_bytes(&self) -> usize {
        self.max_spec_bytes
            .saturating_mul(2)
            .saturating_add(1 << 20)
    }

    /// The gRPC decoding limit of the worker service: room for the largest result the limit
    /// allows (so that a result just over it gets this module's message, not the transport's)
    /// and for a checkpoint chunk.
    pub(crate) fn worker_message_bytes(&self) -> usize {
        self.max_result_bytes
            .max(ltsweep_proto::chunks::CHUNK_BYTES)
            .saturating_add(1 << 20)
    }

    /// A `CompleteJob` request's encoded size, before its result is converted or kept.
    pub(crate) fn check_result_bytes(&self, bytes: usize) -> Result<()> {
        if bytes > self.max_result_bytes {
            return Err(CoordinatorError::invalid(
                "result",
                format!(
                    "{bytes} bytes is over the limit of {} bytes a result (--max-result-bytes)",
                    self.max_result_bytes
                ),
            ));
        }
        Ok(())
    }

    pub(crate) fn check_spec_text(&self, spec_toml: &str) -> Result<()> {
        if spec_toml.len() > self.max_spec_bytes {
            return Err(CoordinatorError::invalid(
                "spec_toml",
                format!(
                    "{} bytes is over the limit of {} bytes a spec (--max-spec-bytes): a spec is a few lines; lists of values become axes",
                    spec_toml.len(),
                    self.max_spec_bytes
                ),
            ));
        }
        Ok(())
    }

    /// Checked on the parsed spec, before its grid is expanded into memory.
    pub(crate) fn check_jobs_per_sweep(&self, jobs: u128) -> Result<()> {
        if jobs > u128::from(self.max_jobs_per_sweep) {
            return Err(CoordinatorError::invalid(
                "spec_toml",
                format!(
                    "the grid has {jobs} jobs, over the limit of {} jobs a sweep (--max-jobs-per-sweep): split it into several sweeps",
                    self.max_jobs_per_sweep
                ),
            ));
        }
        Ok(())
    }

    /// Checked under the coordinator's lock, with the sweep about to be added.
    pub(crate) fn check_total_jobs(&self, scheduler: &Scheduler, adding: usize) -> Result<()> {
        let held: u64 = scheduler.sweeps().map(|s| u64::from(s.counts.total)).sum();
        let after = held.saturating_add(adding as u64);
        if after > self.max_jobs {
            return Err(CoordinatorError::Exhausted(format!(
                "the coordinator holds {held} jobs and this sweep adds {adding}, over the limit of {} jobs in all (--max-jobs): `ltsweep delete` finished sweeps first",
                self.max_jobs
            )));
        }
        Ok(())
    }

    /// Checked under the lock before a registration: the registry, the new worker included,
    /// must fit. A full registry makes room by forgetting workers that are neither alive nor
    /// holding a lease (the changes to commit with the registration), so stale registrations
    /// never lock new workers out; only live ones fill it.
    pub(crate) fn check_workers(&self, scheduler: &Scheduler, now_ms: u64) -> Result<Vec<Change>> {
        scheduler
            .make_room(now_ms, self.max_workers)
            .ok_or_else(|| {
                CoordinatorError::Exhausted(format!(
                    "{} workers are registered and alive or holding leases, the limit (--max-workers) is {}: stop some, or raise the limit",
                    scheduler.workers().len(),
                    self.max_workers
                ))
            })
    }

    /// Checked on an upload's header, before any byte of it is written: its announced size
    /// against the limit. The disk it would leave free is [`crate::disk::DiskFloor`]'s; the
    /// stream is then held to the announced size as it arrives.
    pub(crate) fn check_upload(&self, announced: u64) -> Result<()> {
        if announced > self.max_checkpoint_bytes {
            return Err(CoordinatorError::Exhausted(format!(
                "the checkpoint announces {announced} bytes, over the limit of {} bytes a checkpoint (--max-checkpoint-bytes)",
                self.max_checkpoint_bytes
            )));
        }
        Ok(())
    }
}

/// A request's id or name field: present and at most [`MAX_FIELD_BYTES`].
pub(crate) fn short_field(value: String, field: &'static str) -> Result<String> {
    if value.is_empty() {
        return Err(CoordinatorError::invalid(field, "missing: it is required"));
    }
    check_length(&value, field)?;
    Ok(value)
}

/// An optional text field: at most [`MAX_FIELD_BYTES`].
pub(crate) fn check_length(value: &str, field: &str) -> Result<()> {
    if value.len() > MAX_FIELD_BYTES {
        return Err(CoordinatorError::invalid(
            field,
            format!(
                "{} bytes is over the limit of {MAX_FIELD_BYTES}",
                value.len()
            ),
        ));
    }
    Ok(())
}

/// A worker's registration: host, version, and its devices.
pub(crate) fn check_registration(host: &str, version: &str, devices: &[String]) -> Result<()> {
    check_length(host, "host")?;
    check_length(version, "version")?;
    if devices.len() > MAX_DEVICES {
        return Err(CoordinatorError::invalid(
            "devices",
            format!(
                "{} devices is over the limit of {MAX_DEVICES}",
                devices.len()
            ),
        ));
    }
    for name in devices {
        check_length(name, "devices.name")?;
    }
    let bytes: usize = devices.iter().map(String::len).sum();
    if bytes > MAX_DEVICE_NAME_BYTES {
        return Err(CoordinatorError::invalid(
            "devices.name",
            format!(
                "the device names take {bytes} bytes together, over the limit of {MAX_DEVICE_NAME_BYTES}: name devices as \"cpu\" or \"cuda:N\""
            ),
        ));
    }
    Ok(())
}

/// A failure reason cut to [`MAX_REASON_BYTES`], marked where it was cut.
pub(crate) fn cut_reason(mut reason: String) -> String {
    if reason.len() > MAX_REASON_BYTES {
        let mut end = MAX_REASON_BYTES;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
        reason.push_str("… (cut)");
    }
    reason
}

/// The bytes an unprivileged process may still write on the file system of `path`.
pub fn free_disk_bytes(path: &Path) -> Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| CoordinatorError::storage(path, "the path holds a NUL byte"))?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is a NUL-terminated string and `stat` is writable memory of the right
    // type; statvfs fills it whole when it returns 0.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return Err(CoordinatorError::storage(
            path,
            format!(
                "cannot read the free disk space: {}",
                std::io::Error::last_os_error()
            ),
        ));
    }
    // SAFETY: statvfs returned 0, so it initialised `stat`.
    let stat = unsafe { stat.assume_init() };
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    let bytes = (stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64);
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_zero_is_refused() {
        Limits::default().validate().unwrap();
        let limits = Limits {
            max_workers: 0,
            ..Limits::default()
        };
        let message = limits.validate().unwrap_err().to_string();
        assert!(message.contains("--max-workers is 0"), "{message}");
    }

    #[test]
    fn each_refusal_names_its_flag() {
        let limits = Limits {
            max_spec_bytes: 10,
            max_jobs_per_sweep: 5,
            max_checkpoint_bytes: 100,
            ..Limits::default()
        };
        let err = limits.check_spec_text(&"x".repeat(11)).unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.to_string().contains("--max-spec-bytes"), "{err}");
        limits.check_spec_text(&"x".repeat(10)).unwrap();
        let err = limits.check_jobs_per_sweep(6).unwrap_err();
        assert!(err.to_string().contains("--max-jobs-per-sweep"), "{err}");
        let err = limits.check_upload(101).unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        assert!(err.to_string().contains("--max-checkpoint-bytes"), "{err}");
    }

    /// The default `--max-result-bytes` against the largest honest result it is sized for:
    /// ImageNet-LT's 1,000 classes (50 test images each), 90 epochs each evaluated with its
    /// per-class metrics, a full confusion matrix.
    #[test]
    fn the_default_result_limit_holds_an_honest_thousand_class_result() {
        use ltsweep_proto::pb;
        use prost::Message;
        let classes = 1_000u32;
        let per_class: Vec<pb::ClassMetrics> = (0..classes)
            .map(|class| pb::ClassMetrics {
                class_index: class,
                train_count: 1_280 - class,
                test_total: 50,
                test_correct: 37,
                recall: 0.74,
                precision: 0.7123,
                head: class < 390,
                shot: pb::Shot::Medium.into(),
            })
            .collect();
        let epoch = |epoch| pb::EpochMetrics {
            epoch,
            lr: 0.1,
            loss_base: 2.5,
            loss_comp: 0.1,
            loss_pc: 0.1,
            images_per_second: 1234.5,
            seconds: 60.0,
            accuracy: Some(pb::GroupAccuracy::default()),
            per_class: per_class.clone(),
            val_accuracy: Some(pb::GroupAccuracy::default()),
        };
        let request = pb::CompleteJobRequest {
            worker_id: "w-1".into(),
            lease_id: "l".repeat(64),
            result: Some(pb::JobResult {
                per_class: per_class.clone(),
                epochs: (1..=90).map(epoch).collect(),
                num_classes: classes,
                // Test counts: at most 50 a cell, one byte each.
                confusion: (0..classes * classes).map(|i| i % 50).collect(),
                device: "cuda:0".into(),
                ..Default::default()
            }),
        };
        let bytes = request.encoded_len();
        let limit = Limits::default().max_result_bytes;
        assert!(
            (3 << 20..5 << 20).contains(&bytes),
            "{bytes} bytes: the docs say about 4 MB"
        );
        assert!(
            bytes * 4 < limit,
            "{bytes} bytes against a limit of {limit}"
        );
        Limits::default().check_result_bytes(bytes).unwrap();
        let err = Limits::default().check_result_bytes(limit + 1).unwrap_err();
        assert!(err.to_string().contains("--max-result-bytes"), "{err}");
    }

    #[test]
    fn long_fields_are_refused_and_long_reasons_cut() {
        assert!(short_field(String::new(), "lease_id").is_err());
        let err = short_field("x".repeat(MAX_FIELD_BYTES + 1), "lease_id").unwrap_err();
        assert!(err.to_string().starts_with("lease_id: 257 bytes"), "{err}");
        let devices: Vec<String> = std::iter::repeat_n("cpu".to_owned(), MAX_DEVICES + 1).collect();
        assert!(check_registration("h", "v", &devices).is_err());
        let reason = cut_reason("é".repeat(MAX_REASON_BYTES));
        assert!(reason.len() <= MAX_REASON_BYTES + "… (cut)".len());
        assert!(reason.ends_with("… (cut)"));
        assert_eq!(cut_reason("short".into()), "short");
    }
}
