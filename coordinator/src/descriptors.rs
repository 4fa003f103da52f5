//! The connection caps the coordinator serves under: the flags' (`--max-connections`,
//! `--max-connections-per-address`), lowered (both in proportion) where the process's
//! file-descriptor limit (`RLIMIT_NOFILE`) could not hold them beside the coordinator's own
//! files. Past the
//! descriptor limit `accept` fails and the store cannot open a file, so the cap must be met
//! first, by the connections, where a refusal costs nothing.

use std::sync::Arc;

use ltsweep_proto::server::ConnectionCaps;
use tracing::{info, warn};

use crate::limits::Limits;

/// Descriptors kept for the coordinator's own files: SQLite's database, journal and shared
/// memory, checkpoints and models being read or written, the listeners, the log.
const RESERVED: u64 = 256;

/// The caps, after raising the soft descriptor limit toward what they need (never past the
/// hard limit), and a log line of what resulted.
pub(crate) fn connection_caps(limits: &Limits) -> Arc<ConnectionCaps> {
    let asked = limits.max_connections as u64;
    let total = match raise_descriptor_limit(asked.saturating_add(RESERVED)) {
        Some(descriptors) => {
            // A small limit keeps half for the coordinator's files rather than all but 256.
            let reserved = RESERVED.min(descriptors / 2);
            let fits = descriptors.saturating_sub(reserved).max(1);
            if fits < asked {
                warn!(
                    descriptors,
                    "the file-descriptor limit (RLIMIT_NOFILE) holds {fits} connections beside the coordinator's files, fewer than --max-connections {asked}: raise it (LimitNOFILE= in a systemd unit, ulimit -n in a shell)"
                );
            }
            fits.min(asked)
        }
        None => asked,
    };
    // Lowered in all, the cap per address is lowered in proportion: one address must not be
    // able to take every place the descriptors leave.
    let per_address =
        limits.max_connections_per_address as u128 * u128::from(total) / u128::from(asked.max(1));
    let per_address = usize::try_from(per_address.max(1)).unwrap_or(usize::MAX);
    let total = usize::try_from(total).unwrap_or(usize::MAX);
    let caps = ConnectionCaps::new(total, per_address);
    let (total, per_address) = caps.limits();
    info!(
        max_connections = total,
        max_connections_per_address = per_address,
        "connections capped (--max-connections, --max-connections-per-address)"
    );
    caps
}

/// Raises the soft `RLIMIT_NOFILE` to `wanted` where the hard limit allows, and answers the
/// soft limit that holds now; `None` when it cannot be read (or is unlimited).
fn raise_descriptor_limit(wanted: u64) -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the limit into the struct it is given, which lives here.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        warn!(
            error = %std::io::Error::last_os_error(),
            "cannot read the file-descriptor limit (RLIMIT_NOFILE); connections are capped by --max-connections alone"
        );
        return None;
    }
    if limit.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is u64 on Linux, not everywhere
    let (soft, hard) = (limit.rlim_cur as u64, limit.rlim_max as u64);
    let target = wanted.min(hard);
    if soft >= target {
        return Some(soft);
    }
    let raised = libc::rlimit {
        rlim_cur: target as libc::rlim_t,
        rlim_max: limit.rlim_max,
    };
    // SAFETY: setrlimit reads the struct it is given; raising the soft limit up to the hard
    // one needs no privilege.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        Some(target)
    } else {
        Some(soft)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caps_stay_below_the_descriptor_limit() {
        let small = Limits {
            max_connections: 100,
            max_connections_per_address: 500,
            ..Limits::default()
        };
        let (total, per_address) = connection_caps(&small).limits();
        assert!(total <= 100 && total > 0, "{total}");
        assert_eq!(per_address, total, "never more per address than in all");
        let huge = Limits {
            max_connections: usize::MAX / 2,
            ..Limits::default()
        };
        let (total, per_address) = connection_caps(&huge).limits();
        if let Some(descriptors) = raise_descriptor_limit(0) {
            let reserved = RESERVED.min(descriptors / 2);
            assert!(
                total as u64 <= descriptors - reserved,
                "{total} of {descriptors}"
            );
            assert!(per_address < total, "one address never takes every place");
        }
    }
}
