//! A read-only handle on a journaled sled tree.
//!
//! The journal is the only writer of its trees: replaying it is sound only
//! if sled never holds a change the journal does not. A `sled::Tree` can
//! write, so the store outside the journal gets this instead, which can
//! only read. It reads sled as it is: a commit shows here once it is
//! applied, which [`super::Journal::wait`] for its ticket guarantees,
//! except in the trees applied at checkpoints (which the store reads
//! through the journal).

use std::ops::RangeBounds;

/// Reads one sled tree; the methods are sled's own, minus every write.
#[derive(Debug, Clone)]
pub struct ReadTree(sled::Tree);

impl ReadTree {
    /// Only the journal hands these out.
    pub(super) const fn new(tree: sled::Tree) -> Self {
        Self(tree)
    }

    /// [`sled::Tree::get`].
    ///
    /// # Errors
    /// sled's.
    pub fn get<K: AsRef<[u8]>>(&self, key: K) -> sled::Result<Option<sled::IVec>> {
        self.0.get(key)
    }

    /// [`sled::Tree::iter`].
    #[must_use]
    pub fn iter(&self) -> sled::Iter {
        self.0.iter()
    }

    /// [`sled::Tree::range`].
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> sled::Iter {
        self.0.range(range)
    }

    /// [`sled::Tree::last`].
    ///
    /// # Errors
    /// sled's.
    pub fn last(&self) -> sled::Result<Option<(sled::IVec, sled::IVec)>> {
        self.0.last()
    }
}
