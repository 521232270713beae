use super::*;

fn cli(args: &[&str]) -> Cli {
    let mut argv = vec!["tessera-server"];
    argv.extend_from_slice(args);
    Cli::try_parse_from(argv).expect("arguments parse")
}

fn file(toml_text: &str) -> FileConfig {
    toml::from_str(toml_text).expect("valid toml")
}

#[test]
fn defaults_need_nothing() {
    let config = Config::merge(cli(&[]), FileConfig::default()).expect("defaults are valid");
    assert_eq!(config.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
    assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
    assert_eq!(config.access_token_ttl, 300);
    assert_eq!(config.refresh_token_ttl, 2_592_000);
    assert_eq!(config.refresh_reuse_grace, 0);
    assert_eq!(config.max_families_per_client, 1000);
    assert!(config.allow_query_credentials);
    assert_eq!(config.signing_alg, Algorithm::ES256);
    assert_eq!(config.limits, Limits::default());
}

#[test]
fn flags_override_the_file() {
    let config = Config::merge(
        cli(&["--access-token-ttl", "60", "--signing-alg", "EdDSA"]),
        file("access_token_ttl = 120\nrefresh_token_ttl = 3600\n[signing]\nalg = \"ES256\"\n"),
    )
    .expect("valid");
    assert_eq!(config.access_token_ttl, 60);
    assert_eq!(config.refresh_token_ttl, 3600);
    assert_eq!(config.signing_alg, Algorithm::EdDSA);
}

#[test]
fn file_values_apply_when_no_flag_is_given() {
    let config = Config::merge(
        cli(&[]),
        file("listen = \"127.0.0.1:0\"\nallow_query_credentials = false\n[limits]\nmax_params = 8\n"),
    )
    .expect("valid");
    assert_eq!(config.listen.port(), 0);
    assert!(!config.allow_query_credentials);
    assert_eq!(config.limits.max_params, 8);
}

#[test]
fn the_family_cap_comes_from_the_flag_or_the_file() {
    let config = Config::merge(
        cli(&[]),
        file(
            "max_families_per_client = 5
",
        ),
    )
    .expect("valid");
    assert_eq!(config.max_families_per_client, 5);
    let config = Config::merge(
        cli(&["--max-families-per-client", "7"]),
        file(
            "max_families_per_client = 5
",
        ),
    )
    .expect("valid");
    assert_eq!(config.max_families_per_client, 7);
}

#[test]
fn unknown_file_keys_are_refused() {
    assert!(toml::from_str::<FileConfig>("acess_token_ttl = 5").is_err());
    assert!(toml::from_str::<FileConfig>("[signing]\nalgo = \"ES256\"").is_err());
}

#[test]
fn out_of_range_values_are_refused_with_one_line() {
    for args in [
        &["--access-token-ttl", "0"][..],
        &["--refresh-token-ttl", "0"],
        &["--max-families-per-client", "0"],
        &["--max-header-bytes", "100"],
        &["--issuer", "ftp://example"],
        &["--issuer", "https://example/?q=1"],
        &["--jwks-max-age", "0"],
        &["--signing-rotate-every", "299"],
        &["--jwks-max-age", "60", "--signing-rotate-every", "59"],
        &["--purge-interval", "0"],
    ] {
        let err = Config::merge(cli(args), FileConfig::default()).expect_err("must be refused");
        assert!(!err.to_string().contains('\n'), "{args:?}: {err}");
    }
}

#[test]
fn key_lifecycle_settings_come_from_flags_or_the_signing_section() {
    let defaults = Config::merge(cli(&[]), FileConfig::default()).unwrap();
    assert_eq!((defaults.signing_rotate_every, defaults.jwks_max_age), (30 * 24 * 3600, 300));
    assert_eq!(defaults.key_encryption_key, None);
    let config = Config::merge(
        cli(&["--signing-alg", "RS256", "--jwks-max-age", "60"]),
        file(
            "[signing]
rotate_every = 86400
jwks_max_age = 120
key_encryption_key_file = \"/k\"\n",
        ),
    )
    .unwrap();
    assert_eq!(config.signing_alg, Algorithm::RS256, "RS256 is accepted");
    assert_eq!((config.signing_rotate_every, config.jwks_max_age), (86_400, 60));
    assert_eq!(config.key_encryption_key, Some(KekSource::File(PathBuf::from("/k"))));
    assert!(!format!("{:?}", KekSource::Env("c2VjcmV0".into())).contains("c2VjcmV0"), "the key is never printed");
}

#[test]
fn export_jwks_is_a_subcommand_taking_the_data_dir_after_it() {
    let parsed = cli(&["export-jwks", "--data-dir", "/d"]);
    assert_eq!(parsed.command, Some(ServerCommand::ExportJwks));
    assert_eq!(parsed.data_dir, Some(PathBuf::from("/d")));
}

#[test]
fn bad_algorithm_in_file_is_refused() {
    let err = Config::merge(cli(&[]), file("[signing]\nalg = \"HS256\"\n")).expect_err("refused");
    assert!(err.to_string().contains("signing.alg"), "{err}");
}

#[test]
fn file_errors_name_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tessera.toml");
    std::fs::write(&path, "listen = 12\n").expect("write");
    let err = read_file(&path).expect_err("wrong type");
    assert!(err.to_string().contains("tessera.toml"), "{err}");
    assert!(!err.to_string().contains('\n'), "{err}");
}

#[test]
fn hardening_settings_from_flags_and_file() {
    let config = Config::merge(
        cli(&["--max-param-bytes", "512", "--rate-limit-address-burst", "3"]),
        file(
            "metrics = false\n[limits]\nmax_headers = 20\nidle_timeout = 2\n[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n\
             [rate_limit]\nenabled = true\naddress_burst = 9\nclient_per_minute = 7\nmax_tracked = 100\n",
        ),
    )
    .expect("valid");
    assert_eq!(config.limits.max_param_bytes, 512);
    assert_eq!(config.limits.max_headers, 20);
    assert_eq!(config.limits.idle_timeout, Duration::from_secs(2));
    assert_eq!(config.tls, Some(TlsFiles { cert: "c.pem".into(), key: "k.pem".into() }));
    assert_eq!(config.rate_limit.address_burst, 3, "the flag beats the file");
    assert_eq!(config.rate_limit.client_per_minute, 7);
    assert_eq!(config.rate_limit.max_tracked, 100);
    assert!(!config.metrics);
    let defaults = Config::merge(cli(&[]), FileConfig::default()).expect("defaults");
    assert_eq!(defaults.tls, None);
    assert!(defaults.metrics && defaults.rate_limit.enabled);
}

#[test]
fn hardening_values_out_of_range_are_refused() {
    for args in [
        &["--tls-cert", "c.pem"][..],
        &["--tls-key", "k.pem"],
        &["--idle-timeout", "0"],
        &["--idle-timeout", "11"],
        &["--max-headers", "2"],
        &["--max-param-bytes", "10"],
        &["--rate-limit-address-burst", "0"],
        &["--rate-limit-client-per-minute", "0"],
        &["--rate-limit-max-tracked", "1"],
    ] {
        let err = Config::merge(cli(args), FileConfig::default()).expect_err("must be refused");
        assert!(!err.to_string().contains('\n'), "{args:?}: {err}");
    }
}

#[test]
fn storage_comes_from_flag_or_file_and_never_prints_its_url() {
    let config = Config::merge(cli(&[]), FileConfig::default()).expect("valid");
    assert_eq!(config.storage, Storage::Sled);
    let url = "postgres://tessera:hunter2@127.0.0.1:5432/tessera";
    let config = Config::merge(cli(&["--storage", url]), file("storage = \"sled\"\n")).expect("valid");
    assert_eq!(config.storage, Storage::Postgres(url.into()));
    assert!(!format!("{config:?}").contains("hunter2"), "the password is never printed");
    let config = Config::merge(cli(&[]), file("storage = \"postgresql://h/db\"\n")).expect("valid");
    assert_eq!(config.storage, Storage::Postgres("postgresql://h/db".into()));
    let error = Config::merge(cli(&["--storage", "mysql://h/db"]), FileConfig::default()).unwrap_err();
    assert!(error.to_string().contains("storage must be `sled` or a postgres:// URL"), "{error}");
}

#[test]
fn migrate_storage_takes_a_source_dir_and_a_target_url() {
    let parsed = cli(&["migrate-storage", "--from", "/d", "--to", "postgres://h/db"]);
    assert_eq!(
        parsed.command,
        Some(ServerCommand::MigrateStorage {
            from: PathBuf::from("/d"),
            to: Some("postgres://h/db".into()),
            to_file: None
        })
    );
    let parsed = cli(&["migrate-storage", "--from", "/d", "--to-file", "/run/secrets/pg"]);
    assert_eq!(
        parsed.command,
        Some(ServerCommand::MigrateStorage {
            from: PathBuf::from("/d"),
            to: None,
            to_file: Some(PathBuf::from("/run/secrets/pg"))
        })
    );
}

#[test]
fn storage_url_from_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("storage");
    let url = "postgres://tessera:hunter2@127.0.0.1:5432/tessera";
    std::fs::write(&path, format!("\n{url}\n")).expect("write");
    let path_text = path.to_str().expect("utf-8");
    let config = Config::merge(cli(&["--storage-file", path_text]), FileConfig::default()).expect("valid");
    assert_eq!(config.storage, Storage::Postgres(url.into()));
    let config = Config::merge(cli(&[]), file(&format!("storage_file = \"{path_text}\"\n"))).expect("valid");
    assert_eq!(config.storage, Storage::Postgres(url.into()));
    let both = file(&format!("storage = \"sled\"\nstorage_file = \"{path_text}\"\n"));
    assert!(Config::merge(cli(&[]), both).is_err(), "storage and storage_file together are refused");
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").expect("write");
    let err = Config::merge(cli(&["--storage-file", empty.to_str().expect("utf-8")]), FileConfig::default())
        .expect_err("an empty file is refused");
    assert!(err.to_string().contains("empty") && !err.to_string().contains('\n'), "{err}");
}

#[test]
fn passwords_on_the_command_line_are_found() {
    let args = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert_eq!(passwords_on_command_line(&args(&["s", "--storage", "postgres://u:pw@h/db"])), vec!["--storage"]);
    assert_eq!(passwords_on_command_line(&args(&["s", "--storage=postgres://h/db?password=pw"])), vec!["--storage"]);
    assert_eq!(
        passwords_on_command_line(&args(&["s", "migrate-storage", "--from", "d", "--to", "postgres://u:p@h/db"])),
        vec!["migrate-storage --to"]
    );
    assert!(passwords_on_command_line(&args(&["s", "--storage", "postgres://u@h:5432/db"])).is_empty());
    assert!(passwords_on_command_line(&args(&["s", "--storage-file", "postgres://u:pw@h/db"])).is_empty());
    assert!(passwords_on_command_line(&args(&["s", "--storage", "sled"])).is_empty());
}

#[test]
fn per_source_connection_cap() {
    let config = Config::merge(cli(&["--max-connections-per-source", "8"]), FileConfig::default()).expect("valid");
    assert_eq!(config.limits.max_connections_per_source, 8);
    let config = Config::merge(cli(&[]), file("[limits]\nmax_connections_per_source = 3\n")).expect("valid");
    assert_eq!(config.limits.max_connections_per_source, 3);
    assert_eq!(Config::merge(cli(&[]), FileConfig::default()).expect("valid").limits.max_connections_per_source, 256);
    assert!(Config::merge(cli(&["--max-connections-per-source", "0"]), FileConfig::default()).is_err());
}

#[test]
fn dependency_logs_are_pinned_unless_asked_for() {
    assert!(!Config::merge(cli(&[]), FileConfig::default()).expect("valid").log_dependencies);
    assert!(
        Config::merge(cli(&["--log-dependencies", "true"]), FileConfig::default()).expect("valid").log_dependencies
    );
    assert!(Config::merge(cli(&[]), file("log_dependencies = true\n")).expect("valid").log_dependencies);
}

#[test]
fn storage_pool_size_from_flag_or_file_within_bounds() {
    let config = Config::merge(cli(&[]), FileConfig::default()).expect("valid");
    assert_eq!(config.storage_pool_size, crate::store::postgres::DEFAULT_POOL_SIZE);
    let config = Config::merge(cli(&["--storage-pool-size", "4"]), file("storage_pool_size = 32\n")).expect("valid");
    assert_eq!(config.storage_pool_size, 4, "the flag wins over the file");
    let config = Config::merge(cli(&[]), file("storage_pool_size = 32\n")).expect("valid");
    assert_eq!(config.storage_pool_size, 32);
    for bad in ["0", "1001"] {
        let error = Config::merge(cli(&["--storage-pool-size", bad]), FileConfig::default()).unwrap_err();
        assert!(error.to_string().contains("storage_pool_size must be between 1 and 1000"), "{error}");
    }
}
