//! Binding the admin socket and serving it.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

use super::route;
use super::service::AdminService;

/// The socket's file name inside the data dir.
pub const SOCKET_FILE_NAME: &str = "admin.sock";

/// Binds the admin socket with mode 0600.
///
/// The caller holds the data-dir lock, so a socket file already there was
/// left by a server that died without cleaning up: it is removed.
///
/// # Errors
/// If the stale socket cannot be removed or the new one cannot be bound.
pub fn bind(data_dir: &Path) -> io::Result<(UnixListener, PathBuf)> {
    let path = data_dir.join(SOCKET_FILE_NAME);
    match std::fs::remove_file(&path) {
        Ok(()) => tracing::info!(path = %path.display(), "removed a stale admin socket"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(&path)?;
    // The data dir is 0700, so nobody else could reach the socket in the
    // moment between bind and chmod.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok((listener, path))
}

/// Serves admin requests until `shutdown` is cancelled.
pub async fn serve(listener: UnixListener, service: AdminService, shutdown: CancellationToken) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let service = service.clone();
        let handler = service_fn(move |request| route(service.clone(), request));
        tokio::spawn(async move {
            if let Err(error) = http1::Builder::new().serve_connection(TokioIo::new(stream), handler).await {
                tracing::debug!(%error, "admin connection ended with an error");
            }
        });
    }
}
