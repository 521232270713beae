//! The admin worker: the only part of the console that talks to the
//! server. It receives [`Request`]s, runs each in its own task (so a slow
//! call never holds up the next, nor the UI), and sends back a [`Reply`].

use tessera_shared::admin::{KeyRotation, KeyState, RotateKeys, RotateSecret, RotationOutcome};
use tokio::sync::mpsc;

use super::action::{Failure, Reply, Request, Snapshot};
use crate::client::AdminClient;

/// Audit events fetched per poll.
pub const AUDIT_PAGE: usize = 200;

/// Starts the worker on the current runtime. It stops when the request
/// sender is dropped.
pub fn spawn(client: AdminClient) -> (mpsc::UnboundedSender<Request>, mpsc::UnboundedReceiver<Reply>) {
    let (request_tx, mut request_rx) = mpsc::unbounded_channel::<Request>();
    let (reply_tx, reply_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(request) = request_rx.recv().await {
            let client = client.clone();
            let reply_tx = reply_tx.clone();
            tokio::spawn(async move {
                // The console may be gone already; nothing to tell then.
                let _ = reply_tx.send(handle(&client, request).await);
            });
        }
    });
    (request_tx, reply_rx)
}

/// Largest key file read (the server refuses key documents over 32 KiB).
const MAX_KEY_FILE: u64 = 64 * 1024;

/// The text of a public key file, or why it cannot be read.
async fn read_key_file(path: &std::path::Path) -> Result<String, String> {
    use tokio::io::AsyncReadExt as _;
    let cannot = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
    let file = tokio::fs::File::open(path).await.map_err(cannot)?;
    let mut text = String::new();
    file.take(MAX_KEY_FILE).read_to_string(&mut text).await.map_err(cannot)?;
    Ok(text)
}

/// Carries out one request.
pub async fn handle(client: &AdminClient, request: Request) -> Reply {
    match request {
        Request::Poll { full, audit_after } => Reply::Polled(poll(client, full, audit_after).await),
        Request::Create(create) => Reply::Created(client.create_client(&create).await.map_err(Failure::from)),
        Request::CreateWithKey(mut create, path) => match read_key_file(&path).await {
            Ok(document) => {
                create.public_keys = vec![document];
                Reply::Created(client.create_client(&create).await.map_err(Failure::from))
            }
            Err(message) => Reply::Created(Err(Failure { unreachable: false, message })),
        },
        Request::RotateSecret { client_id, grace_seconds } => Reply::SecretRotated(
            client
                .rotate_secret(&client_id, RotateSecret { grace_seconds, secret_ttl_seconds: None })
                .await
                .map_err(Failure::from),
        ),
        Request::Revoke(id) => Reply::Done(
            client
                .revoke_client(&id)
                .await
                .map(|c| format!("Revoked \"{}\".", c.name))
                .map_err(|e| Failure::from(e).prefixed("revoke failed")),
        ),
        Request::Reactivate(id) => Reply::Done(
            client
                .reactivate_client(&id)
                .await
                .map(|c| format!("\"{}\" is active again.", c.name))
                .map_err(|e| Failure::from(e).prefixed("re-activation failed")),
        ),
        Request::Delete(id) => Reply::Done(
            client
                .delete_client(&id)
                .await
                .map(|d| format!("Deleted the client; {} refresh-token families revoked.", d.refresh_families_revoked))
                .map_err(|e| Failure::from(e).prefixed("delete failed")),
        ),
        Request::RevokeFamilies(id) => Reply::Done(
            client
                .revoke_families(&id)
                .await
                .map(|r| format!("Revoked {} refresh-token families.", r.revoked_families))
                .map_err(|e| Failure::from(e).prefixed("revoking refresh tokens failed")),
        ),
        Request::RotateKeys { now } => Reply::Done(
            client
                .rotate_keys(RotateKeys { now })
                .await
                .map(|rotation| rotation_sentence(&rotation))
                .map_err(|error| Failure::from(error).prefixed("key rotation failed")),
        ),
        Request::RevokeKey(kid) => Reply::Done(
            client
                .revoke_key(&kid)
                .await
                .map(|keys| {
                    let active = keys.iter().find(|k| k.state == KeyState::Active).map_or("?", |k| k.kid.as_str());
                    format!("Revoked {kid}: it is out of the JWKS. {active} signs.")
                })
                .map_err(|error| Failure::from(error).prefixed("key revocation failed")),
        ),
    }
}

/// What a rotation did, in one sentence with the time in UTC.
pub fn rotation_sentence(rotation: &KeyRotation) -> String {
    let next = |state: KeyState| rotation.keys.iter().find(|k| k.state == state).map_or("?", |k| k.kid.as_str());
    let when = crate::cli::output::timestamp(rotation.rotates_at);
    match rotation.outcome {
        RotationOutcome::Rotated => format!("Rotated at {when}: {} signs now.", next(KeyState::Active)),
        RotationOutcome::Scheduled => {
            format!("Rotation scheduled for {when}: {} signs from then on.", next(KeyState::Next))
        }
    }
}

impl Failure {
    fn prefixed(mut self, what: &str) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }
}

async fn poll(client: &AdminClient, full: bool, audit_after: Option<u64>) -> Result<Snapshot, Failure> {
    let stats = client.stats().await?;
    let audit = client.audit(audit_after, AUDIT_PAGE).await?;
    let (clients, keys) =
        if full { (Some(client.list_clients().await?), Some(client.keys().await?)) } else { (None, None) };
    Ok(Snapshot { clients, keys, stats, audit })
}
