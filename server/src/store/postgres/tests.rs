//! The conformance suite against PostgreSQL, each test in a schema of its
//! own. Runs when `TESSERA_TEST_POSTGRES_URL` names a database the tests
//! may create schemas in (`.ci/run` starts a throw-away cluster and sets
//! it); without it every test here returns at once and says so once.

use std::io::Write as _;
use std::sync::{Arc, Once};

use super::PgStore;
use crate::crypto::random::Random;
use crate::store::Store;

/// The environment variable naming the test database.
pub const TEST_URL_ENV: &str = "TESSERA_TEST_POSTGRES_URL";
/// The variable that, set to `1` (as `.ci/run` does), turns the skip into
/// a failure.
const REQUIRE_ENV: &str = "TESSERA_REQUIRE_POSTGRES";

static SKIP_NOTICE: Once = Once::new();

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
