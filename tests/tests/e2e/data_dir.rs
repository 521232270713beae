//! The data dir's modes (issue 13, item 2): a directory other users can
//! reach is refused at start with one line saying why and how to fix it,
//! and everything the server creates in its data dir is private (0700
//! directories, 0600 files) whatever the umask it was started with.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use crate::util::{Server, TokenCall, expect_refresh_token};

/// `mkdir -m 755 DIR` (systemd's `StateDirectory=`, most packages): the
/// server refuses it, creates nothing in it, and says `chmod 700`.
#[tokio::test]
async fn a_data_dir_other_users_can_read_is_refused() {
    let parent = crate::util::private_tempdir();
    let dir = parent.path().join("state");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Server::builder().data_dir(&dir).run_expecting_exit();
    assert!(!out.status.success(), "a 0755 data dir must be refused: {}", out.stderr);
    assert!(!out.stdout.contains("listening on"), "it must not listen: {}", out.stdout);
    let lines = out.stderr_lines();
    assert_eq!(lines.len(), 1, "one line on stderr: {:?}", out.stderr);
    assert!(lines[0].contains("0755") && lines[0].contains(&format!("chmod 700 {}", dir.display())), "{}", lines[0]);
    let created: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(created.is_empty(), "nothing is created in a refused data dir: {created:?}");

    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let server = Server::builder().data_dir(&dir).start();
    let client = server.create_client("after chmod", &[]);
    let call = TokenCall::new().basic_creds(&client).q("grant_type", "client_credentials");
    expect_refresh_token(&call.send(&server).await, "after chmod 700");
}

/// Every directory and file the server creates (database, journal, lock,
/// socket) is private, although the test itself runs with a umask of 022.
#[tokio::test]
async fn everything_in_the_data_dir_is_private() {
    let parent = crate::util::private_tempdir();
    let dir = parent.path().join("fresh");
    let mut server = Server::builder().data_dir(&dir).start();
    let client = server.create_client("modes", &[]);
    let call = TokenCall::new().basic_creds(&client).q("grant_type", "client_credentials");
    expect_refresh_token(&call.send(&server).await, "a token, so the journal is written");
    let mut loose = Vec::new();
    walk(&dir, &mut loose);
    server.terminate();
    walk(&dir, &mut loose);
    assert!(loose.is_empty(), "entries other users can reach: {loose:?}");
}

fn walk(dir: &Path, loose: &mut Vec<String>) {
    // The running server may remove an entry between listing and reading it.
    let Ok(meta) = std::fs::metadata(dir) else { return };
    let mode = meta.permissions().mode() & 0o777;
    if mode != 0o700 {
        loose.push(format!("{} {mode:o}", dir.display()));
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            walk(&entry.path(), loose);
        } else {
            let mode = meta.permissions().mode() & 0o777;
            if mode != 0o600 {
                loose.push(format!("{} {mode:o}", entry.path().display()));
            }
        }
    }
}
