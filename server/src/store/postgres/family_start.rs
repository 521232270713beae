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

use std::collections::HashMap;
use std::sync::Mutex;

use deadpool_postgres::Object;

use super::{Fail, FamilyColumns, from_db, to_db};
use crate::clock::UnixTime;
use crate::store::records::{FamilyId, FamilyRecord};
use crate::store::{FamilyStart, StoreError};

/// The `doomed` and `gone` steps of [`START_SQL`] and [`TRIM_SQL`]: the
/// `excess` oldest families of the client in parameter `$client` (after
/// the `$after` condition) are locked, skipping those locked already, and
/// deleted by primary key; `gone` returns what each one was.
macro_rules! retire_oldest {
    ($client:literal, $after:literal) => {
        concat!(
            "doomed AS (
         SELECT family_id FROM families WHERE client_id = ",
            $client,
            "::text ",
            $after,
            "
         ORDER BY family_id LIMIT (SELECT n FROM excess)
         FOR UPDATE SKIP LOCKED
     ), gone AS (
         DELETE FROM families f WHERE f.family_id = ANY (ARRAY(SELECT family_id FROM doomed))
         RETURNING f.family_id, f.revoked_at, f.expires_at
     )"
        )
    };
}

/// Inserts the family only if its client is stored, active and at the
/// family's epoch (status is in the JSON record, the epoch beside it in a
/// column written in the same update); only then retires the client's
/// oldest families beyond the cap, and adds the difference to the client's
/// tally (see migration 5 in [`super::schema`]); reports (client found
/// active, inserted, live families retired).
///
/// The new row is not visible to the statement's own snapshot, so the cap
/// counts the families that were there: `count + 1 - max` of them go, the
/// count being the sum of the client's tally rows (a handful of rows, where
/// counting its families visited each of up to `max` rows). Family IDs
/// lead with their creation time, so the first by ID are the oldest.
/// `FOR UPDATE SKIP LOCKED`: concurrent starts for one client at its cap
/// each take other families (one that another start or a rotation holds,
/// or that was deleted since the snapshot, is passed over for the next),
/// and nothing here waits for a family's row lock, so no deadlock; starts
/// at the same moment may each see room for one more, and the next start
/// trims back to the cap. The tally changes by the rows this statement
/// really inserted and deleted, so it stays their count whatever raced.
/// The retired rows are deleted by primary key (`= ANY (ARRAY(...))`):
/// a join with `doomed` let the planner scan the whole table for them.
/// The oldest are looked for after `$11` (see [`RetireHints`]); the
/// newest retired is returned for the next start's bound.
const START_SQL: &str = concat!("WITH owner AS (
         SELECT 1 FROM clients
         WHERE client_id = $2::text AND family_epoch = $7::int8
           AND convert_from(record, 'UTF8')::jsonb ->> 'status' = 'active'
     ), started AS (
         INSERT INTO families (family_id, client_id, generation, revoked_at, expires_at, expiry_day, client_epoch, record)
         SELECT $1::bytea, $2::text, $3::int8, $4::int8, $5::int8, $6::int8, $7::int8, $8::bytea FROM owner
         ON CONFLICT (family_id) DO NOTHING
         RETURNING 1
     ), excess AS (
         SELECT CASE WHEN EXISTS (SELECT 1 FROM started)
                     THEN greatest(coalesce(sum(n), 0)::int8 + 1 - $9::int8, 0) ELSE 0 END AS n
         FROM family_tally WHERE client_id = $2::text
     ), ", retire_oldest!("$2", "AND family_id > $11::bytea"), ", tallied AS (
         INSERT INTO family_tally (client_id, shard, n)
         SELECT $2::text, pg_backend_pid() % 64, 1 - (SELECT count(*) FROM gone) FROM started
         ON CONFLICT (client_id, shard) DO UPDATE SET n = family_tally.n + EXCLUDED.n
     )
     SELECT (SELECT count(*) FROM owner), (SELECT count(*) FROM started),
            (SELECT count(*) FROM gone WHERE revoked_at IS NULL AND expires_at > $10::int8),
            (SELECT family_id FROM gone ORDER BY family_id DESC LIMIT 1),
            (SELECT n FROM excess) - (SELECT count(*) FROM gone)");

/// Retires up to `$2` of the client's oldest families, as many as its
/// tally (which now counts the start just made) is over the cap `$4`,
/// searching its whole index range, and takes them off the tally: for the
/// families a start's bounded search could not find (see [`RetireHints`]).
/// The re-check keeps a start that raced this one from making both retire
/// the same shortfall. Reports the live ones retired and the newest retired.
const TRIM_SQL: &str = concat!(
    "WITH excess AS (
         SELECT least($2::int8, greatest(coalesce(sum(n), 0)::int8 - $4::int8, 0)) AS n
         FROM family_tally WHERE client_id = $1::text
     ), ",
    retire_oldest!("$1", ""),
    ", tallied AS (
         INSERT INTO family_tally (client_id, shard, n)
         SELECT $1::text, pg_backend_pid() % 64, -(SELECT count(*) FROM gone) WHERE EXISTS (SELECT 1 FROM gone)
         ON CONFLICT (client_id, shard) DO UPDATE SET n = family_tally.n + EXCLUDED.n
     )
     SELECT (SELECT count(*) FROM gone WHERE revoked_at IS NULL AND expires_at > $3::int8),
            (SELECT family_id FROM gone ORDER BY family_id DESC LIMIT 1)"
);

/// How often a client's start looks for its oldest families from the
/// start of its index range rather than after its hint.
const FULL_SCAN_EVERY: u32 = 1000;

/// Most clients with a hint at once. A client deleted through another
/// instance is never forgotten here, so the map is bounded instead: past
/// it, an arbitrary hint makes room, which costs its client one full
/// search and nothing else.
const MAX_HINTS: usize = 4096;

/// Where this instance last retired each client's families: the next
/// start at the cap looks for the oldest after it.
///
/// Retiring deletes a client's families from the low end of its index
/// range, where the deleted rows' entries stay until VACUUM: a start that
/// looked from the low end stepped over every one of them, a few hundred
/// thousand a minute at full load, and slowed down as they piled up. The
/// bound skips them. It only bounds the search, never the count (that is
/// the tally), so a hint that is wrong costs no family its place: another
/// instance's, or no hint, means a longer search; a family it passes over
/// (one a concurrent start or rotation held when its neighbours were
/// retired, or one whose insert committed after newer ones had gone) is
/// found again by the full search every [`FULL_SCAN_EVERY`] starts, and
/// at once ([`TRIM_SQL`]) if the bounded search finds fewer families than
/// the cap needs gone.
#[derive(Debug, Default)]
pub(super) struct RetireHints(Mutex<HashMap<String, Hint>>);

#[derive(Debug)]
struct Hint {
    /// The newest family retired.
    after: FamilyId,
    /// Starts that used it since the last full search.
    uses: u32,
}

impl RetireHints {
    fn hints(&self) -> std::sync::MutexGuard<'_, HashMap<String, Hint>> {
        // Only IDs and counts inside: a poisoned lock is taken as is.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The bound for the client's next start: `None` for a full search.
    fn bound(&self, client_id: &str) -> Option<FamilyId> {
        let mut hints = self.hints();
        let hint = hints.get_mut(client_id)?;
        hint.uses += 1;
        if hint.uses >= FULL_SCAN_EVERY {
            hint.uses = 0;
            return None;
        }
        Some(hint.after)
    }

    /// Records the newest family a start retired.
    fn retired(&self, client_id: &str, newest: FamilyId) {
        let mut hints = self.hints();
        match hints.get_mut(client_id) {
            Some(hint) => hint.after = hint.after.max(newest),
            None => {
                if hints.len() >= MAX_HINTS
                    && let Some(evicted) = hints.keys().next().cloned()
                {
                    hints.remove(&evicted);
                }
                hints.insert(client_id.to_owned(), Hint { after: newest, uses: 0 });
            }
        }
    }

    /// Forgets a deleted client.
    pub(super) fn forget(&self, client_id: &str) {
        self.hints().remove(client_id);
    }
}

/// Starts `family` (see [`START_SQL`]) with `max_families` at most per client.
///
/// # Errors
/// [`StoreError::AlreadyExists`] if the client is active but the family's
/// ID is taken (never overwritten); [`Fail`] on a database failure.
pub(super) async fn start_family(
    client: &Object,
    family: &FamilyRecord,
    max_families: usize,
    hints: &RetireHints,
) -> Result<FamilyStart, Fail> {
    let statement = client.prepare_cached(START_SQL).await?;
    let columns = FamilyColumns::of(family)?;
    let max = i64::try_from(max_families.max(1)).unwrap_or(i64::MAX);
    let now: UnixTime = family.created_at;
    let bound = hints.bound(&family.client_id);
    // The empty string sorts before every family ID: no bound.
    let after: &[u8] = bound.as_ref().map_or(&[], |id| id.as_slice());
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
                &after,
            ],
        )
        .await?;
    let (owner, started, mut retired): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    note_newest(hints, &family.client_id, row.get(3));
    let shortfall: i64 = row.get(4);
    if shortfall > 0 && bound.is_some() {
        // The bounded search ran out: the rest are before the bound.
        hints.forget(&family.client_id);
        let trim = client.prepare_cached(TRIM_SQL).await?;
        let row = client.query_one(&trim, &[&family.client_id, &shortfall, &to_db(now)?, &max]).await?;
        retired += row.get::<_, i64>(0);
        note_newest(hints, &family.client_id, row.get(1));
    }
    if owner == 0 {
        return Ok(FamilyStart::ClientNotActive);
    }
    if started == 0 {
        return Err(Fail::Store(StoreError::AlreadyExists("a refresh-token family with this ID".into())));
    }
    Ok(FamilyStart::Started { retired: from_db(retired)? })
}

/// Records the newest family a statement retired, if any, as the hint.
fn note_newest(hints: &RetireHints, client_id: &str, newest: Option<&[u8]>) {
    if let Some(newest) = newest.and_then(|id| FamilyId::try_from(id).ok()) {
        hints.retired(client_id, newest);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::tests::fresh_store;
    use crate::store::conformance::{client, family};
    use crate::store::{FamilyStart, Store};

    const NOW: u64 = 1_700_000_000;

    /// The hints follow at most MAX_HINTS clients; the newest is kept.
    #[test]
    fn the_retire_hints_are_bounded() {
        let hints = super::RetireHints::default();
        for n in 0..super::MAX_HINTS + 10 {
            hints.retired(&format!("c{n}"), [1; 10]);
        }
        assert_eq!(hints.hints().len(), super::MAX_HINTS);
        let newest = format!("c{}", super::MAX_HINTS + 9);
        assert_eq!(hints.bound(&newest), Some([1; 10]));
        hints.retired(&newest, [2; 10]);
        assert_eq!(hints.bound(&newest), Some([2; 10]), "a later retirement moves the hint");
        assert_eq!(hints.hints().len(), super::MAX_HINTS);
    }

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

    /// A family the hinted search passes over (here one with an older ID
    /// started after newer ones were retired) is retired by the full search
    /// within [`super::FULL_SCAN_EVERY`] starts, and the cap holds all along.
    #[tokio::test]
    async fn a_family_the_hint_passes_over_is_found_by_the_full_search() {
        let Some(store) = fresh_store().await else { return };
        store.insert_client(&client("a")).await.unwrap();
        let start = |id: [u8; 10], max: usize| {
            let mut started = family(0, "a", NOW, 1000);
            started.family_id = id;
            let store = &store;
            async move { store.create_family(&started, max).await.unwrap() }
        };
        for n in 5..=8u8 {
            assert!(matches!(start([n; 10], 3).await, FamilyStart::Started { .. }));
        }
        // Family 5 was retired: the hint is past it. A late family sorts before it.
        assert!(matches!(start([1; 10], 1000).await, FamilyStart::Started { retired: 0 }));
        let mut straggler_gone_after = None;
        for n in 0..=super::FULL_SCAN_EVERY {
            let mut id = [0xf0; 10];
            id[6..].copy_from_slice(&n.to_be_bytes());
            assert!(matches!(start(id, 3).await, FamilyStart::Started { .. }));
            assert!(store.count_live_families("a", NOW).await.unwrap() <= 4, "start {n}");
            if store.family(&[1; 10]).await.unwrap().is_none() {
                straggler_gone_after = Some(n);
                break;
            }
        }
        assert!(straggler_gone_after.is_some(), "the full search never found the passed-over family");
        assert_eq!(store.count_live_families("a", NOW).await.unwrap(), 3);
    }
}
