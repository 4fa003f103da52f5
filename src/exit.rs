//! Exit codes: 2 for input the user must fix (a spec, a data file, an argument), 1 for any
//! other failure.

use ltsweep_proto::SpecError;

/// Marks an error as the user's input being wrong.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

pub fn code_of(err: &anyhow::Error) -> u8 {
    let bad_input = err
        .chain()
        .any(|cause| cause.is::<SpecError>() || cause.is::<BadInput>());
    if bad_input { 2 } else { 1 }
}
