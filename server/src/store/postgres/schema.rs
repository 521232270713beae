//! The PostgreSQL schema as numbered migrations, applied at start.
//!
//! Several instances may start at once against one database, so the
//! migrations run under a session-level advisory lock: the first instance
//! applies what is missing, the others wait and then find nothing to do.
//! Each migration runs in its own transaction together with the row that
//! records it, so a crash leaves either all of it or none.
//!
//! A migration, once released, is never edited: a change is a new entry.

use deadpool_postgres::Object;

use super::Fail;
use crate::store::StoreError;

/// The advisory lock class held while migrating (see [`super::LOCK_SQL`]).
pub(super) const MIGRATION_LOCK: i32 = 1;

/// `(version, SQL)`, in order.
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        r#"
CREATE TABLE tessera_meta (
    name TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);
CREATE TABLE tessera_counters (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO tessera_counters (name, value) VALUES ('audit_seq', 0);
CREATE TABLE clients (
    client_id TEXT PRIMARY KEY,
    record BYTEA NOT NULL
);
CREATE TABLE client_last_used (
    client_id TEXT PRIMARY KEY,
    at BIGINT NOT NULL
);
CREATE TABLE families (
    family_id BYTEA PRIMARY KEY,
    client_id TEXT NOT NULL,
    current_digest BYTEA NOT NULL,
    revoked_at BIGINT,
    expires_at BIGINT NOT NULL,
    record BYTEA NOT NULL
);
CREATE INDEX families_by_client ON families (client_id);
CREATE TABLE refresh_tokens (
    digest BYTEA PRIMARY KEY,
    family_id BYTEA NOT NULL,
    expires_at BIGINT NOT NULL,
    record BYTEA NOT NULL
);
CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_at);
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    record BYTEA NOT NULL
);
CREATE TABLE audit (
    seq BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    record BYTEA NOT NULL
);
CREATE TABLE denied_jti (
    jti TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX denied_jti_by_expiry ON denied_jti (expires_at);
"#,
    ),
    // Change notifications for the instances' client caches and key
    // followers (see `listen`), sent by triggers in the changing
    // transaction, so no write path can forget them. The channel is the
    // schema's (`listen::CHANNEL_SQL`).
    (
        2,
        r#"
CREATE FUNCTION tessera_notify_client() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    channel TEXT := 'tessera_changes_' || to_hex(hashtext(TG_TABLE_SCHEMA::text));
    id TEXT;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify(channel, 'c*');
        RETURN NULL;
    END IF;
    IF TG_OP = 'DELETE' THEN
        id := OLD.client_id;
    ELSE
        id := NEW.client_id;
    END IF;
    -- A notification carries at most 8000 bytes: drop every entry instead.
    IF octet_length(id) > 4000
        OR (TG_OP = 'UPDATE' AND OLD.client_id IS DISTINCT FROM NEW.client_id) THEN
        PERFORM pg_notify(channel, 'c*');
    ELSE
        PERFORM pg_notify(channel, 'c:' || id);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER clients_notify AFTER INSERT OR UPDATE OR DELETE ON clients
    FOR EACH ROW EXECUTE FUNCTION tessera_notify_client();
CREATE TRIGGER clients_notify_truncate AFTER TRUNCATE ON clients
    FOR EACH STATEMENT EXECUTE FUNCTION tessera_notify_client();
CREATE FUNCTION tessera_notify_keys() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tessera_changes_' || to_hex(hashtext(TG_TABLE_SCHEMA::text)), 'k');
    RETURN NULL;
END
$$;
CREATE TRIGGER signing_keys_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON signing_keys
    FOR EACH STATEMENT EXECUTE FUNCTION tessera_notify_keys();
"#,
    ),
    // Storage format 2 (issue 12): one row per refresh-token family, no row
    // per token; the client's family epoch beside its record. Applied only
    // to a database without refresh-token rows ([`refuse_format_1`]).
    // `expiry_day` changes at most once a day per family, so a rotation
    // updates no indexed column and PostgreSQL can keep it a HOT update.
    (
        3,
        r#"
DROP TABLE refresh_tokens;
DROP TABLE families;
CREATE TABLE families (
    family_id BYTEA PRIMARY KEY,
    client_id TEXT NOT NULL,
    generation BIGINT NOT NULL,
    revoked_at BIGINT,
    expires_at BIGINT NOT NULL,
    expiry_day BIGINT NOT NULL,
    client_epoch BIGINT NOT NULL,
    record BYTEA NOT NULL
);
CREATE INDEX families_by_client ON families (client_id, family_id);
CREATE INDEX families_by_expiry_day ON families (expiry_day);
ALTER TABLE clients ADD COLUMN family_epoch BIGINT NOT NULL DEFAULT 0;
"#,
    ),
    // Issue 16: the private_key_jwt replay set, shared by every instance.
    (
        4,
        r#"
CREATE TABLE assertion_jti (
    client_id TEXT NOT NULL,
    jti_digest BYTEA NOT NULL,
    until BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti_digest)
);
CREATE INDEX assertion_jti_by_until ON assertion_jti (until);
"#,
    ),
    // Issue 12: how many family rows each client has, so the family cap
    // costs no count of a client's rows per start (a client at its cap
    // has 1,000, recently written, so each count visited every one). Kept
    // by every statement that inserts or deletes family rows, each adding
    // its change to the row of its shard: `pg_backend_pid() % 64`, so
    // concurrent starts of one client mostly update different rows and do
    // not wait for each other's commit. A client's count is the sum of
    // its rows. Counted here once, with writers of families held off.
    (
        5,
        r#"
CREATE TABLE family_tally (
    client_id TEXT NOT NULL,
    shard INTEGER NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (client_id, shard)
);
LOCK TABLE families IN SHARE MODE;
INSERT INTO family_tally (client_id, shard, n) SELECT client_id, 0, count(*) FROM families GROUP BY client_id;
"#,
    ),
];

/// The newest schema version this build knows.
pub const CURRENT_VERSION: i32 = 5;

/// The first schema version of storage format 2: a database below it with
/// refresh-token rows holds format 1.
const FORMAT_2_VERSION: i32 = 3;

/// What an operator with a format-1 database can do.
const WHAT_TO_DO: &str = "keep running the previous release on it, or delete its refresh tokens \
     (DELETE FROM refresh_tokens; DELETE FROM families;) so that clients start new families, then start this one";

/// Brings the schema up to [`CURRENT_VERSION`].
///
/// # Errors
/// [`StoreError::Backend`] if a statement fails, or the database was
/// migrated by a newer Tessera than this one.
pub(super) async fn migrate(client: &mut Object) -> Result<(), StoreError> {
    client
        .execute("SELECT pg_advisory_lock(hashtext(current_schema()), $1)", &[&MIGRATION_LOCK])
        .await
        .map_err(Fail::from)
        .map_err(Fail::into_store)?;
    let result = apply(client).await;
    // Released whatever happened; a dropped connection releases it too.
    let unlocked =
        client.execute("SELECT pg_advisory_unlock(hashtext(current_schema()), $1)", &[&MIGRATION_LOCK]).await;
    result?;
    unlocked.map_err(Fail::from).map_err(Fail::into_store)?;
    Ok(())
}

/// The SQL of the migrations up to and including `version`, for tests
/// that build a database as an older release left it.
#[cfg(test)]
pub(super) fn migrations_up_to(version: i32) -> impl Iterator<Item = (i32, &'static str)> {
    MIGRATIONS.iter().copied().filter(move |(v, _)| *v <= version)
}

/// Refuses a format-1 database that holds refresh tokens: they cannot name
/// their family, and must never be read as format 2.
async fn refuse_format_1(client: &Object) -> Result<(), StoreError> {
    let fail = |e: tokio_postgres::Error| Fail::from(e).into_store();
    let row = client
        .query_one("SELECT EXISTS (SELECT 1 FROM refresh_tokens) OR EXISTS (SELECT 1 FROM families)", &[])
        .await
        .map_err(fail)?;
    if row.get::<_, bool>(0) {
        return Err(StoreError::Format { what: "the database", found: 1, expected: 2, what_to_do: WHAT_TO_DO });
    }
    Ok(())
}

async fn apply(client: &mut Object) -> Result<(), StoreError> {
    let fail = |e: tokio_postgres::Error| Fail::from(e).into_store();
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS tessera_schema_migrations (
                version INTEGER PRIMARY KEY,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )",
        )
        .await
        .map_err(fail)?;
    let row =
        client.query_one("SELECT COALESCE(MAX(version), 0) FROM tessera_schema_migrations", &[]).await.map_err(fail)?;
    let applied: i32 = row.get(0);
    if applied > CURRENT_VERSION {
        return Err(StoreError::internal(
            "schema migration",
            format!(
                "the database schema is at version {applied}, newer than this tessera-server knows ({CURRENT_VERSION}); \
             upgrade tessera-server"
            ),
        ));
    }
    if applied > 0 && applied < FORMAT_2_VERSION {
        refuse_format_1(client).await?;
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > applied) {
        let tx = client.transaction().await.map_err(fail)?;
        tx.batch_execute(sql).await.map_err(fail)?;
        tx.execute("INSERT INTO tessera_schema_migrations (version) VALUES ($1)", &[version]).await.map_err(fail)?;
        tx.commit().await.map_err(fail)?;
        tracing::info!(version, "applied a storage schema migration");
    }
    Ok(())
}
