//! The server under test: a `tessera-server` process pinned to one core on
//! a fresh data dir, and the admin CLI to create its clients.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine as _;

/// A running server, killed when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    data_dir: tempfile::TempDir,
    /// The server's stderr (its log), outside the data dir so it does not
    /// count in its size.
    log: tempfile::NamedTempFile,
}

impl ServerProcess {
    /// Starts `bin` pinned to `core` with `args` after the data dir and listen address.
    ///
    /// # Errors
    /// If it does not start or never prints its `listening on` line.
    pub fn start(bin: &Path, core: usize, args: &[String]) -> Result<Self, String> {
        // 0700: the server refuses a data dir other users can reach.
        let data_dir = tempfile::Builder::new()
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir()
            .map_err(|e| e.to_string())?;
        let log = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
        let log_writer = log.reopen().map_err(|e| e.to_string())?;
        let mut child = Command::new("taskset")
            .arg("-c")
            .arg(core.to_string())
            .arg(bin)
            .arg("--data-dir")
            .arg(data_dir.path())
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(log_writer)
            .spawn()
            .map_err(|e| format!("cannot start {} under taskset: {e}", bin.display()))?;
        let addr = read_listening(&mut child)?;
        Ok(Self { child, addr, data_dir, log })
    }

    /// Creates a client and returns its `Basic ...` header value.
    ///
    /// # Errors
    /// If the admin CLI fails.
    pub fn create_client(&self, admin: &Path, refresh: bool) -> Result<String, String> {
        let mut command = Command::new(admin);
        command.arg("--data-dir").arg(self.data_dir.path()).args(["clients", "create", "--name", "bench", "--json"]);
        if !refresh {
            command.arg("--no-refresh");
        }
        let output = command.output().map_err(|e| e.to_string())?;
        if !output.status.success() {
            return Err(format!("clients create failed: {}", String::from_utf8_lossy(&output.stderr)));
        }
        let created: serde_json::Value = serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())?;
        let id = created["client_id"].as_str().ok_or("no client_id")?;
        let secret = created["client_secret"].as_str().ok_or("no client_secret")?;
        Ok(basic(id, secret))
    }

    /// Peak resident memory so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Resident memory now (VmRSS), in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Bytes the refresh-token journal (`db.journal/` in the data dir)
    /// takes on disk: records synced but not yet checkpointed.
    pub fn journal_size(&self) -> u64 {
        dir_size(&self.data_dir.path().join("db.journal"))
    }

    /// Bytes the data dir takes on disk.
    pub fn data_size(&self) -> u64 {
        dir_size(self.data_dir.path())
    }

    /// Starts sampling the data dir's size every [`SAMPLE_EVERY`] until the
    /// returned sampler is stopped: the size at the end of a run can miss
    /// what the journal held mid-run.
    pub fn sample_data_size(&self) -> SizeSampler {
        SizeSampler::start(self.data_dir.path().to_path_buf())
    }

    /// Refresh-token families the server has purged so far, from its log
    /// lines (`purged dead refresh-token families families=N ...`); each
    /// client_credentials grant of the storage measurement starts one.
    pub fn purged_families(&self) -> u64 {
        let log = std::fs::read_to_string(self.log.path()).unwrap_or_default();
        log.lines()
            .filter(|line| line.contains("purged dead refresh-token families"))
            .filter_map(|line| line.split_whitespace().find_map(|word| word.strip_prefix("families=")))
            .filter_map(|count| count.parse::<u64>().ok())
            .sum()
    }

    /// Stops the server as an operator would (SIGTERM: it flushes and
    /// exits 0), waiting up to `timeout`; the data dir stays.
    ///
    /// # Errors
    /// If the signal cannot be sent, or the server fails or outlasts `timeout`.
    pub fn terminate(&mut self, runtime: &tokio::runtime::Runtime, timeout: Duration) -> Result<(), String> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .map_err(|e| format!("cannot run kill: {e}"))?;
        if !sent.success() {
            return Err(format!("kill -TERM {} failed: {sent}", self.child.id()));
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return if status.success() { Ok(()) } else { Err(format!("the server exited with {status}")) };
            }
            if Instant::now() > deadline {
                return Err(format!("the server did not stop within {timeout:?} of SIGTERM"));
            }
            runtime.block_on(async { tokio::time::sleep(Duration::from_millis(50)).await });
        }
    }

    /// Runs `tessera-server compact` on the (stopped) server's data dir and
    /// returns its report line.
    ///
    /// # Errors
    /// If the command fails.
    pub fn compact(&self, bin: &Path) -> Result<String, String> {
        let output = Command::new(bin)
            .arg("compact")
            .arg("--data-dir")
            .arg(self.data_dir.path())
            .output()
            .map_err(|e| format!("cannot run {} compact: {e}", bin.display()))?;
        if !output.status.success() {
            return Err(format!("compact failed: {}", String::from_utf8_lossy(&output.stderr).trim()));
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The bare reference server (`tessera-bench reference`, see
/// [`crate::reference`]) pinned to one core, killed when dropped.
#[derive(Debug)]
pub struct ReferenceProcess {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl ReferenceProcess {
    /// Starts this binary's `reference` subcommand pinned to `core`;
    /// `sign` chooses a fresh signature per request over a pre-signed token.
    ///
    /// # Errors
    /// If it does not start or never prints its `listening on` line.
    pub fn start(core: usize, sign: bool) -> Result<Self, String> {
        let me = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut command = Command::new("taskset");
        command.arg("-c").arg(core.to_string()).arg(me).arg("reference");
        if !sign {
            command.arg("--no-sign");
        }
        let mut child = command
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the reference server under taskset: {e}"))?;
        match read_listening(&mut child) {
            Ok(addr) => Ok(Self { child, addr }),
            Err(error) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(error)
            }
        }
    }
}

impl Drop for ReferenceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for a server's first stdout line and returns the address in it.
fn read_listening(child: &mut Child) -> Result<SocketAddr, String> {
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).map_err(|e| e.to_string())?;
    listening_addr(&line).ok_or_else(|| format!("unexpected first line from the server: {line:?}"))
}

/// The address in a `listening on http://ADDR` line.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    line.trim().strip_prefix("listening on http://")?.parse().ok()
}

/// The `Authorization` value for these credentials.
pub fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}")))
}

/// How often [`SizeSampler`] measures.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// A thread measuring a directory's size until stopped, keeping the largest.
#[derive(Debug)]
pub struct SizeSampler {
    /// Dropping or sending on it stops the thread.
    stop: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<u64>,
}

impl SizeSampler {
    fn start(path: PathBuf) -> Self {
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut peak = dir_size(&path);
            // Measures every SAMPLE_EVERY until told to stop.
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(SAMPLE_EVERY) {
                peak = peak.max(dir_size(&path));
            }
            peak.max(dir_size(&path))
        });
        Self { stop, thread }
    }

    /// Stops sampling and returns the largest size seen, in bytes.
    pub fn peak(self) -> u64 {
        let _ = self.stop.send(());
        self.thread.join().unwrap_or(0)
    }
}

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_size(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

/// A binary next to this one (all are built into the same target dir).
///
/// # Errors
/// If it is not there.
pub fn sibling_binary(name: &str) -> Result<PathBuf, String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let path = me.with_file_name(name);
    if path.exists() {
        Ok(path)
    } else {
        Err(format!("{} not found: build it with cargo build --release -p {name}", path.display()))
    }
}

#[cfg(test)]
mod tests;
