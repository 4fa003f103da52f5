//! TensorBoard event files of a sweep's jobs: `tensorboard --logdir REPORT/tensorboard` shows
//! every job as a run named by its plan and axes (`comp=tail,pc=head/pc_weight=0.1/seed=0`),
//! with its per-epoch losses, learning rate and group accuracies, test and validation.
//!
//! The format is TensorFlow's record file: each record is its length (u64, little-endian), the
//! masked CRC-32C of the length, the bytes, and their masked CRC-32C; each record holds an
//! `Event` protobuf (`tensorflow/core/util/event.proto`) whose `Summary` carries scalar values.
//! The few messages are declared here with prost: no crate that writes them is maintained.

use std::fs;
use std::path::{Path, PathBuf};

use ltsweep_domain::time::unix_ms_now;
use ltsweep_domain::{BaseKind, GroupAccuracy, Sampler};
use prost::Message;

use crate::AnalysisError;
use crate::rows::{EpochRow, JobRow, Tidy};
use crate::summary::Metric;

/// `tensorflow.Event`: only the fields written here.
#[derive(Clone, PartialEq, Message)]
struct Event {
    #[prost(double, tag = "1")]
    wall_time: f64,
    #[prost(int64, tag = "2")]
    step: i64,
    #[prost(oneof = "What", tags = "3, 5")]
    what: Option<What>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum What {
    #[prost(string, tag = "3")]
    FileVersion(String),
    #[prost(message, tag = "5")]
    Summary(Summary),
}

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, Message)]
struct Summary {
    #[prost(message, repeated, tag = "1")]
    value: Vec<SummaryValue>,
}

/// `tensorflow.Summary.Value` with its `simple_value`: a oneof, so that a scalar of 0 is
/// written (a plain proto3 float of 0 would be left out, and the reader would see no value).
#[derive(Clone, PartialEq, Message)]
struct SummaryValue {
    #[prost(string, tag = "1")]
    tag: String,
    #[prost(oneof = "Scalar", tags = "2")]
    value: Option<Scalar>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum Scalar {
    #[prost(float, tag = "2")]
    SimpleValue(f32),
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as TFRecord frames use it.
fn crc32c(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut crc = i as u32;
            let mut bit = 0;
            while bit < 8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0x82F6_3B78
                } else {
                    crc >> 1
                };
                bit += 1;
            }
            table[i] = crc;
            i += 1;
        }
        table
    };
    !bytes.iter().fold(!0u32, |crc, &byte| {
        TABLE[((crc ^ u32::from(byte)) & 0xff) as usize] ^ (crc >> 8)
    })
}

/// TFRecord's masking, so that a CRC of data that holds CRCs stays well distributed.
fn masked_crc32c(bytes: &[u8]) -> u32 {
    let crc = crc32c(bytes);
    (crc.rotate_right(15)).wrapping_add(0xa282_ead8)
}

/// One TFRecord frame around `data`.
fn record(out: &mut Vec<u8>, data: &[u8]) {
    let length = (data.len() as u64).to_le_bytes();
    out.extend_from_slice(&length);
    out.extend_from_slice(&masked_crc32c(&length).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
}

/// The scalars of one epoch: `(tag, value)`, accuracies in percent.
fn scalars(epoch: &EpochRow) -> Vec<(String, f64)> {
    let mut values = vec![
        ("loss/base".to_owned(), epoch.losses[0]),
        ("loss/comp".to_owned(), epoch.losses[1]),
        ("loss/pc".to_owned(), epoch.losses[2]),
        ("lr".to_owned(), epoch.lr),
    ];
    let mut accuracies = |set: &str, accuracy: &GroupAccuracy| {
        for metric in Metric::EVERY {
            if let Some(value) = metric.of(accuracy) {
                values.push((format!("{set}/{}", metric.key()), value * 100.0));
            }
        }
    };
    accuracies("test", &epoch.accuracy);
    accuracies("val", &epoch.val);
    values
}

/// A job's events: the file version, then one summary an epoch, stepped by the epoch and
/// timed by the epochs' own seconds from `start`.
fn events(epochs: &[&EpochRow], start: f64) -> Vec<u8> {
    let mut bytes = Vec::new();
    let version = Event {
        wall_time: start,
        step: 0,
        what: Some(What::FileVersion("brain.Event:2".to_owned())),
    };
    record(&mut bytes, &version.encode_to_vec());
    let mut wall_time = start;
    for epoch in epochs {
        wall_time += epoch.seconds;
        let event = Event {
            wall_time,
            step: i64::from(epoch.epoch),
            what: Some(What::Summary(Summary {
                value: scalars(epoch)
                    .into_iter()
                    .map(|(tag, value)| SummaryValue {
                        tag,
                        value: Some(Scalar::SimpleValue(value as f32)),
                    })
                    .collect(),
            })),
        };
        record(&mut bytes, &event.encode_to_vec());
    }
    bytes
}

/// `comp=tail,pc=head/pc_weight=0.1/seed=0`, with `base=la` and `sampler=sqrt` first when they
/// are not the defaults: a job's run, one folder a part, so that TensorBoard's run filter
/// can pick a plan or an axis value.
pub(crate) fn run_name(job: &JobRow, axis_names: &[String]) -> String {
    let mut parts = Vec::new();
    if job.base != BaseKind::Ce {
        parts.push(format!("base={}", job.base));
    }
    if job.sampler != Sampler::Instance {
        parts.push(format!("sampler={}", job.sampler));
    }
    parts.push(job.plan.to_string());
    for (name, value) in axis_names.iter().zip(&job.axes) {
        parts.push(format!("{name}={value}"));
    }
    parts.push(format!("seed={}", job.seed));
    parts
        .iter()
        .map(|part| {
            part.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "=,._-".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Writes one event file per job with epochs into `dir` (emptied first, so that a report
/// written again holds each event once). Returns the files written.
pub(crate) fn write_runs(tidy: &Tidy, dir: &Path) -> Result<Vec<PathBuf>, AnalysisError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| AnalysisError::Io { path, source }
    };
    if dir.exists() {
        fs::remove_dir_all(dir).map_err(io(dir))?;
    }
    let start = (unix_ms_now() / 1000) as f64;
    let mut files = Vec::new();
    let mut written = std::collections::HashSet::new();
    // A job evaluated with several post-hoc taus has a row per tau: its epochs once, under the
    // row of the model as trained.
    for job in tidy.jobs.iter().filter(|job| !job.adjusted) {
        if !written.insert(job.job_id.as_str()) {
            continue;
        }
        let epochs: Vec<&EpochRow> = tidy
            .epochs
            .iter()
            .filter(|epoch| epoch.job_id == job.job_id)
            .collect();
        if epochs.is_empty() {
            continue;
        }
        let run = dir.join(run_name(job, &tidy.axis_names));
        fs::create_dir_all(&run).map_err(io(&run))?;
        let path = run.join(format!("events.out.tfevents.{start}.ltsweep"));
        fs::write(&path, events(&epochs, start)).map_err(io(&path))?;
        files.push(path);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_of_the_standard_check_string() {
        // The CRC catalogue's check value of CRC-32C.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn a_record_frames_its_bytes() {
        let mut out = Vec::new();
        record(&mut out, b"abc");
        assert_eq!(out.len(), 8 + 4 + 3 + 4);
        assert_eq!(&out[..8], &3u64.to_le_bytes());
        assert_eq!(&out[12..15], b"abc");
        assert_eq!(&out[15..], &masked_crc32c(b"abc").to_le_bytes());
    }
}
