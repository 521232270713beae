//! Client authentication, the one layer the token, revocation and
//! introspection endpoints share (RFC 6749 §2.3).
//!
//! Two halves, neither of which knows HTTP:
//!
//! - [`presented`]: what credentials a request carries, read from its
//!   parameters and its (already decoded) `Authorization` header, by the
//!   rules of RFC 6749 §2.3.1 and the parsing policy: a secret, or a client
//!   assertion (private_key_jwt, RFC 7523 §2.2), never both. Pure.
//! - [`ClientAuthenticator`]: checks presented credentials against the
//!   stored client. An unknown ID, a wrong or expired secret, a bad,
//!   expired or replayed assertion, the wrong method for the client and a
//!   revoked client all fail alike as [`TokenError::InvalidClient`].
//!
//! - [`assertion`]: the rules of a client assertion (pure).
//! - [`public_key`]: a client's registered public keys, from PEM or JWK.
//!
//! The HTTP framing around it (limiter, access log, metrics) is
//! [`crate::http::client_request`].

pub mod assertion;
pub mod public_key;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tessera_shared::admin::ClientStatus;
use tessera_shared::ids::is_client_id;
use tessera_shared::jwk::Jwk;

use crate::clock::UnixTime;
use crate::crypto::secret::SecretHasher;
use crate::grant::error::TokenError;
use crate::grant::request::{Param, ParsePolicy, Source};
use crate::store::records::ClientRecord;
use crate::store::{JtiClaim, MAX_ASSERTION_JTIS_PER_CLIENT, Store};
use assertion::{ASSERTION_TYPE, AcceptedAudiences};

/// Last-used times are recorded at most this often per client (and server
/// process), to keep a write off the hot path.
const LAST_USED_RESOLUTION: u64 = 60;

/// The names of the parameters that carry client credentials, for the
/// endpoints' lists of names that may be echoed in an error description.
pub const PARAMETERS: [&str; 4] = ["client_id", "client_secret", "client_assertion_type", "client_assertion"];

/// A client ID and secret, however they arrived.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    /// The claimed client ID.
    pub client_id: String,
    /// The presented secret.
    pub client_secret: String,
}

impl std::fmt::Debug for ClientCredentials {
    // The secret must not reach a log through a stray `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials").field("client_id", &self.client_id).finish_non_exhaustive()
    }
}

/// A client assertion (private_key_jwt) and the client it is for.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientAssertion {
    /// The `client_id` parameter if sent, else the assertion's unverified
    /// `sub` (or `iss`): whose keys check it, and whose rate limit counts it.
    pub client_id: String,
    /// The compact JWS.
    pub assertion: String,
}

impl std::fmt::Debug for ClientAssertion {
    // The assertion is a credential: it must not reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientAssertion").field("client_id", &self.client_id).finish_non_exhaustive()
    }
}

/// The credentials a request presents: exactly one way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    /// client_secret_basic or client_secret_post.
    Secret(ClientCredentials),
    /// private_key_jwt.
    Assertion(ClientAssertion),
}

impl Presented {
    /// The client ID claimed (not yet authenticated).
    pub fn client_id(&self) -> &str {
        match self {
            Self::Secret(credentials) => &credentials.client_id,
            Self::Assertion(assertion) => &assertion.client_id,
        }
    }
}

/// What the `Authorization` header held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizationHeader {
    /// No header.
    Absent,
    /// Well-formed Basic credentials.
    Basic(ClientCredentials),
    /// Present but not usable Basic credentials (another scheme, bad
    /// base64, no colon, ...).
    Malformed,
}

/// The client credentials among the request's parameters and its
/// `Authorization` header, by the rules of RFC 6749 §2.3.1 and `policy`.
/// A parameter without a value counts as omitted (RFC 6749 §3.1).
///
/// # Errors
/// [`TokenError::InvalidRequest`] for credentials in two places or of two
/// kinds, half of them, or in the query string when `policy` forbids it;
/// [`TokenError::InvalidClient`] for none or malformed ones.
pub fn presented(
    params: &[Param],
    authorization: AuthorizationHeader,
    policy: ParsePolicy,
) -> Result<Presented, TokenError> {
    let find = |name: &str| params.iter().find(|p| p.name == name && !p.value.is_empty());
    if find("client_assertion_type").is_some() || find("client_assertion").is_some() {
        return presented_assertion(params, authorization, policy);
    }
    let (id, secret) = (find("client_id"), find("client_secret"));
    let in_params = id.is_some() || secret.is_some();
    match authorization {
        AuthorizationHeader::Basic(_) | AuthorizationHeader::Malformed if in_params => Err(TokenError::InvalidRequest(
            "client credentials must be sent either in the Authorization header or as parameters, not both",
        )),
        AuthorizationHeader::Basic(credentials) => Ok(Presented::Secret(credentials)),
        AuthorizationHeader::Malformed => Err(TokenError::InvalidClient),
        AuthorizationHeader::Absent => match (id, secret) {
            (Some(id), Some(secret)) => {
                let from_query = id.source == Source::Query || secret.source == Source::Query;
                if from_query && !policy.allow_query_credentials {
                    return Err(TokenError::InvalidRequest(
                        "client credentials in the query string are disabled; use the Authorization header",
                    ));
                }
                Ok(Presented::Secret(ClientCredentials {
                    client_id: id.value.clone(),
                    client_secret: secret.value.clone(),
                }))
            }
            (Some(_), None) => Err(TokenError::InvalidRequest("client_secret is missing")),
            (None, Some(_)) => Err(TokenError::InvalidRequest("client_id is missing")),
            (None, None) => Err(TokenError::InvalidClient),
        },
    }
}

/// A request with `client_assertion_type` or `client_assertion`: both, and
/// no other credentials (RFC 6749 §2.3: one method per request).
fn presented_assertion(
    params: &[Param],
    authorization: AuthorizationHeader,
    policy: ParsePolicy,
) -> Result<Presented, TokenError> {
    let find = |name: &str| params.iter().find(|p| p.name == name && !p.value.is_empty());
    if authorization != AuthorizationHeader::Absent || find("client_secret").is_some() {
        return Err(TokenError::InvalidRequest(
            "a request authenticates the client one way: a secret or a client assertion, not both",
        ));
    }
    let (Some(kind), Some(assertion)) = (find("client_assertion_type"), find("client_assertion")) else {
        return Err(TokenError::InvalidRequest("client_assertion_type and client_assertion go together"));
    };
    let id = find("client_id");
    let from_query = [Some(kind), Some(assertion), id].iter().flatten().any(|p| p.source == Source::Query);
    if from_query && !policy.allow_query_credentials {
        return Err(TokenError::InvalidRequest(
            "client credentials in the query string are disabled; send them in the body",
        ));
    }
    if kind.value != ASSERTION_TYPE {
        return Err(TokenError::InvalidClient);
    }
    let client_id = match id {
        Some(id) => id.value.clone(),
        None => assertion::claimed_client(&assertion.value).ok_or(TokenError::InvalidClient)?,
    };
    Ok(Presented::Assertion(ClientAssertion { client_id, assertion: assertion.value.clone() }))
}

/// Checks presented credentials against the store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ClientAuthenticator {
    /// Where clients are.
    store: Arc<dyn Store>,
    /// Digests and compares secrets in constant time.
    secrets: SecretHasher,
    /// When this process last recorded each client's use, so deciding
    /// whether to record it again needs no store read per request.
    last_recorded: Arc<Mutex<HashMap<String, UnixTime>>>,
    /// What an assertion's `aud` may name: this server's issuer and token
    /// endpoint.
    audiences: Arc<AcceptedAudiences>,
    /// Public keys nobody holds (P-256, Ed25519), made at start: an
    /// assertion for an unknown client, a secret client or a revoked one
    /// is checked against them, so it costs about what a real check costs.
    decoys: Arc<Vec<Jwk>>,
}

/// The outcome of one authentication, with what the audit trail's burst
/// detector may know of it.
#[derive(Debug)]
pub struct Authentication {
    /// The authenticated client, or why not.
    pub result: Result<ClientRecord, TokenError>,
    /// Whether the claimed client exists (for the burst events; never for
    /// the answer).
    pub known: bool,
}

impl ClientAuthenticator {
    /// An authenticator over `store`, comparing secrets with `secrets` and
    /// accepting assertions for `audiences`.
    pub fn new(store: Arc<dyn Store>, secrets: SecretHasher, audiences: AcceptedAudiences) -> Self {
        Self { store, secrets, last_recorded: Arc::default(), audiences: Arc::new(audiences), decoys: decoy_keys() }
    }

    /// Finds the client and checks what it presented; records its use
    /// (coarsely). Every failure is [`TokenError::InvalidClient`].
    pub async fn authenticate(&self, presented: &Presented, now: UnixTime) -> Authentication {
        match presented {
            Presented::Secret(credentials) => self.authenticate_secret(credentials, now).await,
            Presented::Assertion(assertion) => self.authenticate_assertion(assertion, now).await,
        }
    }

    /// An unknown ID, a wrong or expired secret, a client with keys and a
    /// revoked client fail alike and do the same work.
    async fn authenticate_secret(&self, credentials: &ClientCredentials, now: UnixTime) -> Authentication {
        let found = if is_client_id(&credentials.client_id) {
            match self.store.client(&credentials.client_id).await {
                Ok(found) => found,
                Err(error) => return Authentication { result: Err(error.into()), known: false },
            }
        } else {
            None
        };
        let Some(client) = found else {
            self.secrets.match_nothing(&credentials.client_secret);
            return Authentication { result: Err(TokenError::InvalidClient), known: false };
        };
        Authentication { result: self.check_secret(client, credentials, now).await, known: true }
    }

    /// The hasher, so tests can count the work an authentication does.
    #[cfg(test)]
    pub(crate) fn secrets(&self) -> &SecretHasher {
        &self.secrets
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
        // A client with keys has no secret (its digest is of a value nobody
        // was told), and is refused even so.
        if !secret_ok || client.uses_keys() || client.status != ClientStatus::Active {
            return Err(TokenError::InvalidClient);
        }
        self.note_use(&client.client_id, now).await?;
        Ok(client)
    }

    /// An assertion: the client must exist, be active and have keys; the
    /// assertion must pass [`assertion::verify`] with them; then its `jti`
    /// must be new to the store's replay set.
    async fn authenticate_assertion(&self, presented: &ClientAssertion, now: UnixTime) -> Authentication {
        let found = if is_client_id(&presented.client_id) {
            match self.store.client(&presented.client_id).await {
                Ok(found) => found,
                Err(error) => return Authentication { result: Err(error.into()), known: false },
            }
        } else {
            None
        };
        let Some(client) = found else {
            self.decoy_check(presented, now);
            return Authentication { result: Err(TokenError::InvalidClient), known: false };
        };
        if !client.uses_keys() || client.status != ClientStatus::Active {
            self.decoy_check(presented, now);
            return Authentication { result: Err(TokenError::InvalidClient), known: true };
        }
        let accepted =
            match assertion::verify(&presented.assertion, &client.client_id, &client.public_keys, &self.audiences, now)
            {
                Ok(accepted) => accepted,
                Err(reason) => {
                    tracing::debug!(client_id = %client.client_id, %reason, "client assertion refused");
                    return Authentication { result: Err(TokenError::InvalidClient), known: true };
                }
            };
        let claim = self
            .store
            .claim_assertion_jti(
                &client.client_id,
                &accepted.jti_digest,
                accepted.remember_until,
                now,
                MAX_ASSERTION_JTIS_PER_CLIENT,
            )
            .await;
        let result = match claim {
            Ok(JtiClaim::First) => self.note_use(&client.client_id, now).await.map(|()| client),
            Ok(refused @ (JtiClaim::Replayed | JtiClaim::Full)) => {
                tracing::debug!(client_id = %client.client_id, ?refused, "client assertion jti refused");
                Err(TokenError::InvalidClient)
            }
            Err(error) => Err(error.into()),
        };
        Authentication { result, known: true }
    }

    /// The work of a check, against keys nobody holds; its result is moot.
    fn decoy_check(&self, presented: &ClientAssertion, now: UnixTime) {
        let _ = assertion::verify(&presented.assertion, &presented.client_id, &self.decoys, &self.audiences, now);
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
}

/// A P-256 and an Ed25519 public key whose private halves are dropped at
/// once (none if the system's generator fails: the decoy check is then
/// cheaper, nothing else changes).
fn decoy_keys() -> Arc<Vec<Jwk>> {
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
    let rng = ring::rand::SystemRandom::new();
    let ec = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .ok()
        .and_then(|doc| EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref(), &rng).ok())
        .and_then(|pair| Jwk::es256(pair.public_key().as_ref()).ok());
    let ed = Ed25519KeyPair::generate_pkcs8(&rng)
        .ok()
        .and_then(|doc| Ed25519KeyPair::from_pkcs8(doc.as_ref()).ok())
        .and_then(|pair| Jwk::ed25519(pair.public_key().as_ref()).ok());
    Arc::new(ec.into_iter().chain(ed).collect())
}

#[cfg(test)]
mod tests;
