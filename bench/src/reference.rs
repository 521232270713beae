//! The bare ceiling: a reference server that does nothing but what any
//! token server must, so the table can say how much of the gap to the
//! signing limit is Tessera's own.
//!
//! It is a plain hyper 1.x HTTP/1.1 server on the same runtime and
//! connection setup as `tessera-server` (a multi-thread tokio runtime,
//! which pinned to one core has one worker; hyper's timer; keep-alive;
//! `TCP_NODELAY`). Every request, whatever its method, path or body, gets a
//! 200 with the token endpoint's headers and a token-shaped JSON body. In
//! [`Mode::Sign`] the access token is signed anew for each request (ES256,
//! ring, a key generated and parsed once at start); in [`Mode::Presigned`]
//! one token signed at start is sent every time, which leaves only HTTP.
//! No parsing, client authentication, claims, jti, storage or logging: that
//! is exactly what Tessera adds on top.
//!
//! The benchmark runs it as `tessera-bench reference [--no-sign]` pinned
//! with taskset; like `tessera-server` it prints `listening on http://ADDR`.

use std::convert::Infallible;
use std::io::Write as _;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, PRAGMA};
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use tokio::net::TcpListener;

/// What the reference server does per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Signs a fresh ES256 access token for every request.
    Sign,
    /// Sends the same token, signed once at start: HTTP alone.
    Presigned,
}

/// The access token's lifetime in the body, as Tessera's default.
const EXPIRES_IN: u64 = 300;

/// An ES256 signer for one fixed, access-token-shaped signing input.
#[derive(Debug)]
pub struct Signer {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    /// `base64url(header).base64url(claims)`, the size and shape of a real
    /// access token's.
    input: String,
}

impl Signer {
    /// Generates a P-256 key and parses it, once.
    ///
    /// # Errors
    /// If ring cannot make or parse the key.
    pub fn new() -> Result<Self, String> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).map_err(|e| e.to_string())?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|e| e.to_string())?;
        Ok(Self { key, rng, input: crate::signing::signing_input("ES256") })
    }

    /// A freshly signed compact JWT: `input.base64url(signature)`.
    ///
    /// # Errors
    /// If ring fails to sign.
    pub fn token(&self) -> Result<String, String> {
        let signature = self.key.sign(&self.rng, self.input.as_bytes()).map_err(|e| e.to_string())?;
        let mut token = String::with_capacity(self.input.len() + 1 + 86);
        token.push_str(&self.input);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut token);
        Ok(token)
    }

    /// The public key (uncompressed point), for checking signatures.
    #[cfg(test)]
    pub fn public_key(&self) -> &[u8] {
        use ring::signature::KeyPair as _;
        self.key.public_key().as_ref()
    }
}

/// The token endpoint's success body for `access_token` (RFC 6749 §5.1,
/// the fields Tessera sends for a client without refresh tokens).
pub fn body(access_token: &str) -> Bytes {
    // A compact JWT is base64url and dots only: nothing to escape.
    Bytes::from(format!(r#"{{"access_token":"{access_token}","token_type":"Bearer","expires_in":{EXPIRES_IN}}}"#))
}

/// The answer to every request: 200 with the headers Tessera's token
/// endpoint sends.
pub fn response(body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// Runs the reference server on 127.0.0.1 (a free port) until killed.
///
/// # Errors
/// If the key, the runtime or the listener cannot be made.
pub fn serve(mode: Mode) -> Result<(), String> {
    let signer = Arc::new(Signer::new()?);
    // Signed once; only sent in `Presigned` mode.
    let presigned = body(&signer.token()?);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        {
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "listening on http://{addr}").map_err(|e| e.to_string())?;
            stdout.flush().map_err(|e| e.to_string())?;
        }
        let mut builder = http1::Builder::new();
        builder.timer(TokioTimer::new()).keep_alive(true);
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    // As the real server: back off instead of spinning.
                    eprintln!("accept failed: {error}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let (signer, presigned, builder) = (signer.clone(), presigned.clone(), builder.clone());
            tokio::spawn(async move {
                let service = service_fn(move |_request| {
                    let answer = match mode {
                        Mode::Presigned => response(presigned.clone()),
                        Mode::Sign => match signer.token() {
                            Ok(token) => response(body(&token)),
                            Err(_) => {
                                let mut failed = response(Bytes::from_static(b"{\"error\":\"server_error\"}"));
                                *failed.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                                failed
                            }
                        },
                    };
                    async move { Ok::<_, Infallible>(answer) }
                });
                // A client closing its connection is the normal end.
                let _ = builder.serve_connection(TokioIo::new(stream), service).await;
            });
        }
    })
}

#[cfg(test)]
mod tests;
