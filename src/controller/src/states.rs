//! The lifecycle of a pipeline version as an explicit state machine.
//!
//! ```text
//!   Replaying ──caught up──▶ CaughtUp ──promote──▶ Active ──newer promoted──▶ Draining
//!       │                       │                    ▲                          │  │
//!       │                       │                    └────────rollback──────────┘  │
//!       └──────────┬────────────┴──────── retire ────────────────────────────────┴─▶ Retired
//!                  └──▶ Failed (cannot compile or install)
//! ```
//! After a restart a version rebuilds its state by replaying; its state is kept
//! (an `Active` version stays active) and readiness is tracked separately.

use serde::{Deserialize, Serialize};

/// Where a version is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionState {
    /// Reading the log from offset 0 towards its end.
    Replaying,
    /// Its frontier has reached the recent log end; ready to be promoted.
    CaughtUp,
    /// Answers queries without `?version=` and feeds the pipeline's changelog topics.
    Active,
    /// Replaced by a newer version; still running, so it can be rolled back to.
    Draining,
    /// Dropped; its dataflow and memory are freed.
    Retired,
    /// Could not run.
    Failed,
}

impl VersionState {
    /// Every state, in lifecycle order (for metrics: one gauge per state).
    pub const ALL: [VersionState; 6] = [
        VersionState::Replaying,
        VersionState::CaughtUp,
        VersionState::Active,
        VersionState::Draining,
        VersionState::Retired,
        VersionState::Failed,
    ];

    /// The state's name as written in the catalog and the API.
    pub fn name(self) -> &'static str {
        match self {
            VersionState::Replaying => "replaying",
            VersionState::CaughtUp => "caught_up",
            VersionState::Active => "active",
            VersionState::Draining => "draining",
            VersionState::Retired => "retired",
            VersionState::Failed => "failed",
        }
    }

    /// Whether the version's dataflow runs in this state.
    pub fn is_running(self) -> bool {
        !matches!(self, VersionState::Retired | VersionState::Failed)
    }

    /// Whether the state machine allows going from `self` to `to`.
    pub fn can_become(self, to: VersionState) -> bool {
        use VersionState::*;
        matches!(
            (self, to),
            (Replaying, CaughtUp)
                | (CaughtUp, Active)
                | (Active, Draining)
                | (Draining, Active)
                | (Replaying | CaughtUp | Draining, Retired)
                | (Replaying | CaughtUp | Active | Draining, Failed)
        )
    }
}

impl std::fmt::Display for VersionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::VersionState::*;

    #[test]
    fn the_lifecycle_allows_only_its_edges() {
        assert!(Replaying.can_become(CaughtUp));
        assert!(CaughtUp.can_become(Active));
        assert!(Active.can_become(Draining));
        assert!(Draining.can_become(Active), "rollback");
        assert!(Draining.can_become(Retired));
        assert!(
            !Active.can_become(Retired),
            "the active version cannot be retired"
        );
        assert!(
            !Replaying.can_become(Active),
            "only a caught-up version is promoted"
        );
        assert!(!Retired.can_become(Active));
    }
}
