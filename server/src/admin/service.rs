//! Client and key administration: the operations behind the admin API,
//! without HTTP.

use std::sync::Arc;

use tessera_shared::admin::{
    AuditEvent, AuditKind, AuthMethod, ClientCredentials, ClientInfo, ClientStatus, CreateClient, Deleted,
    FamiliesRevoked, KeyInfo, KeyRotation, RotateKeys, RotationOutcome, Stats,
};
use tessera_shared::ids::is_client_id;
use tessera_shared::jwk::Jwk;
use tessera_shared::jwk::JwkSet;

use crate::activity::Activity;
use crate::audit::{Audit, AuditEntry};
use crate::client_auth::public_key;
use crate::clock::{Clock, UnixTime};
use crate::crypto::CryptoError;
use crate::crypto::random::Random;
use crate::crypto::secret::SecretHasher;
use crate::grant::scope::is_scope_token;
use crate::keys::lifecycle::RevokeError;
use crate::keys::manager::Rotation;
use crate::keys::{KeyError, KeyManager};
use crate::store::records::{ClientRecord, PreviousSecret};
use crate::store::{Store, StoreError};

/// Longest client name accepted.
pub const MAX_NAME_LEN: usize = 200;
/// Most scopes a client may have.
pub const MAX_SCOPES: usize = 64;
/// Longest grace period for a rotated secret: 30 days.
pub const MAX_GRACE_SECONDS: u64 = 30 * 24 * 3600;
/// Most audit events returned by one call.
pub const MAX_AUDIT_PAGE: usize = 1000;
/// Longest secret lifetime: 10 years.
pub const MAX_SECRET_TTL_SECONDS: u64 = 10 * 365 * 24 * 3600;
/// Most audiences a client may have.
pub const MAX_AUDIENCES: usize = 16;
/// Longest audience URI accepted (bytes; audiences are ASCII).
pub const MAX_AUDIENCE_LEN: usize = 512;

/// Why an admin operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminFailure {
    /// No client with that ID.
    #[error("no client with ID {0}")]
    NotFound(String),
    /// No signing key with that kid.
    #[error("no signing key has the kid {0}")]
    KeyNotFound(String),
    /// The request is invalid.
    #[error("{0}")]
    BadRequest(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Random generation failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The request cannot be served in the current state (e.g. a key
    /// rotation before the next key may sign).
    #[error("{0}")]
    Conflict(String),
    /// A key operation failed inside the server.
    #[error("signing keys: {0}")]
    Keys(String),
}

impl From<KeyError> for AdminFailure {
    fn from(error: KeyError) -> Self {
        match error {
            KeyError::NotReady(not_ready) => Self::Conflict(not_ready.to_string()),
            KeyError::Revoke(RevokeError::Unknown(kid)) => Self::KeyNotFound(printable(&kid)),
            KeyError::Revoke(already @ RevokeError::AlreadyRetired(_)) => Self::Conflict(already.to_string()),
            KeyError::Changed => Self::Conflict(KeyError::Changed.to_string()),
            KeyError::Import(message) => Self::BadRequest(format!("cannot import the key: {message}")),
            other => Self::Keys(other.to_string()),
        }
    }
}

/// The admin operations. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AdminService {
    store: Arc<dyn Store>,
    keys: KeyManager,
    secrets: SecretHasher,
    random: Random,
    clock: Arc<dyn Clock>,
    /// The audit trail and counters, shared with the issuer.
    activity: Activity,
}

impl AdminService {
    /// Assembles the service; `activity` is the issuer's, so the counters
    /// and the audit trail it serves are the ones the token endpoint feeds.
    pub fn new(
        store: Arc<dyn Store>,
        keys: KeyManager,
        secrets: SecretHasher,
        clock: Arc<dyn Clock>,
        activity: Activity,
    ) -> Self {
        Self { store, keys, secrets, random: Random::new(), clock, activity }
    }

    fn audit(&self) -> &Audit {
        self.activity.audit()
    }

    /// Creates a client and returns its secret, the only time it is shown;
    /// a client given public keys gets no secret (private_key_jwt).
    ///
    /// # Errors
    /// [`AdminFailure::BadRequest`] for an invalid name, scope or key.
    pub async fn create_client(&self, request: CreateClient) -> Result<ClientCredentials, AdminFailure> {
        let name = check_name(&request.name)?;
        let scopes = check_scopes(request.scopes)?;
        let secret_ttl = check_secret_ttl(request.secret_ttl_seconds)?;
        let access_token_ttl =
            check_access_token_ttl(request.access_token_ttl_seconds, self.keys.settings().timing.access_token_ttl)?;
        let audiences = check_audiences(request.audiences)?;
        let public_keys = if request.public_keys.is_empty() { Vec::new() } else { check_keys(&request.public_keys)? };
        if !public_keys.is_empty() && secret_ttl.is_some() {
            return Err(AdminFailure::BadRequest(
                "a client with public keys has no secret, so a secret lifetime does not apply".into(),
            ));
        }
        let now = self.clock.now();
        // A key client's digest is of a secret nobody is told (and the
        // authenticator refuses secrets for it anyway).
        let secret = self.random.client_secret()?;
        let client = ClientRecord {
            client_id: self.random.client_id()?,
            name,
            secret_digest: self.secrets.digest(&secret),
            secret_set_at: now,
            previous_secret: None,
            scopes,
            refresh_tokens: request.refresh_tokens,
            status: ClientStatus::Active,
            created_at: now,
            secret_expires_at: secret_ttl.map(|ttl| now.saturating_add(ttl)),
            access_token_ttl,
            audiences,
            require_dpop: request.require_dpop,
            public_keys,
            family_epoch: 0,
        };
        self.store.insert_client(&client).await?;
        tracing::info!(event = "client_created", client_id = %client.client_id, "client created");
        let detail = if client.uses_keys() {
            format!("\"{}\" created with public keys {}", client.name, thumbprints(&client.public_keys).join(", "))
        } else {
            format!("\"{}\" created", client.name)
        };
        self.audit().record(AuditEntry::client(AuditKind::ClientCreated, &client.client_id, detail)).await;
        let shown = if client.uses_keys() { String::new() } else { secret };
        Ok(credentials(&client, shown))
    }

    /// Replaces the public keys of a client that authenticates with them
    /// (rotation): assertions signed by a key no longer listed fail at once.
    ///
    /// # Errors
    /// [`AdminFailure::NotFound`]; [`AdminFailure::BadRequest`] for an
    /// invalid key or a client that has a secret instead.
    pub async fn set_keys(&self, client_id: &str, documents: &[String]) -> Result<ClientInfo, AdminFailure> {
        let keys = check_keys(documents)?;
        let before = self.find(client_id).await?;
        if !before.uses_keys() {
            return Err(secret_client(client_id));
        }
        let change = |client: &mut ClientRecord| {
            // Never turns a secret client into a key client halfway.
            if client.uses_keys() {
                client.public_keys.clone_from(&keys);
            }
        };
        let client = self.store.update_client(client_id, &change).await?.ok_or_else(|| not_found(client_id))?;
        if client.public_keys != keys {
            return Err(secret_client(client_id));
        }
        let now = self.clock.now();
        tracing::info!(event = "client_keys_set", client_id, keys = keys.len(), "client public keys replaced");
        let detail = format!(
            "public keys replaced: {} (were {})",
            thumbprints(&client.public_keys).join(", "),
            thumbprints(&before.public_keys).join(", ")
        );
        self.audit().record(AuditEntry::client(AuditKind::ClientKeysSet, client_id, detail)).await;
        self.info(client, now).await
    }

    /// Every client, without secrets.
    ///
    /// # Errors
    /// [`AdminFailure::Store`] on storage failure.
    pub async fn list_clients(&self) -> Result<Vec<ClientInfo>, AdminFailure> {
        let now = self.clock.now();
        let mut infos = Vec::new();
        for client in self.store.clients().await? {
            infos.push(self.info(client, now).await?);
        }
        Ok(infos)
    }

    /// One client, without secrets.
    ///
    /// # Errors
    /// [`AdminFailure::NotFound`] if there is no such client.
    pub async fn client(&self, client_id: &str) -> Result<ClientInfo, AdminFailure> {
        let client = self.find(client_id).await?;
        self.info(client, self.clock.now()).await
    }

    /// Replaces the client's secret; the old one keeps working for
    /// `grace_seconds` (0: not at all), never beyond its own expiry. The new
    /// one expires after `secret_ttl` seconds if given.
    ///
    /// # Errors
    /// [`AdminFailure::NotFound`], or [`AdminFailure::BadRequest`] for a grace period or lifetime out of range.
    pub async fn rotate_secret(
        &self,
        client_id: &str,
        grace_seconds: u64,
        secret_ttl: Option<u64>,
    ) -> Result<ClientCredentials, AdminFailure> {
        if grace_seconds > MAX_GRACE_SECONDS {
            return Err(AdminFailure::BadRequest(format!(
                "the grace period may be at most {MAX_GRACE_SECONDS} seconds"
            )));
        }
        let secret_ttl = check_secret_ttl(secret_ttl)?;
        if self.find(client_id).await?.uses_keys() {
            return Err(AdminFailure::BadRequest(format!(
                "client {} authenticates with public keys and has no secret; use set-keys to replace them",
                printable(client_id)
            )));
        }
        let now = self.clock.now();
        let secret = self.random.client_secret()?;
        let digest = self.secrets.digest(&secret);
        let change = |client: &mut ClientRecord| {
            let grace_end = now.saturating_add(grace_seconds);
            let valid_until = client.secret_expires_at.map_or(grace_end, |end| end.min(grace_end));
            client.previous_secret =
                (valid_until > now).then_some(PreviousSecret { digest: client.secret_digest, valid_until });
            client.secret_digest = digest;
            client.secret_set_at = now;
            client.secret_expires_at = secret_ttl.map(|ttl| now.saturating_add(ttl));
        };
        let client = self.store.update_client(client_id, &change).await?.ok_or_else(|| not_found(client_id))?;
        tracing::info!(event = "secret_rotated", client_id, grace_seconds, "client secret rotated");
        let detail = if grace_seconds > 0 {
            format!("new secret; the previous one works for {grace_seconds} s more")
        } else {
            "new secret; the previous one stopped working".to_owned()
        };
        self.audit().record(AuditEntry::client(AuditKind::SecretRotated, client_id, detail)).await;
        Ok(credentials(&client, secret))
    }

    /// Revokes the client and all its refresh-token families.
    ///
    /// # Errors
    /// [`AdminFailure::NotFound`] if there is no such client.
    pub async fn revoke_client(&self, client_id: &str) -> Result<ClientInfo, AdminFailure> {
        let now = self.clock.now();
        let change = |client: &mut ClientRecord| client.revoke();
        let client = self.store.update_client(client_id, &change).await?.ok_or_else(|| not_found(client_id))?;
        let families = self.store.revoke_client_families(client_id, now).await?;
        tracing::info!(event = "client_revoked", client_id, families, "client revoked");
        let detail = format!("revoked with {families} live refresh-token families");
        self.audit().record(AuditEntry::client(AuditKind::ClientRevoked, client_id, detail)).await;
        self.info(client, now).await
    }

    /// Lets a revoked client authenticate again. Its refresh-token families
    /// stay revoked: it starts new ones.
    ///
    /// # Errors
    /// [`AdminFailure::NotFound`] if there is no such client.
    pub async fn reactivate_client(&self, client_id: &str) -> Result<ClientInfo, AdminFailure> {
        let now = self.clock.now();
        let change = |client: &mut ClientRecord| client.status = ClientStatus::Active;
        let client = self.store.update_client(client_id, &change).await?.ok_or_else(|| not_found(client_id))?;
        tracing::info!(event = "client_reactivated", client_id, "client re-activated");
        let entry = AuditEntry::client(AuditKind::ClientReactivated, client_id, "re-activated");
        self.audit().record(entry).await;
        self.info(client, now).await
    }

    /// Deletes the client; its refresh-token families are revoked and
    /// purged when they expire.
    ///
    /// # Errors
    /// [`AdminFailure::NotFound`] if there is no such client.
    pub async fn delete_client(&self, client_id: &str) -> Result<Deleted, AdminFailure> {
        let revoked =
            self.store.delete_client(client_id, self.clock.now()).await?.ok_or_else(|| not_found(client_id))?;
        tracing::info!(event = "client_deleted", client_id, "client deleted");
        let detail = format!("deleted; {revoked} live refresh-token families revoked");
        self.audit().record(AuditEntry::client(AuditKind::ClientDeleted, client_id, detail)).await;
        Ok(Deleted { client_id: client_id.to_owned(), refresh_families_revoked: revoked })
    }

    /// Revokes every live refresh-token family of the client.
    ///
    /// # Errors
    /// [`AdminFailure::NotFound`] if there is no such client.
    pub async fn revoke_families(&self, client_id: &str) -> Result<FamiliesRevoked, AdminFailure> {
        self.find(client_id).await?;
        let revoked = self.store.revoke_client_families(client_id, self.clock.now()).await?;
        tracing::info!(event = "families_revoked", client_id, revoked, "refresh-token families revoked");
        let detail = format!("{revoked} live refresh-token families revoked");
        self.audit().record(AuditEntry::client(AuditKind::FamiliesRevoked, client_id, detail)).await;
        Ok(FamiliesRevoked { client_id: client_id.to_owned(), revoked_families: revoked })
    }

    /// The signing keys, without private parts.
    pub fn keys(&self) -> Vec<KeyInfo> {
        self.keys.infos()
    }

    /// Rotates the signing keys: at once if the next key has been published
    /// for a JWKS cache lifetime or `now` is set, else at its first safe
    /// moment (scheduled). Never refuses.
    ///
    /// # Errors
    /// [`AdminFailure::Keys`] or [`AdminFailure::Store`] if the change
    /// cannot be made; [`AdminFailure::Conflict`] if another instance
    /// changed the keys at the same moment.
    pub async fn rotate_keys(&self, request: RotateKeys) -> Result<KeyRotation, AdminFailure> {
        let (outcome, rotates_at) = if request.now {
            (RotationOutcome::Rotated, self.keys.rotate_now("admin").await?)
        } else {
            match self.keys.rotate("admin").await? {
                Rotation::Rotated { at } => (RotationOutcome::Rotated, at),
                Rotation::Scheduled { at } => (RotationOutcome::Scheduled, at),
            }
        };
        Ok(KeyRotation {
            outcome,
            rotates_at,
            jwks_max_age: self.keys.settings().timing.jwks_max_age,
            keys: self.keys.infos(),
        })
    }

    /// Takes the key `kid` out of the JWKS at once (see [`KeyManager::revoke`]).
    ///
    /// # Errors
    /// [`AdminFailure::KeyNotFound`] for an unknown kid,
    /// [`AdminFailure::Conflict`] for a key already retired.
    pub async fn revoke_key(&self, kid: &str) -> Result<Vec<KeyInfo>, AdminFailure> {
        self.keys.revoke(kid).await?;
        Ok(self.keys.infos())
    }

    /// Imports a PKCS#8 PEM private key as the next key.
    ///
    /// # Errors
    /// [`AdminFailure::BadRequest`] if it is not a usable key.
    pub async fn import_key(&self, pem: &str) -> Result<Vec<KeyInfo>, AdminFailure> {
        Ok(self.keys.import(pem).await?)
    }

    /// The public JWKS as served now.
    pub fn jwks(&self) -> JwkSet {
        self.keys.handle().current().jwks().clone()
    }

    /// Audit events after `after` (or the newest when `None`), at most
    /// `limit` (capped at [`MAX_AUDIT_PAGE`]), oldest first.
    ///
    /// # Errors
    /// [`AdminFailure::Store`] on storage failure.
    pub async fn audit_events(&self, after: Option<u64>, limit: usize) -> Result<Vec<AuditEvent>, AdminFailure> {
        Ok(self.audit().page(after, limit.min(MAX_AUDIT_PAGE)).await?)
    }

    /// The activity counters since the server started.
    pub fn stats(&self) -> Stats {
        self.activity.stats()
    }

    async fn find(&self, client_id: &str) -> Result<ClientRecord, AdminFailure> {
        if !is_client_id(client_id) {
            return Err(not_found(client_id));
        }
        self.store.client(client_id).await?.ok_or_else(|| not_found(client_id))
    }

    async fn info(&self, client: ClientRecord, now: UnixTime) -> Result<ClientInfo, AdminFailure> {
        let last_used_at = self.store.client_last_used(&client.client_id).await?;
        let active_refresh_families = self.store.count_live_families(&client.client_id, now).await?;
        Ok(ClientInfo {
            previous_secret_valid_until: client.previous_secret.as_ref().map(|p| p.valid_until).filter(|t| *t > now),
            client_id: client.client_id,
            name: client.name,
            status: client.status,
            scopes: client.scopes,
            refresh_tokens: client.refresh_tokens,
            created_at: client.created_at,
            last_used_at,
            secret_set_at: client.secret_set_at,
            secret_expires_at: client.secret_expires_at,
            access_token_ttl_seconds: client.access_token_ttl,
            audiences: client.audiences,
            require_dpop: client.require_dpop,
            active_refresh_families,
            auth_method: auth_method(&client.public_keys),
            key_thumbprints: thumbprints(&client.public_keys),
        })
    }
}

fn not_found(client_id: &str) -> AdminFailure {
    AdminFailure::NotFound(printable(client_id))
}

/// An identifier from a request, echoed to the operator: printable and short.
fn printable(id: &str) -> String {
    id.chars().filter(|c| !c.is_control()).take(64).collect()
}

fn credentials(client: &ClientRecord, secret: String) -> ClientCredentials {
    ClientCredentials {
        client_id: client.client_id.clone(),
        client_secret: secret,
        name: client.name.clone(),
        scopes: client.scopes.clone(),
        refresh_tokens: client.refresh_tokens,
        previous_secret_valid_until: client.previous_secret.as_ref().map(|p| p.valid_until),
        secret_expires_at: client.secret_expires_at,
        access_token_ttl_seconds: client.access_token_ttl,
        audiences: client.audiences.clone(),
        require_dpop: client.require_dpop,
        auth_method: auth_method(&client.public_keys),
        key_thumbprints: thumbprints(&client.public_keys),
    }
}

fn auth_method(keys: &[Jwk]) -> AuthMethod {
    if keys.is_empty() { AuthMethod::ClientSecret } else { AuthMethod::PrivateKeyJwt }
}

/// The stored keys' thumbprints (their `kid`s, set when they were checked).
fn thumbprints(keys: &[Jwk]) -> Vec<String> {
    keys.iter().map(|k| k.kid.clone().or_else(|| k.thumbprint().ok()).unwrap_or_default()).collect()
}

/// Parses and checks key documents, with the reason for a refusal.
fn check_keys(documents: &[String]) -> Result<Vec<Jwk>, AdminFailure> {
    public_key::parse_documents(documents).map_err(|e| AdminFailure::BadRequest(format!("public key refused: {e}")))
}

fn secret_client(client_id: &str) -> AdminFailure {
    AdminFailure::BadRequest(format!(
        "client {} authenticates with a secret; create a new client with --public-key instead",
        printable(client_id)
    ))
}

fn check_secret_ttl(ttl: Option<u64>) -> Result<Option<u64>, AdminFailure> {
    match ttl {
        Some(ttl) if !(1..=MAX_SECRET_TTL_SECONDS).contains(&ttl) => Err(AdminFailure::BadRequest(format!(
            "a secret lifetime must be between 1 and {MAX_SECRET_TTL_SECONDS} seconds"
        ))),
        ttl => Ok(ttl),
    }
}

/// A client's own access-token lifetime: at least a second, at most the
/// server's (see [`ClientRecord::access_token_ttl`] for why).
fn check_access_token_ttl(ttl: Option<u64>, server_ttl: u64) -> Result<Option<u64>, AdminFailure> {
    match ttl {
        Some(ttl) if !(1..=server_ttl).contains(&ttl) => Err(AdminFailure::BadRequest(format!(
            "an access-token lifetime must be between 1 and {server_ttl} seconds (the server's access_token_ttl, \
             which the signing-key life cycle is computed for)"
        ))),
        ttl => Ok(ttl),
    }
}

/// A client's audiences: absolute URIs without a fragment (RFC 8707 §2),
/// printable, bounded in length and number; duplicates dropped, order kept
/// (the first is the default).
fn check_audiences(audiences: Vec<String>) -> Result<Vec<String>, AdminFailure> {
    unique_valid(audiences, MAX_AUDIENCES, "audiences", is_audience, || {
        format!(
            "an audience must be an absolute URI without a fragment, spaces or quotes, \
             at most {MAX_AUDIENCE_LEN} characters"
        )
    })
}

fn is_audience(audience: &str) -> bool {
    let Some((scheme, rest)) = audience.split_once(':') else { return false };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    scheme_ok
        && !rest.is_empty()
        && audience.len() <= MAX_AUDIENCE_LEN
        && !audience.contains('#')
        && audience.chars().all(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\\'))
}

fn check_name(name: &str) -> Result<String, AdminFailure> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN || name.chars().any(char::is_control) {
        return Err(AdminFailure::BadRequest(format!(
            "a client name must be 1 to {MAX_NAME_LEN} printable characters"
        )));
    }
    Ok(name.to_owned())
}

fn check_scopes(scopes: Vec<String>) -> Result<Vec<String>, AdminFailure> {
    unique_valid(scopes, MAX_SCOPES, "scopes", is_scope_token, || {
        "a scope must be printable ASCII without spaces, quotes or backslashes".into()
    })
}

/// `values` without duplicates, in their order, if there are at most `max`
/// and each is `valid`; otherwise a bad request saying which rule broke.
fn unique_valid(
    values: Vec<String>,
    max: usize,
    what: &str,
    valid: impl Fn(&str) -> bool,
    invalid: impl FnOnce() -> String,
) -> Result<Vec<String>, AdminFailure> {
    if values.len() > max {
        return Err(AdminFailure::BadRequest(format!("a client may have at most {max} {what}")));
    }
    if !values.iter().all(|value| valid(value)) {
        return Err(AdminFailure::BadRequest(invalid()));
    }
    let mut unique: Vec<String> = Vec::with_capacity(values.len());
    for value in values {
        if !unique.contains(&value) {
            unique.push(value);
        }
    }
    Ok(unique)
}

#[cfg(test)]
mod tests;
