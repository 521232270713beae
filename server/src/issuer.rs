//! The service layer of the token endpoint: reads the clock, authenticates
//! the client, applies the grant rules of [`crate::grant`] through the
//! store, and mints tokens. It knows nothing of HTTP.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tessera_shared::admin::{AuditKind, ClientStatus};
use tessera_shared::claims::AccessTokenClaims;
use tessera_shared::ids::{is_client_id, is_refresh_token};
use tessera_shared::wire::{TOKEN_TYPE_BEARER, TokenResponse};

use crate::activity::Activity;
use crate::audit::AuditEntry;
use crate::clock::{Clock, UnixTime};
use crate::crypto::random::Random;
use crate::crypto::secret::{SecretHasher, refresh_token_digest};
use crate::grant::error::TokenError;
use crate::grant::refresh::{Presentation, Verdict};
use crate::grant::request::{ClientCredentials, Grant, TokenRequest};
use crate::grant::scope;
use crate::keys::KeyHandle;
use crate::metrics::Metrics;
use crate::store::records::{self, ClientRecord, FamilyRecord, NewRefreshToken};
use crate::store::{FamilyStart, RefreshUse, Store};

/// Last-used times are recorded at most this often per client (and server
/// process), to keep a write off the hot path.
const LAST_USED_RESOLUTION: u64 = 60;

/// The token policy from the configuration.
#[derive(Debug, Clone)]
pub struct IssuerPolicy {
    /// `iss` of every token.
    pub issuer_url: String,
    /// `aud` of every access token.
    pub audience: String,
    /// Access-token lifetime in seconds.
    pub access_token_ttl: u64,
    /// Refresh-token lifetime in seconds.
    pub refresh_token_ttl: u64,
    /// Reuse grace of a rotated refresh token, in seconds.
    pub refresh_reuse_grace: u64,
    /// Refresh-token families a client may hold; starting one more retires
    /// its oldest (`--max-families-per-client`).
    pub max_families_per_client: usize,
}

/// Issues tokens. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Issuer {
    store: Arc<dyn Store>,
    keys: KeyHandle,
    secrets: SecretHasher,
    random: Random,
    clock: Arc<dyn Clock>,
    policy: Arc<IssuerPolicy>,
    /// Counters and security events for the operator.
    activity: Activity,
    /// Counts refresh-token reuse detections.
    metrics: Metrics,
    /// When this process last recorded each client's use, so deciding
    /// whether to record it again needs no store read per request.
    last_recorded: Arc<Mutex<HashMap<String, UnixTime>>>,
}

impl Issuer {
    /// Assembles the service.
    pub fn new(
        store: Arc<dyn Store>,
        keys: KeyHandle,
        secrets: SecretHasher,
        clock: Arc<dyn Clock>,
        policy: IssuerPolicy,
        activity: Activity,
        metrics: Metrics,
    ) -> Self {
        Self {
            store,
            keys,
            secrets,
            random: Random::new(),
            clock,
            policy: Arc::new(policy),
            activity,
            metrics,
            last_recorded: Arc::default(),
        }
    }

    /// Where this issuer reports what it does.
    pub fn activity(&self) -> &Activity {
        &self.activity
    }

    /// Answers a token request.
    ///
    /// # Errors
    /// The [`TokenError`] the request deserves.
    pub async fn token(&self, request: TokenRequest) -> Result<TokenResponse, TokenError> {
        let now = self.clock.now();
        let (authenticated, known) = self.authenticate_known(&request.credentials, now).await;
        let client = match authenticated {
            Ok(client) => client,
            Err(error) => {
                if matches!(error, TokenError::InvalidClient) {
                    self.activity.authentication_failed(&request.credentials.client_id, known).await;
                }
                return Err(error);
            }
        };
        match request.grant {
            Grant::ClientCredentials { scope } => {
                let issued = self.client_credentials(&client, scope.as_deref(), now).await;
                if issued.is_ok() {
                    self.activity.token_issued();
                }
                issued
            }
            Grant::RefreshToken { refresh_token, scope } => {
                let refreshed = self.refresh(&client, &refresh_token, scope.as_deref(), now).await;
                if refreshed.is_ok() {
                    self.activity.token_refreshed();
                }
                refreshed
            }
            Grant::Unsupported => Err(TokenError::UnsupportedGrantType),
        }
    }

    /// Finds the client and checks its secret. An unknown ID, a wrong
    /// secret and a revoked client fail alike and do the same work. The one
    /// client authentication of the token, revocation and introspection
    /// endpoints.
    ///
    /// # Errors
    /// [`TokenError::InvalidClient`], or a storage failure.
    pub(crate) async fn authenticate(
        &self,
        credentials: &ClientCredentials,
        now: UnixTime,
    ) -> Result<ClientRecord, TokenError> {
        self.authenticate_known(credentials, now).await.0
    }

    /// [`Issuer::authenticate`], also telling whether the client exists
    /// (for the audit trail's burst events; never for the answer).
    async fn authenticate_known(
        &self,
        credentials: &ClientCredentials,
        now: UnixTime,
    ) -> (Result<ClientRecord, TokenError>, bool) {
        let found = if is_client_id(&credentials.client_id) {
            match self.store.client(&credentials.client_id).await {
                Ok(found) => found,
                Err(error) => return (Err(error.into()), false),
            }
        } else {
            None
        };
        let Some(client) = found else {
            self.secrets.match_nothing(&credentials.client_secret);
            return (Err(TokenError::InvalidClient), false);
        };
        (self.check_secret(client, credentials, now).await, true)
    }

    async fn check_secret(
        &self,
        client: ClientRecord,
        credentials: &ClientCredentials,
        now: UnixTime,
    ) -> Result<ClientRecord, TokenError> {
        // An expired secret (--secret-ttl) fails like a wrong one, with the same work.
        let current = client.secret_is_live(now).then_some(&client.secret_digest);
        let previous = client.previous_secret.as_ref().filter(|p| now < p.valid_until).map(|p| &p.digest);
        let secret_ok = self.secrets.matches_live(&credentials.client_secret, current, previous);
        if !secret_ok || client.status != ClientStatus::Active {
            return Err(TokenError::InvalidClient);
        }
        self.note_use(&client.client_id, now).await?;
        Ok(client)
    }

    async fn note_use(&self, client_id: &str, now: UnixTime) -> Result<(), TokenError> {
        let due = {
            // Only timestamps inside: a panic elsewhere cannot leave it torn.
            let mut recorded = self.last_recorded.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let due = recorded.get(client_id).is_none_or(|last| now >= last.saturating_add(LAST_USED_RESOLUTION));
            if due {
                recorded.insert(client_id.to_owned(), now);
            }
            due
        };
        if due {
            self.store.record_client_use(client_id, now).await?;
        }
        Ok(())
    }

    async fn client_credentials(
        &self,
        client: &ClientRecord,
        requested: Option<&[String]>,
        now: UnixTime,
    ) -> Result<TokenResponse, TokenError> {
        let granted = scope::grant(&client.scopes, requested)?;
        let access_token = self.mint_access_token(&client.client_id, &granted, now)?;
        let refresh_token =
            if client.refresh_tokens { Some(self.start_family(client, &granted, now).await?) } else { None };
        Ok(self.response(access_token, refresh_token, &granted))
    }

    async fn start_family(
        &self,
        client: &ClientRecord,
        granted: &[String],
        now: UnixTime,
    ) -> Result<String, TokenError> {
        let (token, first) = self.new_refresh_token(now)?;
        let family = FamilyRecord {
            family_id: records::family_id(now, self.random.bytes::<12>()?),
            client_id: client.client_id.clone(),
            scope: granted.to_vec(),
            created_at: now,
            revoked_at: None,
            current: first.digest,
            expires_at: first.expires_at,
        };
        match self.store.create_family(&family, &first, self.policy.max_families_per_client).await? {
            FamilyStart::Started { retired } => {
                if retired > 0 {
                    tracing::info!(
                        event = "refresh_families_retired",
                        client_id = %client.client_id,
                        retired,
                        "the client is at its refresh-token family cap; its oldest family was retired"
                    );
                }
                Ok(token)
            }
            // Revoked or deleted while this request was under way: it
            // fails as it would have a moment later.
            FamilyStart::ClientNotActive => Err(TokenError::InvalidClient),
        }
    }

    async fn refresh(
        &self,
        client: &ClientRecord,
        presented: &str,
        requested: Option<&[String]>,
        now: UnixTime,
    ) -> Result<TokenResponse, TokenError> {
        if !client.refresh_tokens {
            return Err(TokenError::UnauthorizedClient("this client is not allowed to use refresh tokens"));
        }
        if !is_refresh_token(presented) {
            return Err(TokenError::InvalidGrant("the refresh token is not valid"));
        }
        let (successor, new) = self.new_refresh_token(now)?;
        let presentation = Presentation {
            client_id: &client.client_id,
            now,
            reuse_grace: self.policy.refresh_reuse_grace,
            requested_scope: requested,
        };
        let outcome = self.store.use_refresh_token(&refresh_token_digest(presented), &new, &presentation).await?;
        let RefreshUse::Decided { verdict, family } = outcome else {
            return Err(TokenError::InvalidGrant("the refresh token is not valid"));
        };
        if verdict == Verdict::RevokeFamily {
            self.metrics.refresh_token_reused();
            tracing::warn!(
                event = "refresh_token_reuse",
                client_id = %client.client_id,
                "a rotated refresh token was presented again; its family is revoked"
            );
            let entry = AuditEntry::client(
                AuditKind::RefreshTokenReuse,
                &client.client_id,
                "a used refresh token was presented again; its family is revoked",
            );
            self.activity.audit().record(entry).await;
        }
        if let Some(error) = verdict.error() {
            return Err(error);
        }
        let granted = requested.map_or_else(|| family.scope.clone(), <[String]>::to_vec);
        let access_token = self.mint_access_token(&client.client_id, &granted, now)?;
        Ok(self.response(access_token, Some(successor), &granted))
    }

    fn new_refresh_token(&self, now: UnixTime) -> Result<(String, NewRefreshToken), TokenError> {
        let token = self.random.refresh_token()?;
        let record = NewRefreshToken {
            digest: refresh_token_digest(&token),
            issued_at: now,
            expires_at: now.saturating_add(self.policy.refresh_token_ttl),
        };
        Ok((token, record))
    }

    fn mint_access_token(&self, client_id: &str, scopes: &[String], now: UnixTime) -> Result<String, TokenError> {
        let claims = AccessTokenClaims {
            iss: self.policy.issuer_url.clone(),
            sub: client_id.to_owned(),
            aud: self.policy.audience.clone(),
            exp: now.saturating_add(self.policy.access_token_ttl),
            iat: now,
            jti: self.random.jti()?,
            client_id: client_id.to_owned(),
            scope: scope::to_claim(scopes),
        };
        // One atomic load: the ring current now, even mid-rotation.
        Ok(self.keys.current().signer().sign(&claims)?)
    }

    fn response(&self, access_token: String, refresh_token: Option<String>, granted: &[String]) -> TokenResponse {
        TokenResponse {
            access_token,
            token_type: TOKEN_TYPE_BEARER.to_owned(),
            expires_in: self.policy.access_token_ttl,
            refresh_token,
            scope: scope::to_claim(granted),
        }
    }
}

mod revoke_introspect;

#[cfg(test)]
mod tests;
