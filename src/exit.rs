//! Exit codes: 2 for input the user must fix (a spec, a data file, an argument, an unknown
//! sweep), 3 when the coordinator refuses the caller (token, protocol version), another
//! program's own code when ltsweep passes its refusal on (sbatch), 1 for any other failure.

use ltsweep_domain::SpecError;

/// Marks an error as the user's input being wrong.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// Marks an error as the coordinator refusing who is asking.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Another program's refusal, passed on with its message and exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ExitWith {
    pub code: u8,
    pub message: String,
}

pub fn code_of(err: &anyhow::Error) -> u8 {
    if let Some(passed_on) = err
        .chain()
        .find_map(|cause| cause.downcast_ref::<ExitWith>())
    {
        passed_on.code
    } else if err
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
