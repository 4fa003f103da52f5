//! The sweep spec parser: any text gives a spec or a `SpecError`, never a panic, and a valid
//! spec expands into its grid.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ltsweep_domain::SweepSpec;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(spec) = SweepSpec::parse(text) {
        // Expanding a large grid is slow, not wrong: keep each run short.
        let axes: usize = spec.axes().iter().map(|(_, v)| v.len()).product::<usize>()
            * spec.bases().len()
            * spec.samplers().len()
            * spec.sample_count();
        if spec.plans().len() * spec.seeds().len() * axes <= 1000 {
            let jobs = spec.jobs();
            assert_eq!(jobs.len(), spec.plans().len() * spec.seeds().len() * axes);
            let _ = spec.sweep_id();
        }
    }
});
