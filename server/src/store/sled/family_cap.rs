//! The per-client family cap on sled: how many families each client has,
//! and which go first when a start would pass the cap.
//!
//! Both are kept in memory, so a client at its cap (one that asks for a
//! refresh token with every client_credentials grant) costs no scan of its
//! families per grant: its count is taken once, on its first start after
//! the store opened, and kept by every commit that adds or removes one of
//! its `client_families` keys; its oldest keys are read in batches of
//! [`RETIRE_BATCH`]. All of it is read and changed inside journal commits,
//! one at a time, so it always matches what the commits see.

use std::collections::{HashMap, VecDeque};

use super::journal::{TreeId, View};
use super::{client_family_key, family_id_in, get_family, remove_family_keys};
use crate::clock::UnixTime;
use crate::store::StoreError;
use crate::store::records::{FamilyId, FamilyRecord};

/// How many of a client's oldest families are read at once for the cap:
/// one index scan per this many retirements. Such a scan walks past the
/// keys of the retirements still on their way to sled too (one per start
/// in flight), so it costs about as much as a few grants; the batch is
/// held per client at its cap, 640 bytes of family IDs.
const RETIRE_BATCH: usize = 64;

/// What the store keeps in memory of one client's families.
#[derive(Debug, Default)]
pub(super) struct FamilyTally {
    /// How many it has: its `client_families` keys.
    pub(super) count: usize,
    /// Some of its oldest families, oldest first: the next ones the cap
    /// retires. One may have gone since it was read (the purge removed
    /// it); it is then skipped.
    next_to_retire: VecDeque<FamilyId>,
}

/// Every client's tally, by client ID; a client's goes when it is deleted.
pub(super) type FamilyTallies = HashMap<String, FamilyTally>;

/// Removes the oldest families of `client_id` until one more fits under
/// `max_families`, with their index entries, and counts the family the
/// caller adds in this same commit; returns how many of those removed were
/// live at `now`.
///
/// # Errors
/// [`StoreError::Backend`] if sled fails, [`StoreError::Corrupt`] on a key
/// of the wrong length.
pub(super) fn make_room(
    view: &mut View<'_>,
    tallies: &mut FamilyTallies,
    client_id: &str,
    max_families: usize,
    now: UnixTime,
) -> Result<u64, StoreError> {
    let tally = tally_of(view, tallies, client_id)?;
    let mut excess = (tally.count + 1).saturating_sub(max_families.max(1));
    let mut retired = 0;
    while excess > 0 {
        let Some(family_id) = tally.next_to_retire.pop_front() else {
            tally.next_to_retire = oldest_families(view, client_id, excess.max(RETIRE_BATCH))?;
            if tally.next_to_retire.is_empty() {
                // Nothing left to retire: the count was high. It is what
                // the index holds from now on.
                tally.count = 0;
                break;
            }
            continue;
        };
        if let Some(family) = get_family(view, &family_id)? {
            retired += u64::from(family.is_live(now));
            remove_family_keys(view, &family);
        } else {
            let key = client_family_key(client_id, &family_id);
            if view.get(TreeId::ClientFamilies, &key)?.is_none() {
                // Removed since it was read (by the purge), and counted off then.
                continue;
            }
            // An index entry left without its family goes too.
            view.remove(TreeId::ClientFamilies, &key);
        }
        tally.count = tally.count.saturating_sub(1);
        excess -= 1;
    }
    tally.count += 1;
    Ok(retired)
}

/// The first `n` families of the client by ID: family IDs lead with their
/// creation time, so these are its oldest.
fn oldest_families(view: &View<'_>, client_id: &str, n: usize) -> Result<VecDeque<FamilyId>, StoreError> {
    view.first_keys_with_prefix(TreeId::ClientFamilies, client_id.as_bytes(), n)?
        .iter()
        .map(|key| family_id_in(client_id, key))
        .collect()
}

/// Counts a family the commit removes (the purge's).
pub(super) fn count_removed(tallies: &mut FamilyTallies, family: &FamilyRecord) {
    if let Some(tally) = tallies.get_mut(&family.client_id) {
        tally.count = tally.count.saturating_sub(1);
    }
}

/// The client's tally, counted from the index if it has none yet.
fn tally_of<'t>(
    view: &View<'_>,
    tallies: &'t mut FamilyTallies,
    client_id: &str,
) -> Result<&'t mut FamilyTally, StoreError> {
    if !tallies.contains_key(client_id) {
        let count = view.keys_with_prefix(TreeId::ClientFamilies, client_id.as_bytes())?.len();
        tallies.insert(client_id.to_owned(), FamilyTally { count, next_to_retire: VecDeque::new() });
    }
    tallies.get_mut(client_id).ok_or_else(|| StoreError::internal("family cap", "a tally just inserted is missing"))
}
