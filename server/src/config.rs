//! Configuration: command-line flags, `TESSERA_*` environment variables and
//! an optional TOML file, merged in that order of precedence over the
//! defaults, then checked once so that a bad value fails at start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use serde::Deserialize;
use tessera_shared::jwk::Algorithm;

/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "./tessera-data";
/// Default listen address: loopback only, so a first start exposes nothing.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Default period of scheduled signing-key rotation: 30 days.
pub const DEFAULT_ROTATE_EVERY: u64 = 30 * 24 * 3600;
/// Default `max-age` of the JWKS response.
pub const DEFAULT_JWKS_MAX_AGE: u64 = 300;

/// How many refresh-token families one client may hold by default: enough
/// for any integration that keeps its tokens, and a bound on the storage of
/// one that starts a family per request.
pub const DEFAULT_MAX_FAMILIES_PER_CLIENT: usize = 1000;
/// The environment variable that may hold the key-encryption key (base64).
/// No flag carries it: a flag would show in `ps`.
pub const KEK_ENV: &str = "TESSERA_KEY_ENCRYPTION_KEY";

/// `tessera-server`: the Tessera OAuth 2.0 token server.
#[derive(Debug, Parser)]
#[command(name = "tessera-server", version, about, long_about = None)]
pub struct Cli {
    /// What to do instead of serving.
    #[command(subcommand)]
    pub command: Option<ServerCommand>,
    /// TOML configuration file; flags and environment variables override it.
    #[arg(long, env = "TESSERA_CONFIG", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Where the database, the admin socket and the lock file live.
    #[arg(long, env = "TESSERA_DATA_DIR", value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Address to serve HTTP on; port 0 picks a free port.
    #[arg(long, env = "TESSERA_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// The `iss` of every token [default: http://<bound address>].
    #[arg(long, env = "TESSERA_ISSUER", value_name = "URL")]
    pub issuer: Option<String>,
    /// The `aud` of every access token [default: the issuer].
    #[arg(long, env = "TESSERA_AUDIENCE", value_name = "AUD")]
    pub audience: Option<String>,
    /// Access-token lifetime [default: 300].
    #[arg(long, env = "TESSERA_ACCESS_TOKEN_TTL", value_name = "SECONDS")]
    pub access_token_ttl: Option<u64>,
    /// Refresh-token lifetime, renewed by each rotation [default: 2592000, 30 days].
    #[arg(long, env = "TESSERA_REFRESH_TOKEN_TTL", value_name = "SECONDS")]
    pub refresh_token_ttl: Option<u64>,
    /// How long a just-rotated refresh token may be presented again (a lost
    /// response retried) before it counts as theft [default: 0].
    #[arg(long, env = "TESSERA_REFRESH_REUSE_GRACE", value_name = "SECONDS")]
    pub refresh_reuse_grace: Option<u64>,
    /// Refresh-token families one client may hold; starting one more
    /// retires its oldest [default: 1000].
    #[arg(long, env = "TESSERA_MAX_FAMILIES_PER_CLIENT", value_name = "N")]
    pub max_families_per_client: Option<usize>,
    /// Accept client_id/client_secret in the query string, as the Blynk page
    /// does [default: true].
    #[arg(long, env = "TESSERA_ALLOW_QUERY_CREDENTIALS", value_name = "BOOL")]
    pub allow_query_credentials: Option<bool>,
    /// Access-token signature algorithm of new keys: ES256, EdDSA or RS256
    /// [default: ES256]. Changing it takes effect at the next rotation.
    #[arg(long, env = "TESSERA_SIGNING_ALG", value_name = "ALG")]
    pub signing_alg: Option<Algorithm>,
    /// Period of scheduled signing-key rotation [default: 2592000, 30 days].
    #[arg(long, env = "TESSERA_SIGNING_ROTATE_EVERY", value_name = "SECONDS")]
    pub signing_rotate_every: Option<u64>,
    /// How long resource servers may cache the JWKS (its `max-age`); a new
    /// key signs only once it has been published this long [default: 300].
    #[arg(long, env = "TESSERA_JWKS_MAX_AGE", value_name = "SECONDS")]
    pub jwks_max_age: Option<u64>,
    /// File holding the key-encryption key (base64 of 32 bytes) that
    /// encrypts the private signing keys at rest; or set TESSERA_KEY_ENCRYPTION_KEY.
    #[arg(long, env = "TESSERA_KEY_ENCRYPTION_KEY_FILE", value_name = "FILE")]
    pub key_encryption_key_file: Option<PathBuf>,
    /// How often expired refresh tokens are purged [default: 60].
    #[arg(long, env = "TESSERA_PURGE_INTERVAL", value_name = "SECONDS")]
    pub purge_interval: Option<u64>,
    /// Log line format [default: text].
    #[arg(long, env = "TESSERA_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Let TESSERA_LOG decide the level of the HTTP, TLS and PostgreSQL
    /// libraries too; otherwise they log at info at most, because at debug
    /// they write query parameters (key records) [default: false].
    #[arg(long, env = "TESSERA_LOG_DEPENDENCIES", value_name = "BOOL")]
    pub log_dependencies: Option<bool>,
    /// Largest request body accepted [default: 16384].
    #[arg(long, env = "TESSERA_MAX_BODY_BYTES", value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Most parameters a request may carry [default: 64].
    #[arg(long, env = "TESSERA_MAX_PARAMS", value_name = "COUNT")]
    pub max_params: Option<usize>,
    /// Largest request head (request line and headers) accepted, at least 8192 [default: 16384].
    #[arg(long, env = "TESSERA_MAX_HEADER_BYTES", value_name = "BYTES")]
    pub max_header_bytes: Option<usize>,
    /// Time a request has to arrive completely [default: 10].
    #[arg(long, env = "TESSERA_REQUEST_TIMEOUT", value_name = "SECONDS")]
    pub request_timeout: Option<u64>,
    /// Most connections served at once; more wait to be accepted [default: 4096].
    #[arg(long, env = "TESSERA_MAX_CONNECTIONS", value_name = "COUNT")]
    pub max_connections: Option<usize>,
    /// Most connections open at once from one source address (IPv6: one
    /// /64); more are closed at once [default: 256].
    #[arg(long, env = "TESSERA_MAX_CONNECTIONS_PER_SOURCE", value_name = "COUNT")]
    pub max_connections_per_source: Option<usize>,
    /// Longest single parameter (`name=value` as sent, before decoding) [default: 4096].
    #[arg(long, env = "TESSERA_MAX_PARAM_BYTES", value_name = "BYTES")]
    pub max_param_bytes: Option<usize>,
    /// Most header fields a request may have; beyond it, 431 [default: 64].
    #[arg(long, env = "TESSERA_MAX_HEADERS", value_name = "COUNT")]
    pub max_headers: Option<usize>,
    /// How long a kept-alive connection may sit idle between requests, at
    /// most the request timeout [default: 5].
    #[arg(long, env = "TESSERA_IDLE_TIMEOUT", value_name = "SECONDS")]
    pub idle_timeout: Option<u64>,
    /// PEM certificate chain; with --tls-key, the server speaks HTTPS.
    #[arg(long, env = "TESSERA_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of --tls-cert.
    #[arg(long, env = "TESSERA_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Rate-limit failed client authentications [default: true].
    #[arg(long, env = "TESSERA_RATE_LIMIT", value_name = "BOOL")]
    pub rate_limit: Option<bool>,
    /// Failed authentications a source address may make in a burst [default: 20].
    #[arg(long, env = "TESSERA_RATE_LIMIT_ADDRESS_BURST", value_name = "COUNT")]
    pub rate_limit_address_burst: Option<u32>,
    /// Failed authentications a source address earns back per minute [default: 30].
    #[arg(long, env = "TESSERA_RATE_LIMIT_ADDRESS_PER_MINUTE", value_name = "COUNT")]
    pub rate_limit_address_per_minute: Option<u32>,
    /// Failed authentications one client ID may see in a burst [default: 100].
    #[arg(long, env = "TESSERA_RATE_LIMIT_CLIENT_BURST", value_name = "COUNT")]
    pub rate_limit_client_burst: Option<u32>,
    /// Failed authentications one client ID earns back per minute [default: 60].
    #[arg(long, env = "TESSERA_RATE_LIMIT_CLIENT_PER_MINUTE", value_name = "COUNT")]
    pub rate_limit_client_per_minute: Option<u32>,
    /// Most addresses and client IDs the limiter tracks at once [default: 65536].
    #[arg(long, env = "TESSERA_RATE_LIMIT_MAX_TRACKED", value_name = "COUNT")]
    pub rate_limit_max_tracked: Option<usize>,
    /// Serve `GET /metrics` on the public listener [default: true].
    #[arg(long, env = "TESSERA_METRICS", value_name = "BOOL")]
    pub metrics: Option<bool>,
    /// Where the state lives: `postgres://user:password@host:port/db` to
    /// share it between several instances [default: sled in the data dir].
    /// A URL on the command line shows in `ps`: prefer TESSERA_STORAGE or
    /// --storage-file.
    #[arg(long, env = "TESSERA_STORAGE", value_name = "URL")]
    pub storage: Option<String>,
    /// A file holding the --storage value (first line), which keeps a
    /// database password out of the process table.
    #[arg(long, env = "TESSERA_STORAGE_FILE", value_name = "FILE", conflicts_with = "storage")]
    pub storage_file: Option<PathBuf>,
    /// Connections each instance keeps to PostgreSQL, besides the one that
    /// listens for changes [default: 16].
    #[arg(long, env = "TESSERA_STORAGE_POOL_SIZE", value_name = "COUNT")]
    pub storage_pool_size: Option<usize>,
}

/// Subcommands of `tessera-server`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum ServerCommand {
    /// Print the public JWKS of the data dir and exit. Works whether or not a
    /// server runs on it (a running server is asked over its admin socket).
    ExportJwks,
    /// Copy an installation's sled database (clients, refresh-token
    /// families, signing keys, audit trail, deny list) into an empty
    /// PostgreSQL database, then exit. Stop the server on the data dir first.
    MigrateStorage {
        /// The data dir holding the sled database.
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        /// The PostgreSQL database: postgres://user:password@host:port/db.
        /// On the command line it shows in `ps`: prefer TESSERA_MIGRATE_TO
        /// or --to-file.
        #[arg(long, env = "TESSERA_MIGRATE_TO", value_name = "URL", required_unless_present = "to_file")]
        to: Option<String>,
        /// A file holding the --to URL (first line).
        #[arg(long, value_name = "FILE", conflicts_with = "to")]
        to_file: Option<PathBuf>,
    },
    /// Rewrite the sled database of the data dir into a fresh one, giving
    /// the space of purged records back to the file system, then exit.
    /// Stop the server on the data dir first.
    Compact,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object a line.
    Json,
}

/// The TOML file. Unknown keys are an error, so a typo cannot be ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
    issuer: Option<String>,
    audience: Option<String>,
    access_token_ttl: Option<u64>,
    refresh_token_ttl: Option<u64>,
    refresh_reuse_grace: Option<u64>,
    max_families_per_client: Option<usize>,
    allow_query_credentials: Option<bool>,
    purge_interval: Option<u64>,
    log_format: Option<LogFormat>,
    log_dependencies: Option<bool>,
    #[serde(default)]
    signing: SigningSection,
    #[serde(default)]
    limits: LimitsSection,
    #[serde(default)]
    tls: TlsSection,
    #[serde(default)]
    rate_limit: RateLimitSection,
    metrics: Option<bool>,
    storage: Option<String>,
    storage_file: Option<PathBuf>,
    storage_pool_size: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsSection {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitSection {
    enabled: Option<bool>,
    address_burst: Option<u32>,
    address_per_minute: Option<u32>,
    client_burst: Option<u32>,
    client_per_minute: Option<u32>,
    max_tracked: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SigningSection {
    alg: Option<String>,
    rotate_every: Option<u64>,
    jwks_max_age: Option<u64>,
    key_encryption_key_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsSection {
    max_body_bytes: Option<usize>,
    max_params: Option<usize>,
    max_header_bytes: Option<usize>,
    request_timeout: Option<u64>,
    max_connections: Option<usize>,
    max_connections_per_source: Option<usize>,
    max_param_bytes: Option<usize>,
    max_headers: Option<usize>,
    idle_timeout: Option<u64>,
}

/// Bounds on what one request or the whole server may consume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest body; beyond it, 413.
    pub max_body_bytes: usize,
    /// Most parameters (query and body together); beyond it, invalid_request.
    pub max_params: usize,
    /// Largest request head; beyond it, 431.
    pub max_header_bytes: usize,
    /// Time for a request to arrive completely.
    pub request_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// Connections open at once from one source address (IPv6: one /64).
    pub max_connections_per_source: usize,
    /// Longest single parameter as sent; beyond it, invalid_request.
    pub max_param_bytes: usize,
    /// Most header fields; beyond it, 431.
    pub max_headers: usize,
    /// Idle time allowed between requests on a kept-alive connection.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 * 1024,
            max_params: 64,
            max_header_bytes: 16 * 1024,
            request_timeout: Duration::from_secs(10),
            max_connections: 4096,
            max_connections_per_source: 256,
            max_param_bytes: 4096,
            max_headers: 64,
            idle_timeout: Duration::from_secs(5),
        }
    }
}

/// The limiter of failed client authentications (see [`crate::ratelimit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Whether failures are limited at all.
    pub enabled: bool,
    /// Bucket size per source address.
    pub address_burst: u32,
    /// Refill per source address, per minute.
    pub address_per_minute: u32,
    /// Bucket size per client ID.
    pub client_burst: u32,
    /// Refill per client ID, per minute.
    pub client_per_minute: u32,
    /// Most addresses (and, separately, client IDs) tracked at once.
    pub max_tracked: usize,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            address_burst: 20,
            address_per_minute: 30,
            client_burst: 100,
            client_per_minute: 60,
            max_tracked: 65_536,
        }
    }
}

/// Certificate and key files for HTTPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// The checked configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Database, admin socket and lock file.
    pub data_dir: PathBuf,
    /// HTTP listen address.
    pub listen: SocketAddr,
    /// Issuer URL; `None` means `http://<bound address>`, known after binding.
    pub issuer: Option<String>,
    /// Audience; `None` means the issuer.
    pub audience: Option<String>,
    /// Access-token lifetime in seconds.
    pub access_token_ttl: u64,
    /// Refresh-token lifetime in seconds.
    pub refresh_token_ttl: u64,
    /// Reuse grace of a rotated refresh token in seconds.
    pub refresh_reuse_grace: u64,
    /// Refresh-token families one client may hold.
    pub max_families_per_client: usize,
    /// Whether query-string client credentials are accepted.
    pub allow_query_credentials: bool,
    /// Signature algorithm of new keys.
    pub signing_alg: Algorithm,
    /// Period of scheduled key rotation, in seconds.
    pub signing_rotate_every: u64,
    /// `max-age` of the JWKS response, in seconds.
    pub jwks_max_age: u64,
    /// Where the key-encryption key comes from, if anywhere.
    pub key_encryption_key: Option<KekSource>,
    /// Interval of the background purge.
    pub purge_interval: Duration,
    /// Log line format.
    pub log_format: LogFormat,
    /// Whether `TESSERA_LOG` also sets the level of the libraries
    /// ([`crate::telemetry::PINNED_TARGETS`]); otherwise they are held at info.
    pub log_dependencies: bool,
    /// Request and connection bounds.
    pub limits: Limits,
    /// HTTPS certificate and key; `None` serves plain HTTP.
    pub tls: Option<TlsFiles>,
    /// The failed-authentication limiter.
    pub rate_limit: RateLimitConfig,
    /// Whether `GET /metrics` is served.
    pub metrics: bool,
    /// Where the state lives.
    pub storage: Storage,
    /// PostgreSQL connections in each instance's pool.
    pub storage_pool_size: usize,
}

/// The storage backend.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Storage {
    /// sled in `<data dir>/db`: one instance.
    #[default]
    Sled,
    /// PostgreSQL at this URL, shared by every instance given it.
    Postgres(String),
}

impl Storage {
    /// Reads a `storage` value: a `postgres://` or `postgresql://` URL, or `sled`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for anything else.
    pub fn parse(value: &str) -> Result<Self, ConfigError> {
        if value == "sled" {
            Ok(Self::Sled)
        } else if crate::store::postgres::is_postgres_url(value) {
            Ok(Self::Postgres(value.to_owned()))
        } else {
            Err(ConfigError::Invalid("storage must be `sled` or a postgres:// URL".into()))
        }
    }
}

impl std::fmt::Debug for Storage {
    // The URL may hold a password: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sled => f.write_str("Sled"),
            Self::Postgres(_) => f.write_str("Postgres(<redacted>)"),
        }
    }
}

/// Where the key-encryption key is read from. Only the place is kept in the
/// configuration; the key itself is read once by [`KekSource::read`].
#[derive(Clone, PartialEq, Eq)]
pub enum KekSource {
    /// A file holding it as base64.
    File(PathBuf),
    /// The value of `TESSERA_KEY_ENCRYPTION_KEY`.
    Env(String),
}

impl std::fmt::Debug for KekSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => f.debug_tuple("File").field(path).finish(),
            Self::Env(_) => f.write_str("Env(<redacted>)"),
        }
    }
}

impl KekSource {
    /// Reads and checks the key.
    ///
    /// # Errors
    /// [`ConfigError`] if the file cannot be read or the key is not base64 of 32 bytes.
    pub fn read(&self) -> Result<crate::crypto::seal::Kek, ConfigError> {
        use crate::crypto::seal::Kek;
        match self {
            Self::File(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
                Kek::from_base64(&text)
                    .map_err(|e| ConfigError::Invalid(format!("key-encryption key file {}: {e}", path.display())))
            }
            Self::Env(value) => Kek::from_base64(value).map_err(|e| ConfigError::Invalid(format!("{KEK_ENV}: {e}"))),
        }
    }
}

/// A configuration that cannot be used, as one line for the operator.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown or mistyped keys.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said, on one line.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads the file named by `cli.config`, if any, and merges it under the
    /// flags and environment variables.
    ///
    /// # Errors
    /// [`ConfigError`] when the file is unreadable or invalid, or a value is out of range.
    pub fn load(cli: Cli) -> Result<Self, ConfigError> {
        let file = match &cli.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let mut config = Self::merge(cli, file)?;
        if config.key_encryption_key.is_none()
            && let Ok(value) = std::env::var(KEK_ENV)
        {
            config.key_encryption_key = Some(KekSource::Env(value));
        }
        if let Some(source) = &config.key_encryption_key {
            source.read()?;
        }
        Ok(config)
    }

    fn merge(cli: Cli, file: FileConfig) -> Result<Self, ConfigError> {
        let defaults = Limits::default();
        let file_alg = file
            .signing
            .alg
            .map(|alg| alg.parse::<Algorithm>().map_err(|e| ConfigError::Invalid(format!("signing.alg: {e}"))))
            .transpose()?;
        let listen = match cli.listen.or(file.listen) {
            Some(addr) => addr,
            None => DEFAULT_LISTEN
                .parse()
                .map_err(|_| ConfigError::Invalid("the default listen address does not parse".into()))?,
        };
        let config = Self {
            data_dir: cli.data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            listen,
            issuer: cli.issuer.or(file.issuer),
            audience: cli.audience.or(file.audience),
            access_token_ttl: cli.access_token_ttl.or(file.access_token_ttl).unwrap_or(300),
            refresh_token_ttl: cli.refresh_token_ttl.or(file.refresh_token_ttl).unwrap_or(30 * 24 * 3600),
            refresh_reuse_grace: cli.refresh_reuse_grace.or(file.refresh_reuse_grace).unwrap_or(0),
            max_families_per_client: cli
                .max_families_per_client
                .or(file.max_families_per_client)
                .unwrap_or(DEFAULT_MAX_FAMILIES_PER_CLIENT),
            allow_query_credentials: cli.allow_query_credentials.or(file.allow_query_credentials).unwrap_or(true),
            signing_alg: cli.signing_alg.or(file_alg).unwrap_or(Algorithm::ES256),
            signing_rotate_every: cli
                .signing_rotate_every
                .or(file.signing.rotate_every)
                .unwrap_or(DEFAULT_ROTATE_EVERY),
            jwks_max_age: cli.jwks_max_age.or(file.signing.jwks_max_age).unwrap_or(DEFAULT_JWKS_MAX_AGE),
            key_encryption_key: cli
                .key_encryption_key_file
                .or(file.signing.key_encryption_key_file)
                .map(KekSource::File),
            purge_interval: Duration::from_secs(cli.purge_interval.or(file.purge_interval).unwrap_or(60)),
            log_format: cli.log_format.or(file.log_format).unwrap_or_default(),
            log_dependencies: cli.log_dependencies.or(file.log_dependencies).unwrap_or(false),
            limits: Limits {
                max_body_bytes: cli.max_body_bytes.or(file.limits.max_body_bytes).unwrap_or(defaults.max_body_bytes),
                max_params: cli.max_params.or(file.limits.max_params).unwrap_or(defaults.max_params),
                max_header_bytes: cli
                    .max_header_bytes
                    .or(file.limits.max_header_bytes)
                    .unwrap_or(defaults.max_header_bytes),
                request_timeout: cli
                    .request_timeout
                    .or(file.limits.request_timeout)
                    .map(Duration::from_secs)
                    .unwrap_or(defaults.request_timeout),
                max_connections: cli
                    .max_connections
                    .or(file.limits.max_connections)
                    .unwrap_or(defaults.max_connections),
                max_connections_per_source: cli
                    .max_connections_per_source
                    .or(file.limits.max_connections_per_source)
                    .unwrap_or(defaults.max_connections_per_source),
                max_param_bytes: cli
                    .max_param_bytes
                    .or(file.limits.max_param_bytes)
                    .unwrap_or(defaults.max_param_bytes),
                max_headers: cli.max_headers.or(file.limits.max_headers).unwrap_or(defaults.max_headers),
                idle_timeout: cli
                    .idle_timeout
                    .or(file.limits.idle_timeout)
                    .map(Duration::from_secs)
                    .unwrap_or(defaults.idle_timeout),
            },
            tls: match (cli.tls_cert.or(file.tls.cert), cli.tls_key.or(file.tls.key)) {
                (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
                (None, None) => None,
                _ => return Err(ConfigError::Invalid("tls_cert and tls_key must be given together".into())),
            },
            rate_limit: {
                let d = RateLimitConfig::default();
                let f = &file.rate_limit;
                RateLimitConfig {
                    enabled: cli.rate_limit.or(f.enabled).unwrap_or(d.enabled),
                    address_burst: cli.rate_limit_address_burst.or(f.address_burst).unwrap_or(d.address_burst),
                    address_per_minute: cli
                        .rate_limit_address_per_minute
                        .or(f.address_per_minute)
                        .unwrap_or(d.address_per_minute),
                    client_burst: cli.rate_limit_client_burst.or(f.client_burst).unwrap_or(d.client_burst),
                    client_per_minute: cli
                        .rate_limit_client_per_minute
                        .or(f.client_per_minute)
                        .unwrap_or(d.client_per_minute),
                    max_tracked: cli.rate_limit_max_tracked.or(f.max_tracked).unwrap_or(d.max_tracked),
                }
            },
            metrics: cli.metrics.or(file.metrics).unwrap_or(true),
            storage: match (cli.storage, cli.storage_file) {
                (Some(url), _) => Some(url),
                (None, Some(path)) => Some(read_secret_file("storage_file", &path)?),
                (None, None) => match (file.storage, file.storage_file) {
                    (Some(_), Some(_)) => {
                        return Err(ConfigError::Invalid("give storage or storage_file, not both".into()));
                    }
                    (Some(url), None) => Some(url),
                    (None, Some(path)) => Some(read_secret_file("storage_file", &path)?),
                    (None, None) => None,
                },
            }
            .as_deref()
            .map(Storage::parse)
            .transpose()?
            .unwrap_or_default(),
            storage_pool_size: cli
                .storage_pool_size
                .or(file.storage_pool_size)
                .unwrap_or(crate::store::postgres::DEFAULT_POOL_SIZE),
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |message: &str| Err(ConfigError::Invalid(message.to_owned()));
        if !(1..=86_400).contains(&self.access_token_ttl) {
            return invalid("access_token_ttl must be between 1 and 86400 seconds");
        }
        if self.refresh_token_ttl == 0 {
            return invalid("refresh_token_ttl must be at least 1 second");
        }
        if self.refresh_reuse_grace > 300 {
            return invalid("refresh_reuse_grace must be at most 300 seconds");
        }
        if self.max_families_per_client == 0 {
            return invalid("max_families_per_client must be at least 1");
        }
        if self.purge_interval.is_zero() {
            return invalid("purge_interval must be at least 1 second");
        }
        if let Some(issuer) = &self.issuer {
            check_url("issuer", issuer)?;
        }
        if self.audience.as_deref().is_some_and(str::is_empty) {
            return invalid("audience must not be empty");
        }
        if !(1..=86_400).contains(&self.jwks_max_age) {
            return invalid("jwks_max_age must be between 1 and 86400 seconds");
        }
        if self.signing_rotate_every < self.jwks_max_age {
            return invalid(
                "signing.rotate_every must be at least jwks_max_age: a new key signs only once every cached JWKS holds it",
            );
        }
        let limits = &self.limits;
        if limits.max_connections_per_source == 0 {
            return invalid("max_connections_per_source must be at least 1");
        }
        if limits.max_body_bytes == 0 || limits.max_params == 0 || limits.max_connections == 0 {
            return invalid("max_body_bytes, max_params and max_connections must be positive");
        }
        if limits.max_header_bytes < 8192 {
            return invalid("max_header_bytes must be at least 8192");
        }
        if limits.request_timeout.is_zero() {
            return invalid("request_timeout must be at least 1 second");
        }
        if limits.max_param_bytes < 64 {
            return invalid("max_param_bytes must be at least 64");
        }
        if !(8..=1024).contains(&limits.max_headers) {
            return invalid("max_headers must be between 8 and 1024");
        }
        // hyper's head timer also runs while a kept-alive connection waits
        // for its next request, so a longer idle time would never apply.
        if limits.idle_timeout.is_zero() || limits.idle_timeout > limits.request_timeout {
            return invalid("idle_timeout must be between 1 second and request_timeout");
        }
        if !(1..=1000).contains(&self.storage_pool_size) {
            return invalid("storage_pool_size must be between 1 and 1000");
        }
        let rate = &self.rate_limit;
        if rate.address_burst == 0
            || rate.address_per_minute == 0
            || rate.client_burst == 0
            || rate.client_per_minute == 0
            || rate.max_tracked < 16
        {
            return invalid("rate_limit bursts and refills must be positive and max_tracked at least 16");
        }
        Ok(())
    }
}

/// The first line of a file that holds one secret value (a database URL
/// with its password), surrounding whitespace removed.
///
/// # Errors
/// [`ConfigError::Read`] if it cannot be read, [`ConfigError::Invalid`] if it is empty.
pub fn read_secret_file(what: &str, path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    match text.lines().map(str::trim).find(|line| !line.is_empty()) {
        Some(line) => Ok(line.to_owned()),
        None => Err(ConfigError::Invalid(format!("{what} {} is empty", path.display()))),
    }
}

/// Which command-line options carry a password in `args` (the process's
/// arguments): `--storage` and `migrate-storage --to` with a database URL
/// whose user info or `password=` parameter holds one. Such arguments show
/// in `ps` and `/proc/PID/cmdline`; the server warns at start.
pub fn passwords_on_command_line(args: &[String]) -> Vec<&'static str> {
    let mut found = Vec::new();
    for (i, arg) in args.iter().enumerate() {
        for (flag, name) in [("--storage", "--storage"), ("--to", "migrate-storage --to")] {
            let value = match arg.strip_prefix(flag) {
                Some("") => args.get(i + 1).map(String::as_str),
                Some(rest) => rest.strip_prefix('='),
                None => None,
            };
            if value.is_some_and(url_has_password) && !found.contains(&name) {
                found.push(name);
            }
        }
    }
    found
}

/// Whether a database URL carries a password.
fn url_has_password(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else { return false };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let userinfo_password = authority.rsplit_once('@').is_some_and(|(userinfo, _)| userinfo.contains(':'));
    let query_password =
        rest.split_once('?').is_some_and(|(_, query)| query.split('&').any(|pair| pair.starts_with("password=")));
    userinfo_password || query_password
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        // toml's messages span several lines with a source excerpt; the
        // operator gets one line.
        message: e.message().replace('\n', " "),
    })
}

/// An issuer must be an absolute http(s) URL without query or fragment
/// (RFC 8414 §2).
fn check_url(name: &str, url: &str) -> Result<(), ConfigError> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(rest) if !rest.is_empty() && !url.contains(['?', '#']) && !url.contains(char::is_whitespace) => Ok(()),
        _ => Err(ConfigError::Invalid(format!("{name} must be an http:// or https:// URL without query or fragment"))),
    }
}

#[cfg(test)]
mod tests;
