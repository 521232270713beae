//! Group commit for sled: one thread calls the blocking `flush` for every
//! writer waiting at that moment.
//!
//! sled 0.34.7's `flush_async` never completes when several callers await it
//! at once (sled issues #1241, #1308, #1357), and a blocking flush per write
//! would cap durable writes at the disk's sync rate. Instead a writer, after
//! its write, queues a waiter; the flusher thread takes every queued waiter,
//! flushes once, and releases them all. A waiter queued after its write is
//! therefore released only by a flush that began after that write.

use std::sync::{Arc, Mutex, mpsc};
use std::thread;

use tokio::sync::oneshot;

use super::StoreError;

type Waiter = oneshot::Sender<Result<(), String>>;

/// Handle to the flusher thread; the thread ends when the last handle goes.
#[derive(Debug, Clone)]
pub struct GroupFlusher {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    queue: Mutex<Option<mpsc::Sender<Waiter>>>,
    thread: Mutex<Option<thread::JoinHandle<()>>>,
}

impl Drop for Inner {
    /// Closes the queue and waits for the thread, so the database handle it
    /// holds is released when the store is, and the files can be reopened.
    fn drop(&mut self) {
        if let Ok(mut queue) = self.queue.lock() {
            queue.take();
        }
        if let Some(thread) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = thread.join();
        }
    }
}

impl GroupFlusher {
    /// Starts the flusher thread for `db`.
    ///
    /// # Errors
    /// If the thread cannot be spawned.
    pub fn start(db: sled::Db) -> Result<Self, StoreError> {
        let (queue, waiters) = mpsc::channel::<Waiter>();
        let thread = thread::Builder::new()
            .name("tessera-flush".into())
            .spawn(move || run(&db, &waiters))
            .map_err(|e| StoreError::backend("cannot start the flusher thread", e))?;
        Ok(Self { inner: Arc::new(Inner { queue: Mutex::new(Some(queue)), thread: Mutex::new(Some(thread)) }) })
    }

    /// Waits until everything written before this call is on disk.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if the flush fails or the thread is gone.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let (waiter, done) = oneshot::channel();
        let stopped = || StoreError::internal("flusher", "the flusher thread has stopped");
        // The lock is held only to clone the sender; a std mutex is enough.
        let queue = self.inner.queue.lock().ok().and_then(|q| q.clone()).ok_or_else(stopped)?;
        queue.send(waiter).map_err(|_| stopped())?;
        match done.await {
            Ok(result) => result.map_err(|e| StoreError::internal("sled flush", e)),
            Err(_) => Err(stopped()),
        }
    }
}

fn run(db: &sled::Db, waiters: &mpsc::Receiver<Waiter>) {
    while let Ok(first) = waiters.recv() {
        let mut batch = vec![first];
        batch.extend(waiters.try_iter());
        let result = db.flush().map(|_| ()).map_err(|e| format!("flush failed: {e}"));
        for waiter in batch {
            // A waiter whose request was cancelled has dropped its receiver.
            let _ = waiter.send(result.clone());
        }
    }
}
