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
//! - more than `max_connections_per_source` open from one source address
//!   (IPv6: one /64): further ones from it are closed at once, so one
//!   source cannot take every slot;
//! - near `max_connections` (fewer than [`shed_reserve`] slots free): the
//!   oldest connection that has not yet sent a complete request head is
//!   closed for each new one accepted, so half-sent heads cannot hold
//!   slots that clients with whole requests need;
//! - more than `max_connections` open, none of them sheddable: further
//!   connections wait (one accepted, the rest in the kernel's accept
//!   queue) until a slot frees.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
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
    let sources = Arc::new(Sources::default());
    let pending = Arc::new(Pending::default());
    let reserve = shed_reserve(limits.max_connections);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.request_timeout)
        .max_buf_size(limits.max_header_bytes)
        .max_headers(limits.max_headers)
        .keep_alive(true);

    loop {
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
        let Some(source) = sources.admit(peer.ip(), limits.max_connections_per_source) else {
            tracing::debug!(source = %source_key(peer.ip()), "too many connections from one source; closed");
            drop(stream);
            continue;
        };
        // Near the cap, a connection that has not sent a whole request head
        // gives its slot to this one, oldest first.
        if slots.available_permits() < reserve {
            pending.shed_oldest();
        }
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let (head, shed) = pending.register();
        let connection = Connection {
            builder: builder.clone(),
            app: app.clone(),
            peer,
            idle_timeout: limits.idle_timeout,
            shutdown: shutdown.clone(),
            head,
            shed,
            _source: source,
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
                    // A handshake not yet done is no complete head either: sheddable.
                    let shed = connection.shed.clone();
                    tokio::select! {
                        handshake = tokio::time::timeout(handshake_timeout, acceptor.accept(stream)) => {
                            match handshake {
                                Ok(Ok(stream)) => connection.serve(stream).await,
                                Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
                                Err(_) => tracing::debug!("TLS handshake timed out"),
                            }
                        }
                        () = shed.cancelled() => tracing::debug!("shed during the TLS handshake"),
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
    /// Marks the first complete request head; until then the connection
    /// may be shed near the global cap.
    head: HeadSeen,
    /// Cancelled when the connection is shed.
    shed: CancellationToken,
    /// Holds the connection's place in its source's count.
    _source: SourceSlot,
}

impl Connection {
    async fn serve<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let idle = Arc::new(ConnectionIdle::new());
        let service = {
            let (app, idle, peer, head) = (self.app.clone(), idle.clone(), self.peer, self.head.clone());
            service_fn(move |mut request| {
                head.seen();
                request.extensions_mut().insert(PeerAddr(peer));
                let busy = idle.begin();
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
            let idle_deadline = if idle.in_flight.load(Ordering::Acquire) > 0 {
                Instant::now() + self.idle_timeout
            } else {
                idle.last_done() + self.idle_timeout
            };
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                    return;
                }
                () = self.shed.cancelled() => {
                    tracing::debug!(peer = %self.peer, "shed: no complete request head while the server is near its connection cap");
                    return;
                }
                () = self.shutdown.cancelled(), if !closing => {
                    // Finishes the request in flight, if any, then closes.
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
                () = tokio::time::sleep_until(idle_deadline), if !closing => {
                    if idle.is_idle_since(idle_deadline - self.idle_timeout) {
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
struct ConnectionIdle {
    start: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `start` at which the last request finished.
    last_done_ms: AtomicU64,
}

impl ConnectionIdle {
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
struct Busy(Arc<ConnectionIdle>);

impl Drop for Busy {
    fn drop(&mut self) {
        let ms = u64::try_from(self.0.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.last_done_ms.fetch_max(ms, Ordering::AcqRel);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How many free slots the accept loop keeps by shedding connections that
/// have sent no complete request head: a sixteenth of the cap, at least one.
pub fn shed_reserve(max_connections: usize) -> usize {
    (max_connections / 16).max(1)
}

/// The key a source address is counted under: IPv4 as is (mapped IPv6
/// too), IPv6 by its /64, the unit one host gets.
pub fn source_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

/// Open connections per source. A std mutex is enough: held for one map
/// update, never across an await.
#[derive(Debug, Default)]
pub struct Sources {
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl Sources {
    /// Counts a new connection from `address`, unless its source already
    /// has `cap` open; the slot gives the place back when dropped.
    pub fn admit(self: &Arc<Self>, address: IpAddr, cap: usize) -> Option<SourceSlot> {
        let key = source_key(address);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(key).or_insert(0);
        if *count >= cap {
            return None;
        }
        *count += 1;
        Some(SourceSlot { sources: self.clone(), key })
    }

    /// How many connections `address`'s source has open.
    pub fn open(&self, address: IpAddr) -> usize {
        self.open.lock().unwrap_or_else(PoisonError::into_inner).get(&source_key(address)).copied().unwrap_or(0)
    }
}

/// One connection's place in its source's count.
#[derive(Debug)]
pub struct SourceSlot {
    sources: Arc<Sources>,
    key: IpAddr,
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut open = self.sources.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// Connections that have not sent a complete request head yet, oldest
/// first (by acceptance order), each with the token that sheds it.
#[derive(Debug, Default)]
pub struct Pending {
    next: AtomicU64,
    waiting: Mutex<BTreeMap<u64, CancellationToken>>,
}

impl Pending {
    /// Registers a new connection.
    pub fn register(self: &Arc<Self>) -> (HeadSeen, CancellationToken) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let shed = CancellationToken::new();
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner).insert(id, shed.clone());
        (HeadSeen(Arc::new(HeadState { id, seen: AtomicBool::new(false), pending: self.clone() })), shed)
    }

    /// Sheds the oldest connection without a complete head; returns whether
    /// there was one.
    pub fn shed_oldest(&self) -> bool {
        let oldest = self.waiting.lock().unwrap_or_else(PoisonError::into_inner).pop_first();
        oldest.map(|(_, shed)| shed.cancel()).is_some()
    }

    /// How many connections have sent no complete head yet.
    pub fn len(&self) -> usize {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Whether every connection has sent a complete head.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn remove(&self, id: u64) {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
    }
}

/// Marks a connection's first complete request head (and its end).
#[derive(Debug, Clone)]
pub struct HeadSeen(Arc<HeadState>);

#[derive(Debug)]
struct HeadState {
    id: u64,
    seen: AtomicBool,
    pending: Arc<Pending>,
}

impl HeadSeen {
    /// A complete head arrived: the connection is no longer sheddable.
    pub fn seen(&self) {
        if !self.0.seen.swap(true, Ordering::AcqRel) {
            self.0.pending.remove(self.0.id);
        }
    }
}

impl Drop for HeadState {
    fn drop(&mut self) {
        self.pending.remove(self.id);
    }
}

#[cfg(test)]
mod tests;
