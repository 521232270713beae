//! A typed client for the admin API that `tessera-server` serves on its Unix
//! socket (`<data-dir>/admin.sock`).
//!
//! The routes and bodies are defined in [`tessera_shared::admin`]; this module
//! only carries them: one method per route, each returning the typed answer or
//! an [`Error`] that says what went wrong in operator terms.
//!
//! Every call opens its own HTTP/1.1 connection. The socket is local, so a
//! connection costs next to nothing, and holding none between calls means a
//! restarted server is picked up without any reconnect logic. The client is
//! cheap to clone, so the console can hand copies to background tasks.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tessera_shared::admin::{
    AdminError, AuditEvent, ClientCredentials, ClientInfo, CreateClient, Deleted, FamiliesRevoked, ImportKey, KeyInfo,
    KeyRotation, RotateKeys, RotateSecret, SetKeys, Stats, paths,
};
use tessera_shared::ids;
use tokio::net::UnixStream;

/// The admin socket's file name inside the server's data directory.
pub const SOCKET_FILE_NAME: &str = "admin.sock";

/// How long one call may take, connection included, unless changed with
/// [`AdminClient::with_timeout`]. The server answers admin calls from local
/// storage, so anything slower than this means it is stuck, and a script is
/// better served by an error than by a hang.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest response body accepted. A client list is the biggest answer
/// (a few hundred bytes a client), so this leaves room for tens of thousands
/// of clients while keeping a confused peer from filling memory.
pub const MAX_RESPONSE_BODY: usize = 8 * 1024 * 1024;

/// The admin socket of the server whose data directory is `data_dir`.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_FILE_NAME)
}

/// Why an admin call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Nothing listens at the socket path: the file is missing, or a stale
    /// socket is left from a server that stopped without cleaning up.
    #[error("tessera-server is not running: no admin socket listening at {}", socket.display())]
    ServerNotRunning {
        /// Where the client looked, made absolute so the operator sees which
        /// directory was meant.
        socket: PathBuf,
    },

    /// Connecting failed for another reason, such as missing permission on
    /// the socket (it is mode 0600, owned by the server's user).
    #[error("cannot connect to the admin socket {}: {source}", socket.display())]
    Io {
        /// The socket path.
        socket: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },

    /// The whole call took longer than the client's timeout.
    #[error("tessera-server did not answer on {} within {}", socket.display(), humantime::format_duration(*after))]
    Timeout {
        /// The socket path.
        socket: PathBuf,
        /// The timeout that ran out.
        after: Duration,
    },

    /// The server refused the request and said why.
    #[error("{}", api_message(*status, error))]
    Api {
        /// The HTTP status of the answer (4xx or 5xx).
        status: StatusCode,
        /// The server's error body.
        error: AdminError,
    },

    /// A client ID without the shape of one. Checked before sending because
    /// the ID becomes a path segment, and a `/` or `?` in it would address
    /// another route.
    #[error("not a Tessera client ID: {0:?} (expected {prefix} followed by {n} characters of A-Z a-z 0-9 _ -)", prefix = ids::CLIENT_ID_PREFIX, n = ids::CLIENT_ID_RANDOM_LEN)]
    InvalidClientId(String),

    /// A kid that is not an RFC 7638 thumbprint (base64url); refused
    /// before it becomes a path segment.
    #[error("not a signing-key kid: {0:?} (expected the base64url thumbprint `keys list` shows)")]
    InvalidKid(String),

    /// The exchange broke down below the level of the admin API.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
}

impl Error {
    /// Whether the server could not be reached at all (as opposed to
    /// refusing a request): the console shows a banner and retries.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::ServerNotRunning { .. } | Self::Io { .. } | Self::Timeout { .. } | Self::Protocol(_))
    }
}

/// Ways an exchange can fail although a peer answered on the socket.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// HTTP/1.1 failed: the connection closed early or a message was malformed.
    #[error("admin API connection failed: {0}")]
    Http(#[source] hyper::Error),

    /// The request could not be put together.
    #[error("cannot build the admin API request: {0}")]
    Request(#[source] http::Error),

    /// The request body could not be serialized.
    #[error("cannot encode the admin API request: {0}")]
    Encode(#[source] serde_json::Error),

    /// The answer's body exceeded [`MAX_RESPONSE_BODY`].
    #[error("the admin API answer is larger than {limit} bytes")]
    TooLarge {
        /// The limit that was exceeded.
        limit: usize,
    },

    /// A successful answer whose body is not the expected JSON.
    #[error("unreadable admin API answer (HTTP {status}): {source}")]
    Decode {
        /// The HTTP status of the answer.
        status: StatusCode,
        /// What the JSON parser said.
        #[source]
        source: serde_json::Error,
    },

    /// A failure status without an admin error body, as a proxy or a
    /// different program on the socket would send.
    #[error("unexpected admin API answer: HTTP {status} without an error body")]
    UnexpectedStatus {
        /// The HTTP status of the answer.
        status: StatusCode,
    },
}

/// The operator-facing sentence for an API error. The server's message is
/// meant for the operator; the code and status only fill in when it is empty.
fn api_message(status: StatusCode, error: &AdminError) -> String {
    if error.message.trim().is_empty() {
        format!("admin API error {} (HTTP {status})", error.error)
    } else {
        error.message.clone()
    }
}

/// A client of one server's admin API.
#[derive(Debug, Clone)]
pub struct AdminClient {
    /// The Unix socket the server listens on.
    socket: PathBuf,
    /// The limit on each call, connection and body included.
    timeout: Duration,
}

impl AdminClient {
    /// A client for the admin socket at `socket`. Nothing is connected until
    /// the first call.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self { socket: socket.into(), timeout: DEFAULT_TIMEOUT }
    }

    /// A client for the server whose data directory is `data_dir`.
    pub fn for_data_dir(data_dir: &Path) -> Self {
        Self::new(socket_path(data_dir))
    }

    /// The same client with another limit on each call.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The socket this client talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `GET /v1/clients`: every client, without secrets.
    ///
    /// # Errors
    ///
    /// Any [`Error`] but [`Error::InvalidClientId`].
    pub async fn list_clients(&self) -> Result<Vec<ClientInfo>, Error> {
        self.call(Method::GET, paths::CLIENTS, None::<&()>).await
    }

    /// `POST /v1/clients`: creates a client and returns its one-time secret.
    ///
    /// # Errors
    ///
    /// [`Error::Api`] when the server rejects the request (for example an
    /// invalid scope), or any failure to reach it.
    pub async fn create_client(&self, request: &CreateClient) -> Result<ClientCredentials, Error> {
        self.call(Method::POST, paths::CLIENTS, Some(request)).await
    }

    /// `GET /v1/clients/{id}`: one client, without secrets.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidClientId`] for a malformed ID, [`Error::Api`] with
    /// status 404 for an unknown one, or any failure to reach the server.
    pub async fn client(&self, client_id: &str) -> Result<ClientInfo, Error> {
        let path = paths::client(checked_id(client_id)?);
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// `POST /v1/clients/{id}/set-keys`: replaces a private_key_jwt
    /// client's public keys.
    ///
    /// # Errors
    ///
    /// As [`AdminClient::client`]; the server's message for a key it refuses.
    pub async fn set_keys(&self, client_id: &str, request: &SetKeys) -> Result<ClientInfo, Error> {
        let path = paths::client_action(checked_id(client_id)?, "set-keys");
        self.call(Method::POST, &path, Some(request)).await
    }

    /// `POST /v1/clients/{id}/rotate-secret`: gives the client a new secret,
    /// returned this once.
    ///
    /// # Errors
    ///
    /// As [`AdminClient::client`].
    pub async fn rotate_secret(&self, client_id: &str, request: RotateSecret) -> Result<ClientCredentials, Error> {
        let path = paths::client_action(checked_id(client_id)?, "rotate-secret");
        self.call(Method::POST, &path, Some(&request)).await
    }

    /// `POST /v1/clients/{id}/revoke`: refuses the client's future token
    /// requests and revokes its refresh tokens.
    ///
    /// # Errors
    ///
    /// As [`AdminClient::client`].
    pub async fn revoke_client(&self, client_id: &str) -> Result<ClientInfo, Error> {
        let path = paths::client_action(checked_id(client_id)?, "revoke");
        self.call(Method::POST, &path, None::<&()>).await
    }

    /// `DELETE /v1/clients/{id}`: removes the client and its refresh tokens.
    ///
    /// # Errors
    ///
    /// As [`AdminClient::client`].
    pub async fn delete_client(&self, client_id: &str) -> Result<Deleted, Error> {
        let path = paths::client(checked_id(client_id)?);
        self.call(Method::DELETE, &path, None::<&()>).await
    }

    /// `POST /v1/clients/{id}/revoke-families`: revokes every live
    /// refresh-token family of the client, leaving the client active.
    ///
    /// # Errors
    ///
    /// As [`AdminClient::client`].
    pub async fn revoke_families(&self, client_id: &str) -> Result<FamiliesRevoked, Error> {
        let path = paths::client_action(checked_id(client_id)?, "revoke-families");
        self.call(Method::POST, &path, None::<&()>).await
    }

    /// `GET /v1/keys`: the signing keys, without their private parts.
    ///
    /// # Errors
    ///
    /// Any [`Error`] but [`Error::InvalidClientId`].
    pub async fn keys(&self) -> Result<Vec<KeyInfo>, Error> {
        self.call(Method::GET, paths::KEYS, None::<&()>).await
    }

    /// `POST /v1/clients/{id}/reactivate`: lets a revoked client
    /// authenticate again (its old refresh tokens stay revoked).
    ///
    /// # Errors
    ///
    /// As [`AdminClient::client`].
    pub async fn reactivate_client(&self, client_id: &str) -> Result<ClientInfo, Error> {
        let path = paths::client_action(checked_id(client_id)?, "reactivate");
        self.call(Method::POST, &path, None::<&()>).await
    }

    /// `GET /v1/audit`: up to `limit` audit events after sequence number
    /// `after`, or the newest `limit` when `after` is `None`; oldest first.
    ///
    /// # Errors
    ///
    /// Any [`Error`] but [`Error::InvalidClientId`].
    pub async fn audit(&self, after: Option<u64>, limit: usize) -> Result<Vec<AuditEvent>, Error> {
        let path = match after {
            Some(after) => format!("{}?after={after}&limit={limit}", paths::AUDIT),
            None => format!("{}?limit={limit}", paths::AUDIT),
        };
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// `GET /v1/stats`: the server's activity counters since it started.
    ///
    /// # Errors
    ///
    /// Any [`Error`] but [`Error::InvalidClientId`].
    pub async fn stats(&self) -> Result<Stats, Error> {
        self.call(Method::GET, paths::STATS, None::<&()>).await
    }

    /// `POST /v1/keys/rotate`: rotates the signing keys, at once or (while
    /// the next key is younger than one JWKS cache lifetime, unless
    /// `request.now`) at the first safe moment; the answer says which.
    ///
    /// # Errors
    ///
    /// Any failure to reach the server, or [`Error::Api`] if the server
    /// could not change the keys.
    pub async fn rotate_keys(&self, request: RotateKeys) -> Result<KeyRotation, Error> {
        self.call(Method::POST, paths::KEYS_ROTATE, Some(&request)).await
    }

    /// `POST /v1/keys/{kid}/revoke`: takes a signing key out of the JWKS at once.
    ///
    /// # Errors
    ///
    /// [`Error::Api`] with status 404 for an unknown kid, 409 for a retired
    /// key; [`Error::InvalidKid`] for a kid that is not a thumbprint; any
    /// failure to reach the server.
    pub async fn revoke_key(&self, kid: &str) -> Result<Vec<KeyInfo>, Error> {
        if kid.is_empty()
            || kid.len() > 128
            || !kid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(Error::InvalidKid(kid.chars().filter(|c| !c.is_control()).take(64).collect()));
        }
        self.call(Method::POST, &paths::key_revoke(kid), None::<&()>).await
    }

    /// `POST /v1/keys/import`: imports a PKCS#8 PEM private key as the next key.
    ///
    /// # Errors
    ///
    /// [`Error::Api`] with status 400 if the key is unusable, or any failure
    /// to reach the server.
    pub async fn import_key(&self, request: &ImportKey) -> Result<Vec<KeyInfo>, Error> {
        self.call(Method::POST, paths::KEYS_IMPORT, Some(request)).await
    }

    /// One request and its decoded answer, within the timeout.
    async fn call<B, T>(&self, method: Method, path: &str, body: Option<&B>) -> Result<T, Error>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        let request = build_request(method, path, body)?;
        match tokio::time::timeout(self.timeout, self.exchange(request)).await {
            Ok(result) => result,
            Err(_elapsed) => Err(Error::Timeout { socket: self.socket.clone(), after: self.timeout }),
        }
    }

    async fn exchange<T: DeserializeOwned>(&self, request: Request<Full<Bytes>>) -> Result<T, Error> {
        let stream = UnixStream::connect(&self.socket).await.map_err(|source| self.connect_error(source))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(ProtocolError::Http)?;

        let exchange = async {
            let response = sender.send_request(request).await.map_err(ProtocolError::Http)?;
            let status = response.status();
            let body = read_body(response.into_body(), MAX_RESPONSE_BODY).await?;
            decode(status, &body)
        };

        // The connection future does the reading and writing. It is polled
        // here, beside the exchange, instead of being spawned, so that no task
        // outlives the call: a timeout drops both. When the connection ends
        // first, the exchange still holds whatever was received and settles
        // on its own (with hyper's error if the answer was cut short).
        let mut connection = pin!(connection);
        let mut exchange = pin!(exchange);
        tokio::select! {
            result = &mut exchange => result,
            _ = &mut connection => exchange.await,
        }
    }

    fn connect_error(&self, source: io::Error) -> Error {
        match source.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => Error::ServerNotRunning {
                // Relative to what? The operator should not have to guess.
                socket: std::path::absolute(&self.socket).unwrap_or_else(|_| self.socket.clone()),
            },
            _ => Error::Io { socket: self.socket.clone(), source },
        }
    }
}

/// `client_id` if it can stand as one path segment of a route.
fn checked_id(client_id: &str) -> Result<&str, Error> {
    if ids::is_client_id(client_id) { Ok(client_id) } else { Err(Error::InvalidClientId(client_id.to_owned())) }
}

fn build_request<B: Serialize + ?Sized>(
    method: Method,
    path: &str,
    body: Option<&B>,
) -> Result<Request<Full<Bytes>>, Error> {
    // Over a Unix socket there is no host, but HTTP/1.1 requires the header.
    let builder = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, "localhost")
        .header(header::ACCEPT, "application/json");
    let request = match body {
        Some(body) => {
            let json = serde_json::to_vec(body).map_err(ProtocolError::Encode)?;
            builder.header(header::CONTENT_TYPE, "application/json").body(Full::new(Bytes::from(json)))
        }
        None => builder.body(Full::new(Bytes::new())),
    };
    Ok(request.map_err(ProtocolError::Request)?)
}

/// The whole body, refusing more than `limit` bytes: up front when the
/// declared length already says so, otherwise as the bytes arrive.
async fn read_body(mut body: Incoming, limit: usize) -> Result<Vec<u8>, Error> {
    let too_large = || Error::from(ProtocolError::TooLarge { limit });
    if body.size_hint().lower() > u64::try_from(limit).unwrap_or(u64::MAX) {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(ProtocolError::Http)?;
        if let Ok(data) = frame.into_data() {
            if data.len() > limit - bytes.len() {
                return Err(too_large());
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(bytes)
}

/// The typed answer for a success status, the server's [`AdminError`] for a
/// failure status.
fn decode<T: DeserializeOwned>(status: StatusCode, body: &[u8]) -> Result<T, Error> {
    if status.is_success() {
        serde_json::from_slice(body).map_err(|source| ProtocolError::Decode { status, source }.into())
    } else {
        match serde_json::from_slice::<AdminError>(body) {
            Ok(error) => Err(Error::Api { status, error }),
            Err(_) => Err(ProtocolError::UnexpectedStatus { status }.into()),
        }
    }
}

#[cfg(test)]
mod tests;
