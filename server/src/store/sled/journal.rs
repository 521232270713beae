//! A write-ahead journal in front of every sled tree the store writes.
//!
//! It owns those trees: the store gets only [`ReadTree`]s and the
//! [`View`] of a commit, so every write (refresh tokens and families,
//! clients, keys, the audit trail, the access-token deny list,
//! installation values, last-used times) takes the same path and is
//! durable by the same rule: once its commit's record is appended and
//! `fdatasync`ed.
//!
//! Every refresh-token write used to be a sled transaction followed by a
//! sled flush (and every other write a sled insert followed by a flush of
//! its own). Both are slow in sled 0.34: each multi-tree transaction
//! seals and writes an IO buffer of its own (twice), and a flush takes a
//! median 0.7 ms and often tens of ms under load. The journal turns a
//! commit into one append to a plain file, synced once for every request
//! waiting at that moment (group commit), and keeps sled out of the
//! request's path:
//!
//! 1. [`Journal::commit`] runs the caller's logic against a [`View`]: sled
//!    as it is, plus every change committed but not yet applied to it.
//!    Commits are serialised, so each sees all earlier ones. The changes
//!    go to an in-memory buffer, in commit order.
//! 2. The writer thread takes the whole buffer, appends it to the current
//!    segment file and syncs it; only then does it apply the changes to
//!    sled (plain inserts and removes), and then releases every request
//!    whose commit it held ([`Journal::wait`]). sled therefore never holds
//!    a change the journal could lose in a crash. The changes to the
//!    refresh-token families and their expiry index
//!    ([`TreeId::applied_at_checkpoint`]) wait in the
//!    overlay instead, the newest change per key, until step 3.
//! 3. Once a segment is large or old enough it is sealed and a new one
//!    started; the checkpoint thread applies the changes that waited for
//!    it, flushes sled, after which the sealed segment's changes are all
//!    in sled's own files, and deletes it.
//! 4. On open, the segments left by a crash are replayed into sled in
//!    order, sled is flushed, and they are deleted.
//!
//! Replaying is sound because a record holds whole values, not deltas, and
//! sled only ever receives journaled changes, in journal order: whatever
//! part of them sled kept through a crash, applying every journaled change
//! again in order leaves each key with its last journaled value. That
//! requires every write to these trees to go through the journal.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::store::{BackendSource, StoreError};

pub use read_tree::ReadTree;
pub use record::{Change, TreeId};
pub use view::View;

use overlay::{Layer, Overlay};

mod overlay;
mod read_tree;
mod record;
mod view;

/// How often an idle writer thread looks whether its segment is due.
const IDLE_WAKE: Duration = Duration::from_secs(1);

/// How many sealed segments' changes may wait for the checkpoint thread
/// before the writer waits for it: a bound on the memory they hold (a
/// segment's worth each at most) and on the replay work after a crash.
const MAX_SEALED_LAYERS: usize = 4;

/// When a segment is sealed and checkpointed.
#[derive(Debug, Clone, Copy)]
pub struct SegmentLimits {
    /// A segment at least this large is sealed.
    pub max_bytes: u64,
    /// A segment with records is sealed at the latest after this long, so
    /// a quiet server does not keep replay work around.
    pub max_age: Duration,
}

impl Default for SegmentLimits {
    /// 1 MiB or 30 s. Segments waiting for their checkpoint are the one
    /// part of the data dir that grows with writes rather than with what
    /// is stored: at 64 MiB a busy server's data dir held up to 68 MiB
    /// more than its sled files under the benchmark's rotation load, at
    /// 1 MiB at most 3.5 MiB in all. The price is a sled flush (on the
    /// checkpoint thread) a few times a second at full load.
    fn default() -> Self {
        Self { max_bytes: 1024 * 1024, max_age: Duration::from_secs(30) }
    }
}

/// The sled trees the journal covers, by [`TreeId`]: writable handles,
/// which only the journal keeps once it is open.
#[derive(Debug, Clone)]
pub struct JournaledTrees {
    pub families: sled::Tree,
    pub client_families: sled::Tree,
    pub meta: sled::Tree,
    pub clients: sled::Tree,
    pub client_last_used: sled::Tree,
    pub keys: sled::Tree,
    pub audit: sled::Tree,
    pub denied_jti: sled::Tree,
    pub denied_expiry: sled::Tree,
    pub assertion_jti: sled::Tree,
    pub assertion_expiry: sled::Tree,
    pub family_expiry: sled::Tree,
}

impl JournaledTrees {
    /// Opens (or creates) every journaled tree of `db`, by its name.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if sled cannot open one.
    pub fn open(db: &sled::Db) -> Result<Self, StoreError> {
        let tree = |id: TreeId| db.open_tree(id.name()).map_err(|e| backend("cannot open a tree", e));
        Ok(Self {
            families: tree(TreeId::Families)?,
            client_families: tree(TreeId::ClientFamilies)?,
            family_expiry: tree(TreeId::FamilyExpiry)?,
            meta: tree(TreeId::Meta)?,
            clients: tree(TreeId::Clients)?,
            client_last_used: tree(TreeId::ClientLastUsed)?,
            keys: tree(TreeId::Keys)?,
            audit: tree(TreeId::Audit)?,
            denied_jti: tree(TreeId::DeniedJti)?,
            denied_expiry: tree(TreeId::DeniedExpiry)?,
            assertion_jti: tree(TreeId::AssertionJti)?,
            assertion_expiry: tree(TreeId::AssertionExpiry)?,
        })
    }

    fn tree(&self, id: TreeId) -> &sled::Tree {
        match id {
            TreeId::Families => &self.families,
            TreeId::ClientFamilies => &self.client_families,
            TreeId::Meta => &self.meta,
            TreeId::Clients => &self.clients,
            TreeId::ClientLastUsed => &self.client_last_used,
            TreeId::Keys => &self.keys,
            TreeId::Audit => &self.audit,
            TreeId::DeniedJti => &self.denied_jti,
            TreeId::DeniedExpiry => &self.denied_expiry,
            TreeId::AssertionJti => &self.assertion_jti,
            TreeId::AssertionExpiry => &self.assertion_expiry,
            TreeId::FamilyExpiry => &self.family_expiry,
        }
    }
}

/// A position in the journal: the byte count appended up to and including
/// a commit's record. [`Journal::wait`] returns once it is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket(u64);

/// Handle to the journal; its threads stop when it is dropped.
#[derive(Debug)]
pub struct Journal {
    shared: Arc<Shared>,
    /// Serialises commits: held while a commit reads, decides and appends,
    /// so each commit sees every earlier one and the journal's order is
    /// the order of decisions.
    commit_order: Mutex<()>,
    writer: Option<thread::JoinHandle<()>>,
    checkpointer: Option<thread::JoinHandle<()>>,
    /// For the last checkpoint, when the journal closes.
    db: sled::Db,
    dir: PathBuf,
    /// Deletes a checkpointed segment.
    remove: RemoveSegment,
}

#[derive(Debug)]
struct Shared {
    trees: JournaledTrees,
    /// Changes committed but not yet applied to sled, for [`View`].
    overlay: Mutex<Overlay>,
    /// Signalled (with `overlay`) when a sealed layer is in sled.
    layer_applied: Condvar,
    /// Held while applying sealed layers, so one thread does it at a time.
    applying: Mutex<()>,
    pending: Mutex<Pending>,
    /// Signalled when `pending` gets records or is told to stop.
    work: Condvar,
    /// How far the journal is on disk, or why it never will be again.
    progress: watch::Sender<Progress>,
}

#[derive(Debug, Default)]
struct Pending {
    /// Records appended but not yet handed to the writer thread.
    buffer: Vec<u8>,
    /// When the first of them was appended.
    first_at: Option<Instant>,
    /// How many commits they hold.
    records: usize,
    /// The same changes, to apply to sled once the records are synced.
    changes: Vec<Change>,
    /// Total bytes ever appended: the next commit's ticket ends here.
    appended: u64,
    stopping: bool,
}

#[derive(Debug, Clone, Default)]
struct Progress {
    durable: u64,
    /// Set when a write, sync or apply failed: commits already made (and
    /// seen by later ones through the overlay) may never be durable, so
    /// every later commit is refused (fail closed); a restart replays what
    /// did reach the disk. Also set when a checkpointed segment cannot be
    /// deleted (see [`checkpoint_loop`]).
    failed: Option<String>,
}

fn backend(context: &str, e: impl Into<BackendSource>) -> StoreError {
    StoreError::backend(format!("journal: {context}"), e)
}

fn lock<T>(mutex: &Mutex<T>) -> Result<MutexGuard<'_, T>, StoreError> {
    mutex.lock().map_err(|_| StoreError::internal("journal", "lock poisoned"))
}

impl Journal {
    /// Replays whatever a previous run left in `dir` into `trees`, makes
    /// it durable in sled, and starts an empty journal.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] if a segment other than the newest is
    /// damaged; [`StoreError::Backend`] on IO or sled failure.
    pub fn open(dir: &Path, db: &sled::Db, trees: JournaledTrees, limits: SegmentLimits) -> Result<Self, StoreError> {
        Self::open_removing_with(dir, db, trees, limits, RemoveSegment::from_disk())
    }

    /// [`Journal::open`], deleting checkpointed segments with `remove`.
    fn open_removing_with(
        dir: &Path,
        db: &sled::Db,
        trees: JournaledTrees,
        limits: SegmentLimits,
        remove: RemoveSegment,
    ) -> Result<Self, StoreError> {
        create_private_dir(dir)?;
        let next_number = replay(dir, db, &trees)?;
        let segment = SegmentFile::create(dir, next_number, limits)?;
        let (progress, _) = watch::channel(Progress::default());
        let shared = Arc::new(Shared {
            trees,
            overlay: Mutex::default(),
            layer_applied: Condvar::new(),
            applying: Mutex::default(),
            pending: Mutex::default(),
            work: Condvar::new(),
            progress,
        });
        let (sealed_tx, sealed_rx) = mpsc::channel();
        // The checkpointer first: it ends by itself when the sender goes,
        // also if the writer thread cannot be started.
        let checkpoint_db = db.clone();
        let checkpoint_dir = dir.to_path_buf();
        let checkpoint_shared = Arc::clone(&shared);
        let checkpoint_remove = remove.clone();
        let checkpointer = thread::Builder::new()
            .name("tessera-checkpoint".into())
            .spawn(move || {
                lower_checkpoint_priority();
                checkpoint_loop(&checkpoint_db, &checkpoint_dir, &sealed_rx, &checkpoint_shared, &checkpoint_remove);
            })
            .map_err(|e| backend("cannot start the checkpoint thread", e))?;
        let writer_shared = Arc::clone(&shared);
        let writer = thread::Builder::new()
            .name("tessera-journal".into())
            .spawn(move || {
                // Waiters must learn of a writer that died, not hang.
                let run = std::panic::AssertUnwindSafe(|| write_loop(&writer_shared, segment, &sealed_tx));
                if std::panic::catch_unwind(run).is_err() {
                    fail(&writer_shared, "the writer thread panicked");
                }
            })
            .map_err(|e| backend("cannot start the writer thread", e))?;
        Ok(Self {
            shared,
            commit_order: Mutex::new(()),
            writer: Some(writer),
            checkpointer: Some(checkpointer),
            db: db.clone(),
            dir: dir.to_path_buf(),
            remove,
        })
    }

    /// Runs `decide` against the trees as every earlier commit left them
    /// and commits the changes it made through the [`View`]. Wait for the
    /// returned ticket before telling anyone the change happened: until
    /// then it is neither on disk nor visible outside commits.
    ///
    /// The ticket also covers every earlier commit, so a caller whose
    /// `decide` only read (no changes) and then waits has acted on durable
    /// state only.
    ///
    /// # Errors
    /// `decide`'s error (nothing is changed then), or
    /// [`StoreError::Backend`] if the journal has failed before.
    pub fn commit<T>(
        &self,
        decide: impl FnOnce(&mut View<'_>) -> Result<T, StoreError>,
    ) -> Result<(T, Ticket), StoreError> {
        self.commit_and_publish(decide, |_| ())
    }

    /// [`Journal::commit`], then `publish` with `decide`'s value once the
    /// changes are committed (seen by [`Journal::get`] and later commits),
    /// still in commit order: for a cache in front of the trees, so it is
    /// updated after what it caches can be read, and in the order of the
    /// commits. Not called if the commit fails.
    ///
    /// # Errors
    /// As [`Journal::commit`].
    pub fn commit_and_publish<T>(
        &self,
        decide: impl FnOnce(&mut View<'_>) -> Result<T, StoreError>,
        publish: impl FnOnce(&T),
    ) -> Result<(T, Ticket), StoreError> {
        let _order = lock(&self.commit_order)?;
        self.check()?;
        let mut view = View::new(&self.shared.trees, &self.shared.overlay);
        let value = decide(&mut view)?;
        let changes = view.into_changes();
        let mut record = Vec::new();
        if !changes.is_empty() {
            record::encode(&changes, &mut record)?;
        }
        let mut pending = lock(&self.shared.pending)?;
        pending.appended += record.len() as u64;
        let ticket = Ticket(pending.appended);
        if !changes.is_empty() {
            lock(&self.shared.overlay)?.add(&changes, ticket.0);
            if pending.buffer.is_empty() {
                pending.first_at = Some(Instant::now());
            }
            pending.records += 1;
            pending.buffer.extend_from_slice(&record);
            pending.changes.extend(changes);
            drop(pending);
            self.shared.work.notify_one();
        } else {
            drop(pending);
        }
        publish(&value);
        Ok((value, ticket))
    }

    /// The value of `key` with every commit so far, applied to sled or not:
    /// for reads that must see a write whose caller did not wait for it,
    /// or that fill a cache (a value read from sled alone could be older
    /// than one a commit already published).
    ///
    /// # Errors
    /// [`StoreError::Backend`] if sled fails.
    pub fn get(&self, tree: TreeId, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        View::new(&self.shared.trees, &self.shared.overlay).get(tree, key)
    }

    /// Every key of `tree` under `prefix` with every commit so far, in
    /// order.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if sled fails.
    pub fn keys_with_prefix(&self, tree: TreeId, prefix: &[u8]) -> Result<BTreeSet<Vec<u8>>, StoreError> {
        View::new(&self.shared.trees, &self.shared.overlay).keys_with_prefix(tree, prefix)
    }

    /// The first `n` keys of `tree` below `bound` with every commit so
    /// far, in order.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if sled fails.
    pub fn first_keys_below(&self, tree: TreeId, bound: &[u8], n: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        View::new(&self.shared.trees, &self.shared.overlay).first_keys_below(tree, bound, n)
    }

    /// A read-only handle on `tree`, which sees a commit once
    /// [`Journal::wait`] for it returned. Not for the trees applied at
    /// checkpoints, whose commits sled may not have for a while: read
    /// those through the journal.
    #[must_use]
    pub fn reader(&self, tree: TreeId) -> ReadTree {
        debug_assert!(!tree.applied_at_checkpoint(), "{tree:?} is read through the journal");
        ReadTree::new(self.shared.trees.tree(tree).clone())
    }

    /// Applies every synced change still waiting for a checkpoint to sled,
    /// so sled alone has every commit waited for: before copying the
    /// database tree by tree, and in tests that look at sled.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if sled fails.
    pub fn settle(&self) -> Result<(), StoreError> {
        lock(&self.shared.overlay)?.seal();
        apply_sealed(&self.shared)
    }

    /// The database itself, writable: for tests that plant what the store
    /// would never write.
    #[cfg(test)]
    pub const fn db(&self) -> &sled::Db {
        &self.db
    }

    /// Every tree of the database (sled's default tree and any not
    /// journaled included), read-only, by name: for copying it whole.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if sled cannot open one.
    pub fn every_tree(&self) -> Result<Vec<(sled::IVec, ReadTree)>, StoreError> {
        self.db
            .tree_names()
            .into_iter()
            .map(|name| {
                let tree = self.db.open_tree(&name).map_err(|e| backend("cannot open a tree", e))?;
                Ok((name, ReadTree::new(tree)))
            })
            .collect()
    }

    /// Whether the journal still takes commits.
    ///
    /// # Errors
    /// [`StoreError::Backend`] with the reason once a write has failed.
    pub fn check(&self) -> Result<(), StoreError> {
        match &self.shared.progress.borrow().failed {
            Some(failed) => Err(StoreError::internal("journal: an earlier write failed", failed.clone())),
            None => Ok(()),
        }
    }

    /// A ticket covering every commit so far.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if the lock is poisoned.
    pub fn ticket_now(&self) -> Result<Ticket, StoreError> {
        Ok(Ticket(lock(&self.shared.pending)?.appended))
    }

    /// Waits until everything up to `ticket` is on disk.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if the journal failed before getting there.
    pub async fn wait(&self, ticket: Ticket) -> Result<(), StoreError> {
        let mut progress = self.shared.progress.subscribe();
        let reached = progress
            .wait_for(|p| p.durable >= ticket.0 || p.failed.is_some())
            .await
            .map_err(|_| StoreError::internal("journal", "the writer thread has stopped"))?;
        if reached.durable >= ticket.0 {
            return Ok(());
        }
        Err(StoreError::internal("journal: write failed", reached.failed.clone().unwrap_or_default()))
    }
}

fn fail(shared: &Shared, reason: &str) {
    tracing::error!(reason, "the storage journal failed; refusing every further write until a restart");
    shared.progress.send_modify(|p| p.failed = Some(reason.to_owned()));
}

impl Drop for Journal {
    /// Writes out what is buffered, stops both threads, and checkpoints
    /// everything, so a clean stop leaves nothing to replay.
    fn drop(&mut self) {
        if let Ok(mut pending) = self.shared.pending.lock() {
            pending.stopping = true;
        }
        self.shared.work.notify_one();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
        // The writer held the only sender: the checkpointer ends once it
        // has handled the segments sealed so far.
        if let Some(checkpointer) = self.checkpointer.take() {
            let _ = checkpointer.join();
        }
        if self.check().is_ok() {
            // Every journaled change is in sled once the ones waiting for
            // a checkpoint are applied (the writer applied the rest); once
            // sled has them on disk the segments can go. A failure keeps
            // them for the next start to replay.
            let checkpointed = self
                .settle()
                .and_then(|()| self.db.flush().map_err(|e| backend("sled flush at close", e)))
                .and_then(|_| list_segments(&self.dir))
                .and_then(|segments| {
                    let mut paths: Vec<PathBuf> = segments.into_iter().map(|(_, path)| path).collect();
                    delete_in_order(&self.dir, &mut paths, &self.remove)
                });
            if let Err(e) = checkpointed {
                tracing::warn!(error = %e, "the journal was not checkpointed at close; it is replayed at the next start");
            }
        }
    }
}

/// The writer thread: appends, syncs and applies batches until told to
/// stop.
fn write_loop(shared: &Shared, mut segment: SegmentFile, sealed: &mpsc::Sender<PathBuf>) {
    let mut batch = Vec::new();
    let mut changes = Vec::new();
    // Commits in the last batch synced: more than one means others are
    // committing while a sync runs.
    let mut last_batch = 0;
    loop {
        let end = {
            // A poisoned lock would leave waiters hanging: fail them.
            let Ok(mut pending) = shared.pending.lock() else { return fail(shared, "lock poisoned") };
            if pending.buffer.is_empty() && !pending.stopping {
                // Wakes now and then with nothing to write, so an idle
                // segment still gets sealed once it is old enough.
                let Ok((woken, _)) = shared.work.wait_timeout(pending, IDLE_WAKE) else {
                    return fail(shared, "lock poisoned");
                };
                pending = woken;
            }
            if pending.buffer.is_empty() {
                if pending.stopping {
                    return;
                }
                None
            } else if let Some(wait) = gather_wait(&pending, last_batch) {
                // Busy: let more commits join this sync (see GATHER).
                drop(pending);
                thread::park_timeout(wait);
                continue;
            } else {
                last_batch = pending.records;
                pending.records = 0;
                pending.first_at = None;
                // Swap buffers so the next batch fills the old allocations.
                std::mem::swap(&mut batch, &mut pending.buffer);
                std::mem::swap(&mut changes, &mut pending.changes);
                Some(pending.appended)
            }
        };
        if let Some(end) = end {
            let now = changes.iter().filter(|change| !change.tree.applied_at_checkpoint());
            if let Err(e) = segment.append(&batch).and_then(|()| apply(&shared.trees, now)) {
                fail(shared, &e.to_string());
                return;
            }
            batch.clear();
            let Ok(mut overlay) = shared.overlay.lock() else { return fail(shared, "lock poisoned") };
            overlay.synced(changes.drain(..).filter(|change| change.tree.applied_at_checkpoint()), end);
            drop(overlay);
            shared.progress.send_modify(|p| p.durable = end);
        }
        if segment.is_due_for_sealing() {
            if let Err(e) = wait_for_checkpoints(shared) {
                return fail(shared, &e.to_string());
            }
            match segment.seal() {
                Ok((next, sealed_path)) => {
                    segment = next;
                    let Ok(mut overlay) = shared.overlay.lock() else { return fail(shared, "lock poisoned") };
                    overlay.seal();
                    drop(overlay);
                    // The checkpointer only goes when the journal does.
                    let _ = sealed.send(sealed_path);
                }
                Err(e) => {
                    fail(shared, &e.to_string());
                    return;
                }
            }
        }
    }
}

/// Waits while [`MAX_SEALED_LAYERS`] sealed layers wait for the
/// checkpoint thread.
fn wait_for_checkpoints(shared: &Shared) -> Result<(), StoreError> {
    let mut overlay = lock(&shared.overlay)?;
    while overlay.sealed_layers() >= MAX_SEALED_LAYERS {
        if let Some(failed) = &shared.progress.borrow().failed {
            return Err(StoreError::internal("journal: a checkpoint failed", failed.clone()));
        }
        overlay = shared
            .layer_applied
            .wait_timeout(overlay, IDLE_WAKE)
            .map_err(|_| StoreError::internal("journal", "lock poisoned"))?
            .0;
    }
    Ok(())
}

/// Applies the sealed layers to sled, oldest first. Each stays in the
/// overlay, and is read there, until sled has all of it; one that fails
/// stays for the next attempt (applying it twice is harmless).
fn apply_sealed(shared: &Shared) -> Result<(), StoreError> {
    let _applying = lock(&shared.applying)?;
    loop {
        let Some(layer) = lock(&shared.overlay)?.oldest_sealed() else { return Ok(()) };
        apply_layer(&shared.trees, &layer)?;
        lock(&shared.overlay)?.drop_oldest_sealed();
        shared.layer_applied.notify_all();
    }
}

/// How long the first commit of a batch may wait for others to join its
/// sync, while the journal is busy (the last batch held more than one).
///
/// A sync costs the core about 30 µs of kernel time whatever it carries;
/// under load, batches of three or four commits spent 7% of the core on
/// them. Waiting this long for more lets a busy server sync more per call;
/// an idle one (batches of one) never waits.
const GATHER: Duration = Duration::from_micros(300);

/// Enough bytes that a batch is synced without waiting for more.
const GATHER_BYTES: usize = 256 * 1024;

/// How much longer the writer should wait before syncing what is pending,
/// if at all.
fn gather_wait(pending: &Pending, last_batch: usize) -> Option<Duration> {
    if last_batch < 2 || pending.stopping || pending.buffer.len() >= GATHER_BYTES {
        return None;
    }
    let waited = pending.first_at?.elapsed();
    GATHER.checked_sub(waited).filter(|rest| !rest.is_zero())
}

/// Deletes one checkpointed segment: `fs::remove_file`, or in tests a
/// deletion that fails.
#[derive(Clone)]
struct RemoveSegment(Arc<RemoveFile>);

type RemoveFile = dyn Fn(&Path) -> std::io::Result<()> + Send + Sync;

impl RemoveSegment {
    fn from_disk() -> Self {
        Self(Arc::new(|path: &Path| fs::remove_file(path)))
    }

    fn remove(&self, path: &Path) -> std::io::Result<()> {
        (self.0)(path)
    }
}

impl std::fmt::Debug for RemoveSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RemoveSegment")
    }
}

/// The checkpoint thread: for each sealed segment, flushes sled (which
/// then holds every change of that segment) and deletes it, oldest first.
///
/// A segment that cannot be deleted stays queued with every later one, and
/// the journal stops taking writes: deleting a later segment while an
/// earlier one stays would let the next start replay the earlier one over
/// newer values (a rollback), and a disk that refuses a delete is not one
/// to keep acknowledging writes on. The segments left behind are replayed,
/// in order, at the next start, which is always sound.
fn checkpoint_loop(
    db: &sled::Db,
    dir: &Path,
    sealed: &mpsc::Receiver<PathBuf>,
    shared: &Shared,
    remove: &RemoveSegment,
) {
    let mut waiting: Vec<PathBuf> = Vec::new();
    while let Ok(path) = sealed.recv() {
        waiting.push(path);
        waiting.extend(sealed.try_iter());
        // The segments' layers were sealed before they were sent.
        if let Err(e) = apply_sealed(shared) {
            fail(shared, &format!("checkpoint: {e}; the journal segments are kept for the next start"));
            continue;
        }
        if let Err(e) = db.flush() {
            // Keep the segments: they are replayed at the next start.
            tracing::error!(error = %e, "checkpoint: sled flush failed; keeping the journal segments");
            continue;
        }
        if let Err(e) = delete_in_order(dir, &mut waiting, remove) {
            fail(shared, &format!("checkpoint: {e}; the segment and every later one are kept for the next start"));
        }
    }
}

/// The checkpoint thread's nice value.
const CHECKPOINT_NICE: i32 = 10;

/// Makes the calling (checkpoint) thread yield the core to requests: a
/// checkpoint's sled flush takes a few ms of CPU, a few times a second at
/// full load, and at equal priority it took them from every request in
/// flight. At nice 10 it still gets about a tenth of a busy core, more
/// than it needs. Linux sets the nice value per thread; elsewhere the
/// thread keeps the process's.
fn lower_checkpoint_priority() {
    #[cfg(target_os = "linux")]
    if let Err(error) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), CHECKPOINT_NICE) {
        tracing::debug!(%error, "cannot lower the checkpoint thread's priority");
    }
}

/// Deletes segments oldest first, syncing the directory after each, so a
/// crash never keeps an older segment while a newer one is gone (replaying
/// the older alone would bring back values the newer overwrote).
///
/// Each deleted segment leaves `segments`; on an error the one that failed
/// and every later one stay in it, in order.
fn delete_in_order(dir: &Path, segments: &mut Vec<PathBuf>, remove: &RemoveSegment) -> Result<(), StoreError> {
    while let Some(path) = segments.first() {
        match remove.remove(path) {
            // Gone already: an earlier attempt deleted it but failed to sync.
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(backend(&format!("cannot delete segment {}", path.display()), e)),
        }
        sync_dir(dir)?;
        segments.remove(0);
    }
    Ok(())
}

/// Applies every segment in `dir` to sled, flushes sled, deletes the
/// segments, and returns the number for the next segment.
fn replay(dir: &Path, db: &sled::Db, trees: &JournaledTrees) -> Result<u64, StoreError> {
    let segments = list_segments(dir)?;
    let mut replayed = 0usize;
    for (index, (number, path)) in segments.iter().enumerate() {
        let bytes = fs::read(path).map_err(|e| backend(&format!("cannot read segment {}", path.display()), e))?;
        let segment = record::decode_segment(&bytes);
        let newest = index + 1 == segments.len();
        if segment.trailing_bytes > 0 {
            if !newest {
                return Err(StoreError::Corrupt(format!(
                    "journal segment {number} is damaged after {} records",
                    segment.records.len()
                )));
            }
            tracing::warn!(
                segment = number,
                ignored_bytes = segment.trailing_bytes,
                "the journal ends in an incomplete record (a write cut short by a crash); it was never acknowledged"
            );
        }
        for changes in &segment.records {
            apply(trees, changes)?;
        }
        replayed += segment.records.len();
    }
    if !segments.is_empty() {
        db.flush().map_err(|e| backend("sled flush after replay", e))?;
        let mut paths: Vec<PathBuf> = segments.iter().map(|(_, path)| path.clone()).collect();
        delete_in_order(dir, &mut paths, &RemoveSegment::from_disk())?;
        tracing::info!(records = replayed, segments = segments.len(), "replayed the storage journal");
    }
    Ok(segments.last().map_or(1, |(number, _)| number + 1))
}

fn apply<'c>(trees: &JournaledTrees, changes: impl IntoIterator<Item = &'c Change>) -> Result<(), StoreError> {
    for change in changes {
        apply_one(trees.tree(change.tree), &change.key, change.value.as_deref())?;
    }
    Ok(())
}

fn apply_layer(trees: &JournaledTrees, layer: &Layer) -> Result<(), StoreError> {
    for (tree, entries) in layer {
        let tree = trees.tree(*tree);
        for (key, value) in entries {
            apply_one(tree, key, value.as_deref())?;
        }
    }
    Ok(())
}

/// Sets or removes one key. Removing a key sled does not have writes
/// nothing (sled checks first).
fn apply_one(tree: &sled::Tree, key: &[u8], value: Option<&[u8]>) -> Result<(), StoreError> {
    match value {
        Some(value) => tree.insert(key, value).map(drop),
        None => tree.remove(key).map(drop),
    }
    .map_err(|e| backend("cannot apply a change to sled", e))
}

const SEGMENT_SUFFIX: &str = ".journal";

fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:020}{SEGMENT_SUFFIX}"))
}

/// The segments in `dir`, oldest first. Anything else in it is an error:
/// the directory is the journal's alone.
fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| backend("cannot list the journal directory", e))? {
        let path = entry.map_err(|e| backend("cannot list the journal directory", e))?.path();
        let number = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_suffix(SEGMENT_SUFFIX))
            .and_then(|number| number.parse::<u64>().ok())
            .ok_or_else(|| {
                StoreError::Corrupt(format!("unexpected file in the journal directory: {}", path.display()))
            })?;
        segments.push((number, path));
    }
    segments.sort_unstable();
    Ok(segments)
}

/// The segment being appended to.
#[derive(Debug)]
struct SegmentFile {
    dir: PathBuf,
    number: u64,
    file: File,
    len: u64,
    opened: Instant,
    limits: SegmentLimits,
}

impl SegmentFile {
    /// Creates segment `number` (mode 0600) and makes its name durable.
    fn create(dir: &Path, number: u64, limits: SegmentLimits) -> Result<Self, StoreError> {
        let mut options = OpenOptions::new();
        options.append(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(segment_path(dir, number)).map_err(|e| backend("cannot create a segment", e))?;
        sync_dir(dir)?;
        Ok(Self { dir: dir.to_path_buf(), number, file, len: 0, opened: Instant::now(), limits })
    }

    fn append(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.file.write_all(bytes).map_err(|e| backend("cannot append to a segment", e))?;
        self.file.sync_data().map_err(|e| backend("cannot sync a segment", e))?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    fn is_due_for_sealing(&self) -> bool {
        self.len >= self.limits.max_bytes || (self.len > 0 && self.opened.elapsed() >= self.limits.max_age)
    }

    /// Starts the next segment; returns it and this one's path.
    fn seal(self) -> Result<(Self, PathBuf), StoreError> {
        let next = Self::create(&self.dir, self.number + 1, self.limits)?;
        Ok((next, segment_path(&self.dir, self.number)))
    }
}

fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| backend("cannot create the journal directory", e))
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| backend("cannot sync the journal directory", e))
}

#[cfg(test)]
mod tests;
