//! HTTPS with rustls (ring provider): loading the PEM certificate chain and
//! key, and reloading them on SIGHUP.
//!
//! Each new connection takes the configuration current at its accept, so a
//! reload affects new connections only and never breaks one in progress. A
//! reload that fails (missing file, bad PEM, key not matching) keeps the
//! previous certificate and logs why.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::TlsFiles;

/// Why a certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file is unreadable or holds no PEM certificate.
    #[error("certificate {path}: {message}")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The key file is unreadable or holds no PEM private key.
    #[error("private key {path}: {message}")]
    Key {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// rustls refused the pair (for example a key that does not match).
    #[error("certificate and key: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Builds the rustls configuration from the files: TLS 1.2 and 1.3, ring's
/// cipher suites, HTTP/1.1 by ALPN.
///
/// # Errors
/// [`TlsError`] naming the file at fault.
pub fn server_config(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    let certs = read_certificates(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| TlsError::Key { path: files.key.clone(), message: e.to_string() })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let error = |message: String| TlsError::Certificate { path: path.to_owned(), message };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(e.to_string()))?;
    if certs.is_empty() {
        return Err(error("no PEM certificate in the file".to_owned()));
    }
    Ok(certs)
}

/// The current TLS configuration and the files it came from.
#[derive(Debug)]
pub struct TlsReloader {
    files: TlsFiles,
    /// Read once per accepted connection; written by a reload.
    current: RwLock<Arc<ServerConfig>>,
}

impl TlsReloader {
    /// Loads the files.
    ///
    /// # Errors
    /// [`TlsError`] if they cannot be used.
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let config = server_config(&files)?;
        Ok(Self { files, current: RwLock::new(Arc::new(config)) })
    }

    /// An acceptor with the current configuration.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.read().unwrap_or_else(PoisonError::into_inner).clone())
    }

    /// Reads the files again; on error the previous configuration stays.
    ///
    /// # Errors
    /// [`TlsError`] if the new files cannot be used.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = Arc::new(server_config(&self.files)?);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = config;
        Ok(())
    }
}

/// Starts listening for SIGHUP. Called before the server reports ready, so
/// a SIGHUP sent right after `listening on` is caught rather than ending
/// the process (its default action).
pub fn hangup_signal() -> Option<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::hangup()) {
        Ok(hangup) => Some(hangup),
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGHUP; the certificate cannot be reloaded without a restart");
            None
        }
    }
}

/// Reloads the certificate on every SIGHUP until `shutdown`. Without TLS,
/// SIGHUP is only logged (instead of ending the process, its default).
pub async fn reload_on_sighup(
    reloader: Option<Arc<TlsReloader>>,
    hangup: Option<tokio::signal::unix::Signal>,
    shutdown: CancellationToken,
) {
    let Some(mut hangup) = hangup else {
        // Nothing to listen to; stay until shutdown like the other tasks,
        // so that the supervisor does not take this for a death.
        shutdown.cancelled().await;
        return;
    };
    loop {
        tokio::select! {
            received = hangup.recv() => if received.is_none() { return },
            () = shutdown.cancelled() => return,
        }
        match &reloader {
            None => tracing::info!("SIGHUP received; no TLS certificate configured, nothing to reload"),
            Some(reloader) => match reloader.reload() {
                Ok(()) => tracing::info!(event = "tls_reload", "SIGHUP received; TLS certificate reloaded"),
                Err(error) => tracing::error!(
                    event = "tls_reload_failed",
                    %error,
                    "SIGHUP received; the TLS certificate could not be reloaded, keeping the previous one"
                ),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) -> TlsFiles {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("rcgen");
        let files = TlsFiles { cert: dir.join(format!("{name}.crt")), key: dir.join(format!("{name}.key")) };
        std::fs::write(&files.cert, certified.cert.pem()).expect("write cert");
        std::fs::write(&files.key, certified.key_pair.serialize_pem()).expect("write key");
        files
    }

    #[test]
    fn a_generated_pair_loads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = write_pair(dir.path(), "a");
        let config = server_config(&files).expect("loads");
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    #[test]
    fn bad_files_are_refused_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = write_pair(dir.path(), "a");
        let b = write_pair(dir.path(), "b");
        let missing = TlsFiles { cert: dir.path().join("nope.crt"), key: a.key.clone() };
        assert!(server_config(&missing).unwrap_err().to_string().contains("nope.crt"));
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not pem").expect("write");
        let no_cert = TlsFiles { cert: garbage.clone(), key: a.key.clone() };
        assert!(matches!(server_config(&no_cert), Err(TlsError::Certificate { .. })));
        let no_key = TlsFiles { cert: a.cert.clone(), key: garbage };
        assert!(matches!(server_config(&no_key), Err(TlsError::Key { .. })));
        let mismatched = TlsFiles { cert: a.cert.clone(), key: b.key.clone() };
        assert!(matches!(server_config(&mismatched), Err(TlsError::Rustls(_))));
    }

    #[test]
    fn a_failed_reload_keeps_the_previous_config() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = write_pair(dir.path(), "a");
        let reloader = TlsReloader::load(files.clone()).expect("loads");
        let before = reloader.current.read().unwrap().clone();
        std::fs::write(&files.cert, "broken").expect("write");
        assert!(reloader.reload().is_err());
        assert!(Arc::ptr_eq(&before, &reloader.current.read().unwrap()), "the old config stays");
        write_pair(dir.path(), "a");
        reloader.reload().expect("a good pair reloads");
        assert!(!Arc::ptr_eq(&before, &reloader.current.read().unwrap()), "the new config is in force");
    }
}
