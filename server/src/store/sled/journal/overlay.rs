//! Every committed change sled does not have yet, in layers, newest first:
//!
//! 1. **unsynced**: committed, not yet on disk (every tree), each with its
//!    commit's ticket;
//! 2. **filling**: on disk in the current segment, not yet in sled (only
//!    the trees [`TreeId::applied_at_checkpoint`]);
//! 3. **sealed**: the same for segments already sealed, newest first, each
//!    waiting for the checkpoint thread to apply it to sled.
//!
//! Each layer holds one entry per key, its newest change, so a key written
//! many times within a segment reaches sled once, and a key added and
//! removed within one (a refresh-token family the cap retires soon after
//! it started) reaches it as one removal of a key sled never had, which
//! sled ignores. A read looks through the layers from the newest down, and
//! then at sled.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;

use super::record::{Change, TreeId};

/// The changes of one or more segments, by tree and then key: a key is
/// looked up without a copy of it, and the keys in a range are one range.
pub type Layer = HashMap<TreeId, BTreeMap<Vec<u8>, Option<Vec<u8>>>>;

/// Keys in order, each once, with whether a change set it (`false`:
/// removed it).
pub type Changed<'a> = Box<dyn Iterator<Item = (&'a [u8], bool)> + 'a>;

/// An unsynced change, with the ticket of the commit that made it.
#[derive(Debug)]
struct Unsynced {
    /// `None`: removed.
    value: Option<Vec<u8>>,
    ticket: u64,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct Overlay {
    unsynced: HashMap<TreeId, BTreeMap<Vec<u8>, Unsynced>>,
    filling: Layer,
    /// Newest first. Shared with the checkpoint thread while it applies
    /// the oldest, which stays here (and is read) until sled has it all.
    sealed: VecDeque<Arc<Layer>>,
}

impl Overlay {
    /// Records `changes`, committed with `ticket`.
    pub(super) fn add(&mut self, changes: &[Change], ticket: u64) {
        for change in changes {
            self.unsynced
                .entry(change.tree)
                .or_default()
                .insert(change.key.clone(), Unsynced { value: change.value.clone(), ticket });
        }
    }

    /// The commits up to `ticket` are on disk, and every change of theirs
    /// to a tree applied at once is in sled: `synced` holds their changes
    /// to the trees applied at checkpoints, in commit order, which move to
    /// the filling layer. The unsynced changes of those commits go; a
    /// later commit's change to the same key stays.
    pub(super) fn synced(&mut self, synced: impl IntoIterator<Item = Change>, ticket: u64) {
        for change in synced {
            self.filling.entry(change.tree).or_default().insert(change.key, change.value);
        }
        for entries in self.unsynced.values_mut() {
            entries.retain(|_, unsynced| unsynced.ticket > ticket);
        }
    }

    /// Seals the filling layer with its segment (if it holds anything), for
    /// the checkpoint thread to apply.
    pub(super) fn seal(&mut self) {
        if self.filling.values().any(|entries| !entries.is_empty()) {
            self.sealed.push_front(Arc::new(std::mem::take(&mut self.filling)));
        }
    }

    /// How many sealed layers wait for the checkpoint thread.
    pub(super) fn sealed_layers(&self) -> usize {
        self.sealed.len()
    }

    /// The oldest sealed layer, to apply to sled.
    pub(super) fn oldest_sealed(&self) -> Option<Arc<Layer>> {
        self.sealed.back().cloned()
    }

    /// Forgets the oldest sealed layer, now in sled.
    pub(super) fn drop_oldest_sealed(&mut self) {
        self.sealed.pop_back();
    }

    /// `Some(value)` if a change sled does not have yet set the key
    /// (`Some(None)`: removed it).
    pub(super) fn get(&self, tree: TreeId, key: &[u8]) -> Option<Option<Vec<u8>>> {
        if let Some(unsynced) = self.unsynced.get(&tree).and_then(|entries| entries.get(key)) {
            return Some(unsynced.value.clone());
        }
        self.settled_newest_first().find_map(|layer| layer.get(&tree)?.get(key)).cloned()
    }

    /// The changes of `tree` from `from` on while `within` holds, each key
    /// once with its newest change (`true`: set, `false`: removed), in key
    /// order.
    pub(super) fn newest_from<'o>(
        &'o self,
        tree: TreeId,
        from: &'o [u8],
        within: impl Fn(&[u8]) -> bool + Copy + 'o,
    ) -> impl Iterator<Item = (&'o [u8], bool)> + 'o {
        let unsynced = self
            .unsynced
            .get(&tree)
            .into_iter()
            .flat_map(move |entries| entries.range::<[u8], _>((Bound::Included(from), Bound::Unbounded)))
            .map(|(key, unsynced)| (key.as_slice(), unsynced.value.is_some()));
        let mut sources: Vec<Changed<'o>> = vec![Box::new(unsynced)];
        for layer in self.settled_newest_first() {
            let entries = layer
                .get(&tree)
                .into_iter()
                .flat_map(move |entries| entries.range::<[u8], _>((Bound::Included(from), Bound::Unbounded)))
                .map(|(key, value)| (key.as_slice(), value.is_some()));
            sources.push(Box::new(entries));
        }
        newest_first_merge(sources).take_while(move |(key, _)| within(key))
    }

    /// The filling layer, then the sealed ones from the newest.
    fn settled_newest_first(&self) -> impl Iterator<Item = &Layer> {
        std::iter::once(&self.filling).chain(self.sealed.iter().map(AsRef::as_ref))
    }
}

/// Merges sources each in key order into one in key order, a key once,
/// with the verdict of the first source that has it (the newest).
pub(super) fn newest_first_merge<'a>(sources: Vec<Changed<'a>>) -> impl Iterator<Item = (&'a [u8], bool)> + 'a {
    let mut sources: Vec<_> = sources.into_iter().map(Iterator::peekable).collect();
    std::iter::from_fn(move || {
        let key = sources.iter_mut().filter_map(|source| source.peek().map(|(key, _)| *key)).min()?;
        let mut verdict = None;
        for source in &mut sources {
            if let Some((_, present)) = source.next_if(|(head, _)| *head == key) {
                verdict.get_or_insert(present);
            }
        }
        verdict.map(|present| (key, present))
    })
}

#[cfg(test)]
mod tests;
