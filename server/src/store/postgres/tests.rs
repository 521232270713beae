//! The conformance suite against PostgreSQL, each test in a schema of its
//! own. Runs when `TESSERA_TEST_POSTGRES_URL` names a database the tests
//! may create schemas in (`.ci/run` starts a throw-away cluster and sets
//! it); without it every test here returns at once and says so once.

use std::io::Write as _;
use std::sync::{Arc, Once};

use super::PgStore;
use crate::crypto::random::Random;
use crate::store::Store;
use crate::store::records::ClientRecord;

/// The environment variable naming the test database.
pub const TEST_URL_ENV: &str = "TESSERA_TEST_POSTGRES_URL";
/// The variable that, set to `1` (as `.ci/run` does), turns the skip into
/// a failure.
const REQUIRE_ENV: &str = "TESSERA_REQUIRE_POSTGRES";

static SKIP_NOTICE: Once = Once::new();

/// A client record for the cache tests.
pub fn sample_client() -> crate::store::records::ClientRecord {
    crate::store::records::ClientRecord {
        name: "sample".into(),
        secret_digest: [7; 32],
        refresh_tokens: false,
        ..crate::store::conformance::client("oa2-client-id_sample")
    }
}

/// A connection to the test database in a fresh, empty schema, or `None`
/// (after saying so on stderr, past the test harness's capture) when no
/// test database is configured.
pub async fn fresh_store() -> Option<PgStore> {
    let Ok(url) = std::env::var(TEST_URL_ENV) else {
        SKIP_NOTICE.call_once(|| {
            // In CI nothing may be skipped: a missing database is a failure.
            let required = std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1");
            assert!(
                !required,
                "{TEST_URL_ENV} is unset, and {REQUIRE_ENV}=1 forbids skipping the PostgreSQL storage tests"
            );
            // Written to the stream itself: the harness captures only `eprintln!`.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED the PostgreSQL storage tests: {TEST_URL_ENV} is unset (.ci/run sets it; \
                 set {REQUIRE_ENV}=1 to make this a failure)"
            );
        });
        return None;
    };
    let suffix: [u8; 8] = Random::new().bytes().unwrap();
    let schema = format!("t_{}", suffix.iter().map(|b| format!("{b:02x}")).collect::<String>());
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    let connection = tokio::spawn(connection);
    client.batch_execute(&format!("CREATE SCHEMA {schema}")).await.unwrap();
    drop(client);
    let _ = connection.await;
    Some(PgStore::connect_in(&url, Some(&schema)).await.unwrap())
}

macro_rules! fresh_or_skip {
    () => {
        match fresh_store().await {
            Some(store) => Arc::new(store) as Arc<dyn Store>,
            None => return,
        }
    };
}

crate::conformance_tests!(fresh_or_skip!());

#[tokio::test]
async fn migrations_are_idempotent_and_concurrent() {
    let Some(store) = fresh_store().await else { return };
    let url = std::env::var(TEST_URL_ENV).unwrap();
    let schema_row = store.client().await.unwrap().query_one("SELECT current_schema()", &[]).await.unwrap();
    let schema: String = schema_row.get(0);
    // Four more instances migrating the same schema at once: the advisory
    // lock makes all but the first find nothing to do.
    let mut starts = Vec::new();
    for _ in 0..4 {
        let (url, schema) = (url.clone(), schema.clone());
        starts.push(tokio::spawn(async move { PgStore::connect_in(&url, Some(&schema)).await.map(|_| ()) }));
    }
    for start in starts {
        start.await.unwrap().unwrap();
    }
    let row = store
        .client()
        .await
        .unwrap()
        .query_one("SELECT count(*), max(version) FROM tessera_schema_migrations", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), i64::from(super::schema::CURRENT_VERSION));
    assert_eq!(row.get::<_, Option<i32>>(1), Some(super::schema::CURRENT_VERSION));
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let Some(store) = fresh_store().await else { return };
    let client = store.client().await.unwrap();
    client.execute("INSERT INTO tessera_schema_migrations (version) VALUES (9999)", &[]).await.unwrap();
    let schema: String = client.query_one("SELECT current_schema()", &[]).await.unwrap().get(0);
    let url = std::env::var(TEST_URL_ENV).unwrap();
    let error = PgStore::connect_in(&url, Some(&schema)).await.unwrap_err();
    assert!(error.to_string().contains("newer than this tessera-server knows"), "{error}");
}

/// A schema in the test database laid out as a release before storage
/// format 2 left it (migrations 1 and 2), with a refresh token in it if
/// `with_tokens`; its name. `None` when no test database is configured.
async fn format_1_schema(with_tokens: bool) -> Option<(String, String)> {
    let store = fresh_store().await?;
    let client = store.client().await.unwrap();
    let schema: String = client.query_one("SELECT current_schema()", &[]).await.unwrap().get(0);
    drop(client);
    drop(store);
    let url = std::env::var(TEST_URL_ENV).unwrap();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    let connection = tokio::spawn(connection);
    // The fresh store migrated it: start it over as the old release would have.
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE; CREATE SCHEMA {schema}; SET search_path TO {schema}"))
        .await
        .unwrap();
    client
        .batch_execute("CREATE TABLE tessera_schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        .await
        .unwrap();
    for (version, sql) in super::schema::migrations_up_to(2) {
        client.batch_execute(sql).await.unwrap();
        client.execute("INSERT INTO tessera_schema_migrations (version) VALUES ($1)", &[&version]).await.unwrap();
    }
    if with_tokens {
        client
            .batch_execute(
                "INSERT INTO families (family_id, client_id, current_digest, expires_at, record) \
                     VALUES ('\\x01', 'c', '\\x02', 1, '\\x00'); \
                 INSERT INTO refresh_tokens (digest, family_id, expires_at, record) VALUES ('\\x02', '\\x01', 1, '\\x00')",
            )
            .await
            .unwrap();
    }
    drop(client);
    let _ = connection.await;
    Some((url, schema))
}

/// Issue 12: a database of storage format 1 holding refresh tokens is
/// refused at start with one line naming both formats, and left as it was.
#[tokio::test]
async fn a_format_1_database_with_tokens_is_refused() {
    let Some((url, schema)) = format_1_schema(true).await else { return };
    let error = PgStore::connect_in(&url, Some(&schema)).await.unwrap_err();
    assert!(matches!(error, crate::store::StoreError::Format { found: 1, expected: 2, .. }), "{error:?}");
    let line = error.to_string();
    assert!(line.contains("storage format 1") && line.contains("needs format 2") && !line.contains('\n'), "{line}");
    // Refused again: nothing was migrated.
    assert!(PgStore::connect_in(&url, Some(&schema)).await.is_err());
}

/// A format-1 database without refresh tokens is migrated to format 2.
#[tokio::test]
async fn a_format_1_database_without_tokens_is_migrated() {
    let Some((url, schema)) = format_1_schema(false).await else { return };
    let store: Arc<dyn Store> = Arc::new(PgStore::connect_in(&url, Some(&schema)).await.unwrap());
    crate::store::conformance::rotation_moves_the_family_forward(store).await;
}

#[tokio::test]
async fn a_bad_url_is_an_error_not_a_panic() {
    let error = PgStore::connect("postgres://nobody@127.0.0.1:1/none?connect_timeout=1").await.unwrap_err();
    assert!(matches!(error, crate::store::StoreError::Backend { .. }), "{error}");
    let error = PgStore::connect_in("postgres://x@127.0.0.1:1/db", Some("a; DROP")).await.unwrap_err();
    assert!(error.to_string().contains("invalid schema name"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_racing_a_key_change_have_one_winner() {
    let Some(first) = fresh_store().await else { return };
    let schema: String = first.client().await.unwrap().query_one("SELECT current_schema()", &[]).await.unwrap().get(0);
    let url = std::env::var(TEST_URL_ENV).unwrap();
    let second = PgStore::connect_in(&url, Some(&schema)).await.unwrap();
    let key = crate::store::conformance::sample_key(1);
    let mut races = Vec::new();
    for (n, store) in [first.clone(), second.clone()].into_iter().cycle().take(8).enumerate() {
        let mut mine = key.clone();
        mine.created_at += n as u64;
        races.push(tokio::spawn(async move { store.replace_keys(&[], &[mine]).await.unwrap() }));
    }
    let mut wins = 0;
    for race in races {
        if race.await.unwrap() {
            wins += 1;
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(second.keys().await.unwrap().len(), 1);
}

/// A second store on the same schema, as a second instance would be.
async fn second_instance(first: &PgStore) -> PgStore {
    let schema: String = first.client().await.unwrap().query_one("SELECT current_schema()", &[]).await.unwrap().get(0);
    let url = std::env::var(TEST_URL_ENV).unwrap();
    PgStore::connect_in(&url, Some(&schema)).await.unwrap()
}

/// Reads the client through `store` until its cache holds it (the
/// listener is up once it does).
async fn until_cached(store: &PgStore, client_id: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        Store::client(store, client_id).await.unwrap().unwrap();
        if !store.client_cache().is_empty() {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "the client was never cached");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The second instance serves the client from its cache: a change that
/// notifies nobody (triggers off for that one transaction) is not seen,
/// which shows the cache is in use. A change through the first instance
/// notifies, and the second serves it within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_client_is_dropped_when_another_instance_changes_it() {
    let Some(a) = fresh_store().await else { return };
    let b = second_instance(&a).await;
    let record = sample_client();
    let id = record.client_id.clone();
    // Written without notifying (triggers off for this transaction), so
    // that no late notification of the insert empties a cache below.
    let silently = |record: ClientRecord| {
        let a = a.clone();
        async move {
            let mut raw = a.client().await.unwrap();
            let tx = raw.transaction().await.unwrap();
            tx.batch_execute("SET LOCAL session_replication_role = replica").await.unwrap();
            tx.execute(
                "INSERT INTO clients (client_id, record) VALUES ($1, $2) \
                 ON CONFLICT (client_id) DO UPDATE SET record = EXCLUDED.record",
                &[&record.client_id, &crate::store::codec::encode_json(&record).unwrap()],
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
        }
    };
    silently(record.clone()).await;
    until_cached(&a, &id).await;
    until_cached(&b, &id).await;

    let mut changed = record.clone();
    changed.name = "changed without notifying".into();
    silently(changed).await;
    assert_eq!(Store::client(&b, &id).await.unwrap().unwrap().name, "sample", "served from the cache");
    assert_eq!(Store::client(&a, &id).await.unwrap().unwrap().name, "sample", "the first instance caches it too");

    // Through the first instance: both notice (the first at once).
    let started = std::time::Instant::now();
    a.update_client(&id, &|r| r.status = tessera_shared::admin::ClientStatus::Revoked).await.unwrap().unwrap();
    assert_eq!(Store::client(&a, &id).await.unwrap().unwrap().status, tessera_shared::admin::ClientStatus::Revoked);
    loop {
        if Store::client(&b, &id).await.unwrap().unwrap().status == tessera_shared::admin::ClientStatus::Revoked {
            break;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "not seen by the other instance within 1 s");
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let _ = writeln!(std::io::stderr(), "cross-instance client change seen after {:?}", started.elapsed());

    // Deleted through the first: gone from the second too.
    a.delete_client(&id, 1_700_000_100).await.unwrap().unwrap();
    let started = std::time::Instant::now();
    while Store::client(&b, &id).await.unwrap().is_some() {
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "deletion not seen within 1 s");
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

/// A key change through one instance moves the other's key-change signal
/// within a second (the key manager re-reads the keys on it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_change_notifies_the_other_instance() {
    use crate::store::Store as _;
    let Some(a) = fresh_store().await else { return };
    let b = second_instance(&a).await;
    let mut changes = b.key_changes().unwrap();
    // The listener's first LISTEN also signals (re-read after connecting).
    tokio::time::timeout(std::time::Duration::from_secs(10), changes.changed()).await.unwrap().unwrap();
    changes.borrow_and_update();
    a.put_keys(&[crate::store::conformance::sample_key(3)]).await.unwrap();
    let started = std::time::Instant::now();
    tokio::time::timeout(std::time::Duration::from_secs(1), changes.changed()).await.unwrap().unwrap();
    let _ = writeln!(std::io::stderr(), "cross-instance key change signalled after {:?}", started.elapsed());
    assert_eq!(b.keys().await.unwrap().len(), 1);
}

/// `/healthz`'s check writes nothing (the old probe row never appears)
/// and reuses its answer for a second.
#[tokio::test]
async fn health_reads_only_and_is_reused_for_a_second() {
    use crate::store::Store as _;
    let Some(store) = fresh_store().await else { return };
    for _ in 0..20 {
        store.health().await.unwrap();
    }
    let probes: i64 = store
        .client()
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM tessera_meta WHERE name = 'health_probe'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(probes, 0, "the health check wrote a row");
    let taken = store.health.lock().await.as_ref().map(|(at, answer)| (*at, answer.is_ok()));
    let (at, ok) = taken.unwrap();
    assert!(ok);
    store.health().await.unwrap();
    let again = store.health.lock().await.as_ref().map(|(at, _)| *at).unwrap();
    assert_eq!(again, at, "the answer of less than a second ago is reused");
}

/// Clients whose tally (migration 5) differs from their family rows, with
/// both numbers; and how many tally rows there are.
async fn tally_mismatches(store: &PgStore) -> (Vec<(String, i64, i64)>, i64) {
    let client = store.client().await.unwrap();
    let rows = client
        .query(
            "SELECT client_id, coalesce(f.c, 0), coalesce(t.s, 0)::int8 \
             FROM (SELECT client_id, count(*) AS c FROM families GROUP BY client_id) f \
             FULL JOIN (SELECT client_id, sum(n) AS s FROM family_tally GROUP BY client_id) t USING (client_id) \
             WHERE coalesce(f.c, 0) <> coalesce(t.s, 0)",
            &[],
        )
        .await
        .unwrap();
    let tally_rows: i64 = client.query_one("SELECT count(*) FROM family_tally", &[]).await.unwrap().get(0);
    (rows.iter().map(|row| (row.get(0), row.get(1), row.get(2))).collect(), tally_rows)
}

/// Issue 12: every statement that inserts or deletes family rows keeps the
/// clients' tallies equal to their rows: starts (16 tasks at once, at the
/// cap), the purge (of revoked, expired and deleted clients' families),
/// and an import; and the tally rows of a deleted client go once its
/// families are purged.
#[tokio::test]
async fn the_family_tally_follows_every_insert_and_delete() {
    use crate::store::conformance::{client, family};
    use crate::store::{FamilyStart, Store};
    const NOW: u64 = 1_700_000_000;
    let Some(store) = fresh_store().await else { return };
    let store = Arc::new(store);
    for id in ["a", "b"] {
        store.insert_client(&client(id)).await.unwrap();
    }
    let mut tasks = Vec::new();
    for task in 0..16u8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for round in 0..10u8 {
                let mut started = family(0, if task % 4 == 0 { "b" } else { "a" }, NOW, 100);
                (started.family_id[0], started.family_id[1]) = (round, task);
                let outcome = store.create_family(&started, 20).await.unwrap();
                assert!(matches!(outcome, FamilyStart::Started { .. }), "task {task}, round {round}");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(tally_mismatches(&store).await.0, vec![], "after concurrent starts at the cap");

    // Some of a's die, b goes with its client, and the purge removes them.
    let a_families = store
        .client()
        .await
        .unwrap()
        .query("SELECT family_id FROM families WHERE client_id = 'a' ORDER BY family_id DESC LIMIT 5", &[])
        .await
        .unwrap();
    for row in &a_families {
        let family_id: [u8; 10] = row.get::<_, &[u8]>(0).try_into().unwrap();
        assert!(store.revoke_family(&family_id, NOW + 1).await.unwrap());
    }
    store.delete_client("b", NOW + 1).await.unwrap();
    let purged = store.purge_expired(NOW + 2, 1000).await.unwrap().families;
    assert!(purged >= 5, "{purged} purged");
    let (mismatches, tally_rows) = tally_mismatches(&store).await;
    assert_eq!(mismatches, vec![], "after the purge");
    let b_rows: i64 = store
        .client()
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM family_tally WHERE client_id = 'b'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(b_rows, 0, "the deleted client's tally rows go ({tally_rows} rows in all)");

    // An import counts what it copies.
    let snapshot = super::import::Snapshot {
        clients: vec![client("c")],
        families: (1..=3).map(|n| family(n, "c", NOW, 100)).collect(),
        ..super::import::Snapshot::default()
    };
    store.import(&snapshot).await.unwrap();
    assert_eq!(tally_mismatches(&store).await.0, vec![], "after an import");
    assert_eq!(store.count_live_families("c", NOW).await.unwrap(), 3);
}
