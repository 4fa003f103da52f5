//! A real coordinator process serving a large kept model to viewers that never read: each
//! download is sent from disk a chunk at a time under a stream permit, so stalled downloads
//! cost what their transport buffers hold, not the file.

use ltsweep_proto::chunks::{CheckpointHeader, Verifier, chunks};
use ltsweep_proto::client::Connection;
use ltsweep_proto::pb;
use ltsweep_proto::pb::checkpoint_chunk::Part;

use crate::cluster_support::TOKEN;
use crate::harness::register;
use crate::hostile::{peak_memory_mib, register_and_lease, start};

/// The kept model's size.
const MODEL_BYTES: usize = 100 << 20;
/// Downloads opened and never read.
const STALLED: usize = 20;
/// How far the coordinator's peak resident memory may rise over its footprint before the
/// upload, through the upload, the stalled downloads and one whole download beside them.
/// Read whole, each download held the model and a copy of it in chunks: some 4 GB for these.
const DOWNLOADS_MEMORY_BOUND_MIB: u64 = 128;

/// One stage-1 job whose model its stage-2 job needs.
const SPEC: &str = r#"
name = "kept"
seeds = [0]
[dataset]
kind = "synthetic"
[losses]
plans = [{}]
[stage2]
method = ["ncm"]
"#;

register!(stalled_model_downloads_hold_chunks_not_the_model);
fn stalled_model_downloads_hold_chunks_not_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let (coordinator, url) = start(&dir.path().join("state"), &["--min-free-disk-bytes", "0"]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let connection = {
        let _guard = runtime.enter();
        Connection::new(&url, Some(TOKEN), None).unwrap()
    };
    let mut sweeps = connection.sweeps();
    let before = peak_memory_mib(&coordinator);

    // A model in the store: uploaded under the stage-1 job's lease, as its worker would.
    let model: Vec<u8> = (0..MODEL_BYTES).map(|i| (i % 251) as u8).collect();
    let header = CheckpointHeader::of("", 1, &model);
    let (sweep, job) = runtime.block_on(async {
        let sweep = sweeps
            .submit_sweep(pb::SubmitSweepRequest {
                spec_toml: SPEC.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .sweep_id;
        let (mut workers, _, lease) = register_and_lease(&connection, "kept").await;
        assert!(lease.keep_model);
        let upload = CheckpointHeader {
            lease_id: lease.lease_id.clone(),
            ..header.clone()
        };
        let sent: Vec<_> = chunks(&upload, &model).collect();
        workers
            .upload_model(tokio_stream::iter(sent))
            .await
            .unwrap();
        (sweep, lease.job.unwrap().job_id)
    });
    drop(model);
    let request = || pb::GetModelRequest {
        sweep_id: sweep.clone(),
        job_id: job.clone(),
    };

    runtime.block_on(async {
        // Opened, answered with their head, and never read: each viewer on a connection of
        // its own (on one connection, unread streams would fill its shared HTTP/2 window and
        // stall the others).
        let mut stalled = Vec::new();
        for _ in 0..STALLED {
            let viewer = Connection::new(&url, Some(TOKEN), None).unwrap();
            let stream = viewer.sweeps().get_model(request()).await.unwrap();
            stalled.push((viewer, stream.into_inner()));
        }
        // One more, read whole beside them: every byte arrives, as its header says.
        let read_whole = async {
            let mut whole = sweeps.get_model(request()).await.unwrap().into_inner();
            let mut verifier: Option<Verifier> = None;
            while let Some(chunk) = whole.message().await.unwrap() {
                match chunk.part {
                    Some(Part::Header(h)) => {
                        assert_eq!((h.size, h.sha256.as_str()), (header.size, &*header.sha256.to_string()));
                        verifier = Some(CheckpointHeader::try_from(h).unwrap().verifier());
                    }
                    Some(Part::Data(bytes)) => {
                        verifier.as_mut().unwrap().update(&bytes).unwrap()
                    }
                    None => {}
                }
            }
            verifier.expect("a header came").finish().unwrap();
        };
        tokio::time::timeout(std::time::Duration::from_secs(600), read_whole)
            .await
            .expect("a download beside the stalled ones ends");
        let peak = peak_memory_mib(&coordinator);
        eprintln!(
            "{STALLED} stalled downloads of a {} MiB model and one whole: peak {peak} MiB, {before} MiB before",
            MODEL_BYTES >> 20
        );
        assert!(
            peak.saturating_sub(before) < DOWNLOADS_MEMORY_BOUND_MIB,
            "{STALLED} stalled downloads of a {} MiB model took the coordinator from {before} MiB to a peak of {peak} MiB",
            MODEL_BYTES >> 20
        );
        drop(stalled);
    });
}
