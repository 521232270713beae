//! The access-token deny list in sled: `denied_jti` answers "is this `jti`
//! denied", `denied_expiry` (ordered by expiry) lets the purge find what
//! has expired without scanning everything. Both are written in journal
//! commits only.

use super::backend;
use super::journal::{ReadTree, TreeId, View};
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

/// Adds `jti` until `expires_at` in this commit; a second denial keeps the
/// later expiry.
pub(super) fn deny(view: &mut View<'_>, jti: &str, expires_at: UnixTime) -> Result<(), StoreError> {
    let previous = view.get(TreeId::DeniedJti, jti.as_bytes())?.map(|raw| decode_expiry(&raw)).transpose()?;
    if previous.is_some_and(|p| p >= expires_at) {
        return Ok(());
    }
    if let Some(previous) = previous {
        view.remove(TreeId::DeniedExpiry, &expiry_key(previous, jti));
    }
    view.insert(TreeId::DeniedJti, jti.as_bytes(), expires_at.to_be_bytes().to_vec());
    view.insert(TreeId::DeniedExpiry, &expiry_key(expires_at, jti), Vec::new());
    Ok(())
}

/// Whether `jti` is denied at `now`.
pub(super) fn is_denied(jti_tree: &ReadTree, jti: &str, now: UnixTime) -> Result<bool, StoreError> {
    match jti_tree.get(jti).map_err(backend)? {
        Some(raw) => Ok(now < decode_expiry(&raw)?),
        None => Ok(false),
    }
}

/// Up to `batch` keys of `denied_expiry` for entries that expired before
/// `now`, oldest first, as sled has them.
pub(super) fn expired(expiry: &ReadTree, now: UnixTime, batch: usize) -> Result<Vec<sled::IVec>, StoreError> {
    let bound = now.to_be_bytes();
    expiry.range(..bound.as_slice()).keys().take(batch).collect::<Result<_, _>>().map_err(backend)
}

/// Removes the entry of one `denied_expiry` key in this commit.
pub(super) fn remove_expired(view: &mut View<'_>, index_key: &[u8]) -> Result<(), StoreError> {
    let jti = index_key.get(8..).ok_or_else(|| StoreError::Corrupt("denied_expiry key too short".into()))?;
    view.remove(TreeId::DeniedExpiry, index_key);
    // Only if the entry still ends then (a later denial moved it).
    if view.get(TreeId::DeniedJti, jti)?.is_some_and(|raw| raw.get(..) == index_key.get(..8)) {
        view.remove(TreeId::DeniedJti, jti);
    }
    Ok(())
}
