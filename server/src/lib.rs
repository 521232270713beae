//! `tessera-server`: an OAuth 2.0 token server for machine-to-machine APIs.
//!
//! Layout, outside in:
//!
//! - [`config`]: flags, environment and TOML file, checked at start.
//! - [`http`]: the public HTTP interface (framing, bounds, access log).
//! - [`admin`]: the admin API on the data dir's Unix socket.
//! - [`issuer`]: the token service: clock, authentication, storage calls, minting.
//! - [`client_auth`]: client authentication, shared by the token,
//!   revocation and introspection endpoints.
//! - [`grant`]: the OAuth rules as pure functions (request parsing, scopes,
//!   refresh rotation and reuse detection, errors).
//! - [`store`]: the storage trait and the sled backend.
//! - [`keys`], [`crypto`]: signing keys, secrets, random values (ring).
//! - [`audit`], [`activity`]: the audit trail with its retention, the
//!   activity counters and the failed-authentication burst detector.
//! - [`ratelimit`]: the limiter of failed client authentications.
//! - [`tls`]: HTTPS with rustls, certificate reload on SIGHUP.
//! - [`metrics`]: Prometheus metrics.
//! - [`supervise`]: the background tasks, watched: one that dies fails `/healthz`.
//! - [`purge`], [`datadir`], [`clock`], [`telemetry`]: the rest of the plumbing.
//! - [`compact_command`]: `tessera-server compact`, which rewrites the sled database
//!   without the space of purged records.
//!
//! [`run`] wires them together; `main.rs` only parses arguments, sets up
//! logging and signals, and calls it.

#![forbid(unsafe_code)]

pub mod activity;
pub mod admin;
pub mod audit;
pub mod client_auth;
pub mod clock;
pub mod compact_command;
pub mod config;
pub mod crypto;
pub mod datadir;
pub mod grant;
pub mod http;
pub mod issuer;
pub mod jwks_export;
pub mod keys;
pub mod metrics;
pub mod migrate;
pub mod periodic;
pub mod purge;
pub mod ratelimit;
pub mod store;
pub mod supervise;
pub mod telemetry;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use clock::{Clock, SystemClock};
use config::Config;
use crypto::random::Random;
use crypto::secret::{INSTALLATION_KEY_LEN, SecretHasher};
use datadir::{DataDir, DataDirError};
use grant::request::ParsePolicy;
use issuer::{Issuer, IssuerPolicy};
use keys::KeyError;
use keys::lifecycle::Timing;
use keys::manager::{KeyManager, KeySettings};
use store::postgres::PgStore;
use store::sled::SledStore;
use store::{Store, StoreError};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data dir is unusable or in use.
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    /// The database could not be opened or read.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// The client-secret key could not be loaded or sealed.
    #[error(transparent)]
    SecretKey(#[from] crypto::secret_key::SecretKeyError),
    /// The signing keys could not be loaded or created.
    #[error("signing keys: {0}")]
    Keys(#[from] KeyError),
    /// The key-encryption key could not be read.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The admin socket could not be bound.
    #[error("cannot bind the admin socket in {dir}: {source}")]
    AdminSocket {
        /// The data dir.
        dir: String,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS certificate or key cannot be used.
    #[error("tls: {0}")]
    Tls(#[from] tls::TlsError),
    /// Something else that cannot happen in practice.
    #[error("{0}")]
    Other(String),
    /// What an interrupted `tessera-server compact` left could not be cleaned up.
    #[error("an interrupted compaction left the data dir unclean: {0}")]
    Compact(#[from] compact_command::CompactError),
}

/// Runs the server until `shutdown` is cancelled. `ready` is called with
/// the bound address once both the HTTP port and the admin socket accept
/// connections.
///
/// # Errors
/// [`StartError`] if the server cannot start; once started it stops only
/// through `shutdown`.
pub async fn run(
    config: Config,
    shutdown: CancellationToken,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), StartError> {
    let data_dir = DataDir::open(&config.data_dir)?;
    if config.storage == config::Storage::Sled {
        // A compaction cut short leaves its copy or the old database behind.
        compact_command::recover_leftovers(&data_dir)?;
    }
    // The data dir keeps the admin socket and the lock file either way: each
    // instance on a shared PostgreSQL database has a data dir of its own.
    let store: Arc<dyn Store> = match &config.storage {
        config::Storage::Sled => Arc::new(SledStore::open(&data_dir.database_path())?),
        config::Storage::Postgres(url) => {
            let options = store::postgres::PgOptions { pool_size: config.storage_pool_size, ..Default::default() };
            Arc::new(PgStore::open(url, None, options).await?)
        }
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);

    let fresh_key = Random::new().bytes::<INSTALLATION_KEY_LEN>().map_err(|e| StartError::Other(e.to_string()))?;
    let kek = config.key_encryption_key.as_ref().map(config::KekSource::read).transpose()?;
    let secret_key = crypto::secret_key::load(store.as_ref(), kek.as_ref(), fresh_key).await?;
    let secrets = SecretHasher::new(&secret_key);
    if kek.is_none() {
        tracing::info!(
            "no key-encryption key: private signing keys are stored unencrypted; keep the data dir mode 0700"
        );
    }
    let key_settings = KeySettings {
        alg: config.signing_alg,
        timing: Timing {
            rotate_every: config.signing_rotate_every,
            access_token_ttl: config.access_token_ttl,
            jwks_max_age: config.jwks_max_age,
        },
    };
    // The shared components, built once and handed to every user.
    let audit = audit::Audit::new(store.clone(), clock.clone());
    let activity = activity::Activity::new(audit.clone(), clock.clone(), activity::burst::BurstPolicy::default());
    let metrics = metrics::Metrics::new();
    let key_manager = KeyManager::start(store.clone(), clock.clone(), key_settings, kek, audit.clone()).await?;
    let keys = key_manager.handle();
    if keys.current().signer().public_jwk().alg.as_deref() != Some(config.signing_alg.as_str()) {
        tracing::info!(
            configured = %config.signing_alg,
            "signing.alg differs from the active key's algorithm; the active key signs until the next rotation"
        );
    }

    let tls = config.tls.clone().map(tls::TlsReloader::load).transpose()?.map(Arc::new);
    let listener =
        TcpListener::bind(config.listen).await.map_err(|source| StartError::Bind { addr: config.listen, source })?;
    let local_addr = listener.local_addr().map_err(|source| StartError::Bind { addr: config.listen, source })?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let issuer_url = config.issuer.clone().unwrap_or_else(|| format!("{scheme}://{local_addr}"));
    let policy = IssuerPolicy {
        audience: config.audience.clone().unwrap_or_else(|| issuer_url.clone()),
        issuer_url: issuer_url.clone(),
        access_token_ttl: config.access_token_ttl,
        refresh_token_ttl: config.refresh_token_ttl,
        refresh_reuse_grace: config.refresh_reuse_grace,
        max_families_per_client: config.max_families_per_client,
    };
    let mut tasks = supervise::Supervisor::new(shutdown.clone());
    let app = Arc::new(http::App {
        issuer: Issuer::new(
            store.clone(),
            keys.clone(),
            secrets.clone(),
            clock.clone(),
            policy,
            activity.clone(),
            metrics.clone(),
        ),
        keys: keys.clone(),
        jwks_cache_control: http::well_known::jwks_cache_control(config.jwks_max_age)
            .map_err(|e| StartError::Other(e.to_string()))?,
        store: store.clone(),
        metadata_json: http::well_known::metadata_document(&issuer_url)
            .map_err(|e| StartError::Other(e.to_string()))?,
        limits: config.limits,
        parse_policy: ParsePolicy { allow_query_credentials: config.allow_query_credentials },
        limiter: ratelimit::AuthLimiter::new(&config.rate_limit),
        metrics: metrics.clone(),
        serve_metrics: config.metrics,
        tasks: tasks.health(),
    });
    let admin_service =
        admin::service::AdminService::new(store.clone(), key_manager.clone(), secrets, clock.clone(), activity);
    let (admin_listener, admin_path) = admin::socket::bind(data_dir.path())
        .map_err(|source| StartError::AdminSocket { dir: data_dir.path().display().to_string(), source })?;

    tasks.spawn(
        "gauges",
        metrics::refresh_gauges(
            store.clone(),
            clock.clone(),
            metrics,
            // Recounted as often as the purge runs: both walk the families.
            config.purge_interval,
            shutdown.clone(),
        ),
    );
    tasks.spawn("tls reload", tls::reload_on_sighup(tls.clone(), tls::hangup_signal(), shutdown.clone()));
    tasks.spawn("purge", purge::run(store.clone(), clock, config.purge_interval, shutdown.clone()));
    tasks.spawn(
        "audit retention",
        audit::retain(audit, audit::Retention::default(), config.purge_interval, shutdown.clone()),
    );
    // On PostgreSQL: a rotation through another instance is served as soon
    // as its notification arrives.
    if let Some(changes) = store.key_changes() {
        tasks.spawn("key follow", key_manager.clone().follow(changes, shutdown.clone()));
    }
    tasks.spawn("key maintenance", key_manager.run(shutdown.clone()));
    tasks.spawn("admin socket", admin::socket::serve(admin_listener, admin_service, shutdown.clone()));
    let storage = if store.is_shared() { "postgres" } else { "sled" };
    tracing::info!(addr = %local_addr, issuer = %issuer_url, data_dir = %data_dir.path().display(), storage, "tessera-server ready");
    ready(local_addr);

    http::server::serve(listener, app, config.limits, tls, shutdown).await;
    tasks.join().await;
    let _ = std::fs::remove_file(&admin_path);
    store.flush().await?;
    tracing::info!("stopped; database flushed");
    Ok(())
}
