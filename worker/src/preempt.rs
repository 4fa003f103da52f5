//! What a cluster's scheduler does to a worker, and how the worker answers.
//!
//! Slurm, Kubernetes and systemd stop a worker with one SIGTERM and, a grace period later
//! (Slurm's KillWait, a pod's `terminationGracePeriodSeconds`, a unit's `TimeoutStopSec`),
//! SIGKILL; Slurm also warns ahead of a time limit with a signal of the job's choosing
//! (`--signal=B:USR1@60`), and at the limit follows it with that same SIGTERM. The first
//! SIGTERM, SIGUSR1 or SIGINT *preempts* the worker: each running job stops at its next step
//! boundary, its checkpoint (with the epoch in progress) is uploaded, and its lease is given
//! back as preempted, so the job is queued again at once and the attempt does not count.
//!
//! Only a person asks twice: a second SIGTERM or SIGINT stops at once (running jobs are
//! abandoned at the next batch and given back, losing at most the steps since their last
//! checkpoint), and a third exits the process. SIGUSR1 never escalates, and neither does the
//! first SIGTERM after it: that is Slurm's time limit arriving after its warning, while the
//! checkpoint the warning started may still be uploading.

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// What the process was asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    Run,
    /// No new work; running jobs finish.
    Drain,
    /// No new work; running jobs stop at their next step boundary, upload a checkpoint and
    /// give their leases back as preempted (the attempt does not count).
    Preempt,
    /// Stop now: running jobs are abandoned and their leases given back as preempted, from
    /// the last checkpoint uploaded.
    Now,
}

/// A stop signal the worker handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// SIGUSR1: Slurm's warning ahead of a time limit.
    Warning,
    /// SIGTERM or SIGINT.
    Terminate(&'static str),
}

/// What the worker does after the signals so far; `None` once it should exit.
#[derive(Debug, Default)]
struct Escalation {
    terminations: u32,
}

impl Escalation {
    fn on(&mut self, stop: Stop) -> Option<Shutdown> {
        match stop {
            Stop::Warning => Some(Shutdown::Preempt),
            Stop::Terminate(_) => {
                self.terminations += 1;
                match self.terminations {
                    1 => Some(Shutdown::Preempt),
                    2 => Some(Shutdown::Now),
                    _ => None,
                }
            }
        }
    }
}

/// Turns the stop signals into [`Shutdown`] levels on `levels`, until the process ends.
///
/// Call it from within a Tokio runtime; it installs the handlers at once, so a signal that
/// arrives after this returns is never lost to the default action (which would end the
/// process without a checkpoint).
pub fn forward_signals(levels: watch::Sender<Shutdown>) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        let mut escalation = Escalation::default();
        loop {
            let stop = tokio::select! {
                _ = term.recv() => Stop::Terminate("SIGTERM"),
                _ = usr1.recv() => Stop::Warning,
                _ = int.recv() => Stop::Terminate("SIGINT"),
            };
            let name = match stop {
                Stop::Warning => "SIGUSR1",
                Stop::Terminate(name) => name,
            };
            let Some(level) = escalation.on(stop) else {
                tracing::warn!(signal = name, "exiting now");
                std::process::exit(143);
            };
            let already = *levels.borrow();
            if level == already {
                tracing::info!(
                    signal = name,
                    "already checkpointing the running jobs and giving them back"
                );
                continue;
            }
            match level {
                Shutdown::Now => tracing::warn!(
                    signal = name,
                    "stopping at once; the running jobs go back from their last checkpoint"
                ),
                _ => tracing::warn!(
                    signal = name,
                    "checkpointing the running jobs at their next step and giving them back (SIGTERM twice stops at once)"
                ),
            }
            let _ = levels.send(level);
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_repeated_termination_escalates() {
        let levels = |stops: &[Stop]| {
            let mut escalation = Escalation::default();
            stops.iter().map(|&s| escalation.on(s)).collect::<Vec<_>>()
        };
        let (term, int) = (Stop::Terminate("SIGTERM"), Stop::Terminate("SIGINT"));
        // Slurm's time limit after its warning: both preempt, neither stops at once.
        assert_eq!(
            levels(&[Stop::Warning, term, Stop::Warning]),
            [Some(Shutdown::Preempt); 3]
        );
        assert_eq!(
            levels(&[term, int, term]),
            [Some(Shutdown::Preempt), Some(Shutdown::Now), None]
        );
        assert_eq!(
            levels(&[Stop::Warning, int, Stop::Warning, int]),
            [
                Some(Shutdown::Preempt),
                Some(Shutdown::Preempt),
                Some(Shutdown::Preempt),
                Some(Shutdown::Now)
            ]
        );
    }
}
