//! Accepting connections: a cap on concurrent connections, optional TLS,
//! hyper's bounds on the request head and its arrival time, an idle
//! timeout between kept-alive requests, and a graceful drain.
//!
//! Bounds and what a client sees when it crosses one:
//! - request head (line and headers) over `max_header_bytes`, or more than
//!   `max_headers` fields: hyper answers 431 and closes;
//! - head not complete within `request_timeout` (slowloris): hyper closes
//!   the connection; its task holds no one else up;
//! - TLS handshake not done within `request_timeout`: closed;
//! - no new request within `idle_timeout` after the last response: closed;
//! - more than `max_connections` open: further connections wait in the
//!   kernel's accept queue until a slot frees.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{App, route};
use crate::config::Limits;
use crate::tls::TlsReloader;

/// How long in-flight requests get to finish once shutdown starts.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// The peer's address, put into each request's extensions for the
/// rate limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// Serves `listener` (over TLS if `tls` is given) until `shutdown` is
/// cancelled, then stops accepting and waits up to [`DRAIN_DEADLINE`] for
/// open connections to finish their requests.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    limits: Limits,
    tls: Option<Arc<TlsReloader>>,
    shutdown: CancellationToken,
) {
    let connections = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.request_timeout)
        .max_buf_size(limits.max_header_bytes)
        .max_headers(limits.max_headers)
        .keep_alive(true);

    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = shutdown.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            builder: builder.clone(),
            app: app.clone(),
            peer,
            idle_timeout: limits.idle_timeout,
            shutdown: shutdown.clone(),
        };
        match &tls {
            None => {
                connections.spawn(async move {
                    connection.serve(stream).await;
                    drop(slot);
                });
            }
            Some(tls) => {
                let acceptor = tls.acceptor();
                let handshake_timeout = limits.request_timeout;
                connections.spawn(async move {
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => connection.serve(stream).await,
                        Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                    drop(slot);
                });
            }
        }
    }
    drop(listener);
    // Said once the port is closed: the sign, for an operator and for the
    // tests, that no new connection is taken from here on.
    tracing::info!(open = connections.len(), "stopped accepting connections; draining the open ones");
    connections.close();
    tokio::select! {
        () = connections.wait() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(DRAIN_DEADLINE) => tracing::warn!("drain deadline passed; closing remaining connections"),
    }
}

/// One accepted connection and what serving it needs.
struct Connection {
    builder: http1::Builder,
    app: Arc<App>,
    peer: SocketAddr,
    idle_timeout: Duration,
    shutdown: CancellationToken,
}

impl Connection {
    async fn serve<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Arc::new(Activity::new());
        let service = {
            let (app, activity, peer) = (self.app.clone(), activity.clone(), self.peer);
            service_fn(move |mut request| {
                request.extensions_mut().insert(PeerAddr(peer));
                let busy = activity.begin();
                let app = app.clone();
                async move {
                    let response = route(app, request).await;
                    drop(busy);
                    response
                }
            })
        };
        let connection = self.builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(connection);
        let mut closing = false;
        loop {
            // While a request runs the connection is not idle: look again later.
            let idle_deadline = if activity.in_flight.load(Ordering::Acquire) > 0 {
                Instant::now() + self.idle_timeout
            } else {
                activity.last_done() + self.idle_timeout
            };
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                    return;
                }
                () = self.shutdown.cancelled(), if !closing => {
                    // Finishes the request in flight, if any, then closes.
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
                () = tokio::time::sleep_until(idle_deadline), if !closing => {
                    if activity.is_idle_since(idle_deadline - self.idle_timeout) {
                        connection.as_mut().graceful_shutdown();
                        closing = true;
                    }
                }
            }
        }
    }
}

/// When a connection last finished a request, and whether one is running.
#[derive(Debug)]
struct Activity {
    start: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `start` at which the last request finished.
    last_done_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self { start: Instant::now(), in_flight: AtomicUsize::new(0), last_done_ms: AtomicU64::new(0) }
    }

    fn last_done(&self) -> Instant {
        self.start + Duration::from_millis(self.last_done_ms.load(Ordering::Acquire))
    }

    /// No request is running and none finished after `since`.
    fn is_idle_since(&self, since: Instant) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0 && self.last_done() <= since
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }
}

/// A request in progress; dropping it marks the connection active now.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let ms = u64::try_from(self.0.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.last_done_ms.fetch_max(ms, Ordering::AcqRel);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}
