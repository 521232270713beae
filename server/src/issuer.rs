//! The service layer of the token endpoint: reads the clock, authenticates
//! the client, applies the grant rules of [`crate::grant`] through the
//! store, and mints tokens. It knows nothing of HTTP.

use std::sync::{Arc, Mutex};

use tessera_shared::admin::AuditKind;
use tessera_shared::claims::AccessTokenClaims;
use tessera_shared::ids::is_refresh_token;
use tessera_shared::wire::{TOKEN_TYPE_BEARER, TokenResponse};

use crate::activity::Activity;
use crate::activity::burst::BurstPolicy;
use crate::audit::{Audit, AuditEntry};
use crate::client_auth::{Authentication, ClientAuthenticator, ClientCredentials};
use crate::clock::{Clock, UnixTime};
use crate::crypto::random::Random;
use crate::crypto::secret::{SecretHasher, refresh_token_digest};
use crate::grant::error::TokenError;
use crate::grant::refresh::{self, Presentation, Verdict};
use crate::grant::request::{Grant, TokenRequest};
use crate::grant::{audience, scope};
use crate::keys::KeyHandle;
use crate::metrics::Metrics;
use crate::store::records::{self, ClientRecord, FamilyRecord, NewRefreshToken, RefreshRecord};
use crate::store::{RefreshUse, Store};

/// The token policy from the configuration.
#[derive(Debug, Clone)]
pub struct IssuerPolicy {
    /// `iss` of every token.
    pub issuer: String,
    /// `aud` of every access token.
    pub audience: String,
    /// Access-token lifetime in seconds.
    pub access_token_ttl: u64,
    /// Refresh-token lifetime in seconds.
    pub refresh_token_ttl: u64,
    /// Reuse grace of a rotated refresh token, in seconds.
    pub refresh_reuse_grace: u64,
}

/// Issues tokens. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Issuer {
    store: Arc<dyn Store>,
    keys: KeyHandle,
    /// The one client authentication of all three endpoints.
    authenticator: ClientAuthenticator,
    random: Random,
    clock: Arc<dyn Clock>,
    policy: Arc<IssuerPolicy>,
    /// Counters and security events for the operator.
    activity: Activity,
    /// Counts refresh-token reuse detections.
    metrics: Metrics,
}

impl Issuer {
    /// Assembles the service.
    pub fn new(
        store: Arc<dyn Store>,
        keys: KeyHandle,
        secrets: SecretHasher,
        clock: Arc<dyn Clock>,
        policy: IssuerPolicy,
    ) -> Self {
        let activity = Activity::new(Audit::new(store.clone(), clock.clone()), clock.clone(), BurstPolicy::default());
        Self {
            authenticator: ClientAuthenticator::new(store.clone(), secrets),
            store,
            keys,
            random: Random::new(),
            clock,
            policy: Arc::new(policy),
            activity,
            metrics: Metrics::new(),
        }
    }

    /// The same issuer reporting to `activity` (shared with the admin API)
    /// instead of a handle of its own.
    #[must_use]
    pub fn with_activity(mut self, activity: Activity) -> Self {
        self.activity = activity;
        self
    }

    /// Where this issuer reports what it does.
    pub fn activity(&self) -> &Activity {
        &self.activity
    }

    /// Reports to `metrics` instead of a private registry.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The policy in force.
    pub fn policy(&self) -> &IssuerPolicy {
        &self.policy
    }

    /// Answers a token request.
    ///
    /// # Errors
    /// The [`TokenError`] the request deserves.
    pub async fn token(&self, request: TokenRequest) -> Result<TokenResponse, TokenError> {
        let now = self.clock.now();
        let client = self.authenticate(&request.credentials, now).await?;
        let resource = request.resource.as_deref();
        match request.grant {
            Grant::ClientCredentials { scope } => {
                let issued = self.client_credentials(&client, scope.as_deref(), resource, now).await;
                if issued.is_ok() {
                    self.activity.token_issued();
                }
                issued
            }
            Grant::RefreshToken { refresh_token, scope } => {
                let refreshed = self.refresh(&client, &refresh_token, scope.as_deref(), resource, now).await;
                if refreshed.is_ok() {
                    self.activity.token_refreshed();
                }
                refreshed
            }
            Grant::Unsupported => Err(TokenError::UnsupportedGrantType),
        }
    }

    /// Authenticates the caller of the token, revocation or introspection
    /// endpoint, and reports a failure to the activity counters and the
    /// audit trail's burst detector, the same way for all three.
    ///
    /// # Errors
    /// [`TokenError::InvalidClient`], or a storage failure.
    pub(crate) async fn authenticate(
        &self,
        credentials: &ClientCredentials,
        now: UnixTime,
    ) -> Result<ClientRecord, TokenError> {
        let Authentication { result, known } = self.authenticator.authenticate(credentials, now).await;
        if matches!(result, Err(TokenError::InvalidClient)) {
            self.activity.authentication_failed(&credentials.client_id, known).await;
        }
        result
    }

    async fn client_credentials(
        &self,
        client: &ClientRecord,
        requested: Option<&[String]>,
        resource: Option<&str>,
        now: UnixTime,
    ) -> Result<TokenResponse, TokenError> {
        let granted = scope::grant(&client.scopes, requested)?;
        let audience = audience::select(&client.audiences, &self.policy.audience, resource)?;
        let ttl = client.access_token_ttl(self.policy.access_token_ttl);
        let access_token = self.mint_access_token(&client.client_id, &granted, audience, ttl, now)?;
        let refresh_token =
            if client.refresh_tokens { Some(self.start_family(client, &granted, now).await?) } else { None };
        Ok(self.response(access_token, ttl, refresh_token, &granted))
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
        self.store.create_family(&family, &first).await?;
        Ok(token)
    }

    async fn refresh(
        &self,
        client: &ClientRecord,
        presented: &str,
        requested: Option<&[String]>,
        resource: Option<&str>,
        now: UnixTime,
    ) -> Result<TokenResponse, TokenError> {
        if !client.refresh_tokens {
            return Err(TokenError::UnauthorizedClient("this client is not allowed to use refresh tokens"));
        }
        if !is_refresh_token(presented) {
            return Err(TokenError::InvalidGrant("the refresh token is not valid"));
        }
        // Checked before the token is used, so a wrong resource does not
        // cost the client its refresh token.
        let audience = audience::select(&client.audiences, &self.policy.audience, resource)?;
        let (successor, new) = self.new_refresh_token(now)?;
        let presentation = Presentation {
            client_id: &client.client_id,
            now,
            reuse_grace: self.policy.refresh_reuse_grace,
            requested_scope: requested,
        };
        // The store may run the judge more than once (a transaction retry);
        // the verdict kept is the one of the run that was applied.
        let verdict = Mutex::new(None);
        let judge = |token: &RefreshRecord, family: &FamilyRecord| {
            let decided = refresh::judge(token, family, &presentation);
            if let Ok(mut slot) = verdict.lock() {
                *slot = Some(decided);
            }
            decided.transition()
        };
        let outcome = self.store.use_refresh_token(&refresh_token_digest(presented), &new, &judge).await?;
        let RefreshUse::Applied { family, .. } = outcome else {
            return Err(TokenError::InvalidGrant("the refresh token is not valid"));
        };
        let decided = verdict.lock().ok().and_then(|mut slot| slot.take()).unwrap_or(Verdict::RevokeFamily);
        if decided == Verdict::RevokeFamily {
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
        if let Some(error) = decided.error() {
            return Err(error);
        }
        let granted = requested.map_or_else(|| family.scope.clone(), <[String]>::to_vec);
        let ttl = client.access_token_ttl(self.policy.access_token_ttl);
        let access_token = self.mint_access_token(&client.client_id, &granted, audience, ttl, now)?;
        Ok(self.response(access_token, ttl, Some(successor), &granted))
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

    /// A signed access token for `audience`, valid `ttl` seconds from `now`.
    fn mint_access_token(
        &self,
        client_id: &str,
        scopes: &[String],
        audience: &str,
        ttl: u64,
        now: UnixTime,
    ) -> Result<String, TokenError> {
        let claims = AccessTokenClaims {
            iss: self.policy.issuer.clone(),
            sub: client_id.to_owned(),
            aud: audience.to_owned(),
            exp: now.saturating_add(ttl),
            iat: now,
            jti: self.random.jti()?,
            client_id: client_id.to_owned(),
            scope: scope::to_claim(scopes),
        };
        // One atomic load: the ring current now, even mid-rotation.
        Ok(self.keys.current().signer().sign(&claims)?)
    }

    fn response(
        &self,
        access_token: String,
        expires_in: u64,
        refresh_token: Option<String>,
        granted: &[String],
    ) -> TokenResponse {
        TokenResponse {
            access_token,
            token_type: TOKEN_TYPE_BEARER.to_owned(),
            expires_in,
            refresh_token,
            scope: scope::to_claim(granted),
        }
    }
}

mod token_status;

#[cfg(test)]
mod tests;
