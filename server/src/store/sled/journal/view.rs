//! What a commit reads and writes: sled, overlaid with the changes that
//! are committed but not yet applied to it ([`Overlay`]), overlaid with the
//! commit's own.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use super::overlay::{Overlay, newest_first_merge};
use super::record::{Change, TreeId};
use super::{JournaledTrees, lock};
use crate::store::StoreError;

/// A commit's window on the journaled trees.
#[derive(Debug)]
pub struct View<'a> {
    trees: &'a JournaledTrees,
    overlay: &'a Mutex<Overlay>,
    changes: Vec<Change>,
}

impl<'a> View<'a> {
    pub(super) fn new(trees: &'a JournaledTrees, overlay: &'a Mutex<Overlay>) -> Self {
        Self { trees, overlay, changes: Vec::new() }
    }

    /// The value of `key` as this commit sees it.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if sled fails.
    pub fn get(&self, tree: TreeId, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(own) = self.changes.iter().rev().find(|c| c.tree == tree && c.key == key) {
            return Ok(own.value.clone());
        }
        if let Some(pending) = lock(self.overlay)?.get(tree, key) {
            return Ok(pending);
        }
        let stored = self.trees.tree(tree).get(key).map_err(|e| StoreError::backend("journal view: read", e))?;
        Ok(stored.map(|v| v.to_vec()))
    }

    /// Every key of `tree` that starts with `prefix`, in order, as this
    /// commit sees the tree.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if sled fails.
    pub fn keys_with_prefix(&self, tree: TreeId, prefix: &[u8]) -> Result<BTreeSet<Vec<u8>>, StoreError> {
        let mut keys = BTreeSet::new();
        for key in self.trees.tree(tree).scan_prefix(prefix).keys() {
            keys.insert(key.map_err(|e| StoreError::backend("journal view: prefix scan", e))?.to_vec());
        }
        let changed = self.changes_from(tree, prefix, move |key| key.starts_with(prefix))?;
        for (key, present) in changed {
            if present {
                keys.insert(key);
            } else {
                keys.remove(&key);
            }
        }
        Ok(keys)
    }

    /// The first `n` keys of `tree` under `prefix`, in order, as this commit
    /// sees the tree; reads only as far into sled as it needs.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if sled fails.
    pub fn first_keys_with_prefix(&self, tree: TreeId, prefix: &[u8], n: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        self.first_keys(tree, prefix, move |key| key.starts_with(prefix), n)
    }

    /// The first `n` keys of `tree` below `bound`, in order, as this commit
    /// sees the tree; reads only as far into sled as it needs.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if sled fails.
    pub fn first_keys_below(&self, tree: TreeId, bound: &[u8], n: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        self.first_keys(tree, &[], move |key| key < bound, n)
    }

    /// The first `n` keys of `tree` from `from` on while `within` holds.
    ///
    /// Walks sled's keys and the changed ones side by side, in key order:
    /// a removal sled does not have yet hides sled's key, a key set and
    /// not yet in sled is added, and sled is read no further than the
    /// `n`th key found.
    fn first_keys(
        &self,
        tree: TreeId,
        from: &[u8],
        within: impl Fn(&[u8]) -> bool + Copy,
        n: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut keys = Vec::new();
        if n == 0 {
            return Ok(keys);
        }
        let scan_error = |e| StoreError::backend("journal view: range scan", e);
        let own = self.own_changes(tree, from, within);
        let overlay = lock(self.overlay)?;
        let mut changed =
            newest_first_merge(vec![Box::new(own.into_iter()), Box::new(overlay.newest_from(tree, from, within))]);
        let mut stored =
            self.trees.tree(tree).range(from..).keys().take_while(|key| key.as_ref().map_or(true, |key| within(key)));
        let mut stored_head = stored.next().transpose().map_err(scan_error)?;
        let mut changed_head = changed.next();
        while keys.len() < n {
            match (&stored_head, changed_head) {
                (None, None) => break,
                (Some(stored_key), Some((changed_key, present))) if changed_key <= stored_key.as_ref() => {
                    if changed_key == stored_key.as_ref() {
                        stored_head = stored.next().transpose().map_err(scan_error)?;
                    }
                    if present {
                        keys.push(changed_key.to_vec());
                    }
                    changed_head = changed.next();
                }
                (Some(stored_key), _) => {
                    keys.push(stored_key.to_vec());
                    stored_head = stored.next().transpose().map_err(scan_error)?;
                }
                (None, Some((changed_key, present))) => {
                    if present {
                        keys.push(changed_key.to_vec());
                    }
                    changed_head = changed.next();
                }
            }
        }
        Ok(keys)
    }

    /// The greatest key of `tree` as this commit sees the tree.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if sled fails.
    pub fn last_key(&self, tree: TreeId) -> Result<Option<Vec<u8>>, StoreError> {
        let changed = self.changes_from(tree, &[], |_| true)?;
        // The greatest key of sled not removed since, against the greatest
        // key set since.
        let mut stored = None;
        for key in self.trees.tree(tree).iter().keys().rev() {
            let key = key.map_err(|e| StoreError::backend("journal view: reverse scan", e))?.to_vec();
            if changed.get(&key) != Some(&false) {
                stored = Some(key);
                break;
            }
        }
        let added = changed.into_iter().filter_map(|(key, there)| there.then_some(key)).next_back();
        Ok(stored.max(added))
    }

    /// Every change sled does not have yet (this commit's own included) to
    /// `tree` from `from` on while `within` holds, the newest of each key:
    /// `true` if the key is set.
    fn changes_from(
        &self,
        tree: TreeId,
        from: &[u8],
        within: impl Fn(&[u8]) -> bool + Copy,
    ) -> Result<BTreeMap<Vec<u8>, bool>, StoreError> {
        let mut changed: BTreeMap<Vec<u8>, bool> =
            lock(self.overlay)?.newest_from(tree, from, within).map(|(key, present)| (key.to_vec(), present)).collect();
        for (key, present) in self.own_changes(tree, from, within) {
            changed.insert(key.to_vec(), present);
        }
        Ok(changed)
    }

    /// This commit's own changes to `tree` from `from` on while `within`
    /// holds, the last of each key: `true` if it sets the key.
    fn own_changes(&self, tree: TreeId, from: &[u8], within: impl Fn(&[u8]) -> bool) -> BTreeMap<&[u8], bool> {
        self.changes
            .iter()
            .filter(|change| change.tree == tree && change.key.as_slice() >= from && within(&change.key))
            .map(|change| (change.key.as_slice(), change.value.is_some()))
            .collect()
    }

    /// Sets `key` to `value` when the commit goes through.
    pub fn insert(&mut self, tree: TreeId, key: &[u8], value: Vec<u8>) {
        self.changes.push(Change { tree, key: key.to_vec(), value: Some(value) });
    }

    /// Removes `key` when the commit goes through.
    pub fn remove(&mut self, tree: TreeId, key: &[u8]) {
        self.changes.push(Change { tree, key: key.to_vec(), value: None });
    }

    pub(super) fn into_changes(self) -> Vec<Change> {
        self.changes
    }
}

#[cfg(test)]
mod tests;
