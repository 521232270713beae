//! Tests that need something outside the workspace (tmux, curl, a
//! PostgreSQL server) and what they do without it.
//!
//! Outside CI a missing tool skips the test, and the skip is said on the
//! real stderr, where a reader sees it (the harness captures `eprintln!`,
//! so a skip said that way would look exactly like a pass). In CI, where
//! `.ci/run` installs every tool and sets `TESSERA_REQUIRE_<WHAT>=1`, a
//! missing tool fails the test instead: nothing is skipped there.

use std::io::Write as _;

/// Something a test needs from the machine.
#[derive(Debug, Clone, Copy)]
pub enum Requirement {
    /// The `tmux` command, for the pseudo-terminal console test.
    Tmux,
    /// The `curl` command, for the page's examples as written.
    Curl,
    /// A PostgreSQL server named by `TESSERA_TEST_POSTGRES_URL`.
    Postgres,
}

impl Requirement {
    /// The variable that, set to `1`, turns a skip into a failure.
    pub fn require_var(self) -> &'static str {
        match self {
            Self::Tmux => "TESSERA_REQUIRE_TMUX",
            Self::Curl => "TESSERA_REQUIRE_CURL",
            Self::Postgres => "TESSERA_REQUIRE_POSTGRES",
        }
    }

    fn required(self) -> bool {
        std::env::var(self.require_var()).is_ok_and(|v| v == "1")
    }
}

/// Called by `test` when `requirement` is missing (`why` says what was
/// looked for): panics if the environment requires it, and otherwise says
/// on the real stderr that `test` is skipped. The caller then returns.
///
/// # Panics
/// When `TESSERA_REQUIRE_<WHAT>=1` is set: a required tool is missing.
pub fn skip_or_fail(requirement: Requirement, test: &str, why: &str) {
    let var = requirement.require_var();
    assert!(!requirement.required(), "{test}: {why}, and {var}=1 forbids skipping it");
    // Written to the stream itself: the harness captures only `eprintln!`.
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why} (set {var}=1 to make this a failure)");
}
