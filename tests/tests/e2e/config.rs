//! Configuration: the TOML file, `TESSERA_*` environment variables, flags,
//! and what an invalid configuration does (non-zero exit, one stderr line).

use tessera_shared::admin::ClientCredentials;

use crate::util::{Cases, Server, TokenCall, expect_error, expect_token, jwt_parts};

fn cc(client: &ClientCredentials) -> TokenCall {
    TokenCall::new().basic_creds(client).q("grant_type", "client_credentials")
}

fn write_config(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("tessera.toml");
    std::fs::write(&path, text).expect("write the config file");
    path.to_string_lossy().into_owned()
}

/// `--config FILE` with `listen`, `access_token_ttl` and `[signing] alg`.
#[tokio::test]
async fn config_file_sets_listen_ttl_and_alg() {
    let dir = crate::util::private_tempdir();
    let file = write_config(&dir, "listen = \"127.0.0.1:0\"\naccess_token_ttl = 120\n\n[signing]\nalg = \"EdDSA\"\n");
    let server = Server::builder().without_listen_flag().args(&["--config", &file]).start();
    let client = server.create_client("config", &[]);
    let token = expect_token(&cc(&client).send(&server).await, "client_credentials");
    assert_eq!(token.expires_in, 120, "access_token_ttl from the file");
    let (header, _) = jwt_parts(&token.access_token);
    assert_eq!(header["alg"], "EdDSA", "signing.alg from the file");
}

/// `TESSERA_LISTEN`, `TESSERA_ACCESS_TOKEN_TTL`, `TESSERA_AUDIENCE`,
/// `TESSERA_ALLOW_QUERY_CREDENTIALS`.
#[tokio::test]
async fn environment_variables_are_honoured() {
    let server = Server::builder()
        .without_listen_flag()
        .env("TESSERA_LISTEN", "127.0.0.1:0")
        .env("TESSERA_ACCESS_TOKEN_TTL", "90")
        .env("TESSERA_AUDIENCE", "api://from-env")
        .env("TESSERA_ALLOW_QUERY_CREDENTIALS", "false")
        .start();
    let client = server.create_client("env", &[]);
    let token = expect_token(&cc(&client).send(&server).await, "client_credentials");
    assert_eq!(token.expires_in, 90, "TESSERA_ACCESS_TOKEN_TTL");
    assert_eq!(jwt_parts(&token.access_token).1["aud"], "api://from-env", "TESSERA_AUDIENCE");
    let resp = TokenCall::new().q("grant_type", "client_credentials").query_creds(&client).send(&server).await;
    expect_error(&resp, 400, "invalid_request", "TESSERA_ALLOW_QUERY_CREDENTIALS=false");
}

/// A flag beats the environment variable of the same setting.
#[tokio::test]
async fn flag_overrides_environment() {
    let server = Server::builder().env("TESSERA_ACCESS_TOKEN_TTL", "90").args(&["--access-token-ttl", "45"]).start();
    let client = server.create_client("precedence", &[]);
    let token = expect_token(&cc(&client).send(&server).await, "client_credentials");
    assert_eq!(token.expires_in, 45);
}

/// Every invalid configuration: non-zero exit, exactly one line on stderr,
/// never `listening on`.
#[tokio::test]
async fn invalid_configuration_fails_with_one_line() {
    let dir = crate::util::private_tempdir();
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write the config file");
        path.to_string_lossy().into_owned()
    };
    let unknown_key = file("unknown.toml", "access_token_ttl = 300\nno_such_key = 1\n");
    let unknown_nested = file("nested.toml", "[signing]\nalg = \"ES256\"\ncurve = \"P-384\"\n");
    let wrong_type = file("type.toml", "access_token_ttl = \"soon\"\n");
    let not_toml = file("garbage.toml", "this is = = not toml [\n");
    let bad_alg = file("alg.toml", "[signing]\nalg = \"HS256\"\n");
    let missing = dir.path().join("missing.toml").to_string_lossy().into_owned();

    type Case<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, &'a str)>);
    let cases: Vec<Case<'_>> = vec![
        ("unknown key in the file", vec!["--config", &unknown_key], vec![]),
        ("unknown key in [signing]", vec!["--config", &unknown_nested], vec![]),
        ("wrong value type in the file", vec!["--config", &wrong_type], vec![]),
        ("not TOML", vec!["--config", &not_toml], vec![]),
        ("HS256 in the file", vec!["--config", &bad_alg], vec![]),
        ("missing config file", vec!["--config", &missing], vec![]),
        ("--signing-alg HS256", vec!["--signing-alg", "HS256"], vec![]),
        ("--access-token-ttl abc", vec!["--access-token-ttl", "abc"], vec![]),
        ("--log-format yaml", vec!["--log-format", "yaml"], vec![]),
        ("--allow-query-credentials maybe", vec!["--allow-query-credentials", "maybe"], vec![]),
        ("unknown flag", vec!["--no-such-flag"], vec![]),
        ("TESSERA_ACCESS_TOKEN_TTL=abc", vec![], vec![("TESSERA_ACCESS_TOKEN_TTL", "abc")]),
    ];
    let mut table = Cases::new();
    for (name, args, envs) in cases {
        let mut builder = Server::builder().args(&args);
        for (k, v) in envs {
            builder = builder.env(k, v);
        }
        let out = builder.run_expecting_exit();
        let lines = out.stderr_lines();
        let outcome = if out.status.success() {
            Err(format!("exited with success; stderr {:?}", out.stderr))
        } else if out.stdout.contains("listening on") {
            Err(format!("printed `listening on`: {:?}", out.stdout))
        } else if lines.len() != 1 {
            Err(format!("{} stderr lines, not 1: {:?}", lines.len(), out.stderr))
        } else {
            Ok(())
        };
        table.check(name, outcome);
    }

    // An address that cannot be bound is also a configuration error.
    let out = Server::builder().without_listen_flag().args(&["--listen", "not-an-address"]).run_expecting_exit();
    let outcome = if !out.status.success() && out.stderr_lines().len() == 1 {
        Ok(())
    } else {
        Err(format!("{}: {:?}", out.status, out.stderr))
    };
    table.check("--listen not-an-address", outcome);
    table.finish();
}

/// `--storage-file FILE` reads the storage setting from a file (issue 13,
/// item 8), so a database password need not be on the command line.
#[tokio::test]
async fn storage_setting_from_a_file() {
    let dir = crate::util::private_tempdir();
    let path = dir.path().join("storage");
    std::fs::write(&path, "sled\n").expect("write the storage file");
    let server = Server::builder().args(&["--storage-file", &path.to_string_lossy()]).start();
    let client = server.create_client("storage file", &[]);
    expect_token(&cc(&client).send(&server).await, "client_credentials with --storage-file");

    let missing = dir.path().join("missing").to_string_lossy().into_owned();
    let out = Server::builder().args(&["--storage-file", &missing]).run_expecting_exit();
    assert!(!out.status.success() && out.stderr_lines().len() == 1, "{}: {:?}", out.status, out.stderr);
    assert!(out.stderr.contains("missing"), "the message names the file: {:?}", out.stderr);
}

/// A database password on the command line shows in `ps`: the server warns
/// at start, naming the option and never the password (issue 13, item 8).
#[tokio::test]
async fn a_password_on_the_command_line_is_warned_about() {
    let password = "hunter2CmdlinePassword";
    // Nothing listens on port 1: the server warns, then fails to connect.
    let url = format!("postgres://tessera:{password}@127.0.0.1:1/tessera?connect_timeout=2");
    let out = Server::builder().args(&["--storage", &url]).run_expecting_exit();
    assert!(!out.status.success(), "nothing to connect to: {:?}", out.stderr);
    let warning = out.stderr.lines().find(|line| line.contains("command line")).unwrap_or_else(|| {
        panic!("no warning about the command line: {:?}", out.stderr);
    });
    assert!(warning.contains("WARN") && warning.contains("--storage-file"), "{warning}");
    assert!(!out.stderr.contains(password), "the password itself is never printed: {:?}", out.stderr);

    let dir = crate::util::private_tempdir();
    let path = dir.path().join("storage");
    std::fs::write(&path, format!("{url}\n")).expect("write the storage file");
    let out = Server::builder().args(&["--storage-file", &path.to_string_lossy()]).run_expecting_exit();
    assert!(!out.stderr.contains("command line"), "no warning for a file: {:?}", out.stderr);
}
