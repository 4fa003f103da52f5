//! Exit codes: 2 for input the user must fix (a spec, a data file, an argument, an unknown
//! sweep), 3 when the coordinator refuses the caller (token, protocol version), 1 for any
//! other failure.

use ltsweep_proto::SpecError;

/// Marks an error as the user's input being wrong.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// Marks an error as the coordinator refusing who is asking.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

pub fn code_of(err: &anyhow::Error) -> u8 {
    if err
        .chain()
        .any(|cause| cause.is::<SpecError>() || cause.is::<BadInput>())
    {
        2
    } else if err.chain().any(|cause| cause.is::<Refused>()) {
        3
    } else {
        1
    }
}
