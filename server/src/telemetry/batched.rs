//! A stderr writer for the access log that batches lines.
//!
//! Writing each access-log line with its own `write(2)` cost about a tenth
//! of a core's token throughput. Access lines are instead appended to a
//! shared buffer, written out when it passes [`FLUSH_BYTES`] or by a
//! background thread at least every [`FLUSH_EVERY`], and on shutdown when
//! the [`FlushGuard`] drops. Every other line (warnings, errors, start-up)
//! is written at once, so nothing that matters waits; an access line can
//! appear up to [`FLUSH_EVERY`] late, and a `kill -9` loses at most that
//! much of the access log.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use tracing::Metadata;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::writer::EitherWriter;

/// The target whose lines are batched.
pub const BATCHED_TARGET: &str = "tessera::access";

/// A buffer this full is written out by the request that filled it.
const FLUSH_BYTES: usize = 64 * 1024;

/// The longest an access line waits in the buffer.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Shared between the writers, the flush thread and the guard.
#[derive(Debug, Default)]
struct Batch {
    lines: Mutex<Buffer>,
    /// Wakes the flush thread early to stop.
    stop: Condvar,
}

#[derive(Debug, Default)]
struct Buffer {
    bytes: Vec<u8>,
    stopping: bool,
}

impl Batch {
    fn append(&self, line: &[u8]) {
        let full = match self.lines.lock() {
            Ok(mut buffer) => {
                buffer.bytes.extend_from_slice(line);
                (buffer.bytes.len() >= FLUSH_BYTES).then(|| std::mem::take(&mut buffer.bytes))
            }
            // A poisoned buffer: write the line through rather than lose it.
            Err(_) => Some(line.to_vec()),
        };
        if let Some(bytes) = full {
            write_out(&bytes);
        }
    }

    fn flush(&self) {
        let bytes = self.lines.lock().map(|mut buffer| std::mem::take(&mut buffer.bytes)).unwrap_or_default();
        write_out(&bytes);
    }
}

fn write_out(bytes: &[u8]) {
    if !bytes.is_empty() {
        // Nowhere to report a failure to write the log.
        let _ = io::stderr().lock().write_all(bytes);
    }
}

/// Makes stderr writers: batched for [`BATCHED_TARGET`], direct otherwise.
#[derive(Debug, Clone)]
pub struct BatchedStderr {
    batch: Arc<Batch>,
}

/// Writes what is batched when dropped, and stops the flush thread.
#[derive(Debug)]
pub struct FlushGuard {
    batch: Arc<Batch>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        if let Ok(mut buffer) = self.batch.lines.lock() {
            buffer.stopping = true;
        }
        self.batch.stop.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.batch.flush();
    }
}

/// The writer maker and the guard that flushes it. Without a flush thread
/// (it could not be started) lines are written at once.
#[must_use]
pub fn batched_stderr() -> (BatchedStderr, FlushGuard) {
    let batch = Arc::new(Batch::default());
    let flusher = Arc::clone(&batch);
    let thread = thread::Builder::new().name("tessera-log".into()).spawn(move || flush_loop(&flusher)).ok();
    (BatchedStderr { batch: Arc::clone(&batch) }, FlushGuard { batch, thread })
}

fn flush_loop(batch: &Batch) {
    loop {
        let bytes = {
            let Ok(buffer) = batch.lines.lock() else { return };
            let Ok((mut buffer, _)) = batch.stop.wait_timeout_while(buffer, FLUSH_EVERY, |b| !b.stopping) else {
                return;
            };
            if buffer.stopping {
                return;
            }
            std::mem::take(&mut buffer.bytes)
        };
        write_out(&bytes);
    }
}

/// One event's bytes on their way into the batch.
#[derive(Debug)]
pub struct BatchWriter<'a> {
    batch: &'a Batch,
}

impl Write for BatchWriter<'_> {
    /// The formatter writes each event with one `write_all`, so a line is
    /// appended whole.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.batch.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchedStderr {
    type Writer = EitherWriter<BatchWriter<'a>, io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        EitherWriter::B(io::stderr())
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        if meta.target() == BATCHED_TARGET {
            EitherWriter::A(BatchWriter { batch: &self.batch })
        } else {
            EitherWriter::B(io::stderr())
        }
    }
}
