//! Who may make which call: the roles a coordinator's tokens hold, and [`RPC_ROLES`], the one
//! table of the role each RPC of `ltsweep.v1` needs. The coordinator's gRPC gate and every
//! endpoint of its web page read this table; an RPC missing from it is refused to everyone, and
//! a test fails.
//!
//! ```
//! use ltsweep_proto::roles::{Role, Roles, role_of};
//!
//! assert_eq!(role_of("/ltsweep.v1.SweepService/DeleteSweep"), Some(Role::User));
//! assert!(!Roles::WORKER.allows(Role::User));
//! assert!(Roles::USER.allows(Role::Viewer), "a user reads what a viewer reads");
//! ```

use std::fmt;

/// What a token lets its holder do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Take jobs and report on them: register, poll, progress (the heartbeat), checkpoints,
    /// results. Nothing about sweeps.
    Worker,
    /// Read: sweeps, their status and results, workers, the web page and its live events.
    Viewer,
    /// Change sweeps: submit, cancel, retry, delete. A user's token also reads as a viewer's.
    User,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Worker => "worker",
            Role::Viewer => "viewer",
            Role::User => "user",
        }
    }

    /// The coordinator's flag for the token file of this role.
    pub fn token_flag(self) -> &'static str {
        match self {
            Role::Worker => "--worker-token-file",
            Role::Viewer => "--viewer-token-file",
            Role::User => "--user-token-file",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The roles one token holds.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Roles(u8);

impl Roles {
    pub const WORKER: Roles = Roles(1);
    pub const VIEWER: Roles = Roles(2);
    /// A user's token: changes, and the reads a viewer makes.
    pub const USER: Roles = Roles(2 | 4);
    /// One token for everything: a coordinator with `--token-file`, or none at all.
    pub const ALL: Roles = Roles(1 | 2 | 4);

    fn bit(role: Role) -> u8 {
        match role {
            Role::Worker => 1,
            Role::Viewer => 2,
            Role::User => 4,
        }
    }

    /// Whether a call that needs `role` is allowed.
    pub fn allows(self, role: Role) -> bool {
        self.0 & Self::bit(role) != 0
    }
}

impl fmt::Debug for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let held: Vec<&str> = [Role::Worker, Role::Viewer, Role::User]
            .into_iter()
            .filter(|&role| self.allows(role))
            .map(Role::as_str)
            .collect();
        write!(f, "Roles({})", held.join("+"))
    }
}

/// Every RPC of `ltsweep.v1` and the role it needs. A new RPC gets its line here.
pub const RPC_ROLES: [(&str, Role); 20] = [
    // What a worker does with the jobs it holds, and nothing else.
    ("/ltsweep.v1.WorkerService/RegisterWorker", Role::Worker),
    ("/ltsweep.v1.WorkerService/PollWork", Role::Worker),
    ("/ltsweep.v1.WorkerService/ReportProgress", Role::Worker),
    ("/ltsweep.v1.WorkerService/UploadCheckpoint", Role::Worker),
    ("/ltsweep.v1.WorkerService/DownloadCheckpoint", Role::Worker),
    ("/ltsweep.v1.WorkerService/CompleteJob", Role::Worker),
    ("/ltsweep.v1.WorkerService/FailJob", Role::Worker),
    ("/ltsweep.v1.WorkerService/ReleaseJob", Role::Worker),
    // A finished job's model goes up; a stage-2 job's stage-1 model comes down.
    ("/ltsweep.v1.WorkerService/UploadModel", Role::Worker),
    ("/ltsweep.v1.WorkerService/DownloadModel", Role::Worker),
    // Reads.
    ("/ltsweep.v1.SweepService/GetSweep", Role::Viewer),
    ("/ltsweep.v1.SweepService/ListSweeps", Role::Viewer),
    ("/ltsweep.v1.SweepService/WatchSweep", Role::Viewer),
    ("/ltsweep.v1.SweepService/ListWorkers", Role::Viewer),
    ("/ltsweep.v1.SweepService/GetResults", Role::Viewer),
    // A kept model is a result, read as the others are (`ltsweep model`).
    ("/ltsweep.v1.SweepService/GetModel", Role::Viewer),
    // Changes to sweeps.
    ("/ltsweep.v1.SweepService/SubmitSweep", Role::User),
    ("/ltsweep.v1.SweepService/CancelSweep", Role::User),
    ("/ltsweep.v1.SweepService/RetryFailed", Role::User),
    ("/ltsweep.v1.SweepService/DeleteSweep", Role::User),
];

/// The role an RPC (by its path, `/package.Service/Method`) needs; `None` for a path not in
/// the table, which no one may call.
pub fn role_of(path: &str) -> Option<Role> {
    RPC_ROLES
        .iter()
        .find(|(rpc, _)| *rpc == path)
        .map(|&(_, role)| role)
}

/// The path of a `SweepService` method, as the table names it.
pub fn sweep_rpc(method: &str) -> String {
    format!("/ltsweep.v1.SweepService/{method}")
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    /// Every method the protocol defines, as `/package.Service/Method`.
    fn methods() -> Vec<String> {
        let set = prost_types::FileDescriptorSet::decode(crate::pb::FILE_DESCRIPTOR_SET).unwrap();
        let mut paths = Vec::new();
        for file in set.file {
            let package = file.package().to_owned();
            for service in &file.service {
                for method in &service.method {
                    paths.push(format!("/{package}.{}/{}", service.name(), method.name()));
                }
            }
        }
        paths
    }

    #[test]
    fn every_rpc_of_the_protocol_has_exactly_one_role() {
        let methods = methods();
        assert!(methods.len() >= 17, "{methods:?}");
        for method in &methods {
            assert!(
                role_of(method).is_some(),
                "{method} is not in roles::RPC_ROLES: give it the role it needs"
            );
        }
        for (path, _) in RPC_ROLES {
            assert!(methods.iter().any(|m| m == path), "{path}: no such RPC");
            let lines = RPC_ROLES.iter().filter(|(p, _)| *p == path).count();
            assert_eq!(lines, 1, "{path} is in the table {lines} times");
        }
    }

    #[test]
    fn workers_cannot_touch_sweeps_and_viewers_only_read() {
        for (path, role) in RPC_ROLES {
            let worker_service = path.starts_with("/ltsweep.v1.WorkerService/");
            assert_eq!(Roles::WORKER.allows(role), worker_service, "{path}");
            assert!(Roles::ALL.allows(role), "{path}");
        }
        for method in ["SubmitSweep", "CancelSweep", "RetryFailed", "DeleteSweep"] {
            let role = role_of(&sweep_rpc(method)).unwrap();
            assert!(!Roles::VIEWER.allows(role), "{method}");
            assert!(Roles::USER.allows(role), "{method}");
        }
        assert_eq!(role_of("/ltsweep.v1.SweepService/Nope"), None);
        assert_eq!(format!("{:?}", Roles::USER), "Roles(viewer+user)");
    }
}
