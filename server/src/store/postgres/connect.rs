//! How the PostgreSQL connections are made: the URL, `sslmode` and
//! `sslrootcert` as libpq reads them, and TLS over rustls with the ring
//! provider (the project's one TLS stack), glued to tokio-postgres by
//! tokio-postgres-rustls.
//!
//! | `sslmode` | TLS | certificate checked |
//! |---|---|---|
//! | `disable` | never | - |
//! | `prefer` (the default, as in libpq) | if the server offers it | no |
//! | `require` | always | no; chain only if a root certificate is given (as libpq) |
//! | `verify-ca` | always | chain to `sslrootcert` |
//! | `verify-full` | always | chain to `sslrootcert`, and the host name |
//!
//! `sslrootcert` is a PEM file of trusted CA certificates; without it,
//! `~/.postgresql/root.crt` is used if it exists, as in libpq.
//! tokio-postgres itself knows only `disable`, `prefer` and `require`, so
//! the two parameters are taken out of the URL here and the rest is parsed
//! by tokio-postgres.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use deadpool_postgres::{Object, Pool, PoolError};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientConfig, WebPkiServerVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::{Host, SslMode as PgSslMode};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::Fail;
use crate::store::StoreError;

/// `sslmode`, as libpq names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plaintext only.
    Disable,
    /// TLS if the server offers it, unverified; plaintext otherwise.
    Prefer,
    /// TLS, unverified (unless a root certificate is given: then as `VerifyCa`).
    Require,
    /// TLS, the chain checked against the root certificates.
    VerifyCa,
    /// TLS, the chain and the host name checked.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<Self, StoreError> {
        Ok(match value {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            // libpq's `allow` tries plaintext first: a downgrade by design.
            other => {
                return Err(StoreError::internal(
                    "the PostgreSQL URL",
                    format!("sslmode={other} is not supported; use disable, prefer, require, verify-ca or verify-full"),
                ));
            }
        })
    }

    /// The name in a URL.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

/// Everything needed to open a connection: tokio-postgres's settings and
/// the TLS connector.
#[derive(Clone)]
pub struct ConnectSettings {
    /// Host, port, user, database, ... (the URL without `sslmode` and `sslrootcert`).
    pub config: tokio_postgres::Config,
    /// The rustls glue; unused under `sslmode=disable`.
    pub tls: MakeRustlsConnect,
    /// The mode asked for (after libpq's `require` + root certificate rule).
    pub mode: SslMode,
    /// The root certificate file in use, if any (for messages).
    pub root_cert: Option<PathBuf>,
}

impl std::fmt::Debug for ConnectSettings {
    // The settings hold the password: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectSettings")
            .field("mode", &self.mode)
            .field("root_cert", &self.root_cert)
            .finish_non_exhaustive()
    }
}

impl ConnectSettings {
    /// Reads a `postgres://` URL.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if the URL does not parse, `sslmode` is
    /// unknown, or the root certificate file cannot be read or holds no
    /// certificate. Never contains the URL (it may hold a password).
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        let (rest, ssl) = take_ssl_params(url)?;
        let mut config = tokio_postgres::Config::from_str(&rest)
            .map_err(|e| StoreError::backend("the PostgreSQL URL does not parse", e))?;
        let mut mode = ssl.mode.as_deref().map(SslMode::parse).transpose()?.unwrap_or(SslMode::Prefer);
        let root_cert = match ssl.root_cert {
            Some(path) if path == "system" => {
                return Err(StoreError::internal(
                    "the PostgreSQL URL",
                    "sslrootcert=system is not supported: give the file of the CA that signed the server's certificate",
                ));
            }
            Some(path) => Some(PathBuf::from(path)),
            // libpq's default, used only if it exists.
            None => std::env::var_os("HOME")
                .map(|home| Path::new(&home).join(".postgresql/root.crt"))
                .filter(|path| path.is_file()),
        };
        if mode == SslMode::Require && root_cert.is_some() {
            // As libpq: with a root certificate, `require` checks the chain.
            mode = SslMode::VerifyCa;
        }
        let roots = match (&root_cert, mode) {
            (Some(path), SslMode::VerifyCa | SslMode::VerifyFull) => Some(read_roots(path)?),
            (None, SslMode::VerifyCa | SslMode::VerifyFull) => {
                return Err(StoreError::internal(
                    "the PostgreSQL URL",
                    format!(
                        "sslmode={} needs the CA certificate: add sslrootcert=/path/to/ca.pem to the URL",
                        mode.as_str()
                    ),
                ));
            }
            _ => None,
        };
        config.ssl_mode(match mode {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Prefer => PgSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => PgSslMode::Require,
        });
        let tls = MakeRustlsConnect::new(client_config(mode, roots)?);
        Ok(Self { config, tls, mode, root_cert })
    }

    /// Whether a TCP host other than loopback is among the hosts.
    pub fn has_remote_tcp_host(&self) -> bool {
        let addrs = self.config.get_hostaddrs();
        if !addrs.is_empty() {
            return addrs.iter().any(|addr| !addr.is_loopback());
        }
        self.config.get_hosts().iter().any(|host| match host {
            Host::Tcp(name) => !is_loopback_name(name),
            Host::Unix(_) => false,
        })
    }
}

fn is_loopback_name(name: &str) -> bool {
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => bare.eq_ignore_ascii_case("localhost"),
    }
}

/// `sslmode` and `sslrootcert` as given (percent-decoded), if they were.
#[derive(Debug, Default, PartialEq, Eq)]
struct SslParams {
    mode: Option<String>,
    root_cert: Option<String>,
}

/// Splits the two TLS parameters tokio-postgres does not know fully out of
/// the URL's query; returns the URL without them.
fn take_ssl_params(url: &str) -> Result<(String, SslParams), StoreError> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), SslParams::default()));
    };
    let mut params = SslParams::default();
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match percent_decode(key)?.as_str() {
            "sslmode" => params.mode = Some(percent_decode(value)?),
            "sslrootcert" => params.root_cert = Some(percent_decode(value)?),
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
    Ok((rest, params))
}

fn percent_decode(text: &str) -> Result<String, StoreError> {
    let bad = || StoreError::internal("the PostgreSQL URL", "it has an invalid percent-encoding");
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3).ok_or_else(bad)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

fn read_roots(path: &Path) -> Result<RootCertStore, StoreError> {
    let shown = path.display();
    let pem = std::fs::read(path)
        .map_err(|e| StoreError::backend(format!("cannot read the PostgreSQL root certificate {shown}"), e))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let unusable = |e: &dyn std::fmt::Display| {
            StoreError::internal(format!("the PostgreSQL root certificate {shown}"), format!("unusable: {e}"))
        };
        let cert = cert.map_err(|e| unusable(&e))?;
        roots.add(cert).map_err(|e| unusable(&e))?;
    }
    if roots.is_empty() {
        return Err(StoreError::internal(
            format!("the PostgreSQL root certificate file {shown}"),
            "it holds no certificate",
        ));
    }
    Ok(roots)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn client_config(mode: SslMode, roots: Option<RootCertStore>) -> Result<ClientConfig, StoreError> {
    let provider = provider();
    let algorithms = provider.signature_verification_algorithms;
    let verifier: Arc<dyn ServerCertVerifier> = match (mode, roots) {
        (SslMode::VerifyFull, Some(roots)) => webpki_verifier(roots, &provider)?,
        (SslMode::VerifyCa, Some(roots)) => {
            Arc::new(NameUnchecked { chain: Some(webpki_verifier(roots, &provider)?), algorithms })
        }
        // disable (never used), prefer and require: encryption without
        // authentication, as libpq.
        _ => Arc::new(NameUnchecked { chain: None, algorithms }),
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::internal("TLS to PostgreSQL", e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(config)
}

fn webpki_verifier(
    roots: RootCertStore,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, StoreError> {
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| StoreError::internal("TLS to PostgreSQL", e.to_string()))
}

/// Checks everything but the name: with `chain` (`verify-ca`), the chain
/// must lead to a trusted root but the name in the certificate is not
/// compared with the host; without it (`prefer`, `require` with no root
/// certificate), any certificate goes. Either way the handshake's own
/// signatures are checked.
#[derive(Debug)]
struct NameUnchecked {
    chain: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for NameUnchecked {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else { return Ok(ServerCertVerified::assertion()) };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            // webpki checks the name only once the chain is good.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The pool's first connection. A server certificate that fails
/// verification is said so in one line, with the mode and the root file.
///
/// # Errors
/// [`StoreError::Backend`] if no connection can be made.
pub async fn first_connection(pool: &Pool, settings: &ConnectSettings) -> Result<Object, StoreError> {
    match pool.get().await {
        Ok(client) => Ok(client),
        Err(PoolError::Backend(e)) => match certificate_failure(&e) {
            Some(reason) => {
                let root = settings.root_cert.as_ref().map_or_else(|| "none".into(), |p| p.display().to_string());
                Err(StoreError::internal(
                    "TLS to PostgreSQL",
                    format!(
                        "the PostgreSQL server's certificate failed verification (sslmode={}, sslrootcert={root}): {reason}",
                        settings.mode.as_str()
                    ),
                ))
            }
            None => Err(Fail::from(e).into_store()),
        },
        Err(e) => Err(Fail::from(e).into_store()),
    }
}

/// Warns when `client`'s connection is not encrypted and the database is
/// on another host (a TCP host other than loopback).
///
/// # Errors
/// [`StoreError::Backend`] if the query fails.
pub async fn warn_if_plaintext(client: &Object, settings: &ConnectSettings) -> Result<(), StoreError> {
    let row = client
        .query_one("SELECT COALESCE((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)", &[])
        .await
        .map_err(|e| Fail::from(e).into_store())?;
    if !row.get::<_, bool>(0) && settings.has_remote_tcp_host() {
        tracing::warn!(
            event = "storage_plaintext",
            sslmode = settings.mode.as_str(),
            "the connection to PostgreSQL on another host is not encrypted: secret digests and signing keys \
             cross the network in plain text; use sslmode=verify-full with sslrootcert"
        );
    }
    Ok(())
}

/// The rustls certificate error somewhere in a connection failure, if the
/// failure was the server's certificate.
pub fn certificate_failure(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(rustls::Error::InvalidCertificate(cert)) = e.downcast_ref::<rustls::Error>() {
            return Some(format!("{cert:?}"));
        }
        // io::Error's `source` skips the error it wraps: look inside.
        if let Some(inner) = e.downcast_ref::<std::io::Error>().and_then(std::io::Error::get_ref)
            && let Some(rustls::Error::InvalidCertificate(cert)) = inner.downcast_ref::<rustls::Error>()
        {
            return Some(format!("{cert:?}"));
        }
        next = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssl_params_are_taken_out_and_the_rest_kept() {
        let (rest, params) = take_ssl_params(
            "postgres://u:p@db:5432/x?application_name=a&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(rest, "postgres://u:p@db:5432/x?application_name=a");
        assert_eq!(params, SslParams { mode: Some("verify-full".into()), root_cert: Some("/etc/ca.pem".into()) });
        let (rest, params) = take_ssl_params("postgres://db/x?sslmode=require").unwrap();
        assert_eq!(rest, "postgres://db/x");
        assert_eq!(params.mode.as_deref(), Some("require"));
        assert!(take_ssl_params("postgres://db/x?sslrootcert=%zz").is_err());
    }

    #[test]
    fn modes_parse_as_libpq_names_them() {
        for mode in [SslMode::Disable, SslMode::Prefer, SslMode::Require, SslMode::VerifyCa, SslMode::VerifyFull] {
            assert_eq!(SslMode::parse(mode.as_str()).unwrap(), mode);
        }
        let error = SslMode::parse("allow").err().unwrap();
        assert!(error.to_string().contains("sslmode=allow is not supported"), "{error}");
        let settings = ConnectSettings::from_url("postgres://db/x").unwrap();
        assert_eq!(settings.mode, SslMode::Prefer, "libpq's default");
    }

    #[test]
    fn verification_needs_a_root_certificate_that_exists() {
        let error = ConnectSettings::from_url("postgres://db/x?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")
            .err()
            .unwrap();
        assert!(
            error.to_string().contains("cannot read the PostgreSQL root certificate /nonexistent/ca.pem"),
            "{error}"
        );
        let error = ConnectSettings::from_url("postgres://db/x?sslmode=verify-ca&sslrootcert=system").err().unwrap();
        assert!(error.to_string().contains("sslrootcert=system is not supported"), "{error}");
    }

    #[test]
    fn require_with_a_root_certificate_checks_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        let key = rcgen::KeyPair::generate().unwrap();
        let ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap().self_signed(&key).unwrap();
        std::fs::write(&path, ca.pem()).unwrap();
        let url = format!("postgres://db/x?sslmode=require&sslrootcert={}", path.display());
        assert_eq!(ConnectSettings::from_url(&url).unwrap().mode, SslMode::VerifyCa);
        std::fs::write(&path, "no certificate here").unwrap();
        let error = ConnectSettings::from_url(&url).err().unwrap();
        assert!(error.to_string().contains("holds no certificate"), "{error}");
    }

    #[test]
    fn remote_hosts_are_told_from_loopback_and_sockets() {
        let remote = |url: &str| ConnectSettings::from_url(url).unwrap().has_remote_tcp_host();
        assert!(!remote("postgres://u@127.0.0.1:5432/x"));
        assert!(!remote("postgres://u@localhost/x"));
        assert!(!remote("postgres://u@[::1]:5432/x"));
        assert!(!remote("postgres://u@%2Fvar%2Frun%2Fpostgresql/x"));
        assert!(remote("postgres://u@db.internal:5432/x"));
        assert!(remote("postgres://u@10.0.0.5/x"));
    }
}
