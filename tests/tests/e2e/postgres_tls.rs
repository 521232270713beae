//! TLS to PostgreSQL (issue 14), on a throw-away cluster of its own
//! started with `ssl=on`, a CA and a server certificate made here with
//! rcgen, and a `pg_hba.conf` that takes TCP connections over TLS only.
//!
//! Needs PostgreSQL's server programs (`initdb`, `pg_ctl`): from `PG_BIN`
//! (set by `.ci/postgres`) or `/usr/lib/postgresql/*/bin`. As root the
//! cluster runs as the `postgres` user (`.ci/postgres` creates it), as
//! PostgreSQL refuses to run as root. Without them the test is skipped,
//! or fails under `TESSERA_REQUIRE_POSTGRES=1` (`.ci/run`).

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

use crate::util::{Requirement, Server, TokenCall, expect_token, skip_or_fail};

/// A CA: its certificate (PEM) and what signs with it.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().expect("a CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ca { cert: params.self_signed(&key).expect("a CA certificate"), key }
}

/// A server certificate for 127.0.0.1 only (not `localhost`), signed by `ca`:
/// (certificate PEM, key PEM).
fn server_certificate(ca: &Ca) -> (String, String) {
    let key = KeyPair::generate().expect("a server key");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("server parameters");
    params.distinguished_name.push(DnType::CommonName, "tessera test database");
    let cert = params.signed_by(&key, &ca.cert, &ca.key).expect("a server certificate");
    (cert.pem(), key.serialize_pem())
}

fn bin_dir() -> Option<PathBuf> {
    let has_tools = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("PG_BIN").map(PathBuf::from)
        && has_tools(&dir)
    {
        return Some(dir);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|dir| has_tools(dir))
        .collect();
    found.sort();
    found.pop()
}

fn output(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A running cluster; stopped and removed when dropped.
struct TlsCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// `Some(uid)` of `postgres` when the tests run as root.
    run_as: Option<u32>,
    port: u16,
}

impl TlsCluster {
    /// Starts a cluster serving `cert`/`key`, or `None` (skipped) without
    /// PostgreSQL's programs.
    fn start(cert: &str, key: &str) -> Option<Self> {
        let Some(bin) = bin_dir() else {
            skip_or_fail(
                Requirement::Postgres,
                "the PostgreSQL TLS test",
                "no initdb/pg_ctl (PG_BIN, /usr/lib/postgresql)",
            );
            return None;
        };
        let root = output(Command::new("id").arg("-u")) == "0";
        let run_as = if root {
            let Ok(uid) = Command::new("id").args(["-u", "postgres"]).output() else { return None };
            if !uid.status.success() {
                skip_or_fail(
                    Requirement::Postgres,
                    "the PostgreSQL TLS test",
                    "running as root without a postgres user",
                );
                return None;
            }
            Some(String::from_utf8_lossy(&uid.stdout).trim().parse::<u32>().expect("a uid"))
        } else {
            None
        };
        let dir = tempfile::Builder::new().prefix("tessera-pg-tls.").tempdir().expect("a temporary directory");
        let cluster = Self { dir, bin, run_as, port: 0 };
        std::fs::write(cluster.path("server.crt"), cert).expect("write the certificate");
        std::fs::write(cluster.path("server.key"), key).expect("write the key");
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(cluster.path("server.key"), std::fs::Permissions::from_mode(0o600)).expect("chmod");
        if let Some(uid) = run_as {
            for name in ["", "server.crt", "server.key"] {
                std::os::unix::fs::chown(cluster.path(name), Some(uid), None).expect("chown to postgres");
            }
        }
        let data = cluster.path("data");
        output(
            cluster
                .as_db_user(&cluster.bin.join("initdb"))
                .args(["-U", "tessera", "--auth=trust", "-E", "UTF8", "--no-locale", "-D"])
                .arg(&data),
        );
        // TCP only over TLS; the test's own connection uses the socket.
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\n\
             hostssl all all 127.0.0.1/32 trust\n\
             hostnossl all all 127.0.0.1/32 reject\n",
        )
        .expect("write pg_hba.conf");
        let mut cluster = cluster;
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
            let options = format!(
                "-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={dir} -c ssl=on \
                 -c ssl_cert_file={dir}/server.crt -c ssl_key_file={dir}/server.key -c fsync=off",
                dir = cluster.dir.path().display()
            );
            let status = cluster
                .as_db_user(&cluster.bin.join("pg_ctl"))
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(cluster.path("server.log"))
                .args(["-w", "-t", "60", "-o", &options, "start"])
                .output()
                .expect("pg_ctl");
            if status.status.success() {
                cluster.port = port;
                return Some(cluster);
            }
        }
        panic!(
            "the TLS cluster did not start: {}",
            std::fs::read_to_string(cluster.path("server.log")).unwrap_or_default()
        );
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn as_db_user(&self, program: &Path) -> Command {
        match self.run_as {
            Some(_) => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", "postgres", "--"]).arg(program);
                cmd
            }
            None => Command::new(program),
        }
    }

    /// A TCP URL on 127.0.0.1 (or `host`) with these query parameters.
    fn url(&self, host: &str, params: &str) -> String {
        format!("postgres://tessera@{host}:{}/postgres?{params}", self.port)
    }

    /// Whether every connection named `name` (and there is one at least) is encrypted.
    async fn all_encrypted(&self, name: &str) -> (i64, bool) {
        let socket = format!("host={} port={} user=tessera dbname=postgres", self.dir.path().display(), self.port);
        let (db, connection) =
            tokio_postgres::connect(&socket, tokio_postgres::NoTls).await.expect("socket connection");
        let connection = tokio::spawn(connection);
        let row = db
            .query_one(
                "SELECT count(*), COALESCE(bool_and(s.ssl), false) FROM pg_stat_ssl s JOIN pg_stat_activity a \
                 USING (pid) WHERE a.application_name LIKE $1",
                &[&format!("{name}%")],
            )
            .await
            .expect("pg_stat_ssl");
        drop(db);
        let _ = connection.await;
        (row.get(0), row.get(1))
    }
}

impl Drop for TlsCluster {
    fn drop(&mut self) {
        if self.port != 0 {
            let _ = self
                .as_db_user(&self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.path("data"))
                .args(["-m", "immediate", "-w", "stop"])
                .output();
        }
    }
}

/// A server on `url` starts and issues a token; its connections (the
/// pool's and the listener's) are all encrypted.
async fn works_encrypted(cluster: &TlsCluster, url: &str, name: &str) {
    let server = Server::start(&["--storage", url]);
    let client = server.create_client("tls", &[]);
    expect_token(&TokenCall::new().basic_creds(&client).q("grant_type", "client_credentials").send(&server).await, url);
    let (count, encrypted) = cluster.all_encrypted(name).await;
    assert!(count >= 1 && encrypted, "{name}: {count} connections, all encrypted: {encrypted}");
}

/// A server on `url` does not start; the last line of its stderr, which
/// says why, contains `expected`.
fn refused(url: &str, expected: &str) -> String {
    let out = Server::builder().args(&["--storage", url]).run_expecting_exit();
    assert!(!out.status.success(), "started with {url}");
    let last = out.stderr.lines().last().unwrap_or_default().to_owned();
    assert!(last.starts_with("tessera-server: ") && last.contains(expected), "{url}: {}", out.stderr);
    last
}

#[tokio::test]
async fn tls_to_postgres_follows_sslmode_and_sslrootcert() {
    let authority = ca("tessera test CA");
    let (cert, key) = server_certificate(&authority);
    let Some(cluster) = TlsCluster::start(&cert, &key) else { return };
    let ca_file = cluster.path("ca.pem");
    std::fs::write(&ca_file, authority.cert.pem()).expect("write the CA");
    let wrong_ca_file = cluster.path("wrong-ca.pem");
    std::fs::write(&wrong_ca_file, ca("someone else's CA").cert.pem()).expect("write the other CA");
    let (ca_file, wrong_ca_file) = (ca_file.display().to_string(), wrong_ca_file.display().to_string());

    // verify-full: the chain and the name (127.0.0.1) check out.
    let url = cluster.url("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={ca_file}&application_name=tls_full"));
    works_encrypted(&cluster, &url, "tls_full").await;
    // require: encrypted, certificate unchecked.
    works_encrypted(&cluster, &cluster.url("127.0.0.1", "sslmode=require&application_name=tls_require"), "tls_require")
        .await;
    // verify-ca checks the chain only: `localhost` is not in the certificate.
    let url = cluster.url("localhost", &format!("sslmode=verify-ca&sslrootcert={ca_file}&application_name=tls_ca"));
    works_encrypted(&cluster, &url, "tls_ca").await;

    // verify-full to a name the certificate does not hold: refused.
    let url = cluster.url("localhost", &format!("sslmode=verify-full&sslrootcert={ca_file}"));
    refused(&url, "the PostgreSQL server's certificate failed verification (sslmode=verify-full");
    // A certificate from a CA not trusted: refused, in one line.
    let url = cluster.url("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={wrong_ca_file}"));
    let line = refused(&url, "the PostgreSQL server's certificate failed verification");
    let _ = writeln!(std::io::stderr(), "a wrong CA stops the start with: {line}");
    assert!(line.contains(&wrong_ca_file) && line.contains("UnknownIssuer"), "{line}");
    // Plaintext: pg_hba.conf refuses it.
    refused(&cluster.url("127.0.0.1", "sslmode=disable"), "no encryption");
}
