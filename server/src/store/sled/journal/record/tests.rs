use proptest::prelude::*;

use super::{Change, TreeId, decode_segment, encode};

fn change(tree: TreeId, key: &[u8], value: Option<&[u8]>) -> Change {
    Change { tree, key: key.to_vec(), value: value.map(<[u8]>::to_vec) }
}

fn sample() -> Vec<Vec<Change>> {
    vec![
        vec![change(TreeId::Families, b"f1", Some(b"family")), change(TreeId::FamilyExpiry, b"t1", Some(b"token"))],
        vec![change(TreeId::ClientFamilies, b"e1", Some(b"")), change(TreeId::ClientFamilies, b"c1f1", None)],
        vec![],
    ]
}

fn encoded(records: &[Vec<Change>]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for changes in records {
        encode(changes, &mut bytes).unwrap();
    }
    bytes
}

#[test]
fn records_read_back_in_order() {
    let segment = decode_segment(&encoded(&sample()));
    assert_eq!(segment.records, sample());
    assert_eq!(segment.trailing_bytes, 0);
}

#[test]
fn a_torn_tail_keeps_every_complete_record_before_it() {
    let records = sample();
    let bytes = encoded(&records);
    let first_two = encoded(&records[..2]).len();
    // Every cut inside the last record, and inside the second.
    for cut in first_two..bytes.len() {
        let segment = decode_segment(&bytes[..cut]);
        assert_eq!(segment.records, records[..2], "cut at {cut}");
        assert_eq!(segment.trailing_bytes, cut - first_two);
    }
    let first = encoded(&records[..1]).len();
    for cut in first..first_two {
        assert_eq!(decode_segment(&bytes[..cut]).records, records[..1], "cut at {cut}");
    }
}

#[test]
fn a_flipped_bit_ends_the_readable_part() {
    let records = sample();
    let mut bytes = encoded(&records);
    let first = encoded(&records[..1]).len();
    // A bit in the second record's payload.
    bytes[first + 10] ^= 0x01;
    let segment = decode_segment(&bytes);
    assert_eq!(segment.records, records[..1]);
    assert_eq!(segment.trailing_bytes, bytes.len() - first);
}

#[test]
fn a_huge_length_is_damage_not_an_allocation() {
    let mut bytes = u32::MAX.to_le_bytes().to_vec();
    bytes.extend_from_slice(&[0; 12]);
    let segment = decode_segment(&bytes);
    assert!(segment.records.is_empty());
    assert_eq!(segment.trailing_bytes, bytes.len());
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let segment = decode_segment(&bytes);
        prop_assert!(segment.trailing_bytes <= bytes.len());
    }
}

#[test]
fn trees_are_written_as_their_explicit_codes() {
    let codes = [
        (TreeId::Families, 0u8),
        (TreeId::ClientFamilies, 3),
        (TreeId::Meta, 4),
        (TreeId::Clients, 5),
        (TreeId::ClientLastUsed, 6),
        (TreeId::Keys, 7),
        (TreeId::Audit, 8),
        (TreeId::DeniedJti, 9),
        (TreeId::DeniedExpiry, 10),
        (TreeId::AssertionJti, 11),
        (TreeId::AssertionExpiry, 12),
        (TreeId::FamilyExpiry, 16),
    ];
    for (tree, code) in codes {
        assert_eq!(postcard::to_allocvec(&tree).unwrap(), [code], "{tree:?}");
        assert_eq!(postcard::from_bytes::<TreeId>(&[code]).unwrap(), tree);
    }
    assert_eq!(codes.len(), TreeId::ALL.len(), "every tree has its code checked here");
    for unknown in [1u8, 2, 13, 15, 17] {
        assert!(postcard::from_bytes::<TreeId>(&[unknown]).is_err(), "code {unknown} is refused, not guessed");
    }
}

/// Each tree has its own sled name, and `ALL` lists each once.
#[test]
fn every_tree_has_its_own_name() {
    let names: std::collections::BTreeSet<&str> = TreeId::ALL.iter().map(|t| t.name()).collect();
    assert_eq!(names.len(), TreeId::ALL.len());
}

/// A record written before the codes were explicit (postcard's variant
/// index of `ClientFamilies`, key `k`, no value) reads back the same.
#[test]
fn a_record_from_before_explicit_codes_reads_back() {
    let payload: &[u8] = &[1, 3, 1, b'k', 0];
    let changes: Vec<Change> = postcard::from_bytes(payload).unwrap();
    assert_eq!(changes, [change(TreeId::ClientFamilies, b"k", None)]);
}
