use std::collections::BTreeMap;

use proptest::prelude::*;

use super::{Overlay, newest_first_merge};
use crate::store::sled::journal::record::{Change, TreeId};

fn put(tree: TreeId, key: &[u8], value: Option<&[u8]>) -> Change {
    Change { tree, key: key.to_vec(), value: value.map(<[u8]>::to_vec) }
}

fn newest(overlay: &Overlay, tree: TreeId) -> Vec<(Vec<u8>, bool)> {
    overlay.newest_from(tree, b"", |_| true).map(|(key, present)| (key.to_vec(), present)).collect()
}

/// A durable change that a later, unsynced one shadows still reaches its
/// sealed layer: a crash after the checkpoint deleted its segment must not
/// lose it to a change that never reached the disk.
#[test]
fn a_sealed_layer_keeps_the_durable_value_under_a_newer_unsynced_one() {
    let mut overlay = Overlay::default();
    overlay.add(&[put(TreeId::Families, b"k", Some(b"durable"))], 10);
    overlay.add(&[put(TreeId::Families, b"k", Some(b"unsynced"))], 20);
    overlay.synced([put(TreeId::Families, b"k", Some(b"durable"))], 10);
    overlay.seal();
    assert_eq!(overlay.get(TreeId::Families, b"k"), Some(Some(b"unsynced".to_vec())));
    let sealed = overlay.oldest_sealed().expect("a sealed layer");
    assert_eq!(sealed[&TreeId::Families][&b"k".to_vec()], Some(b"durable".to_vec()));
}

/// Within a layer a key keeps its newest change only: a key set and then
/// removed is one removal.
#[test]
fn a_layer_holds_one_change_per_key() {
    let mut overlay = Overlay::default();
    let changes = [
        put(TreeId::ClientFamilies, b"c1", Some(b"")),
        put(TreeId::Families, b"f1", Some(b"v1")),
        put(TreeId::Families, b"f1", Some(b"v2")),
        put(TreeId::ClientFamilies, b"c1", None),
    ];
    overlay.add(&changes, 10);
    overlay.synced(changes, 10);
    overlay.seal();
    let sealed = overlay.oldest_sealed().expect("a sealed layer");
    assert_eq!(sealed[&TreeId::Families].len(), 1);
    assert_eq!(sealed[&TreeId::Families][&b"f1".to_vec()], Some(b"v2".to_vec()));
    assert_eq!(sealed[&TreeId::ClientFamilies][&b"c1".to_vec()], None);
    assert_eq!(overlay.sealed_layers(), 1);
    overlay.drop_oldest_sealed();
    assert_eq!(overlay.sealed_layers(), 0);
    assert_eq!(overlay.get(TreeId::Families, b"f1"), None, "sled has it now");
}

/// Sealing nothing makes no layer for the checkpoint thread.
#[test]
fn an_empty_filling_layer_is_not_sealed() {
    let mut overlay = Overlay::default();
    overlay.seal();
    assert_eq!(overlay.sealed_layers(), 0);
}

/// Reads see the newest layer that has a key: unsynced over filling over
/// sealed, and the newer of two sealed layers.
#[test]
fn reads_see_the_newest_layer_with_the_key() {
    let mut overlay = Overlay::default();
    let tree = TreeId::FamilyExpiry;
    // Oldest sealed: a, b, c set.
    let first = [put(tree, b"a", Some(b"1")), put(tree, b"b", Some(b"1")), put(tree, b"c", Some(b"1"))];
    overlay.synced(first, 1);
    overlay.seal();
    // Newer sealed: b removed.
    overlay.synced([put(tree, b"b", None)], 2);
    overlay.seal();
    // Filling: c removed, d set.
    overlay.synced([put(tree, b"c", None), put(tree, b"d", Some(b"3"))], 3);
    // Unsynced: a removed, c set again.
    overlay.add(&[put(tree, b"a", None), put(tree, b"c", Some(b"4"))], 4);
    assert_eq!(overlay.get(tree, b"a"), Some(None));
    assert_eq!(overlay.get(tree, b"b"), Some(None));
    assert_eq!(overlay.get(tree, b"c"), Some(Some(b"4".to_vec())));
    assert_eq!(overlay.get(tree, b"d"), Some(Some(b"3".to_vec())));
    assert_eq!(overlay.get(tree, b"e"), None);
    assert_eq!(overlay.get(TreeId::Families, b"a"), None, "another tree");
    assert_eq!(
        newest(&overlay, tree),
        [(b"a".to_vec(), false), (b"b".to_vec(), false), (b"c".to_vec(), true), (b"d".to_vec(), true)]
    );
    let from_b: Vec<&[u8]> = overlay.newest_from(tree, b"b", |key| key < b"d".as_slice()).map(|(key, _)| key).collect();
    assert_eq!(from_b, [b"b".as_slice(), b"c"]);
}

proptest! {
    /// The merge equals applying the sources oldest first into one map.
    #[test]
    fn the_merge_is_the_newest_change_of_each_key(
        sources in prop::collection::vec(prop::collection::btree_map(0u8..16, any::<bool>(), 0..10), 0..5),
    ) {
        let mut expected = BTreeMap::new();
        for source in sources.iter().rev() {
            for (key, present) in source {
                expected.insert(vec![*key], *present);
            }
        }
        let keys: Vec<Vec<(Vec<u8>, bool)>> =
            sources.iter().map(|s| s.iter().map(|(k, p)| (vec![*k], *p)).collect()).collect();
        let boxed = keys
            .iter()
            .map(|s| Box::new(s.iter().map(|(k, p)| (k.as_slice(), *p))) as Box<dyn Iterator<Item = (&[u8], bool)>>)
            .collect();
        let merged: Vec<(Vec<u8>, bool)> = newest_first_merge(boxed).map(|(k, p)| (k.to_vec(), p)).collect();
        let expected: Vec<(Vec<u8>, bool)> = expected.into_iter().collect();
        prop_assert_eq!(merged, expected);
    }
}
