//! The load generator: keep-alive HTTP/1.1 connections, each sending one
//! request after another until a deadline, recording every latency.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// What each request does.
#[derive(Debug, Clone)]
pub enum Scenario {
    /// client_credentials with this Basic header; `expect` is the status.
    Token {
        /// `Basic ...`.
        authorization: String,
        /// 200 for a right secret, 401 for a wrong one.
        expect: StatusCode,
    },
    /// The refresh_token grant, each request refreshing a different live
    /// token: every connection follows its own chain of rotations.
    Refresh {
        /// `Basic ...` of a client that gets refresh tokens.
        authorization: String,
    },
    /// `GET /.well-known/jwks.json`.
    Jwks,
}

/// What one run measured.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Requests answered with the expected status.
    pub ok: u64,
    /// Requests answered otherwise.
    pub unexpected: u64,
    /// Wall-clock time of the run.
    pub elapsed: Duration,
    /// Latency of every request, in microseconds.
    pub latencies_us: Vec<u32>,
}

impl Outcome {
    /// Expected answers per second.
    pub fn throughput(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// The latency at quantile `q` (0..=1), in milliseconds.
    pub fn latency_ms(&mut self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        self.latencies_us.sort_unstable();
        let index = ((self.latencies_us.len() - 1) as f64 * q).round() as usize;
        f64::from(self.latencies_us[index]) / 1000.0
    }
}

/// When a run stops: after `duration`, or once `max_ok` expected answers
/// have arrived in total (each connection takes an even share).
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Concurrent connections.
    pub connections: usize,
    /// Longest run.
    pub duration: Duration,
    /// Stop early after this many expected answers.
    pub max_ok: Option<u64>,
}

/// Runs `scenario` against `addr`.
///
/// # Errors
/// If a connection cannot be opened or a request fails at the HTTP level.
pub async fn run(addr: SocketAddr, scenario: &Scenario, bounds: Bounds) -> Result<Outcome, String> {
    let per_connection = bounds.max_ok.map(|total| total.div_ceil(bounds.connections as u64));
    let started = Instant::now();
    let deadline = started + bounds.duration;
    let mut tasks = Vec::with_capacity(bounds.connections);
    for _ in 0..bounds.connections {
        let scenario = scenario.clone();
        tasks.push(tokio::spawn(async move { connection(addr, scenario, deadline, per_connection).await }));
    }
    let mut total = Outcome::default();
    for task in tasks {
        let outcome = task.await.map_err(|e| format!("load task failed: {e}"))??;
        total.ok += outcome.ok;
        total.unexpected += outcome.unexpected;
        total.latencies_us.extend(outcome.latencies_us);
    }
    total.elapsed = started.elapsed();
    Ok(total)
}

type Sender = http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    Ok(sender)
}

fn token_request(query: &str, authorization: &str) -> Result<Request<Full<Bytes>>, String> {
    Request::builder()
        .method(Method::POST)
        .uri(format!("/oauth2/token?{query}"))
        .header(http::header::HOST, "127.0.0.1")
        .header(http::header::AUTHORIZATION, authorization)
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())
}

async fn exchange(sender: &mut Sender, request: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), String> {
    sender.ready().await.map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((status, body))
}

/// A fresh refresh token from a client_credentials grant (not measured).
async fn first_refresh_token(sender: &mut Sender, authorization: &str) -> Result<String, String> {
    let (status, body) = exchange(sender, token_request("grant_type=client_credentials", authorization)?).await?;
    refresh_token_of(status, &body).ok_or_else(|| format!("no refresh token in a {status} answer"))
}

fn refresh_token_of(status: StatusCode, body: &[u8]) -> Option<String> {
    if status != StatusCode::OK {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.get("refresh_token")?.as_str().map(str::to_owned)
}

async fn connection(
    addr: SocketAddr,
    scenario: Scenario,
    deadline: Instant,
    max_ok: Option<u64>,
) -> Result<Outcome, String> {
    let mut sender = connect(addr).await?;
    let mut outcome = Outcome::default();
    let mut chain = match &scenario {
        Scenario::Refresh { authorization } => Some(first_refresh_token(&mut sender, authorization).await?),
        _ => None,
    };
    while Instant::now() < deadline && max_ok.is_none_or(|max| outcome.ok < max) {
        let (request, expect) = match &scenario {
            Scenario::Token { authorization, expect } => {
                (token_request("grant_type=client_credentials", authorization)?, *expect)
            }
            Scenario::Refresh { authorization } => {
                let token = chain.take().unwrap_or_default();
                (
                    token_request(&format!("grant_type=refresh_token&refresh_token={token}"), authorization)?,
                    StatusCode::OK,
                )
            }
            Scenario::Jwks => (
                Request::builder()
                    .uri("/.well-known/jwks.json")
                    .header(http::header::HOST, "127.0.0.1")
                    .body(Full::new(Bytes::new()))
                    .map_err(|e| e.to_string())?,
                StatusCode::OK,
            ),
        };
        let sent = Instant::now();
        let (status, body) = exchange(&mut sender, request).await?;
        outcome.latencies_us.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
        if status == expect {
            outcome.ok += 1;
        } else {
            outcome.unexpected += 1;
        }
        if let Scenario::Refresh { authorization } = &scenario {
            chain = match refresh_token_of(status, &body) {
                Some(next) => Some(next),
                None => Some(first_refresh_token(&mut sender, authorization).await?),
            };
        }
    }
    Ok(outcome)
}
