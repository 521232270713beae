//! The access-token deny list in sled: `denied_jti` answers "is this `jti`
//! denied", `denied_expiry` (ordered by expiry) lets the purge find what
//! has expired without scanning everything.

use sled::Transactional;
use sled::transaction::TransactionError;

use super::{backend, from_tx};
use crate::clock::UnixTime;
use crate::store::StoreError;

fn expiry_key(expires_at: UnixTime, jti: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + jti.len());
    key.extend_from_slice(&expires_at.to_be_bytes());
    key.extend_from_slice(jti.as_bytes());
    key
}

fn decode_expiry(raw: &[u8]) -> Result<UnixTime, StoreError> {
    let bytes: [u8; 8] = raw.try_into().map_err(|_| StoreError::Corrupt("deny-list expiry".into()))?;
    Ok(u64::from_be_bytes(bytes))
}

/// Adds `jti` until `expires_at`; a second denial keeps the later expiry.
pub(super) fn deny(
    jti_tree: &sled::Tree,
    expiry: &sled::Tree,
    jti: &str,
    expires_at: UnixTime,
) -> Result<(), StoreError> {
    (jti_tree, expiry)
        .transaction(|(jtis, expiry)| {
            let previous = match jtis.get(jti)? {
                Some(raw) => Some(decode_expiry(&raw).map_err(sled::transaction::ConflictableTransactionError::Abort)?),
                None => None,
            };
            if previous.is_some_and(|p| p >= expires_at) {
                return Ok(());
            }
            if let Some(previous) = previous {
                expiry.remove(expiry_key(previous, jti))?;
            }
            jtis.insert(jti.as_bytes(), &expires_at.to_be_bytes())?;
            expiry.insert(expiry_key(expires_at, jti), &[])?;
            Ok(())
        })
        .map_err(|e: TransactionError<StoreError>| from_tx(e))
}

/// Whether `jti` is denied at `now`.
pub(super) fn is_denied(jti_tree: &sled::Tree, jti: &str, now: UnixTime) -> Result<bool, StoreError> {
    match jti_tree.get(jti).map_err(backend)? {
        Some(raw) => Ok(now < decode_expiry(&raw)?),
        None => Ok(false),
    }
}

/// Removes up to `batch` entries that expired before `now`.
pub(super) fn purge(
    jti_tree: &sled::Tree,
    expiry: &sled::Tree,
    now: UnixTime,
    batch: usize,
) -> Result<u64, StoreError> {
    let bound = now.to_be_bytes();
    let expired: Vec<sled::IVec> =
        expiry.range(..bound.as_slice()).keys().take(batch).collect::<Result<_, _>>().map_err(backend)?;
    let mut removed = 0;
    for index_key in expired {
        let jti = index_key.get(8..).ok_or_else(|| StoreError::Corrupt("denied_expiry key too short".into()))?;
        (jti_tree, expiry)
            .transaction(|(jtis, expiry)| {
                expiry.remove(&index_key)?;
                // Only if the entry still ends then (a later denial moved it).
                if jtis.get(jti)?.is_some_and(|raw| raw.as_ref() == &index_key[..8]) {
                    jtis.remove(jti)?;
                }
                Ok(())
            })
            .map_err(|e: TransactionError<StoreError>| from_tx(e))?;
        removed += 1;
    }
    Ok(removed)
}
