//! Writing records as they are, for `tessera-server migrate-storage`
//! (see [`crate::migrate`]): unlike the trait's calls, these keep the
//! source's states and sequence numbers.

use tessera_shared::admin::AuditEvent;

use super::{Fail, PgStore, insert_family, retrying, to_db, upsert_keys};
use crate::clock::UnixTime;
use crate::store::StoreError;
use crate::store::codec::encode_json;
use crate::store::records::{ClientRecord, Digest32, FamilyRecord, KeyRecord};

/// Everything copied in one transaction by [`PgStore::import`].
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Installation values (the client-secret HMAC key among them).
    pub meta: Vec<(String, Vec<u8>)>,
    /// Clients.
    pub clients: Vec<ClientRecord>,
    /// Last-used times of clients.
    pub last_used: Vec<(String, UnixTime)>,
    /// Families.
    pub families: Vec<FamilyRecord>,
    /// Signing keys.
    pub keys: Vec<KeyRecord>,
    /// The audit trail, with its sequence numbers.
    pub audit: Vec<AuditEvent>,
    /// The access-token deny list.
    pub denied: Vec<(String, UnixTime)>,
    /// The private_key_jwt replay set: client ID, `jti` digest, until when.
    pub assertion_jtis: Vec<(String, Digest32, UnixTime)>,
}

impl PgStore {
    /// Whether the database holds no clients, families, keys or audit events.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    pub async fn is_empty(&self) -> Result<bool, StoreError> {
        retrying(|| async {
            let client = self.client().await?;
            let row = client
                .query_one(
                    "SELECT NOT EXISTS (SELECT 1 FROM clients) AND NOT EXISTS (SELECT 1 FROM families) \
                     AND NOT EXISTS (SELECT 1 FROM signing_keys) AND NOT EXISTS (SELECT 1 FROM audit)",
                    &[],
                )
                .await?;
            Ok(row.get::<_, bool>(0))
        })
        .await
    }

    /// Writes `snapshot` in one transaction: all of it or, on failure, none.
    /// Installation values already present are overwritten (a server
    /// started on the empty database may have made its own).
    ///
    /// # Errors
    /// [`StoreError`] on backend failure or a record that exists already.
    pub async fn import(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        retrying(|| self.try_import(snapshot)).await
    }

    async fn try_import(&self, snapshot: &Snapshot) -> Result<(), Fail> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        for (name, value) in &snapshot.meta {
            tx.execute(
                "INSERT INTO tessera_meta (name, value) VALUES ($1, $2) \
                 ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
                &[name, value],
            )
            .await?;
        }
        for record in &snapshot.clients {
            tx.execute(
                "INSERT INTO clients (client_id, record, family_epoch) VALUES ($1, $2, $3)",
                &[&record.client_id, &encode_json(record)?, &to_db(record.family_epoch)?],
            )
            .await?;
        }
        for (client_id, at) in &snapshot.last_used {
            tx.execute(
                "INSERT INTO client_last_used (client_id, at) VALUES ($1, $2) \
                 ON CONFLICT (client_id) DO UPDATE SET at = EXCLUDED.at",
                &[client_id, &to_db(*at)?],
            )
            .await?;
        }
        for family in &snapshot.families {
            insert_family(&tx, family).await?;
        }
        upsert_keys(&tx, &snapshot.keys).await?;
        let mut last_seq = 0;
        for event in &snapshot.audit {
            tx.execute(
                "INSERT INTO audit (seq, at, record) VALUES ($1, $2, $3)",
                &[&to_db(event.seq)?, &to_db(event.at)?, &encode_json(event)?],
            )
            .await?;
            last_seq = last_seq.max(event.seq);
        }
        // Numbering continues after the copied trail.
        tx.execute(
            "UPDATE tessera_counters SET value = GREATEST(value, $1) WHERE name = 'audit_seq'",
            &[&to_db(last_seq)?],
        )
        .await?;
        for (jti, expires_at) in &snapshot.denied {
            tx.execute(
                "INSERT INTO denied_jti (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) \
                 DO UPDATE SET expires_at = GREATEST(denied_jti.expires_at, EXCLUDED.expires_at)",
                &[jti, &to_db(*expires_at)?],
            )
            .await?;
        }
        for (client_id, digest, until) in &snapshot.assertion_jtis {
            tx.execute(
                "INSERT INTO assertion_jti (client_id, jti_digest, until) VALUES ($1, $2, $3) \
                 ON CONFLICT (client_id, jti_digest) DO UPDATE SET until = GREATEST(assertion_jti.until, EXCLUDED.until)",
                &[client_id, &digest.as_slice(), &to_db(*until)?],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
