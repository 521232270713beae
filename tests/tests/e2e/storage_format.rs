//! Storage format 2 (issue 12): a data dir written by a release before it,
//! which kept a record per refresh token, is refused at start with one line
//! naming both formats, and left as it was; a fresh one starts.

use crate::util::{Server, TokenCall, expect_refresh_token};

/// Writes `<data>/db` as a format-1 server left it: a per-token tree, a
/// client and an installation value, and no format marker.
fn write_format_1(data: &std::path::Path) {
    let db = sled::open(data.join("db")).expect("a sled database");
    db.open_tree("refresh_tokens").unwrap().insert([1u8; 32], &[0u8; 8][..]).unwrap();
    db.open_tree("families").unwrap().insert([2u8; 16], &[0u8; 8][..]).unwrap();
    db.open_tree("clients").unwrap().insert("oa2-client-id_old", &b"{}"[..]).unwrap();
    db.open_tree("meta").unwrap().insert("client_secret_key", &[7u8; 32][..]).unwrap();
    db.flush().unwrap();
}

#[tokio::test]
async fn an_old_format_data_dir_is_refused_with_one_line() {
    let parent = crate::util::private_tempdir();
    let data = parent.path().join("data");
    {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new().mode(0o700).create(&data).unwrap();
    }
    write_format_1(&data);
    let out = Server::builder().data_dir(&data).run_expecting_exit();
    assert!(!out.status.success(), "an old data dir must be refused: {}", out.stderr);
    assert!(!out.stdout.contains("listening on"), "it must not listen: {}", out.stdout);
    let lines = out.stderr_lines();
    assert_eq!(lines.len(), 1, "one line on stderr: {:?}", out.stderr);
    assert!(lines[0].contains("storage format 1") && lines[0].contains("needs format 2"), "{}", lines[0]);
    // Nothing was written to it: still format 1, its records intact.
    let db = sled::open(data.join("db")).unwrap();
    assert_eq!(db.open_tree("meta").unwrap().get("storage_format").unwrap(), None);
    assert_eq!(db.open_tree("refresh_tokens").unwrap().len(), 1);
}

#[tokio::test]
async fn a_fresh_data_dir_starts_and_starts_again() {
    let parent = crate::util::private_tempdir();
    let data = parent.path().join("data");
    let mut server = Server::builder().data_dir(&data).start();
    let client = server.create_client("fresh", &[]);
    let call = || TokenCall::new().basic_creds(&client).q("grant_type", "client_credentials");
    let (_, rt) = expect_refresh_token(&call().send(&server).await, "a fresh data dir");
    server.terminate();
    let server = Server::builder().data_dir(&data).start();
    let refresh = TokenCall::new().basic_creds(&client).q("grant_type", "refresh_token").q("refresh_token", &rt);
    expect_refresh_token(&refresh.send(&server).await, "the same data dir, format 2, reopened");
}
