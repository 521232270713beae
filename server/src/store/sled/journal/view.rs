//! What a commit reads and writes: sled, overlaid with the changes that
//! are committed but not yet applied to it, overlaid with the commit's own.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Mutex;

use super::record::{Change, TreeId};
use super::{JournaledTrees, lock};
use crate::store::StoreError;

/// The latest committed value of every key whose change has not reached
/// sled yet, with the ticket of the commit that made it.
#[derive(Debug, Default)]
pub struct Overlay {
    /// By tree, then key: a key is looked up without a copy of it, and the
    /// keys under a prefix are one range.
    trees: HashMap<TreeId, BTreeMap<Vec<u8>, Unapplied>>,
}

#[derive(Debug)]
struct Unapplied {
    /// `None`: removed.
    value: Option<Vec<u8>>,
    ticket: u64,
}

impl Overlay {
    /// Records `changes`, committed with `ticket`.
    pub(super) fn add(&mut self, changes: &[Change], ticket: u64) {
        for change in changes {
            self.trees
                .entry(change.tree)
                .or_default()
                .insert(change.key.clone(), Unapplied { value: change.value.clone(), ticket });
        }
    }

    /// Forgets every change of the commits up to `ticket`, now in sled; a
    /// later commit's change to the same key stays.
    pub(super) fn applied_through(&mut self, ticket: u64) {
        for entries in self.trees.values_mut() {
            entries.retain(|_, unapplied| unapplied.ticket > ticket);
        }
    }

    /// `Some(value)` if a pending commit changed the key (`Some(None)`:
    /// removed it).
    fn get(&self, tree: TreeId, key: &[u8]) -> Option<Option<Vec<u8>>> {
        self.trees.get(&tree)?.get(key).map(|unapplied| unapplied.value.clone())
    }

    /// The pending changes of `tree` under `prefix`, in key order.
    fn under<'o>(&'o self, tree: TreeId, prefix: &'o [u8]) -> impl Iterator<Item = (&'o Vec<u8>, &'o Unapplied)> + 'o {
        self.trees
            .get(&tree)
            .into_iter()
            .flat_map(move |entries| entries.range::<[u8], _>((Bound::Included(prefix), Bound::Unbounded)))
            .take_while(move |(key, _)| key.starts_with(prefix))
    }

    /// The pending changes of `tree` under `prefix`: `true` for a key set,
    /// `false` for one removed.
    fn changes_under(&self, tree: TreeId, prefix: &[u8]) -> BTreeMap<Vec<u8>, bool> {
        self.under(tree, prefix).map(|(key, unapplied)| (key.clone(), unapplied.value.is_some())).collect()
    }

    /// Applies the pending changes of `tree` under `prefix` to `keys`.
    fn apply_to_keys(&self, tree: TreeId, prefix: &[u8], keys: &mut BTreeSet<Vec<u8>>) {
        for (key, unapplied) in self.under(tree, prefix) {
            if unapplied.value.is_some() {
                keys.insert(key.clone());
            } else {
                keys.remove(key);
            }
        }
    }
}

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
        lock(self.overlay)?.apply_to_keys(tree, prefix, &mut keys);
        for own in self.changes.iter().filter(|c| c.tree == tree && c.key.starts_with(prefix)) {
            if own.value.is_some() {
                keys.insert(own.key.clone());
            } else {
                keys.remove(&own.key);
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
        if n == 0 {
            return Ok(Vec::new());
        }
        // What pending commits and this one changed under the prefix, the
        // latest change of each key winning: `true` if the key is there.
        let mut changed: BTreeMap<Vec<u8>, bool> = lock(self.overlay)?.changes_under(tree, prefix);
        for own in self.changes.iter().filter(|c| c.tree == tree && c.key.starts_with(prefix)) {
            changed.insert(own.key.clone(), own.value.is_some());
        }
        // n keys of sled that are still there: every key of sled not read
        // is after them, so the first n of these plus the added ones are
        // the first n of all.
        let mut keys = BTreeSet::new();
        for key in self.trees.tree(tree).scan_prefix(prefix).keys() {
            let key = key.map_err(|e| StoreError::backend("journal view: prefix scan", e))?.to_vec();
            if changed.get(&key) != Some(&false) {
                keys.insert(key);
                if keys.len() == n {
                    break;
                }
            }
        }
        keys.extend(changed.into_iter().filter_map(|(key, there)| there.then_some(key)));
        Ok(keys.into_iter().take(n).collect())
    }

    /// The greatest key of `tree` as this commit sees the tree.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if sled fails.
    pub fn last_key(&self, tree: TreeId) -> Result<Option<Vec<u8>>, StoreError> {
        let mut changed: BTreeMap<Vec<u8>, bool> = lock(self.overlay)?.changes_under(tree, &[]);
        for own in self.changes.iter().filter(|c| c.tree == tree) {
            changed.insert(own.key.clone(), own.value.is_some());
        }
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
