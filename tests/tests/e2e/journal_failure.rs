//! A journal segment the server cannot delete after its checkpoint: the
//! server stops taking writes (a 500 `server_error` for the write, 503 from
//! `/healthz`, one log line saying why) instead of deleting later segments
//! around it; the segments stay for the next start, which refuses to start
//! while the undeletable one is unreadable, and, once the operator has
//! removed it, rolls nothing back.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tessera_shared::admin::ClientCredentials;

use crate::util::{Server, TokenCall, expect_error, expect_refresh_token, get};

fn cc(client: &ClientCredentials) -> TokenCall {
    TokenCall::new().basic_creds(client).q("grant_type", "client_credentials")
}

fn refresh(client: &ClientCredentials, rt: &str) -> TokenCall {
    TokenCall::new().basic_creds(client).q("grant_type", "refresh_token").q("refresh_token", rt)
}

/// The journal directory's entries, sorted by name.
fn entries(journal: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> =
        std::fs::read_dir(journal).expect("the journal directory").map(|e| e.expect("an entry").path()).collect();
    paths.sort();
    paths
}

/// The segment is sealed once 30 s old (the default), then checkpointed:
/// the test waits that long, once, for the deletion to fail.
const SEAL_WAIT: Duration = Duration::from_secs(90);

#[tokio::test]
async fn a_failed_segment_deletion_stops_writes_and_a_restart_rolls_nothing_back() {
    let dir = crate::util::private_tempdir();
    let journal = dir.path().join("db.journal");
    // A grace, as in the kill -9 test: a rotation committed as the journal
    // failed may be durable yet unanswered; its client retries the last
    // token it was answered with.
    let grace = ["--refresh-reuse-grace", "60"];
    let mut first = Server::builder().data_dir(dir.path()).args(&grace).start();
    let client = first.create_client("undeletable", &[]);
    let (_, issued) = expect_refresh_token(&cc(&client).send(&first).await, "client_credentials");

    // The segment being written: the writer keeps appending to the file it
    // has open, wherever it is; its name becomes a directory, which no
    // `unlink` removes (root's neither).
    let current = entries(&journal);
    assert_eq!(current.len(), 1, "one segment in a fresh journal: {current:?}");
    let segment = current[0].clone();
    std::fs::rename(&segment, dir.path().join("segment-moved-away")).expect("move the segment out");
    std::fs::create_dir(&segment).expect("a directory in its place");

    // Rotate until the checkpoint of that segment fails and the server
    // refuses the next write.
    let mut answered = vec![issued];
    let deadline = Instant::now() + SEAL_WAIT;
    let refused = loop {
        assert!(Instant::now() < deadline, "no write was refused in {SEAL_WAIT:?}:\n{}", first.stderr_now());
        let resp = refresh(&client, answered.last().expect("a token")).send(&first).await;
        if resp.status != 200 {
            break resp;
        }
        answered.push(expect_refresh_token(&resp, "a rotation before the failure").1);
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    expect_error(&refused, 500, "server_error", "a rotation after the failed deletion");
    assert!(answered.len() >= 3, "rotations went through first: {}", answered.len());
    let log = first.stderr_now();
    assert!(
        log.contains("the storage journal failed; refusing every further write until a restart")
            && log.contains("cannot delete segment"),
        "the log says why writes stopped:\n{log}"
    );

    // Every later write is refused too, of any kind, and the server says
    // it is not healthy.
    expect_error(
        &refresh(&client, answered.last().expect("a token")).send(&first).await,
        500,
        "server_error",
        "the same rotation again",
    );
    expect_error(&cc(&client).send(&first).await, 500, "server_error", "a new family after the failure");
    assert!(!first.admin(&["clients", "create", "--name", "later"]).status.success(), "an admin write is refused");
    let health = get(&first, "/healthz").await;
    assert_eq!(health.status, 503, "healthz after the failure: {}", health.text());
    assert_eq!(health.json().expect("a JSON body")["storage"], "failing");

    // Nothing after the failed segment was deleted: its successor stays.
    let kept = entries(&journal);
    assert!(kept.first() == Some(&segment) && kept.len() >= 2, "the failed segment and every later one: {kept:?}");
    first.kill9();
    drop(first);

    // While the failed segment cannot be read, the server refuses to start
    // and names it, rather than start without it.
    let refused_start = Server::builder().data_dir(dir.path()).args(&grace).run_expecting_exit();
    assert!(!refused_start.status.success(), "the start must fail: {}", refused_start.stderr);
    let name = segment.file_name().and_then(|n| n.to_str()).expect("a segment name");
    assert!(refused_start.stderr.contains(name), "the error names the segment: {}", refused_start.stderr);

    // The operator removes it (its records reached sled's files at the
    // checkpoint, before the deletion failed); the restart replays the
    // later segments and rolls nothing back.
    std::fs::remove_dir(&segment).expect("remove the directory");
    let second = Server::builder().data_dir(dir.path()).args(&grace).start();
    let last = answered.last().expect("a token").clone();
    expect_refresh_token(&refresh(&client, &last).send(&second).await, "the last token answered before the failure");
    second.create_client("after-restart", &[]);
    // A token rotated away before the failure stays rotated away: it is
    // reuse now (which revokes the family, so it goes last).
    let old = &answered[answered.len() - 3];
    expect_error(
        &refresh(&client, old).send(&second).await,
        400,
        "invalid_grant",
        "a token rotated before the failure",
    );
}
