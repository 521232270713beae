//! `tessera-server export-jwks`: the public JWKS of a data dir, for
//! resource servers that pin keys from a file.
//!
//! sled locks its database and Tessera locks the data dir, so a running
//! server's database cannot be opened beside it. When the data dir is in
//! use, the JWKS is therefore asked of the running server over its admin
//! socket (`GET /v1/jwks`); otherwise it is read from the database directly.
//! Either way only public keys are read: no key-encryption key is needed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_util::rt::TokioIo;
use tessera_shared::admin::paths;
use tessera_shared::jwk::JwkSet;

use crate::datadir::{DataDir, DataDirError};
use crate::keys::lifecycle::KeySet;
use crate::store::Store as _;
use crate::store::sled::SledStore;

/// How long the running server has to answer.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest JWKS accepted from the admin socket.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Why the JWKS could not be exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The data dir holds no database.
    #[error("no Tessera database in {0} (start tessera-server once to create one)")]
    NoDatabase(PathBuf),
    /// The data dir could not be opened.
    #[error(transparent)]
    DataDir(DataDirError),
    /// The database could not be read.
    #[error("cannot read the database: {0}")]
    Store(#[from] crate::store::StoreError),
    /// The stored keys are inconsistent.
    #[error("the stored signing keys are inconsistent: {0}")]
    Inconsistent(&'static str),
    /// A server runs on the data dir but its admin socket did not answer.
    #[error("a tessera-server holds {dir} but its admin socket {socket} did not answer: {reason}")]
    Admin {
        /// The data dir.
        dir: PathBuf,
        /// The socket.
        socket: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// The public JWKS of the data dir, as the server serves it.
///
/// # Errors
/// [`ExportError`] if there is no database or it cannot be read.
pub async fn export_jwks(data_dir: &Path) -> Result<JwkSet, ExportError> {
    let database = data_dir.join("db");
    if !database.exists() {
        return Err(ExportError::NoDatabase(data_dir.to_owned()));
    }
    match DataDir::open(data_dir) {
        Ok(dir) => {
            let store = SledStore::open(&dir.database_path())?;
            let set = KeySet::from_records(store.keys().await?).map_err(ExportError::Inconsistent)?;
            Ok(JwkSet { keys: set.published().map(|k| k.public_jwk.clone()).collect() })
        }
        Err(DataDirError::InUse(..)) => from_running_server(data_dir).await,
        Err(other) => Err(ExportError::DataDir(other)),
    }
}

async fn from_running_server(data_dir: &Path) -> Result<JwkSet, ExportError> {
    let socket = data_dir.join(crate::admin::socket::SOCKET_FILE_NAME);
    let failed = |reason: String| ExportError::Admin { dir: data_dir.to_owned(), socket: socket.clone(), reason };
    let exchange = async {
        let stream = tokio::net::UnixStream::connect(&socket).await.map_err(|e| e.to_string())?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
        let request = http::Request::get(paths::JWKS)
            .header(http::header::HOST, "localhost")
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let ask = async {
            let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            if !status.is_success() {
                return Err(format!("status {status}"));
            }
            serde_json::from_slice::<JwkSet>(&body).map_err(|e| format!("not a JWKS: {e}"))
        };
        // The connection is driven here beside the request, so nothing
        // outlives this call.
        tokio::select! {
            result = ask => result,
            done = connection => Err(match done {
                Ok(()) => "the connection closed early".to_owned(),
                Err(e) => e.to_string(),
            }),
        }
    };
    match tokio::time::timeout(ADMIN_TIMEOUT, exchange).await {
        Ok(result) => result.map_err(failed),
        Err(_) => Err(failed(format!("no answer within {ADMIN_TIMEOUT:?}"))),
    }
}
