//! The binaries as child processes: [`Server`] (killed when dropped, its
//! output drained by threads and kept whole), [`ServerBuilder`], the admin
//! CLI, and [`run_to_exit`] for processes that must end on their own.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tessera_shared::admin::ClientCredentials;

use super::{EXIT_TIMEOUT, START_TIMEOUT};

/// The path of a workspace binary, next to this test executable
/// (`target/<profile>/deps/e2e-HASH` → `target/<profile>/NAME`).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable knows its own path");
    let dir = exe.parent().and_then(Path::parent).expect("the test executable lives in target/<profile>/deps");
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "the binary {name} is missing at {}: build it first with `cargo build -p {name}` \
         (`cargo test --workspace` builds it too)",
        path.display()
    );
    path
}

/// Waits a little; the only sleep of the suite, used by bounded polls and by
/// the few tests that must let a server-side TTL run out.
#[allow(clippy::disallowed_methods, reason = "a poll between checks on another process")]
pub fn pause(duration: Duration) {
    std::thread::sleep(duration);
}

/// Seconds since the Unix epoch, to compare `iat` with.
#[allow(clippy::disallowed_methods, reason = "the test compares the server's clock with its own")]
pub fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("the clock is after 1970").as_secs()
}

/// A temporary directory with mode 0700, as the server demands of its data
/// dir (`tempfile::tempdir` follows the umask, usually giving 0755).
pub fn private_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt as _;
    tempfile::Builder::new()
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()
        .expect("a private temporary directory")
}

/// A `Command` for one of the binaries with no inherited `TESSERA_*` or
/// proxy variables, so the caller's environment cannot change a test.
fn clean_command(program: &Path) -> Command {
    let mut cmd = Command::new(program);
    for (key, _) in std::env::vars_os() {
        let key_str = key.to_string_lossy();
        if key_str.starts_with("TESSERA_") || key_str.to_ascii_lowercase().ends_with("_proxy") {
            cmd.env_remove(&key);
        }
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}

/// Copies everything `from` yields into `into`; the first line is also sent
/// to `first_line`.
fn drain(
    from: impl Read + Send + 'static,
    into: Arc<Mutex<Vec<u8>>>,
    mut first_line: Option<mpsc::Sender<String>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(from);
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    into.lock().expect("output buffer").extend_from_slice(&line);
                    if let Some(tx) = first_line.take() {
                        let _ = tx.send(String::from_utf8_lossy(&line).into_owned());
                    }
                }
            }
        }
    })
}

fn lossy(buf: &Arc<Mutex<Vec<u8>>>) -> String {
    String::from_utf8_lossy(&buf.lock().expect("output buffer")).into_owned()
}

/// A process that ran to its end.
#[derive(Debug)]
pub struct Finished {
    /// How it ended.
    pub status: ExitStatus,
    /// Everything it printed to stdout.
    pub stdout: String,
    /// Everything it printed to stderr.
    pub stderr: String,
}

impl Finished {
    /// The non-empty lines of stderr.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr.lines().filter(|l| !l.trim().is_empty()).collect()
    }
}

/// Waits for `child` to exit; after `timeout` kills it and fails the test
/// with the message `failure` gives.
fn wait_or_kill(child: &mut Child, timeout: Duration, failure: impl FnOnce() -> String) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{}", failure());
        }
        pause(Duration::from_millis(20));
    }
}

/// Runs `cmd` to its end, killing it and failing the test after `timeout`.
pub fn run_to_exit(mut cmd: Command, timeout: Duration, what: &str) -> Finished {
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let stdout = Arc::new(Mutex::new(Vec::new()));
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let readers = [
        drain(child.stdout.take().expect("piped stdout"), Arc::clone(&stdout), None),
        drain(child.stderr.take().expect("piped stderr"), Arc::clone(&stderr), None),
    ];
    let status = wait_or_kill(&mut child, timeout, || {
        format!("{what} did not exit within {timeout:?}\nstdout: {}\nstderr: {}", lossy(&stdout), lossy(&stderr))
    });
    for reader in readers {
        let _ = reader.join();
    }
    Finished { status, stdout: lossy(&stdout), stderr: lossy(&stderr) }
}

/// How to start a `tessera-server`.
#[derive(Debug, Default)]
pub struct ServerBuilder {
    args: Vec<String>,
    envs: Vec<(String, String)>,
    data_dir: Option<PathBuf>,
    no_listen_flag: bool,
}

impl ServerBuilder {
    /// Adds command-line arguments (after `--data-dir` and `--listen`).
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }

    /// Sets an environment variable of the server.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.envs.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Uses this data dir (owned by the test, for restarts) instead of a
    /// fresh temporary one.
    pub fn data_dir(mut self, dir: &Path) -> Self {
        self.data_dir = Some(dir.to_owned());
        self
    }

    /// Leaves out `--listen 127.0.0.1:0`, for tests that set it otherwise
    /// (config file, environment).
    pub fn without_listen_flag(mut self) -> Self {
        self.no_listen_flag = true;
        self
    }

    fn command(&self, data_dir: &Path) -> Command {
        let mut cmd = clean_command(&binary("tessera-server"));
        cmd.arg("--data-dir").arg(data_dir);
        if !self.no_listen_flag {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        cmd.args(&self.args);
        for (key, value) in &self.envs {
            cmd.env(key, value);
        }
        cmd
    }

    /// Starts the server and waits for its `listening on` line.
    pub fn start(self) -> Server {
        let (tmp, dir) = match &self.data_dir {
            Some(dir) => (None, dir.clone()),
            None => {
                let tmp = private_tempdir();
                let dir = tmp.path().to_owned();
                (Some(tmp), dir)
            }
        };
        let mut child = self.command(&dir).spawn().unwrap_or_else(|e| panic!("cannot start tessera-server: {e}"));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let readers = vec![
            drain(child.stdout.take().expect("piped stdout"), Arc::clone(&stdout), Some(tx)),
            drain(child.stderr.take().expect("piped stderr"), Arc::clone(&stderr), None),
        ];
        let mut server = Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            base: String::new(),
            data_dir: dir,
            _tmp: tmp,
            stdout,
            stderr,
            readers,
            exited: None,
        };
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                "tessera-server printed no `listening on` line within {START_TIMEOUT:?} (args {:?}); stderr so far:\n{}",
                self.args,
                server.stderr_now()
            ),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = server.wait_exit(EXIT_TIMEOUT);
                let (_, stderr) = server.output();
                panic!("tessera-server exited ({status}) before listening (args {:?}); stderr:\n{stderr}", self.args);
            }
        };
        let trimmed = line.trim_end_matches(['\r', '\n']);
        let rest = trimmed.strip_prefix("listening on ");
        let (scheme, addr) = match rest.and_then(|r| r.split_once("://")) {
            Some((scheme @ ("http" | "https"), addr)) => (scheme, addr.parse::<SocketAddr>().ok()),
            _ => ("", None),
        };
        let addr =
            addr.unwrap_or_else(|| panic!("the first stdout line is {line:?}, not `listening on http(s)://ADDR`"));
        assert_eq!(trimmed, format!("listening on {scheme}://{addr}"), "the listening line is exact");
        assert!(addr.ip().is_loopback() && addr.port() != 0, "bound to {addr}");
        server.addr = addr;
        server.base = format!("{scheme}://{addr}");
        server
    }

    /// Runs a server that must fail: it has to exit on its own within
    /// [`EXIT_TIMEOUT`].
    pub fn run_expecting_exit(self) -> Finished {
        let tmp;
        let dir = match &self.data_dir {
            Some(dir) => dir.clone(),
            None => {
                tmp = private_tempdir();
                tmp.path().to_owned()
            }
        };
        run_to_exit(self.command(&dir), EXIT_TIMEOUT, "tessera-server (expected to fail)")
    }
}

/// A running `tessera-server`; killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct Server {
    child: Child,
    /// The address it printed.
    pub addr: SocketAddr,
    /// `http://ADDR`, which is also the default issuer.
    pub base: String,
    data_dir: PathBuf,
    /// Keeps a temporary data dir alive as long as the server.
    _tmp: Option<tempfile::TempDir>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
    exited: Option<ExitStatus>,
}

impl Server {
    /// A server on a fresh temporary data dir with these extra arguments.
    pub fn start(args: &[&str]) -> Self {
        Self::builder().args(args).start()
    }

    /// A builder for anything else.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// The data dir.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// `http://ADDR` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it wrote to stderr so far.
    pub fn stderr_now(&self) -> String {
        lossy(&self.stderr)
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        if self.exited.is_some() {
            return false;
        }
        match self.child.try_wait().expect("try_wait") {
            Some(status) => {
                self.exited = Some(status);
                false
            }
            None => true,
        }
    }

    /// Sends a signal with the `kill` command (`TERM`, `INT`).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("the kill command runs");
        assert!(status.success(), "kill -{signal} {} failed: {status}", self.pid());
    }

    /// Waits for the process to exit; fails the test after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(status) = self.exited {
            return status;
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.exited = Some(status);
                return status;
            }
            assert!(
                Instant::now() <= deadline,
                "tessera-server (pid {}) did not exit within {timeout:?}; stderr so far:\n{}",
                self.pid(),
                self.stderr_now()
            );
            pause(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then waits for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal("TERM");
        self.wait_exit(EXIT_TIMEOUT)
    }

    /// SIGKILL (`kill -9`), then reaps the process.
    pub fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL the server");
        let status = self.child.wait().expect("reap the server");
        self.exited = Some(status);
    }

    /// Everything the exited process wrote: (stdout, stderr).
    pub fn output(&mut self) -> (String, String) {
        assert!(self.exited.is_some(), "output() is complete only once the server has exited");
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        (lossy(&self.stdout), lossy(&self.stderr))
    }

    // -- the admin CLI ------------------------------------------------------

    /// Runs `tessera-admin --data-dir DIR ARGS...`.
    pub fn admin(&self, args: &[&str]) -> Finished {
        admin_in(&self.data_dir, args)
    }

    /// Runs an admin command that must succeed; returns its stdout.
    pub fn admin_ok(&self, args: &[&str]) -> String {
        let out = self.admin(args);
        assert!(
            out.status.success(),
            "tessera-admin {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            out.stdout,
            out.stderr
        );
        out.stdout
    }

    /// Runs an admin command with `--json` and parses its stdout.
    pub fn admin_json<T: serde::de::DeserializeOwned>(&self, args: &[&str]) -> T {
        let stdout = self.admin_ok(args);
        serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("tessera-admin {args:?} printed no expected JSON ({e}):\n{stdout}"))
    }

    /// `clients create --name NAME --scope S... --json`.
    pub fn create_client(&self, name: &str, scopes: &[&str]) -> ClientCredentials {
        self.create_client_with(name, scopes, false)
    }

    /// `clients create --name NAME --no-refresh --json`.
    pub fn create_client_without_refresh(&self, name: &str) -> ClientCredentials {
        self.create_client_with(name, &[], true)
    }

    fn create_client_with(&self, name: &str, scopes: &[&str], no_refresh: bool) -> ClientCredentials {
        let mut args = vec!["clients", "create", "--name", name];
        for scope in scopes {
            args.extend(["--scope", scope]);
        }
        if no_refresh {
            args.push("--no-refresh");
        }
        args.push("--json");
        let creds: ClientCredentials = self.admin_json(&args);
        assert!(tessera_shared::ids::is_client_id(&creds.client_id), "client ID shape: {:?}", creds.client_id);
        assert_eq!(creds.client_secret.len(), 40, "secret length");
        assert!(tessera_shared::ids::is_url_safe(&creds.client_secret), "secret alphabet");
        assert_eq!(creds.refresh_tokens, !no_refresh, "refresh_tokens in the create output");
        creds
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `tessera-admin --data-dir DIR ARGS...` (the server may be down).
pub fn admin_in(data_dir: &Path, args: &[&str]) -> Finished {
    let mut cmd = clean_command(&binary("tessera-admin"));
    cmd.arg("--data-dir").arg(data_dir).args(args);
    run_to_exit(cmd, EXIT_TIMEOUT, &format!("tessera-admin {args:?}"))
}

/// Waits for an already started child to exit; kills it and fails the test
/// after `timeout`. Returns its status and stderr.
pub fn run_to_exit_child(mut child: Child, timeout: Duration) -> (ExitStatus, String) {
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let reader = child.stderr.take().map(|err| drain(err, Arc::clone(&stderr), None));
    let status = wait_or_kill(&mut child, timeout, || {
        format!("the process did not exit within {timeout:?}; stderr: {}", lossy(&stderr))
    });
    if let Some(reader) = reader {
        let _ = reader.join();
    }
    (status, lossy(&stderr))
}

/// Runs `tessera-server ARGS... --data-dir DIR` to its end (a subcommand
/// such as `export-jwks`), with these extra environment variables.
pub fn server_subcommand(data_dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Finished {
    let mut cmd = clean_command(&binary("tessera-server"));
    cmd.args(args).arg("--data-dir").arg(data_dir);
    for (key, value) in envs {
        cmd.env(key, value);
    }
    run_to_exit(cmd, EXIT_TIMEOUT, &format!("tessera-server {args:?}"))
}
