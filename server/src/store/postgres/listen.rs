//! The listening connection: one per instance, outside the pool, that
//! hears the change notifications of the schema's channel and drives the
//! client cache and the key follower.
//!
//! Every change of a `clients` row notifies `c:<client_id>` (or `c*` for
//! all, after a `TRUNCATE` or for an overlong ID), every change of the
//! signing keys `k`, from triggers in the changing transaction (see
//! [`super::schema`]); PostgreSQL delivers them once that transaction
//! commits.
//!
//! While the connection is up a heartbeat (`SELECT 1`) goes every
//! [`HEARTBEAT_EVERY`]; each answer keeps the cache serving for
//! [`super::client_cache::FRESH_FOR`] from when it was sent. A connection that
//! fails, closes (`pg_terminate_backend`) or leaves a heartbeat unanswered
//! for [`HEARTBEAT_TIMEOUT`] suspends the cache at once (lookups read
//! through); the listener reconnects with a growing pause, `LISTEN`s, and
//! only then empties and resumes the cache and asks the key follower to
//! re-read the keys: whatever changed while it was down is read afresh.

use std::future::{Future, poll_fn};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_postgres::{AsyncMessage, Connection};
use tokio_util::sync::CancellationToken;

use super::client_cache::ClientCache;
use super::connect::ConnectSettings;

/// Pause between heartbeats.
pub const HEARTBEAT_EVERY: Duration = Duration::from_millis(250);
/// A heartbeat unanswered this long means the connection is gone.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long opening the connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// First pause before reconnecting; doubled up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(2);
/// Appended to the pool's `application_name` (`tessera-server` unless the
/// URL sets one) for the listening connection, so that operators (and the
/// tests) can tell it in `pg_stat_activity`.
pub const APPLICATION_SUFFIX: &str = " listener";

/// The SQL expression of a schema's channel name; the triggers use the
/// same with `TG_TABLE_SCHEMA`.
pub const CHANNEL_SQL: &str = "SELECT 'tessera_changes_' || to_hex(hashtext(current_schema()))";

/// What drives the cache and the keys from the notifications.
#[derive(Debug)]
pub struct Listener {
    /// The connection settings of the pool, with another application name.
    pub settings: ConnectSettings,
    /// The schema's channel (from [`CHANNEL_SQL`]).
    pub channel: String,
    /// The clients cache.
    pub cache: Arc<ClientCache>,
    /// Bumped whenever the signing keys may have changed.
    pub keys: watch::Sender<u64>,
}

impl Listener {
    /// Listens until `shutdown` is cancelled, reconnecting whenever the
    /// connection is lost.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut pause = RETRY_FIRST;
        // Whether the failure to (re)connect was already logged as a warning.
        let mut warned = false;
        loop {
            let mut listened = false;
            let outcome = tokio::select! {
                () = shutdown.cancelled() => return,
                outcome = self.session(&mut listened) => outcome,
            };
            self.cache.suspend();
            if listened {
                pause = RETRY_FIRST;
                warned = false;
                tracing::warn!(
                    event = "storage_listener_down",
                    reason = %outcome,
                    "lost the PostgreSQL change notifications; reading clients from the database until they are back"
                );
            } else if !warned {
                warned = true;
                tracing::warn!(
                    event = "storage_listener_failed",
                    reason = %outcome,
                    "cannot listen for PostgreSQL change notifications; reading clients from the database and retrying"
                );
            } else {
                tracing::debug!(reason = %outcome, "cannot listen for PostgreSQL change notifications yet; will retry");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(RETRY_MAX);
        }
    }

    /// One connection's life; returns why it ended. Sets `listened` once
    /// the `LISTEN` took effect.
    async fn session(&self, listened: &mut bool) -> String {
        let mut config = self.settings.config.clone();
        let name = format!("{}{APPLICATION_SUFFIX}", config.get_application_name().unwrap_or("tessera-server"));
        config.application_name(name);
        let (client, mut connection) =
            match tokio::time::timeout(CONNECT_TIMEOUT, config.connect(self.settings.tls.clone())).await {
                Ok(Ok(pair)) => pair,
                Ok(Err(e)) => return super::describe(&e),
                Err(_) => return "connecting timed out".into(),
            };
        let on_notification = |payload: &str| self.notified(payload);
        let listen = format!("LISTEN \"{}\"", self.channel);
        match drive(&mut connection, client.batch_execute(&listen), &on_notification).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return super::describe(&e),
            Err(why) => return why,
        }
        // From here on every change is heard: start afresh.
        self.cache.resume(Instant::now());
        self.keys.send_modify(|n| *n = n.wrapping_add(1));
        if !*listened {
            tracing::info!(event = "storage_listener_up", "listening for PostgreSQL change notifications");
        }
        *listened = true;
        loop {
            if let Err(why) = drive(&mut connection, tokio::time::sleep(HEARTBEAT_EVERY), &on_notification).await {
                return why;
            }
            let sent = Instant::now();
            let beat = tokio::time::timeout(HEARTBEAT_TIMEOUT, client.simple_query("SELECT 1"));
            match drive(&mut connection, beat, &on_notification).await {
                Ok(Ok(Ok(_))) => self.cache.heard_at(sent),
                Ok(Ok(Err(e))) => return super::describe(&e),
                Ok(Err(_)) => return format!("a heartbeat was unanswered for {HEARTBEAT_TIMEOUT:?}"),
                Err(why) => return why,
            }
        }
    }

    fn notified(&self, payload: &str) {
        match payload {
            "k" => self.keys.send_modify(|n| *n = n.wrapping_add(1)),
            "c*" => self.cache.invalidate_all(),
            other => match other.strip_prefix("c:") {
                Some(client_id) => self.cache.invalidate(client_id),
                // Not ours (a newer version's?): assume anything changed.
                None => {
                    self.cache.invalidate_all();
                    self.keys.send_modify(|n| *n = n.wrapping_add(1));
                }
            },
        }
    }
}

/// Runs `work` while driving `connection`, handing each notification that
/// arrives meanwhile to `on_notification` (before `work`'s result, when
/// both are ready). `Err` if the connection fails or closes.
async fn drive<S, T, F>(
    connection: &mut Connection<S, T>,
    work: F,
    on_notification: &impl Fn(&str),
) -> Result<F::Output, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
    F: Future,
{
    let mut work = std::pin::pin!(work);
    loop {
        tokio::select! {
            biased;
            message = poll_fn(|cx| connection.poll_message(cx)) => match message {
                Some(Ok(AsyncMessage::Notification(n))) => on_notification(n.payload()),
                // Notices (warnings from the server) and future kinds.
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(super::describe(&e)),
                None => return Err("the connection closed".into()),
            },
            output = &mut work => return Ok(output),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::postgres::client_cache::Lookup;

    /// The listener's reaction to each payload, without a database.
    #[tokio::test(start_paused = true)]
    async fn payloads_invalidate_what_they_name() {
        let settings = ConnectSettings::from_url("postgres://u@127.0.0.1/x").unwrap();
        let cache = Arc::new(ClientCache::new(8));
        let (keys, mut key_changes) = watch::channel(0);
        let listener = Listener { settings, channel: "c".into(), cache: cache.clone(), keys };
        cache.resume(Instant::now());
        let fill = |id: &str| {
            let Lookup::Miss(ticket) = cache.get(id) else { panic!("cached before the fill") };
            let mut record = crate::store::postgres::tests::sample_client();
            record.client_id = id.into();
            cache.fill(ticket, &record);
        };
        fill("a");
        fill("b");
        listener.notified("c:a");
        assert!(matches!(cache.get("a"), Lookup::Miss(_)));
        assert!(matches!(cache.get("b"), Lookup::Hit(_)));
        listener.notified("c*");
        assert!(cache.is_empty());
        assert!(!key_changes.has_changed().unwrap());
        listener.notified("k");
        assert!(key_changes.has_changed().unwrap());
        key_changes.borrow_and_update();
        fill("a");
        listener.notified("something new");
        assert!(cache.is_empty() && key_changes.has_changed().unwrap());
    }
}
