//! The service layer of the token endpoint: reads the clock, authenticates
//! the client, applies the grant rules of [`crate::grant`] through the
//! store, and mints tokens. It knows nothing of HTTP.

use std::sync::Arc;

use tessera_shared::admin::AuditKind;
use tessera_shared::claims::AccessTokenClaims;
use tessera_shared::wire::{TOKEN_TYPE_BEARER, TokenResponse};

use crate::activity::Activity;
use crate::audit::AuditEntry;
use crate::client_auth::{Authentication, ClientAuthenticator, ClientCredentials};
use crate::clock::{Clock, UnixTime};
use crate::crypto::random::Random;
use crate::crypto::secret::SecretHasher;
use crate::grant::error::TokenError;
use crate::grant::refresh::token::RefreshToken;
use crate::grant::refresh::{Presentation, Verdict};
use crate::grant::request::{Grant, TokenRequest};
use crate::grant::{audience, scope};
use crate::keys::KeyHandle;
use crate::metrics::Metrics;
use crate::store::records::{self, ClientRecord, FamilyRecord, NewRefreshToken};
use crate::store::{FamilyStart, RefreshUse, Store, StoreError};

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
        activity: Activity,
        metrics: Metrics,
    ) -> Self {
        Self {
            authenticator: ClientAuthenticator::new(store.clone(), secrets),
            store,
            keys,
            random: Random::new(),
            clock,
            policy: Arc::new(policy),
            activity,
            metrics,
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
        // A family ID is the second and 48 random bits: two families of one
        // second may draw the same (at 10,000 a second, a few times a
        // year). The store refuses the second; it gets another ID.
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.try_start_family(client, granted, now).await {
                Err(TokenError::Storage(StoreError::AlreadyExists(_))) if attempts < 3 => {}
                started => return started,
            }
        }
    }

    async fn try_start_family(
        &self,
        client: &ClientRecord,
        granted: &[String],
        now: UnixTime,
    ) -> Result<String, TokenError> {
        let first = self.new_refresh_token(now)?;
        let token = RefreshToken {
            family_id: records::family_id(now, self.random.bytes::<6>()?),
            generation: 0,
            secret: first.secret,
        };
        let family = FamilyRecord {
            family_id: token.family_id,
            client_id: client.client_id.clone(),
            scope: granted.to_vec(),
            created_at: now,
            revoked_at: None,
            generation: 0,
            current: token.digest(),
            issued_at: now,
            expires_at: first.expires_at,
            previous: None,
            client_epoch: client.family_epoch,
            // Set from the grant's DPoP proof once the token endpoint
            // verifies them (issue 16).
            dpop_jkt: None,
        };
        match self.store.create_family(&family, self.policy.max_families_per_client).await? {
            FamilyStart::Started { retired } => {
                if retired > 0 {
                    tracing::info!(
                        event = "refresh_families_retired",
                        client_id = %client.client_id,
                        retired,
                        "the client is at its refresh-token family cap; its oldest family was retired"
                    );
                }
                Ok(token.encode())
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
        resource: Option<&str>,
        now: UnixTime,
    ) -> Result<TokenResponse, TokenError> {
        if !client.refresh_tokens {
            return Err(TokenError::UnauthorizedClient("this client is not allowed to use refresh tokens"));
        }
        let Some(presented) = RefreshToken::parse(presented) else {
            return Err(TokenError::InvalidGrant("the refresh token is not valid"));
        };
        // Checked before the token is used, so a wrong resource does not
        // cost the client its refresh token.
        let audience = audience::select(&client.audiences, &self.policy.audience, resource)?;
        let new = self.new_refresh_token(now)?;
        let presentation = Presentation {
            client_id: &client.client_id,
            client_epoch: client.family_epoch,
            now,
            reuse_grace: self.policy.refresh_reuse_grace,
            requested_scope: requested,
            // The proved key, once the token endpoint verifies DPoP proofs
            // (issue 16).
            dpop_jkt: None,
        };
        let outcome = self.store.use_refresh_token(&presented, &new, &presentation).await?;
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
        let successor = RefreshToken { family_id: family.family_id, generation: family.generation, secret: new.secret };
        let granted = requested.map_or_else(|| family.scope.clone(), <[String]>::to_vec);
        let ttl = client.access_token_ttl(self.policy.access_token_ttl);
        let access_token = self.mint_access_token(&client.client_id, &granted, audience, ttl, now)?;
        Ok(self.response(access_token, ttl, Some(successor.encode()), &granted))
    }

    fn new_refresh_token(&self, now: UnixTime) -> Result<NewRefreshToken, TokenError> {
        Ok(NewRefreshToken {
            secret: self.random.bytes::<16>()?,
            issued_at: now,
            expires_at: now.saturating_add(self.policy.refresh_token_ttl),
        })
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
            iss: self.policy.issuer_url.clone(),
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

mod revoke_introspect;

#[cfg(test)]
mod tests;
