use super::*;
use clap::CommandFactory;
use clap::error::ErrorKind;

const ID: &str = "oa2-client-id_zmNtW-D0Toqpz4AZnBLCIlklBrz9ynU-";

fn parse(args: &[&str]) -> Result<Args, clap::Error> {
    Args::try_parse_from(std::iter::once("tessera-admin").chain(args.iter().copied()))
}

#[test]
fn definitions_are_consistent() {
    Args::command().debug_assert();
}

#[test]
fn create_takes_repeated_scopes() {
    let args = parse(&[
        "clients",
        "create",
        "--name",
        "billing",
        "--scope",
        "read",
        "--scope",
        "write",
        "--no-refresh",
        "--json",
    ])
    .unwrap();
    let Command::Clients(ClientsCommand::Create { name, scopes, no_refresh, json, .. }) = args.command.unwrap() else {
        panic!("unexpected command")
    };
    assert_eq!(name, "billing");
    assert_eq!(scopes, ["read", "write"]);
    assert!(no_refresh && json);
}

#[test]
fn create_defaults_to_refresh_tokens_and_no_scopes() {
    let args = parse(&["clients", "create", "--name", "x"]).unwrap();
    let Command::Clients(ClientsCommand::Create { scopes, no_refresh, json, .. }) = args.command.unwrap() else {
        panic!("unexpected command")
    };
    assert!(scopes.is_empty() && !no_refresh && !json);
}

#[test]
fn create_takes_a_token_lifetime_and_repeated_audiences_in_order() {
    let args = parse(&[
        "clients",
        "create",
        "--name",
        "x",
        "--access-token-ttl",
        "60",
        "--audience",
        "https://b.test",
        "--audience",
        "https://a.test",
    ])
    .unwrap();
    let Command::Clients(ClientsCommand::Create { access_token_ttl, audiences, .. }) = args.command.unwrap() else {
        panic!("unexpected command")
    };
    assert_eq!(access_token_ttl, Some(60));
    assert_eq!(audiences, ["https://b.test", "https://a.test"]);
    let err = parse(&["clients", "create", "--name", "x", "--access-token-ttl", "soon"]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ValueValidation);
}

#[test]
fn create_takes_require_dpop() {
    let require = |args: &[&str]| match parse(args).unwrap().command.unwrap() {
        Command::Clients(ClientsCommand::Create { require_dpop, .. }) => require_dpop,
        other => panic!("{other:?}"),
    };
    assert!(require(&["clients", "create", "--name", "x", "--require-dpop"]));
    assert!(!require(&["clients", "create", "--name", "x"]));
}

#[test]
fn create_requires_a_name() {
    let err = parse(&["clients", "create"]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
}

#[test]
fn scopes_are_single_rfc6749_words() {
    for bad in ["", "read write", "a\"b", "a\\b", "é"] {
        let err = parse(&["clients", "create", "--name", "x", "--scope", bad]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ValueValidation, "{bad:?}");
    }
    assert!(parse(&["clients", "create", "--name", "x", "--scope", "api:read/v1"]).is_ok());
}

#[test]
fn rotate_secret_grace_defaults_to_zero() {
    let args = parse(&["clients", "rotate-secret", ID]).unwrap();
    assert!(matches!(
        args.command.unwrap(),
        Command::Clients(ClientsCommand::RotateSecret { grace: 0, json: false, .. })
    ));
    let args = parse(&["clients", "rotate-secret", ID, "--grace", "300", "--json"]).unwrap();
    assert!(matches!(
        args.command.unwrap(),
        Command::Clients(ClientsCommand::RotateSecret { grace: 300, json: true, .. })
    ));
    let err = parse(&["clients", "rotate-secret", ID, "--grace", "-1"]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownArgument);
}

#[test]
fn every_contract_command_parses() {
    for args in [
        &["clients", "list"][..],
        &["clients", "list", "--json"],
        &["clients", "show", ID],
        &["clients", "show", ID, "--json"],
        &["clients", "revoke", ID],
        &["clients", "delete", ID],
        &["keys", "list"],
        &["keys", "list", "--json"],
        &["tokens", "revoke-family", "--client", ID],
    ] {
        parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    }
}

#[test]
fn revoke_family_needs_the_client_flag() {
    let args = parse(&["tokens", "revoke-family", "--client", ID]).unwrap();
    assert!(matches!(
        args.command.unwrap(),
        Command::Tokens(TokensCommand::RevokeFamily { ref client_id }) if client_id == ID
    ));
    assert!(parse(&["tokens", "revoke-family", ID]).is_err());
}

#[test]
fn verify_defaults_to_the_default_server_jwks() {
    let args = parse(&["verify", "a.b.c"]).unwrap();
    let Some(Command::Verify(verify)) = args.command else { panic!("a verify command") };
    assert_eq!(verify.token, "a.b.c");
    assert_eq!(verify.jwks, "http://127.0.0.1:8080/.well-known/jwks.json");
    assert_eq!((verify.issuer, verify.audience, verify.json), (None, None, false));
    let args = parse(&["verify", "-", "--jwks", "keys.json", "--issuer", "https://a", "--audience", "b", "--json"]);
    assert!(args.is_ok());
    assert!(parse(&["verify"]).is_err(), "the token is required");
}

#[test]
fn no_subcommand_means_the_console() {
    assert!(parse(&[]).unwrap().command.is_none());
    let args = parse(&["--data-dir", "/srv/tessera"]).unwrap();
    assert!(args.command.is_none());
    assert_eq!(args.global.socket_path(), PathBuf::from("/srv/tessera/admin.sock"));
}

#[test]
fn audit_and_reactivate_parse() {
    assert!(matches!(
        parse(&["audit"]).unwrap().command,
        Some(Command::Audit { json: false, follow: false, last: 100 })
    ));
    assert!(matches!(
        parse(&["audit", "--json", "--follow", "--last", "5"]).unwrap().command,
        Some(Command::Audit { json: true, follow: true, last: 5 })
    ));
    assert!(matches!(
        parse(&["clients", "reactivate", "x"]).unwrap().command,
        Some(Command::Clients(ClientsCommand::Reactivate { .. }))
    ));
}

#[test]
fn keys_rotate_and_import_parse() {
    let args = parse(&["keys", "rotate"]).unwrap();
    assert!(matches!(args.command, Some(Command::Keys(KeysCommand::Rotate { now: false, json: false }))));
    let args = parse(&["keys", "rotate", "--now"]).unwrap();
    assert!(matches!(args.command, Some(Command::Keys(KeysCommand::Rotate { now: true, json: false }))));
    // A base64url kid may start with '-': it is still the kid, not an option.
    let args = parse(&["keys", "revoke", "-O7YSRkiWbVbembzI_IWn4Q5KJsCS3-ima3tAQ3ijA"]).unwrap();
    assert!(matches!(
        args.command,
        Some(Command::Keys(KeysCommand::Revoke { ref kid, json: false })) if kid == "-O7YSRkiWbVbembzI_IWn4Q5KJsCS3-ima3tAQ3ijA"
    ));
    let args = parse(&["keys", "revoke", "abc", "--json"]).unwrap();
    assert!(matches!(args.command, Some(Command::Keys(KeysCommand::Revoke { json: true, .. }))));
    let args = parse(&["keys", "import", "--pem", "k.pem", "--json"]).unwrap();
    assert!(
        matches!(args.command, Some(Command::Keys(KeysCommand::Import { ref pem, json: true })) if pem.as_os_str() == "k.pem")
    );
    assert!(parse(&["keys", "import"]).is_err(), "--pem is required");
    let args = parse(&["clients", "rotate-secret", ID, "--grace", "60", "--secret-ttl", "3600"]).unwrap();
    assert!(matches!(
        args.command,
        Some(Command::Clients(ClientsCommand::RotateSecret { grace: 60, secret_ttl: Some(3600), .. }))
    ));
    assert!(parse(&["clients", "create", "--name", "n", "--secret-ttl", "-1"]).is_err());
}

#[test]
fn global_options_come_before_the_subcommand() {
    let args = parse(&["--data-dir", "/srv/tessera", "keys", "list"]).unwrap();
    assert_eq!(args.global.socket_path(), PathBuf::from("/srv/tessera/admin.sock"));
    assert!(parse(&["keys", "list", "--data-dir", "/srv/tessera"]).is_err());
}

#[test]
fn socket_overrides_data_dir() {
    let args = parse(&["--data-dir", "/srv/tessera", "--socket", "/run/t.sock", "keys", "list"]).unwrap();
    assert_eq!(args.global.socket_path(), PathBuf::from("/run/t.sock"));
}

#[test]
fn socket_resolution() {
    assert_eq!(resolve_socket(Path::new(DEFAULT_DATA_DIR), None), PathBuf::from("./tessera-data/admin.sock"));
    assert_eq!(resolve_socket(Path::new("d"), Some(Path::new("/x.sock"))), PathBuf::from("/x.sock"));
}
