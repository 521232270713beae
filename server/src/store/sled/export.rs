//! Reading everything out of sled, for `tessera-server migrate-storage`
//! (see [`crate::migrate`]). The trait has no "list every family" call:
//! the server never needs one, only a move to another backend does.

use super::{SledStore, backend};
use crate::clock::UnixTime;
use crate::store::StoreError;
use crate::store::codec::decode_compact;
use crate::store::records::{Digest32, FamilyRecord};
use crate::store::sled::journal::TreeId;

fn u64_value(raw: &[u8], what: &str) -> Result<u64, StoreError> {
    let bytes: [u8; 8] = raw.try_into().map_err(|_| StoreError::Corrupt(format!("{what} has the wrong length")))?;
    Ok(u64::from_be_bytes(bytes))
}

fn utf8(raw: &[u8], what: &str) -> Result<String, StoreError> {
    String::from_utf8(raw.to_vec()).map_err(|_| StoreError::Corrupt(format!("{what} is not UTF-8")))
}

impl SledStore {
    /// Every installation value (`meta` tree), except the health probe.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure or a corrupt entry.
    pub fn meta_entries(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut entries = Vec::new();
        for entry in self.meta.iter() {
            let (key, value) = entry.map_err(backend)?;
            let name = utf8(&key, "a meta name")?;
            if name != "health_probe" && name != "storage_format" {
                entries.push((name, value.to_vec()));
            }
        }
        Ok(entries)
    }

    /// Every client's last-used time.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure or a corrupt entry.
    pub fn last_used_entries(&self) -> Result<Vec<(String, UnixTime)>, StoreError> {
        let mut entries = Vec::new();
        for entry in self.client_last_used.iter() {
            let (key, value) = entry.map_err(backend)?;
            entries.push((utf8(&key, "a client ID")?, u64_value(&value, "a last-used time")?));
        }
        Ok(entries)
    }

    /// Every family.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure or a corrupt record.
    pub fn all_families(&self) -> Result<Vec<FamilyRecord>, StoreError> {
        let mut families = Vec::new();
        for family_id in self.journal.keys_with_prefix(TreeId::Families, &[])? {
            // Gone since the scan (the cap or the purge): not exported.
            if let Some(raw) = self.journal.get(TreeId::Families, &family_id)? {
                families.push(decode_compact(&raw)?);
            }
        }
        Ok(families)
    }

    /// Every access-token deny-list entry with its expiry.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure or a corrupt entry.
    /// The private_key_jwt replay set: client ID, `jti` digest, until when.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure or a corrupt entry.
    pub fn assertion_jti_entries(&self) -> Result<Vec<(String, Digest32, UnixTime)>, StoreError> {
        self.assertion_jtis.entries()
    }

    pub fn denied_entries(&self) -> Result<Vec<(String, UnixTime)>, StoreError> {
        let mut entries = Vec::new();
        for entry in self.denied_jti.iter() {
            let (key, value) = entry.map_err(backend)?;
            entries.push((utf8(&key, "a jti")?, u64_value(&value, "a deny-list expiry")?));
        }
        Ok(entries)
    }
}
