//! A warm start with a head start: the host's `cargo build` for the project the last session of
//! the same command ran begins at once. When a file that project was read from changed, `cargo
//! metadata` says meanwhile what the project is now: each takes about as long as the other when
//! nothing changed (the medium fixture: 126 and 124 ms), so the start waits for one of them
//! instead of both in turn. When none changed, the project is known, and the build starts before
//! the rest of the session is set up (its record, its state, the file watcher).
//!
//! The build is taken only when the project `cargo metadata` reads is the one it was started
//! for; otherwise it is stopped unseen and the start goes on as a cold one would. Before it
//! starts, the session lock of that project is taken and its sources are read into the
//! snapshot, as the start does before any host build.

use std::path::Path;

use crate::build::host::{BuildOptions, EarlyBuild};
use crate::control::SessionLock;
use crate::project::Project;

use super::files::Snapshot;

/// A host build started before the project was confirmed, with the lock and the snapshot
/// taken for it.
#[derive(Debug)]
pub(super) struct HeadStart {
    /// The session lock of the project it was started for.
    pub(super) lock: SessionLock,
    /// The sources as they were before the build read them.
    pub(super) snapshot: Snapshot,
    /// The build.
    pub(super) build: EarlyBuild,
}

impl HeadStart {
    /// Starts the host build of `cached` (the project [`Project::cached`] recorded) with
    /// `options`, recording `control_socket` in its lock; `None` when anything stands in the
    /// way (another session holds the lock, the agent or cargo cannot be started): the start
    /// then goes the usual way, which reports the cause.
    pub(super) fn start(
        mut cached: Project,
        options: &BuildOptions,
        control_socket: &Path,
    ) -> Option<HeadStart> {
        let lock = crate::control::lock(&cached, control_socket).ok()?;
        if !cached.has_runtime {
            cached.agent_library =
                Some(crate::build::agent::library(&cached.cargo, &cached.target_dir).ok()?);
        }
        let snapshot = Snapshot::take(&cached);
        let build = EarlyBuild::start(cached, options).ok()?;
        Some(HeadStart {
            lock,
            snapshot,
            build,
        })
    }

    /// `self` when it was started for `project` (as [`Project::load`] read it); else stops its
    /// build, shows nothing of it, and releases its lock.
    pub(super) fn confirm(self, project: &Project) -> Option<HeadStart> {
        if self.build.project().same_program(project) {
            crate::output::detail(
                "Reusing",
                "the last session's project (confirmed by `cargo metadata`): its host build \
                 started with `cargo metadata`",
            );
            return Some(self);
        }
        crate::output::detail(
            "Discarding",
            "the host build started for the last session's project: the project changed",
        );
        self.build.abandon();
        None
    }

    /// The agent library the build linked, for a project without the runtime.
    pub(super) fn agent_library(&self) -> Option<std::path::PathBuf> {
        self.build.project().agent_library.clone()
    }
}
