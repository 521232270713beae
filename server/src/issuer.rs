//! The service layer of the token endpoint: reads the clock, authenticates
//! the client, applies the grant rules of [`crate::grant`] through the
//! store, and mints tokens. It knows nothing of HTTP.

use std::sync::Arc;

use tessera_shared::admin::AuditKind;
use tessera_shared::claims::AccessTokenClaims;
use tessera_shared::claims::Confirmation;
use tessera_shared::dpop::jkt_of;
use tessera_shared::wire::{TOKEN_TYPE_BEARER, TOKEN_TYPE_DPOP, TokenResponse};

use crate::activity::Activity;
use crate::audit::AuditEntry;
use crate::client_auth::assertion::AcceptedAudiences;
use crate::client_auth::{Authentication, ClientAuthenticator, Presented};
use crate::clock::{Clock, UnixTime};
use crate::crypto::random::Random;
use crate::crypto::secret::SecretHasher;
use crate::grant::dpop::{DpopHeader, DpopPolicy};
use crate::grant::error::TokenError;
use crate::grant::refresh::token::RefreshToken;
use crate::grant::refresh::{Presentation, Verdict};
use crate::grant::request::{Grant, TokenRequest};
use crate::grant::{audience, scope};
use crate::keys::KeyHandle;
use crate::metrics::Metrics;
use crate::store::records::{self, ClientRecord, FamilyRecord, NewRefreshToken};
use crate::store::{FamilyStart, RefreshUse, Store, StoreError};
use retirement_log::RetirementLog;

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
    /// DPoP proofs of token requests: the token endpoint URL and the
    /// replay cache.
    dpop: Arc<DpopPolicy>,
    /// Counters and security events for the operator.
    activity: Activity,
    /// Counts refresh-token reuse detections and retired families.
    metrics: Metrics,
    /// When retirements at the family cap are logged.
    retirement_log: Arc<RetirementLog>,
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
        let token_endpoint = format!("{}/oauth2/token", policy.issuer_url.trim_end_matches('/'));
        Self {
            dpop: Arc::new(DpopPolicy::new(token_endpoint)),
            authenticator: ClientAuthenticator::new(
                store.clone(),
                secrets,
                AcceptedAudiences::for_issuer(&policy.issuer_url),
            ),
            store,
            keys,
            random: Random::new(),
            clock,
            policy: Arc::new(policy),
            activity,
            metrics,
            retirement_log: Arc::default(),
        }
    }

    /// Where this issuer reports what it does.
    pub fn activity(&self) -> &Activity {
        &self.activity
    }

    /// Answers a token request without a `DPoP` header.
    ///
    /// # Errors
    /// The [`TokenError`] the request deserves.
    pub async fn token(&self, request: TokenRequest) -> Result<TokenResponse, TokenError> {
        self.token_with_dpop(request, &DpopHeader::Absent).await
    }

    /// Answers a token request with what its `DPoP` header held.
    ///
    /// # Errors
    /// The [`TokenError`] the request deserves.
    pub async fn token_with_dpop(&self, request: TokenRequest, dpop: &DpopHeader) -> Result<TokenResponse, TokenError> {
        let now = self.clock.now();
        let client = self.authenticate(&request.credentials, now).await?;
        // The key this request's tokens are bound to (RFC 9449): checked
        // after authentication (so only clients fill the replay cache) and
        // before anything is written. The refresh family's binding takes
        // it from here too.
        let dpop_jkt: Option<[u8; 32]> = self.dpop.bind(dpop, client.require_dpop, now)?;
        let resource = request.resource.as_deref();
        match request.grant {
            Grant::ClientCredentials { scope } => {
                let issued = self.client_credentials(&client, scope.as_deref(), resource, dpop_jkt, now).await;
                if issued.is_ok() {
                    self.activity.token_issued();
                }
                issued
            }
            Grant::RefreshToken { refresh_token, scope } => {
                let refreshed = self.refresh(&client, &refresh_token, scope.as_deref(), resource, dpop_jkt, now).await;
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
        credentials: &Presented,
        now: UnixTime,
    ) -> Result<ClientRecord, TokenError> {
        let Authentication { result, known } = self.authenticator.authenticate(credentials, now).await;
        if matches!(result, Err(TokenError::InvalidClient)) {
            self.activity.authentication_failed(credentials.client_id(), known).await;
        }
        result
    }

    async fn client_credentials(
        &self,
        client: &ClientRecord,
        requested: Option<&[String]>,
        resource: Option<&str>,
        dpop_jkt: Option<[u8; 32]>,
        now: UnixTime,
    ) -> Result<TokenResponse, TokenError> {
        let granted = scope::grant(&client.scopes, requested)?;
        let audience = audience::select(&client.audiences, &self.policy.audience, resource)?;
        let ttl = client.access_token_ttl(self.policy.access_token_ttl);
        let access_token = self.mint_access_token(&client.client_id, &granted, audience, ttl, dpop_jkt, now)?;
        let refresh_token =
            if client.refresh_tokens { Some(self.start_family(client, &granted, dpop_jkt, now).await?) } else { None };
        Ok(self.response(access_token, ttl, refresh_token, &granted, dpop_jkt.is_some()))
    }

    async fn start_family(
        &self,
        client: &ClientRecord,
        granted: &[String],
        dpop_jkt: Option<[u8; 32]>,
        now: UnixTime,
    ) -> Result<String, TokenError> {
        // A family ID is the second and 48 random bits: two families of one
        // second may draw the same (at 10,000 a second, a few times a
        // year). The store refuses the second; it gets another ID.
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.try_start_family(client, granted, dpop_jkt, now).await {
                Err(TokenError::Storage(StoreError::AlreadyExists(_))) if attempts < 3 => {}
                started => return started,
            }
        }
    }

    /// Starts a family; a grant with a DPoP proof binds it to that key, so
    /// every refresh of it must prove the same key (RFC 9449 §5).
    async fn try_start_family(
        &self,
        client: &ClientRecord,
        granted: &[String],
        dpop_jkt: Option<[u8; 32]>,
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
            dpop_jkt,
        };
        match self.store.create_family(&family, self.policy.max_families_per_client).await? {
            FamilyStart::Started { retired } => {
                if retired > 0 {
                    self.metrics.refresh_families_retired(retired);
                    if let Some(retired) = self.retirement_log.retired(&client.client_id, retired, now) {
                        tracing::info!(
                            event = "refresh_families_retired",
                            client_id = %client.client_id,
                            retired,
                            "the client is at its refresh-token family cap: its oldest families were retired \
                             (this many since the previous line about it, at most one a minute)"
                        );
                    }
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
        dpop_jkt: Option<[u8; 32]>,
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
            // A bound family refuses a refresh that does not prove its key.
            dpop_jkt,
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
        let access_token = self.mint_access_token(&client.client_id, &granted, audience, ttl, dpop_jkt, now)?;
        Ok(self.response(access_token, ttl, Some(successor.encode()), &granted, dpop_jkt.is_some()))
    }

    fn new_refresh_token(&self, now: UnixTime) -> Result<NewRefreshToken, TokenError> {
        Ok(NewRefreshToken {
            secret: self.random.bytes::<16>()?,
            issued_at: now,
            expires_at: now.saturating_add(self.policy.refresh_token_ttl),
        })
    }

    /// A signed access token for `audience`, valid `ttl` seconds from `now`,
    /// bound to the key with thumbprint `dpop_jkt` if there is one.
    fn mint_access_token(
        &self,
        client_id: &str,
        scopes: &[String],
        audience: &str,
        ttl: u64,
        dpop_jkt: Option<[u8; 32]>,
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
            cnf: dpop_jkt.map(|jkt| Confirmation { jkt: jkt_of(&jkt) }),
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
        dpop_bound: bool,
    ) -> TokenResponse {
        TokenResponse {
            access_token,
            token_type: if dpop_bound { TOKEN_TYPE_DPOP } else { TOKEN_TYPE_BEARER }.to_owned(),
            expires_in,
            refresh_token,
            scope: scope::to_claim(granted),
        }
    }
}

mod retirement_log;
mod revoke_introspect;

#[cfg(test)]
mod tests;
