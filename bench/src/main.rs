//! `tessera-bench`: Tessera's throughput and latency, each as a ratio to the
//! physical limit measured in the same run — how many JWTs one core signs
//! per second with ring.
//!
//! The server runs pinned to one core (`--server-core`), this load
//! generator to another (`--load-core`), both on 127.0.0.1, so a ratio of
//! 0.5 means "half of one core's signing limit". Every run is bounded in
//! time. See the README's "Performance" section for the command.
//!
//! - [`signing`]: the signing limit (re-run pinned to the server's core).
//! - [`load`]: keep-alive connections sending requests until a deadline.
//! - [`server`]: the server process and its clients.
//! - [`reference`]: the bare hyper + ring ceiling (re-run pinned to the
//!   server's core).

#![allow(clippy::print_stdout, clippy::cast_precision_loss, clippy::cast_possible_truncation)]

mod load;
mod reference;
mod server;
mod signing;

use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use http::StatusCode;
use load::{Bounds, Outcome, Scenario};
use server::{ReferenceProcess, ServerProcess, sibling_binary};

/// Benchmark tessera-server against ring's signing limit.
#[derive(Debug, Parser)]
#[command(name = "tessera-bench", version)]
struct Args {
    #[command(subcommand)]
    command: Option<Internal>,
    /// Measured runs per scenario; the table shows medians.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Seconds per run.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// The core the server (and the signing measurement) runs on.
    #[arg(long, default_value_t = 0)]
    server_core: usize,
    /// The core this load generator runs on.
    #[arg(long, default_value_t = 1)]
    load_core: usize,
    /// The server's signing algorithm.
    #[arg(long, default_value = "ES256")]
    alg: String,
    /// Refresh tokens to issue for the storage measurement (0 skips it).
    #[arg(long, default_value_t = 1_000_000)]
    tokens: u64,
    /// Only the storage measurement: no signing limit, no throughput table.
    /// A 3 s probe of the refresh-token issue rate sizes the tokens' lifetime.
    #[arg(long)]
    storage_only: bool,
    /// Only the rotation storage measurement: 50 families rotated 2,000
    /// times each, reporting the data dir's and the server's growth.
    #[arg(long)]
    rotation_storage_only: bool,
    /// Also measure the token scenarios on a server whose storage is this
    /// PostgreSQL URL (see README "Performance").
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
    /// Seconds per signing-limit measurement.
    #[arg(long, default_value_t = 2.0)]
    sign_seconds: f64,
}

#[derive(Debug, Subcommand)]
enum Internal {
    /// Prints one algorithm's signatures per second on the calling core.
    #[command(hide = true)]
    SignLimit { alg: String, seconds: f64 },
    /// Runs the bare reference server (hyper + ring, nothing else) until killed.
    #[command(hide = true)]
    Reference {
        /// Send one token signed at start instead of signing per request.
        #[arg(long)]
        no_sign: bool,
    },
}

const ALGORITHMS: [&str; 3] = ["ES256", "EdDSA", "RS256"];

/// The row whose share of the bare ceiling the issue sets a target for.
const PLAIN_ROW: &str = "client_credentials, no refresh token";
/// That target: 80% of the bare hyper + sign ceiling.
const CEILING_TARGET: f64 = 0.80;

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Internal::Reference { no_sign }) = &args.command {
        let mode = if *no_sign { reference::Mode::Presigned } else { reference::Mode::Sign };
        return match reference::serve(mode) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("tessera-bench reference: {error}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Internal::SignLimit { alg, seconds }) = &args.command {
        return match signing::measure(alg, *seconds) {
            Ok(rate) => {
                println!("{rate:.0}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("{error}");
                ExitCode::FAILURE
            }
        };
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tessera-bench: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    pin_self(args.load_core)?;
    let server_bin = sibling_binary("tessera-server")?;
    let admin_bin = sibling_binary("tessera-admin")?;
    if args.storage_only {
        return storage_only(args, &server_bin, &admin_bin);
    }
    if args.rotation_storage_only {
        return rotation_storage(args, &server_bin, &admin_bin);
    }

    println!(
        "tessera-bench: server on core {}, load on core {}, {} connections, {} runs of {} s, medians",
        args.server_core, args.load_core, args.connections, args.runs, args.duration
    );
    let mut limits = Vec::new();
    for alg in ALGORITHMS {
        let rates: Result<Vec<f64>, String> = (0..args.runs).map(|_| signing_limit(args, alg)).collect();
        match rates {
            Ok(rates) => limits.push((alg, median(rates))),
            Err(error) => println!("signing limit {alg}: not measured ({error})"),
        }
    }
    println!();
    println!("signing limit, one core, ring (JWTs/s)");
    for (alg, rate) in &limits {
        println!("  {alg:<6} {:>10}", thousands(*rate));
    }
    let limit = limits.iter().find(|(alg, _)| *alg == args.alg).map(|(_, rate)| *rate);

    let es256_limit = limits.iter().find(|(alg, _)| *alg == "ES256").map(|(_, rate)| *rate);

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    println!();
    println!("server: {} ({}), ratio = req/s over the {} signing limit", server_bin.display(), args.alg, args.alg);
    println!("{:<40} {:>10} {:>7} {:>8} {:>8} {:>6}", "scenario", "req/s", "ratio", "p50 ms", "p99 ms", "errors");
    let bounds =
        Bounds { connections: args.connections, duration: Duration::from_secs_f64(args.duration), max_ok: None };
    let warmup = Bounds { duration: Duration::from_secs(1), ..bounds };
    // Measured before any tessera-server starts, so none sits on the core.
    let ceiling = reference_rows(args, &runtime, bounds, warmup, es256_limit);

    let server = ServerProcess::start(&server_bin, args.server_core, &["--signing-alg".into(), args.alg.clone()])?;
    let plain = server.create_client(&admin_bin, false)?;
    let with_refresh = server.create_client(&admin_bin, true)?;
    // A client that never authenticated from here: the holder's own ID
    // would be spared by the limiter (its address is a trusted source after
    // the rows above), and every guess would get a 401, not a 429.
    let wrong = wrong_secret(&server.create_client(&admin_bin, false)?);
    // Wrong secrets are measured twice: with the failed-authentication
    // limiter off, the full work of a check (as an unknown client ID costs
    // too); with it on, what a flood from one address costs once limited.
    let unlimited = ServerProcess::start(
        &server_bin,
        args.server_core,
        &["--signing-alg".into(), args.alg.clone(), "--rate-limit".into(), "false".into()],
    )?;
    let unlimited_wrong = wrong_secret(&unlimited.create_client(&admin_bin, false)?);
    let scenarios = [
        (PLAIN_ROW, Scenario::Token { authorization: plain, expect: StatusCode::OK }),
        (
            "client_credentials + refresh token",
            Scenario::Token { authorization: with_refresh.clone(), expect: StatusCode::OK },
        ),
        ("refresh_token grant", Scenario::Refresh { authorization: with_refresh.clone() }),
        ("GET /.well-known/jwks.json", Scenario::Jwks),
        (
            "wrong secret (401, limiter off)",
            Scenario::Token { authorization: unlimited_wrong, expect: StatusCode::UNAUTHORIZED },
        ),
        (
            "wrong secret (429 once limited)",
            Scenario::Token { authorization: wrong, expect: StatusCode::TOO_MANY_REQUESTS },
        ),
    ];
    let mut refresh_rate = f64::NAN;
    let mut plain_rate = f64::NAN;
    for (name, scenario) in &scenarios {
        let addr = if name.contains("limiter off") { unlimited.addr } else { server.addr };
        runtime.block_on(load::run(addr, scenario, warmup))?;
        let mut runs = Vec::new();
        for _ in 0..args.runs {
            runs.push(runtime.block_on(load::run(addr, scenario, bounds))?);
        }
        let rate = print_row(name, &mut runs, limit);
        if matches!(scenario, Scenario::Token { expect: StatusCode::OK, .. }) && name.contains("refresh") {
            refresh_rate = rate;
        }
        if *name == PLAIN_ROW {
            plain_rate = rate;
        }
    }
    drop(unlimited);
    if let Some(url) = &args.postgres {
        postgres_rows(args, &runtime, &server_bin, &admin_bin, url, bounds, warmup, limit)?;
    }
    println!();
    println!("{}", ceiling_share(&args.alg, plain_rate, ceiling));
    let peak =
        server.peak_rss_kib().map_or_else(|| "unknown".to_owned(), |kib| format!("{:.1} MiB", kib as f64 / 1024.0));
    println!();
    println!("peak resident memory of the server: {peak}");
    drop(server);

    if args.tokens > 0 {
        storage(args, &runtime, &server_bin, &admin_bin, refresh_rate)?;
    }
    Ok(())
}

/// The bare reference server, with and without a signature per request,
/// under the same load as Tessera; ratios are over the ES256 limit, since
/// it signs ES256. Returns the signing row's median throughput (NaN if it
/// could not be measured: the run goes on without it).
fn reference_rows(
    args: &Args,
    runtime: &tokio::runtime::Runtime,
    bounds: Bounds,
    warmup: Bounds,
    es256_limit: Option<f64>,
) -> f64 {
    // A Basic header the size of a real client's (ID of 46, secret of 40
    // characters), so the request is the same size; the server ignores it.
    let authorization = server::basic("oa2-client-id_zmNtW-D0Toqpz4AZnBLCIlklBrz9ynU-", &"x".repeat(40));
    let scenario = Scenario::Token { authorization, expect: StatusCode::OK };
    let mut ceiling = f64::NAN;
    for (name, sign) in [("reference: bare hyper + ES256 sign", true), ("reference: bare hyper, no signature", false)] {
        let measured =
            ReferenceProcess::start(args.server_core, sign).and_then(|reference| -> Result<Vec<Outcome>, _> {
                runtime.block_on(load::run(reference.addr, &scenario, warmup))?;
                (0..args.runs).map(|_| runtime.block_on(load::run(reference.addr, &scenario, bounds))).collect()
            });
        match measured {
            Ok(mut runs) => {
                let rate = print_row(name, &mut runs, es256_limit);
                if sign {
                    ceiling = rate;
                }
            }
            Err(error) => println!("{name}: not measured ({error})"),
        }
    }
    ceiling
}

/// The line under the table: the client_credentials row's share of the
/// bare hyper + sign ceiling, against the issue's target.
fn ceiling_share(alg: &str, plain_rate: f64, ceiling: f64) -> String {
    if alg != "ES256" {
        return format!("{PLAIN_ROW}: no share of the bare ceiling (the server signs {alg}, the reference ES256)");
    }
    if !(plain_rate.is_finite() && ceiling.is_finite() && ceiling > 0.0) {
        return format!("{PLAIN_ROW}: no share of the bare ceiling (a row was not measured)");
    }
    format!(
        "{PLAIN_ROW}: {:.2} of the bare hyper + sign ceiling (issue target: {CEILING_TARGET:.2})",
        plain_rate / ceiling
    )
}

/// The token scenarios again on a server backed by PostgreSQL.
#[allow(clippy::too_many_arguments)]
fn postgres_rows(
    args: &Args,
    runtime: &tokio::runtime::Runtime,
    server_bin: &std::path::Path,
    admin_bin: &std::path::Path,
    url: &str,
    bounds: Bounds,
    warmup: Bounds,
    limit: Option<f64>,
) -> Result<(), String> {
    let server = ServerProcess::start(
        server_bin,
        args.server_core,
        &["--signing-alg".into(), args.alg.clone(), "--storage".into(), url.to_owned()],
    )?;
    let plain = server.create_client(admin_bin, false)?;
    let with_refresh = server.create_client(admin_bin, true)?;
    let scenarios = [
        (
            "PostgreSQL: client_credentials, no refresh",
            Scenario::Token { authorization: plain, expect: StatusCode::OK },
        ),
        (
            "PostgreSQL: client_credentials + refresh",
            Scenario::Token { authorization: with_refresh.clone(), expect: StatusCode::OK },
        ),
        ("PostgreSQL: refresh_token grant", Scenario::Refresh { authorization: with_refresh }),
    ];
    for (name, scenario) in &scenarios {
        runtime.block_on(load::run(server.addr, scenario, warmup))?;
        let mut runs = Vec::new();
        for _ in 0..args.runs {
            runs.push(runtime.block_on(load::run(server.addr, scenario, bounds))?);
        }
        print_row(name, &mut runs, limit);
    }
    Ok(())
}

/// Prints one scenario's row and returns its median throughput.
fn print_row(name: &str, runs: &mut [Outcome], limit: Option<f64>) -> f64 {
    let rate = median(runs.iter().map(Outcome::throughput).collect());
    let p50 = median(runs.iter_mut().map(|r| r.latency_ms(0.50)).collect());
    let p99 = median(runs.iter_mut().map(|r| r.latency_ms(0.99)).collect());
    let errors: u64 = runs.iter().map(|r| r.unexpected).sum();
    let ratio = limit.map_or_else(|| "-".to_owned(), |limit| format!("{:.2}", rate / limit));
    println!("{name:<40} {:>10} {ratio:>7} {p50:>8.2} {p99:>8.2} {errors:>6}", thousands(rate));
    rate
}

/// Issues `args.tokens` refresh tokens, then lets them expire and be purged,
/// reporting the data dir's size at each step.
fn storage(
    args: &Args,
    runtime: &tokio::runtime::Runtime,
    server_bin: &std::path::Path,
    admin_bin: &std::path::Path,
    issue_rate: f64,
) -> Result<(), String> {
    // Long enough that no token expires while the rest are being issued (at
    // the rate just measured, with a margin), and no longer, since the run
    // waits for the expiry.
    let expected_seconds =
        if issue_rate.is_finite() && issue_rate > 0.0 { args.tokens as f64 / issue_rate } else { 600.0 };
    let ttl = (expected_seconds * 1.5 + 30.0).clamp(60.0, 3600.0) as u64;
    let mut server = ServerProcess::start(
        server_bin,
        args.server_core,
        &[
            "--refresh-token-ttl".into(),
            ttl.to_string(),
            "--purge-interval".into(),
            "1".into(),
            // Every grant starts a family: room for all of them, so each is
            // purged at its expiry rather than retired by the cap.
            "--max-families-per-client".into(),
            args.tokens.saturating_add(1).to_string(),
        ],
    )?;
    let authorization = server.create_client(admin_bin, true)?;
    let before = server.data_size();
    let scenario = Scenario::Token { authorization, expect: StatusCode::OK };
    let bounds =
        Bounds { connections: args.connections, duration: Duration::from_secs(ttl - 60), max_ok: Some(args.tokens) };
    let started = Instant::now();
    let issued = runtime.block_on(load::run(server.addr, &scenario, bounds))?;
    let full = server.data_size();
    println!();
    println!(
        "storage: {} refresh tokens issued in {:.0} s; data dir {:.1} MiB before, {:.1} MiB after",
        issued.ok,
        started.elapsed().as_secs_f64(),
        mib(before),
        mib(full)
    );
    // Wait until the last token has expired, then until the purge has
    // removed every one (its log says how many it removed; the size alone
    // does not tell, since sled never shrinks its files).
    let expired_at = Instant::now() + Duration::from_secs(ttl + 2);
    runtime.block_on(async { tokio::time::sleep_until(expired_at.into()).await });
    let purge_deadline = Instant::now() + Duration::from_secs(600);
    while server.purged_families() < issued.ok {
        if Instant::now() > purge_deadline {
            return Err(format!("only {} of {} families purged after 600 s", server.purged_families(), issued.ok));
        }
        runtime.block_on(async { tokio::time::sleep(Duration::from_secs(1)).await });
    }
    let last = server.data_size();
    println!(
        "storage: after expiry and purge {:.1} MiB ({:.2}x the size before)",
        mib(last),
        last as f64 / before.max(1) as f64
    );
    // sled never shrinks its files; the offline compaction does.
    server.terminate(runtime, Duration::from_secs(30))?;
    let report = server.compact(server_bin)?;
    let compacted = server.data_size();
    println!(
        "storage: after tessera-server compact {:.1} MiB ({:.3}x the size with the tokens; {report})",
        mib(compacted),
        compacted as f64 / full.max(1) as f64
    );
    Ok(())
}

/// `--storage-only`: the storage measurement alone, its token lifetime
/// sized by a short probe of the refresh-token issue rate.
fn storage_only(args: &Args, server_bin: &std::path::Path, admin_bin: &std::path::Path) -> Result<(), String> {
    if args.tokens == 0 {
        return Err("--storage-only needs --tokens greater than 0".into());
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let rate = {
        let probe = ServerProcess::start(server_bin, args.server_core, &["--signing-alg".into(), args.alg.clone()])?;
        let authorization = probe.create_client(admin_bin, true)?;
        let scenario = Scenario::Token { authorization, expect: StatusCode::OK };
        let bounds = Bounds { connections: args.connections, duration: Duration::from_secs(3), max_ok: None };
        runtime.block_on(load::run(probe.addr, &scenario, bounds))?.throughput()
    };
    println!("storage: refresh tokens issue at about {} per second (3 s probe)", thousands(rate));
    storage(args, &runtime, server_bin, admin_bin, rate)
}

/// Families of the rotation storage measurement, one per connection.
const ROTATION_FAMILIES: usize = 50;
/// Rotations of each family.
const ROTATIONS_PER_FAMILY: u64 = 2_000;

/// `--rotation-storage-only`: what rotations cost in storage and memory
/// when the families stay few. Each of 50 connections starts one family
/// and rotates it 2,000 times; the data dir and the server's resident
/// memory are measured before and after, and once more after a clean stop
/// (journal checkpointed, sled flushed).
fn rotation_storage(args: &Args, server_bin: &std::path::Path, admin_bin: &std::path::Path) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let mut server = ServerProcess::start(server_bin, args.server_core, &["--signing-alg".into(), args.alg.clone()])?;
    let authorization = server.create_client(admin_bin, true)?;
    let (size_before, rss_before) = (server.data_size(), server.rss_kib().unwrap_or(0));
    let rotations = ROTATION_FAMILIES as u64 * ROTATIONS_PER_FAMILY;
    let scenario = Scenario::Refresh { authorization };
    let bounds = Bounds { connections: ROTATION_FAMILIES, duration: Duration::from_secs(900), max_ok: Some(rotations) };
    let started = Instant::now();
    let sampler = server.sample_data_size();
    let done = runtime.block_on(load::run(server.addr, &scenario, bounds))?;
    let elapsed = started.elapsed().as_secs_f64();
    let size_peak = sampler.peak();
    let (size_after, rss_after) = (server.data_size(), server.rss_kib().unwrap_or(0));
    let journal_after = server.journal_size();
    server.terminate(&runtime, Duration::from_secs(60))?;
    let size_stopped = server.data_size();
    let grown = size_after.saturating_sub(size_before);
    let peak_growth = size_peak.max(size_after).saturating_sub(size_before);
    let settled = size_stopped.saturating_sub(size_before);
    println!(
        "rotation storage: {} families x {} rotations: {} rotations in {elapsed:.0} s ({} unexpected answers)",
        ROTATION_FAMILIES,
        ROTATIONS_PER_FAMILY,
        thousands(done.ok as f64),
        done.unexpected
    );
    println!(
        "rotation storage: data dir {:.1} MiB before, {:.1} MiB after (+{:.1} MiB, {:.0} bytes/rotation; journal {:.1} MiB)",
        mib(size_before),
        mib(size_after),
        mib(grown),
        grown as f64 / done.ok.max(1) as f64,
        mib(journal_after)
    );
    println!(
        "rotation storage: largest data dir during the run {:.1} MiB (+{:.1} MiB, journal included)",
        mib(size_peak.max(size_after)),
        mib(peak_growth)
    );
    println!(
        "rotation storage: after a clean stop {:.1} MiB (+{:.1} MiB, {:.0} bytes/rotation)",
        mib(size_stopped),
        mib(settled),
        settled as f64 / done.ok.max(1) as f64
    );
    println!(
        "rotation storage: server RSS {:.1} MiB before, {:.1} MiB after (+{:.1} MiB)",
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0,
        rss_after.saturating_sub(rss_before) as f64 / 1024.0
    );
    Ok(())
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn signing_limit(args: &Args, alg: &str) -> Result<f64, String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let output = Command::new("taskset")
        .arg("-c")
        .arg(args.server_core.to_string())
        .arg(me)
        .args(["sign-limit", alg, &args.sign_seconds.to_string()])
        .output()
        .map_err(|e| format!("taskset: {e}"))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).trim().to_owned());
    }
    String::from_utf8_lossy(&output.stdout).trim().parse().map_err(|e| format!("{e}"))
}

/// Pins this process (and the threads it will start) to `core`.
fn pin_self(core: usize) -> Result<(), String> {
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", &core.to_string(), &std::process::id().to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("taskset is needed to pin the load generator: {e}"))?;
    if status.success() { Ok(()) } else { Err("taskset could not pin the load generator".into()) }
}

fn wrong_secret(authorization: &str) -> String {
    // Same client ID, another secret of the same length: the server does
    // the full work of a real check.
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::STANDARD;
    let decoded = authorization.strip_prefix("Basic ").and_then(|b| engine.decode(b).ok()).unwrap_or_default();
    let text = String::from_utf8_lossy(&decoded);
    let (id, secret) = text.split_once(':').unwrap_or(("", ""));
    server::basic(id, &"x".repeat(secret.len()))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.retain(|v| !v.is_nan());
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests;
