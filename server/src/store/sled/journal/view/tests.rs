use std::sync::Mutex;

use super::{Overlay, View};
use crate::store::sled::journal::JournaledTrees;
use crate::store::sled::journal::record::{Change, TreeId};

fn trees() -> (sled::Db, JournaledTrees) {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let trees = JournaledTrees::open(&db).unwrap();
    (db, trees)
}

fn put(tree: TreeId, key: &[u8], value: Option<&[u8]>) -> Change {
    Change { tree, key: key.to_vec(), value: value.map(<[u8]>::to_vec) }
}

#[test]
fn own_changes_shadow_pending_commits_which_shadow_sled() {
    let (_db, trees) = trees();
    trees.families.insert(b"a", &b"sled"[..]).unwrap();
    trees.families.insert(b"b", &b"sled"[..]).unwrap();
    trees.families.insert(b"c", &b"sled"[..]).unwrap();
    let overlay = Mutex::new(Overlay::default());
    overlay.lock().unwrap().add(&[put(TreeId::Families, b"b", Some(b"pending")), put(TreeId::Families, b"c", None)], 8);
    let mut view = View::new(&trees, &overlay);
    view.insert(TreeId::Families, b"a", b"own".to_vec());
    assert_eq!(view.get(TreeId::Families, b"a").unwrap().as_deref(), Some(&b"own"[..]));
    assert_eq!(view.get(TreeId::Families, b"b").unwrap().as_deref(), Some(&b"pending"[..]));
    assert_eq!(view.get(TreeId::Families, b"c").unwrap(), None);
    // The same key in another tree is another key.
    assert_eq!(view.get(TreeId::FamilyExpiry, b"a").unwrap(), None);
    view.remove(TreeId::Families, b"b");
    assert_eq!(view.get(TreeId::Families, b"b").unwrap(), None);
    assert_eq!(view.into_changes(), vec![put(TreeId::Families, b"a", Some(b"own")), put(TreeId::Families, b"b", None)]);
}

#[test]
fn applied_commits_leave_the_overlay_but_later_ones_stay() {
    let (_db, trees) = trees();
    let overlay = Mutex::new(Overlay::default());
    {
        let mut overlay = overlay.lock().unwrap();
        overlay.add(&[put(TreeId::Keys, b"a", Some(b"first")), put(TreeId::Keys, b"b", Some(b"b"))], 10);
        overlay.add(&[put(TreeId::Keys, b"a", Some(b"second"))], 20);
        overlay.synced([], 10);
    }
    let view = View::new(&trees, &overlay);
    // The writer thread would have put `b` in sled; here it did not, so the
    // view falls through to sled's (empty) answer.
    assert_eq!(view.get(TreeId::Keys, b"b").unwrap(), None);
    assert_eq!(view.get(TreeId::Keys, b"a").unwrap().as_deref(), Some(&b"second"[..]));
    overlay.lock().unwrap().synced([], 20);
    assert_eq!(View::new(&trees, &overlay).get(TreeId::Keys, b"a").unwrap(), None);
}

/// The trees applied at checkpoints: a synced change is read from the
/// overlay until its sealed layer is applied, under any later change.
#[test]
fn a_synced_change_of_a_checkpoint_tree_is_read_until_sled_has_it() {
    let (_db, trees) = trees();
    let overlay = Mutex::new(Overlay::default());
    {
        let mut overlay = overlay.lock().unwrap();
        overlay.add(&[put(TreeId::Families, b"a", Some(b"durable"))], 10);
        overlay.add(&[put(TreeId::Families, b"a", Some(b"unsynced"))], 20);
        overlay.synced([put(TreeId::Families, b"a", Some(b"durable"))], 10);
    }
    let get = || View::new(&trees, &overlay).get(TreeId::Families, b"a").unwrap();
    assert_eq!(get().as_deref(), Some(&b"unsynced"[..]));
    overlay.lock().unwrap().synced([put(TreeId::Families, b"a", Some(b"unsynced"))], 20);
    overlay.lock().unwrap().seal();
    assert_eq!(get().as_deref(), Some(&b"unsynced"[..]), "sealed, not yet applied");
    let sealed = overlay.lock().unwrap().oldest_sealed().unwrap();
    trees.families.insert(b"a", sealed[&TreeId::Families][&b"a".to_vec()].clone().unwrap()).unwrap();
    overlay.lock().unwrap().drop_oldest_sealed();
    assert_eq!(get().as_deref(), Some(&b"unsynced"[..]), "now from sled");
    assert!(overlay.lock().unwrap().oldest_sealed().is_none());
}

#[test]
fn a_prefix_scan_sees_sled_pending_commits_and_own_changes() {
    let (_db, trees) = trees();
    for key in [&b"a1"[..], b"a2", b"a3", b"b1"] {
        trees.client_families.insert(key, &b""[..]).unwrap();
    }
    let overlay = Mutex::new(Overlay::default());
    overlay.lock().unwrap().add(
        &[
            put(TreeId::ClientFamilies, b"a2", None),
            put(TreeId::ClientFamilies, b"a4", Some(b"")),
            put(TreeId::ClientFamilies, b"b2", Some(b"")),
            put(TreeId::Families, b"a9", Some(b"")),
        ],
        8,
    );
    let mut view = View::new(&trees, &overlay);
    view.insert(TreeId::ClientFamilies, b"a5", Vec::new());
    view.remove(TreeId::ClientFamilies, b"a1");
    let keys: Vec<Vec<u8>> = view.keys_with_prefix(TreeId::ClientFamilies, b"a").unwrap().into_iter().collect();
    assert_eq!(keys, [b"a3".to_vec(), b"a4".to_vec(), b"a5".to_vec()], "in order, without other trees or prefixes");
}

/// The first keys under a prefix agree with the whole scan, however far
/// pending commits and the commit's own changes reach into sled's order.
#[test]
fn the_first_keys_under_a_prefix_are_those_of_the_whole_scan() {
    let (_db, trees) = trees();
    for key in [&b"a1"[..], b"a3", b"a5", b"a7", b"b1"] {
        trees.client_families.insert(key, &b""[..]).unwrap();
    }
    let overlay = Mutex::new(Overlay::default());
    overlay.lock().unwrap().add(
        &[
            put(TreeId::ClientFamilies, b"a1", None),
            put(TreeId::ClientFamilies, b"a2", Some(b"")),
            put(TreeId::ClientFamilies, b"a6", Some(b"")),
        ],
        8,
    );
    let mut view = View::new(&trees, &overlay);
    view.remove(TreeId::ClientFamilies, b"a3");
    view.insert(TreeId::ClientFamilies, b"a0", Vec::new());
    let all: Vec<Vec<u8>> = view.keys_with_prefix(TreeId::ClientFamilies, b"a").unwrap().into_iter().collect();
    assert_eq!(all, [&b"a0"[..], b"a2", b"a5", b"a6", b"a7"]);
    for n in 0..=7 {
        let first = view.first_keys_with_prefix(TreeId::ClientFamilies, b"a", n).unwrap();
        assert_eq!(first, all[..n.min(all.len())], "the first {n}");
    }
}

/// The last key sees sled, pending commits and the commit's own changes,
/// removals included.
#[test]
fn the_last_key_is_the_greatest_one_this_commit_sees() {
    let (_db, trees) = trees();
    let overlay = Mutex::new(Overlay::default());
    assert_eq!(View::new(&trees, &overlay).last_key(TreeId::Audit).unwrap(), None);
    trees.audit.insert(b"1", &b""[..]).unwrap();
    trees.audit.insert(b"2", &b""[..]).unwrap();
    assert_eq!(View::new(&trees, &overlay).last_key(TreeId::Audit).unwrap().as_deref(), Some(&b"2"[..]));
    // A pending commit removed sled's last key: the one before it is last.
    overlay.lock().unwrap().add(&[put(TreeId::Audit, b"2", None)], 8);
    let mut view = View::new(&trees, &overlay);
    assert_eq!(view.last_key(TreeId::Audit).unwrap().as_deref(), Some(&b"1"[..]));
    // The commit's own insert is greater still; another tree's is not seen.
    view.insert(TreeId::Audit, b"3", Vec::new());
    view.insert(TreeId::Keys, b"9", Vec::new());
    assert_eq!(view.last_key(TreeId::Audit).unwrap().as_deref(), Some(&b"3"[..]));
    view.remove(TreeId::Audit, b"3");
    view.remove(TreeId::Audit, b"1");
    assert_eq!(view.last_key(TreeId::Audit).unwrap(), None);
}

/// One change in the property test below: a key (one byte, so keys
/// collide often), set or removed.
fn arbitrary_changes() -> impl proptest::strategy::Strategy<Value = Vec<(u8, bool)>> {
    proptest::collection::vec((0u8..24, proptest::bool::ANY), 0..16)
}

fn changes_of(tree: TreeId, changes: &[(u8, bool)]) -> Vec<Change> {
    changes.iter().map(|(key, set)| put(tree, &[*key], set.then_some(&b""[..]))).collect()
}

proptest::proptest! {
    /// However sled, the sealed, filling and unsynced layers and the
    /// commit's own changes overlap, the lazy walk of the first keys gives
    /// the start of the whole, materialised scan, under a prefix and below
    /// a bound alike.
    #[test]
    fn the_first_keys_agree_with_the_whole_scan_through_every_layer(
        stored in proptest::collection::btree_set(0u8..24, 0..16),
        sealed in arbitrary_changes(),
        filling in arbitrary_changes(),
        unsynced in arbitrary_changes(),
        own in arbitrary_changes(),
        bound in 0u8..26,
    ) {
        let tree = TreeId::FamilyExpiry;
        let (_db, trees) = trees();
        for key in &stored {
            trees.family_expiry.insert([*key], &b""[..]).unwrap();
        }
        let overlay = Mutex::new(Overlay::default());
        {
            let mut overlay = overlay.lock().unwrap();
            overlay.synced(changes_of(tree, &sealed), 1);
            overlay.seal();
            overlay.synced(changes_of(tree, &filling), 2);
            overlay.add(&changes_of(tree, &unsynced), 3);
        }
        let mut view = View::new(&trees, &overlay);
        for change in changes_of(tree, &own) {
            match change.value {
                Some(value) => view.insert(tree, &change.key, value),
                None => view.remove(tree, &change.key),
            }
        }
        // The model: sled, then each layer from the oldest, applied in order.
        let mut model: std::collections::BTreeSet<u8> = stored.clone();
        for (key, set) in sealed.iter().chain(&filling).chain(&unsynced).chain(&own) {
            if *set {
                model.insert(*key);
            } else {
                model.remove(key);
            }
        }
        let all: Vec<Vec<u8>> = view.keys_with_prefix(tree, &[]).unwrap().into_iter().collect();
        proptest::prop_assert_eq!(&all, &model.iter().map(|key| vec![*key]).collect::<Vec<_>>());
        let below: Vec<Vec<u8>> = all.iter().filter(|key| key[0] < bound).cloned().collect();
        for n in 0..=all.len() + 1 {
            proptest::prop_assert_eq!(view.first_keys_with_prefix(tree, &[], n).unwrap(), all[..n.min(all.len())].to_vec());
            proptest::prop_assert_eq!(view.first_keys_below(tree, &[bound], n).unwrap(), below[..n.min(below.len())].to_vec());
        }
    }
}
