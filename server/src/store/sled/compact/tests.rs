use super::{Summary, summarize_copy};
use crate::store::Store as _;
use crate::store::conformance::sample_key;
use crate::store::records::{ClientRecord, FamilyRecord};
use crate::store::sled::SledStore;

const NOW: u64 = 1_700_000_000;

fn sample_client(id: &str) -> ClientRecord {
    ClientRecord { name: "compact".into(), ..crate::store::conformance::client(id) }
}

fn family(id: u8) -> FamilyRecord {
    crate::store::conformance::family(id, "oa2-client-id_a", NOW, 100)
}

/// A store with something in every tree, plus a tree Tessera does not know.
async fn filled(dir: &std::path::Path) -> SledStore {
    let store = SledStore::open(dir).unwrap();
    store.installation_value("secret_key", vec![9; 32]).await.unwrap();
    store.insert_client(&sample_client("oa2-client-id_a")).await.unwrap();
    store.record_client_use("oa2-client-id_a", NOW).await.unwrap();
    for n in 0..50u8 {
        store.create_family(&family(n), 1000).await.unwrap();
    }
    store.put_keys(&[sample_key(1), sample_key(2)]).await.unwrap();
    let event = tessera_shared::admin::AuditEvent {
        seq: 0,
        at: NOW,
        kind: tessera_shared::admin::AuditKind::ClientCreated,
        client_id: Some("oa2-client-id_a".into()),
        detail: "created".into(),
    };
    store.append_audit(&event).await.unwrap();
    store.deny_access_token("jti-1", NOW + 300).await.unwrap();
    let extra = store.journal.db().open_tree("not_ours").unwrap();
    extra.insert(b"k", &b"v"[..]).unwrap();
    // An empty key and an empty value are entries too.
    extra.insert(b"", &b""[..]).unwrap();
    store.flush().await.unwrap();
    store
}

/// Tree names with their entries.
type Trees = Vec<(Vec<u8>, Vec<(Vec<u8>, Vec<u8>)>)>;

/// Every tree and every byte of every entry, read back from the raw trees.
fn everything(store: &SledStore) -> Trees {
    let mut names = store.journal.db().tree_names();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let tree = store.journal.db().open_tree(&name).unwrap();
            let entries = tree.iter().map(|e| e.unwrap()).map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
            (name.to_vec(), entries)
        })
        .collect()
}

#[tokio::test]
async fn the_copy_holds_every_tree_and_every_entry_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let source = filled(&dir.path().join("db")).await;
    let target = dir.path().join("copy");
    let summary = source.copy_into(&target).unwrap();
    let before = everything(&source);
    drop(source);

    assert_eq!(summarize_copy(&target).unwrap(), summary, "the copy on disk matches what was read");
    let names: Vec<&[u8]> = summary.keys().map(Vec::as_slice).collect();
    for tree in [&b"meta"[..], b"clients", b"families", b"family_expiry", b"keys", b"audit", b"denied_jti", b"not_ours"]
    {
        assert!(names.contains(&tree), "tree {} copied: {names:?}", String::from_utf8_lossy(tree));
    }
    assert_eq!(summary[&b"families"[..]].entries, 50);
    assert_eq!(summary[&b"not_ours"[..]].entries, 2);

    let copy = SledStore::open(&target).unwrap();
    assert_eq!(everything(&copy), before, "same trees, same keys, same bytes");
    // And the store reads it as before.
    assert_eq!(copy.installation_value("secret_key", vec![1]).await.unwrap(), vec![9; 32]);
    assert_eq!(copy.client("oa2-client-id_a").await.unwrap(), Some(sample_client("oa2-client-id_a")));
    assert_eq!(copy.count_live_families("oa2-client-id_a", NOW + 1).await.unwrap(), 50);
    assert_eq!(copy.keys().await.unwrap().len(), 2);
    assert_eq!(copy.audit_latest(10).await.unwrap().len(), 1);
    assert!(copy.is_access_token_denied("jti-1", NOW).await.unwrap());
}

#[tokio::test]
async fn the_copy_never_writes_into_an_existing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let source = filled(&dir.path().join("db")).await;
    let target = dir.path().join("copy");
    std::fs::create_dir(&target).unwrap();
    let error = source.copy_into(&target).unwrap_err();
    assert!(error.to_string().contains("cannot create"), "{error}");
}

#[tokio::test]
async fn a_different_entry_changes_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let source = filled(&dir.path().join("db")).await;
    let summary: Summary = source.copy_into(&dir.path().join("copy")).unwrap();
    drop(source);
    let copy = SledStore::open(&dir.path().join("copy")).unwrap();
    let meta = copy.journal.db().open_tree("meta").unwrap();
    meta.insert("secret_key", vec![8; 32]).unwrap();
    meta.flush().unwrap();
    drop((meta, copy));
    let changed = summarize_copy(&dir.path().join("copy")).unwrap();
    assert_eq!(changed[&b"meta"[..]].entries, summary[&b"meta"[..]].entries, "same count");
    assert_ne!(changed, summary, "a changed value changes the digest");
}
