//! Revocation (RFC 7009) and introspection (RFC 7662): the service half.
//! Both authenticate the caller exactly as the token endpoint does
//! ([`Issuer::authenticate`]) and then look the token up as an access token
//! (verified with the server's own keys) and as a refresh token (by
//! digest), the hinted kind first.

use tessera_shared::admin::ClientStatus;
use tessera_shared::claims::AccessTokenClaims;
use tessera_shared::introspection::{IntrospectionResponse, TOKEN_TYPE_REFRESH};
use tessera_shared::verify::Verifier;
use tessera_shared::wire::{TOKEN_TYPE_BEARER, TOKEN_TYPE_DPOP};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::Issuer;
use crate::clock::UnixTime;
use crate::grant::error::TokenError;
use crate::grant::refresh::token::RefreshToken;
use crate::grant::revoke_introspect::{RevokeIntrospectRequest, TokenHint};
use crate::grant::scope;
use crate::store::records::ClientRecord;

/// The kinds to try, the hinted one first.
fn order(hint: Option<TokenHint>) -> [TokenHint; 2] {
    match hint {
        Some(TokenHint::RefreshToken) => [TokenHint::RefreshToken, TokenHint::AccessToken],
        _ => [TokenHint::AccessToken, TokenHint::RefreshToken],
    }
}

/// The `aud` a JWT claims, unverified; `None` unless it is a JWT whose
/// payload has a string `aud`. Bounded by the request's size limits.
fn claimed_audience(token: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Audience {
        aud: String,
    }
    let payload = token.split('.').nth(1)?;
    let json = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<Audience>(&json).ok().map(|claims| claims.aud)
}

impl Issuer {
    /// Revokes the token if it is the caller's: a refresh token's whole
    /// family, or an access token's `jti` (deny-listed until its `exp`).
    /// Unknown, expired and other clients' tokens change nothing and are
    /// not an error (RFC 7009 §2.2).
    ///
    /// # Errors
    /// [`TokenError::InvalidClient`] if the caller does not authenticate;
    /// storage failures.
    pub async fn revoke(&self, request: RevokeIntrospectRequest) -> Result<(), TokenError> {
        let now = self.clock.now();
        let client = self.authenticate(&request.credentials, now).await?;
        for kind in order(request.hint) {
            let recognised = match kind {
                TokenHint::AccessToken => self.revoke_access_token(&client, &request.token, now).await?,
                TokenHint::RefreshToken => self.revoke_refresh_token(&client, &request.token, now).await?,
            };
            if recognised {
                break;
            }
        }
        Ok(())
    }

    /// Says whether the token is active and, if so, what it grants. Any
    /// active client may introspect any token.
    ///
    /// # Errors
    /// [`TokenError::InvalidClient`] if the caller does not authenticate;
    /// storage failures.
    pub async fn introspect(&self, request: RevokeIntrospectRequest) -> Result<IntrospectionResponse, TokenError> {
        let now = self.clock.now();
        self.authenticate(&request.credentials, now).await?;
        for kind in order(request.hint) {
            let found = match kind {
                TokenHint::AccessToken => self.introspect_access_token(&request.token, now).await?,
                TokenHint::RefreshToken => self.introspect_refresh_token(&request.token, now).await?,
            };
            if let Some(response) = found {
                return Ok(response);
            }
        }
        Ok(IntrospectionResponse::inactive())
    }

    /// The claims of `token` if this server signed it and it has not
    /// expired by the server's clock.
    ///
    /// Its `aud` is whichever audience it was issued for (the server's or
    /// one of its client's): the verifier is told the audience the token
    /// claims, read before verification, and the signature, checked with
    /// the server's own keys, then vouches for that claim as for the rest.
    fn own_access_token(&self, token: &str, now: UnixTime) -> Option<AccessTokenClaims> {
        let audience = claimed_audience(token)?;
        // Built per call from the key ring in force, so retiring keys still
        // count and a rotated ring is seen at once. Leeway 0: the server's
        // clock is the one that issued the token.
        let verifier = Verifier::new(self.keys.current().jwks().clone(), &self.policy.issuer_url, audience);
        verifier.with_leeway(0).verify_at(token, now).ok()
    }

    async fn client_is_active(&self, client_id: &str) -> Result<bool, TokenError> {
        let client = self.store.client(client_id).await?;
        Ok(client.is_some_and(|c| c.status == ClientStatus::Active))
    }

    async fn revoke_access_token(&self, client: &ClientRecord, token: &str, now: UnixTime) -> Result<bool, TokenError> {
        let Some(claims) = self.own_access_token(token, now) else { return Ok(false) };
        if claims.client_id != client.client_id {
            tracing::warn!(
                event = "revoke_foreign_token",
                client_id = %client.client_id,
                "a client asked to revoke another client's access token; nothing revoked"
            );
            return Ok(true);
        }
        // Denied through its last valid second, `exp` included.
        self.store.deny_access_token(&claims.jti, claims.exp.saturating_add(1)).await?;
        Ok(true)
    }

    async fn revoke_refresh_token(
        &self,
        client: &ClientRecord,
        token: &str,
        now: UnixTime,
    ) -> Result<bool, TokenError> {
        let Some(token) = RefreshToken::parse(token) else { return Ok(false) };
        let Some(family) = self.store.family(&token.family_id).await? else { return Ok(false) };
        // Only the family's current token, or its previous one, is the
        // family's to revoke with: any other value naming it (an older
        // generation, an altered token) is not a token it issued now.
        let digest = token.digest();
        let issued = family.is_current(token.generation, &digest) || family.is_previous(token.generation, &digest);
        if !issued {
            return Ok(false);
        }
        if family.client_id != client.client_id {
            tracing::warn!(
                event = "revoke_foreign_token",
                client_id = %client.client_id,
                "a client asked to revoke another client's refresh token; nothing revoked"
            );
            return Ok(true);
        }
        self.store.revoke_family(&family.family_id, now).await?;
        Ok(true)
    }

    async fn introspect_access_token(
        &self,
        token: &str,
        now: UnixTime,
    ) -> Result<Option<IntrospectionResponse>, TokenError> {
        let Some(claims) = self.own_access_token(token, now) else { return Ok(None) };
        if self.store.is_access_token_denied(&claims.jti, now).await?
            || !self.client_is_active(&claims.client_id).await?
        {
            return Ok(Some(IntrospectionResponse::inactive()));
        }
        Ok(Some(IntrospectionResponse {
            active: true,
            scope: claims.scope,
            client_id: Some(claims.client_id),
            sub: Some(claims.sub),
            exp: Some(claims.exp),
            iat: Some(claims.iat),
            iss: Some(claims.iss),
            aud: Some(claims.aud),
            token_type: Some(if claims.cnf.is_some() { TOKEN_TYPE_DPOP } else { TOKEN_TYPE_BEARER }.to_owned()),
            jti: Some(claims.jti),
            cnf: claims.cnf,
        }))
    }

    async fn introspect_refresh_token(
        &self,
        token: &str,
        now: UnixTime,
    ) -> Result<Option<IntrospectionResponse>, TokenError> {
        let Some(token) = RefreshToken::parse(token) else { return Ok(None) };
        let Some(family) = self.store.family(&token.family_id).await? else { return Ok(None) };
        // Active only as the family's current token of a live family whose
        // client is still active at the family's epoch: a rotated token,
        // even within the reuse grace, is no longer the one to use.
        let owner = self.store.client(&family.client_id).await?;
        let active = family.is_current(token.generation, &token.digest())
            && family.is_live(now)
            && owner.is_some_and(|c| c.status == ClientStatus::Active && c.family_epoch <= family.client_epoch);
        if !active {
            return Ok(Some(IntrospectionResponse::inactive()));
        }
        Ok(Some(IntrospectionResponse {
            active: true,
            scope: scope::to_claim(&family.scope),
            client_id: Some(family.client_id.clone()),
            sub: Some(family.client_id),
            exp: Some(family.expires_at),
            iat: Some(family.issued_at),
            iss: Some(self.policy.issuer_url.clone()),
            aud: None,
            token_type: Some(TOKEN_TYPE_REFRESH.to_owned()),
            jti: None,
            cnf: None,
        }))
    }
}
