//! The `tessera-server` binary: parse arguments, set up logging and
//! signals, run the server.

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser as _;
use tessera_server::config::{Cli, Config, ServerCommand};
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    // Before anything is created: every file 0600, every directory 0700.
    tessera_server::datadir::private_umask();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(&error),
    };
    let command = cli.command.clone();
    let config = match Config::load(cli) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("tessera-server: {error}");
            return ExitCode::from(2);
        }
    };
    // Dropped on every return below, writing out the batched access lines.
    let _log = tessera_server::telemetry::init(config.log_format, config.log_dependencies);
    let args: Vec<String> = std::env::args().collect();
    for option in tessera_server::config::passwords_on_command_line(&args) {
        tracing::warn!(
            option,
            "a database password was given on the command line, where every local user can read it \
             (ps, /proc/PID/cmdline); use the environment or a file instead (TESSERA_STORAGE or \
             --storage-file; TESSERA_MIGRATE_TO or --to-file)"
        );
    }
    let scheme = if config.tls.is_some() { "https" } else { "http" };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tessera-server: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match command {
        Some(ServerCommand::ExportJwks) => return export_jwks(&runtime, &config),
        Some(ServerCommand::MigrateStorage { from, to, to_file }) => {
            let to = match (to, to_file) {
                (Some(to), _) => to,
                (None, Some(path)) => match tessera_server::config::read_secret_file("--to-file", &path) {
                    Ok(to) => to,
                    Err(error) => {
                        eprintln!("tessera-server: migrate-storage: {error}");
                        return ExitCode::from(2);
                    }
                },
                (None, None) => {
                    eprintln!("tessera-server: migrate-storage: give --to, --to-file or TESSERA_MIGRATE_TO");
                    return ExitCode::from(2);
                }
            };
            return migrate_storage(&runtime, &from, &to);
        }
        Some(ServerCommand::Compact) => return compact(&config),
        None => {}
    }
    let result = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        // Registered here, before the server can report ready, so a signal
        // sent right after `listening on` is never met by the default action.
        match shutdown_signals() {
            Some(signals) => drop(tokio::spawn(cancel_on_signal(signals, shutdown.clone()))),
            None => tracing::error!("cannot install signal handlers; stop the server with SIGKILL"),
        }
        tessera_server::run(config, shutdown, |addr| {
            let mut stdout = std::io::stdout().lock();
            // The one line on stdout; scripts and tests wait for it.
            let _ = writeln!(stdout, "listening on {scheme}://{addr}");
            let _ = stdout.flush();
        })
        .await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tessera-server: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `tessera-server export-jwks`: prints the JWKS as one JSON document.
fn export_jwks(runtime: &tokio::runtime::Runtime, config: &Config) -> ExitCode {
    let exported = runtime.block_on(tessera_server::jwks_export::export_jwks(&config.data_dir));
    let text = exported
        .map_err(|e| e.to_string())
        .and_then(|jwks| serde_json::to_string_pretty(&jwks).map_err(|e| format!("cannot serialise the JWKS: {e}")));
    match text {
        Ok(text) => {
            let mut stdout = std::io::stdout().lock();
            match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("tessera-server: cannot write the JWKS: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(error) => {
            eprintln!("tessera-server: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `tessera-server migrate-storage`: copies a sled data dir into PostgreSQL.
fn migrate_storage(runtime: &tokio::runtime::Runtime, from: &std::path::Path, to: &str) -> ExitCode {
    match runtime.block_on(tessera_server::migrate::migrate_storage(from, to)) {
        Ok(report) => {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(
                stdout,
                "migrated {} clients, {} refresh-token families, {} signing keys, {} audit events, \
                 {} deny-list entries, {} client-assertion jtis",
                report.clients, report.families, report.keys, report.audit_events, report.denied, report.assertion_jtis
            );
            let _ = stdout.flush();
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("tessera-server: migrate-storage: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `tessera-server compact`: rewrites the sled database without the space
/// of purged records.
fn compact(config: &Config) -> ExitCode {
    match tessera_server::compact_command::compact_configured(config) {
        Ok(report) => {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{report}");
            let _ = stdout.flush();
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("tessera-server: compact: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Prints `--help`/`--version` as clap would, and any other argument
/// error as one line: scripts and supervisors read the first line only.
fn usage_error(error: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(error.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = error.print();
        return ExitCode::SUCCESS;
    }
    let rendered = error.render().to_string();
    let first = rendered.lines().find(|line| !line.trim().is_empty()).unwrap_or("invalid arguments");
    let message = first.trim().strip_prefix("error: ").unwrap_or(first.trim());
    eprintln!("tessera-server: {message} (see --help)");
    ExitCode::from(2)
}

/// SIGINT and SIGTERM, listened for from now on.
fn shutdown_signals() -> Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)> {
    use tokio::signal::unix::{SignalKind, signal};
    Some((signal(SignalKind::interrupt()).ok()?, signal(SignalKind::terminate()).ok()?))
}

/// Cancels `shutdown` on SIGINT or SIGTERM.
async fn cancel_on_signal(
    (mut interrupt, mut terminate): (tokio::signal::unix::Signal, tokio::signal::unix::Signal),
    shutdown: CancellationToken,
) {
    tokio::select! {
        _ = interrupt.recv() => tracing::info!("SIGINT received; shutting down"),
        _ = terminate.recv() => tracing::info!("SIGTERM received; shutting down"),
    }
    shutdown.cancel();
}
