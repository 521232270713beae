//! Starting a refresh-token family on PostgreSQL: one statement, so one
//! round trip in autocommit (the statement is prepared once per connection).
//!
//! Why no lock is needed against a racing revocation: the revocation raises
//! the client's `family_epoch` in the same update that marks it revoked, and
//! every reader of a family treats one whose `client_epoch` is below its
//! client's epoch as dead ([`crate::grant::refresh::decide`] through the
//! authenticated client's epoch, introspection, `count_live_families` and
//! the purge, which join the client). So a start whose snapshot still saw
//! the client active, and whose row the revocation's sweep then missed,
//! leaves a family that is dead everywhere, also once the client is
//! re-activated; a start that sees the revoked (or re-activated, at a new
//! epoch) client is refused. A start that races with the client's
//! deletion may likewise leave a row of a client that no longer exists:
//! nothing can present it (client IDs are random and never reused), it
//! counts for nobody, and the purge removes it.

use deadpool_postgres::Object;

use super::{Fail, FamilyColumns, from_db, to_db};
use crate::clock::UnixTime;
use crate::store::records::FamilyRecord;
use crate::store::{FamilyStart, StoreError};

/// Inserts the family only if its client is stored, active and at the
/// family's epoch (status is in the JSON record, the epoch beside it in a
/// column written in the same update); only then retires the client's
/// oldest families beyond the cap; reports (client found active, inserted,
/// live families retired).
///
/// The new row is not visible to the statement's own snapshot, so the cap
/// counts the families that were there: `count + 1 - max` of them go.
/// Family IDs lead with their creation time, so the first by ID are the
/// oldest. `FOR UPDATE SKIP LOCKED`: concurrent starts for one client at
/// its cap each take other families (one that another start or a rotation
/// holds, or that was deleted since the snapshot, is passed over for the
/// next), and nothing here ever waits for a row lock, so no deadlock;
/// starts at the same moment may each see room for one more, and the next
/// start trims back to the cap.
/// The retired rows are deleted by primary key (`= ANY (ARRAY(...))`):
/// a join with `doomed` let the planner scan the whole table for them.
const START_SQL: &str = "WITH owner AS (
         SELECT 1 FROM clients
         WHERE client_id = $2::text AND family_epoch = $7::int8
           AND convert_from(record, 'UTF8')::jsonb ->> 'status' = 'active'
     ), started AS (
         INSERT INTO families (family_id, client_id, generation, revoked_at, expires_at, expiry_day, client_epoch, record)
         SELECT $1::bytea, $2::text, $3::int8, $4::int8, $5::int8, $6::int8, $7::int8, $8::bytea FROM owner
         ON CONFLICT (family_id) DO NOTHING
         RETURNING 1
     ), excess AS (
         SELECT greatest(count(*) + 1 - $9::int8, 0) AS n FROM families
         WHERE client_id = $2::text AND EXISTS (SELECT 1 FROM started)
     ), doomed AS (
         SELECT family_id FROM families WHERE client_id = $2::text
         ORDER BY family_id LIMIT (SELECT n FROM excess)
         FOR UPDATE SKIP LOCKED
     ), gone AS (
         DELETE FROM families f WHERE f.family_id = ANY (ARRAY(SELECT family_id FROM doomed))
         RETURNING f.revoked_at, f.expires_at
     )
     SELECT (SELECT count(*) FROM owner), (SELECT count(*) FROM started),
            (SELECT count(*) FROM gone WHERE revoked_at IS NULL AND expires_at > $10::int8)";

/// Starts `family` (see [`START_SQL`]) with `max_families` at most per client.
///
/// # Errors
/// [`StoreError::AlreadyExists`] if the client is active but the family's
/// ID is taken (never overwritten); [`Fail`] on a database failure.
pub(super) async fn start_family(
    client: &Object,
    family: &FamilyRecord,
    max_families: usize,
) -> Result<FamilyStart, Fail> {
    let statement = client.prepare_cached(START_SQL).await?;
    let columns = FamilyColumns::of(family)?;
    let max = i64::try_from(max_families.max(1)).unwrap_or(i64::MAX);
    let now: UnixTime = family.created_at;
    let row = client
        .query_one(
            &statement,
            &[
                &family.family_id.as_slice(),
                &family.client_id,
                &columns.generation,
                &columns.revoked_at,
                &columns.expires_at,
                &columns.expiry_day,
                &columns.client_epoch,
                &columns.record,
                &max,
                &to_db(now)?,
            ],
        )
        .await?;
    let (owner, started, retired): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    if owner == 0 {
        return Ok(FamilyStart::ClientNotActive);
    }
    if started == 0 {
        return Err(Fail::Store(StoreError::AlreadyExists("a refresh-token family with this ID".into())));
    }
    Ok(FamilyStart::Started { retired: from_db(retired)? })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::tests::fresh_store;
    use crate::store::conformance::{client, family};
    use crate::store::{FamilyStart, Store};

    const NOW: u64 = 1_700_000_000;

    /// Starts of one client at its cap from 16 tasks at once: every one
    /// succeeds (no deadlock, no retries run out), the client holds at
    /// most one family more than the cap per concurrent start, and the
    /// next start alone trims it back to the cap.
    #[tokio::test]
    async fn concurrent_starts_at_the_cap_all_succeed_and_are_trimmed_back() {
        const MAX: usize = 40;
        const TASKS: u8 = 16;
        const ROUNDS: u8 = 15;
        let Some(store) = fresh_store().await else { return };
        let store = Arc::new(store);
        store.insert_client(&client("a")).await.unwrap();
        let mut tasks = Vec::new();
        for task in 0..TASKS {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for round in 0..ROUNDS {
                    // IDs sort by round, as real ones sort by creation time.
                    let mut started = family(0, "a", NOW, 1000);
                    started.family_id[0] = round;
                    started.family_id[1] = task;
                    assert!(
                        matches!(store.create_family(&started, MAX).await, Ok(FamilyStart::Started { .. })),
                        "task {task}, round {round}"
                    );
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let held = store.count_live_families("a", NOW).await.unwrap();
        let bound = u64::try_from(MAX).unwrap() + u64::from(TASKS);
        assert!((1..=bound).contains(&held), "{held} families, at most {bound} expected");

        let last = family(0xff, "a", NOW, 1000);
        assert!(matches!(store.create_family(&last, MAX).await.unwrap(), FamilyStart::Started { .. }));
        let expected = (held + 1).min(u64::try_from(MAX).unwrap());
        assert_eq!(store.count_live_families("a", NOW).await.unwrap(), expected);
        assert!(store.family(&last.family_id).await.unwrap().is_some(), "the newest family is kept");
    }
}
