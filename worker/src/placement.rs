//! What a cluster learns from a worker: the Slurm job it runs in, and (for a Kubernetes
//! readiness probe) a file that says it registered.

use ltsweep_domain::SlurmPlacement;

/// Creates the file `LTSWEEP_READY_FILE` names, if set, once the worker is registered: a
/// Kubernetes readiness probe tests for it.
pub fn mark_ready() {
    if let Some(path) = std::env::var_os("LTSWEEP_READY_FILE")
        && let Err(err) = std::fs::write(&path, b"registered\n")
    {
        tracing::warn!(path = %std::path::Path::new(&path).display(), %err, "cannot write the ready file");
    }
}

/// The Slurm job this process runs in, from the variables Slurm sets for it.
///
/// For a task of a job array the job id is the array's (`SLURM_ARRAY_JOB_ID`, the id `sbatch`
/// printed and `squeue` shows as `ID_TASK`), else `SLURM_JOB_ID`.
pub fn slurm_placement() -> Option<SlurmPlacement> {
    slurm_placement_from(|name| std::env::var(name).ok())
}

fn slurm_placement_from(var: impl Fn(&str) -> Option<String>) -> Option<SlurmPlacement> {
    let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    let job_id = set("SLURM_ARRAY_JOB_ID").or_else(|| set("SLURM_JOB_ID"))?;
    Some(SlurmPlacement {
        job_id,
        array_task_id: set("SLURM_ARRAY_TASK_ID").unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placement(vars: &[(&str, &str)]) -> Option<SlurmPlacement> {
        slurm_placement_from(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn slurm_placement_prefers_the_array_job() {
        assert_eq!(placement(&[]), None);
        assert_eq!(
            placement(&[("SLURM_JOB_ID", "41")]),
            Some(SlurmPlacement {
                job_id: "41".into(),
                array_task_id: String::new()
            })
        );
        assert_eq!(
            placement(&[
                ("SLURM_JOB_ID", "43"),
                ("SLURM_ARRAY_JOB_ID", "42"),
                ("SLURM_ARRAY_TASK_ID", "1")
            ]),
            Some(SlurmPlacement {
                job_id: "42".into(),
                array_task_id: "1".into()
            })
        );
        assert_eq!(placement(&[("SLURM_JOB_ID", " ")]), None);
    }
}
