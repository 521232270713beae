//! HTTP through reqwest: [`Resp`] (also what raw TCP yields), form
//! encoding, and [`TokenCall`], one request to the token endpoint.

use tessera_shared::admin::ClientCredentials;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use super::{HTTP_TIMEOUT, Server};

/// A reqwest client that never goes through a proxy and gives up after
/// [`HTTP_TIMEOUT`].
pub fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(HTTP_TIMEOUT).build().expect("a reqwest client")
}

/// Like [`http`], but connecting from `source` (any 127.0.0.0/8 address is
/// loopback, so tests can play several clients on several addresses).
pub fn http_from(source: std::net::IpAddr) -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(HTTP_TIMEOUT).local_address(source).build().expect("a reqwest client")
}

/// An HTTP response, from reqwest or raw TCP alike.
#[derive(Debug, Clone)]
pub struct Resp {
    /// The status code.
    pub status: u16,
    /// Headers, names in lower case, in order.
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
}

impl Resp {
    /// Collects a reqwest response.
    pub async fn from_reqwest(resp: reqwest::Response) -> Self {
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_ascii_lowercase(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let body = resp.bytes().await.expect("the response body arrives").to_vec();
        Self { status, headers, body }
    }

    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    /// Every value of a header.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().filter(|(k, _)| *k == name).map(|(_, v)| v.as_str()).collect()
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON, if it is.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// A one-line summary for failure messages.
    pub fn summary(&self) -> String {
        format!("{} {:?} {}", self.status, self.headers, self.text())
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters, which is
/// valid both in a query string and in a form body.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `k=v&k=v`, encoded.
pub fn encode_pairs(pairs: &[(String, String)]) -> String {
    pairs.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

/// `Basic base64(form(id):form(secret))` (RFC 6749 §2.3.1).
pub fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{}:{}", enc(id), enc(secret))))
}

/// One request to the token endpoint.
#[derive(Debug, Clone)]
pub struct TokenCall {
    method: reqwest::Method,
    query: Vec<(String, String)>,
    raw_query: Option<String>,
    form: Option<Vec<(String, String)>>,
    body: Option<(Option<String>, Vec<u8>)>,
    headers: Vec<(String, String)>,
}

impl Default for TokenCall {
    fn default() -> Self {
        Self::new()
    }
}

impl TokenCall {
    /// A POST with nothing in it yet.
    pub fn new() -> Self {
        Self {
            method: reqwest::Method::POST,
            query: Vec::new(),
            raw_query: None,
            form: None,
            body: None,
            headers: Vec::new(),
        }
    }

    /// Another method than POST.
    pub fn method(mut self, method: reqwest::Method) -> Self {
        self.method = method;
        self
    }

    /// A query-string parameter.
    pub fn q(mut self, key: &str, value: &str) -> Self {
        self.query.push((key.to_owned(), value.to_owned()));
        self
    }

    /// A query string sent exactly as given (after the `?`).
    pub fn raw_query(mut self, query: &str) -> Self {
        self.raw_query = Some(query.to_owned());
        self
    }

    /// A form-body parameter (`application/x-www-form-urlencoded`).
    pub fn f(mut self, key: &str, value: &str) -> Self {
        self.form.get_or_insert_with(Vec::new).push((key.to_owned(), value.to_owned()));
        self
    }

    /// A body sent as is, with this content type (none if `None`).
    pub fn body(mut self, content_type: Option<&str>, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some((content_type.map(str::to_owned), body.into()));
        self
    }

    /// `Authorization: Basic ...`.
    pub fn basic(self, id: &str, secret: &str) -> Self {
        let value = basic(id, secret);
        self.header("Authorization", &value)
    }

    /// `client_id` and `client_secret` in the query string.
    pub fn query_creds(self, creds: &ClientCredentials) -> Self {
        self.q("client_id", &creds.client_id).q("client_secret", &creds.client_secret)
    }

    /// `client_id` and `client_secret` in the form body.
    pub fn form_creds(self, creds: &ClientCredentials) -> Self {
        self.f("client_id", &creds.client_id).f("client_secret", &creds.client_secret)
    }

    /// Basic authentication with these credentials.
    pub fn basic_creds(self, creds: &ClientCredentials) -> Self {
        self.basic(&creds.client_id, &creds.client_secret)
    }

    /// Any header.
    pub fn header(mut self, key: &str, value: &str) -> Self {
        self.headers.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Sends it to `server`'s token endpoint.
    pub async fn send(self, server: &Server) -> Resp {
        self.send_with(&http(), server).await
    }

    /// Sends it with a given client (for the concurrent tests).
    pub async fn send_with(self, client: &reqwest::Client, server: &Server) -> Resp {
        self.send_to_with(client, server, "/oauth2/token").await
    }

    /// Sends it to another client-authenticated endpoint of `server`
    /// (`/oauth2/revoke`, `/oauth2/introspect`).
    pub async fn send_to(self, server: &Server, path: &str) -> Resp {
        self.send_to_with(&http(), server, path).await
    }

    /// Sends it with a given client to another endpoint of `server`.
    pub async fn send_to_with(self, client: &reqwest::Client, server: &Server, path: &str) -> Resp {
        let mut url = server.url(path);
        let query = match self.raw_query {
            Some(raw) => raw,
            None => encode_pairs(&self.query),
        };
        if !query.is_empty() {
            url.push('?');
            url.push_str(&query);
        }
        let mut req = client.request(self.method, &url);
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        if let Some(form) = &self.form {
            req = req.header("Content-Type", "application/x-www-form-urlencoded").body(encode_pairs(form));
        }
        if let Some((content_type, body)) = self.body {
            if let Some(ct) = content_type {
                req = req.header("Content-Type", ct);
            }
            req = req.body(body);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("POST {url} failed: {e}"));
        Resp::from_reqwest(resp).await
    }
}

/// `GET path` on the server.
pub async fn get(server: &Server, path: &str) -> Resp {
    let url = server.url(path);
    let resp = http().get(&url).send().await.unwrap_or_else(|e| panic!("GET {url} failed: {e}"));
    Resp::from_reqwest(resp).await
}

/// Sends `n` refreshes of `refresh_token` at once (a barrier releases them
/// together), spread round-robin over `servers`; asserts that exactly one
/// wins and every other gets 400 `invalid_grant`, and returns the winner.
pub async fn race_refreshes(servers: &[&Server], creds: &ClientCredentials, refresh_token: &str, n: usize) -> Resp {
    let auth = basic(&creds.client_id, &creds.client_secret);
    let client = http();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(n));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let server = servers[i % servers.len()];
        let url = format!("{}?grant_type=refresh_token&refresh_token={refresh_token}", server.url("/oauth2/token"));
        let (client, auth, barrier) = (client.clone(), auth.clone(), std::sync::Arc::clone(&barrier));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let resp = client.post(&url).header("Authorization", auth).send().await.expect("the request completes");
            Resp::from_reqwest(resp).await
        }));
    }
    let mut winners = Vec::new();
    let mut wrong = Vec::new();
    for task in tasks {
        let resp = task.await.expect("the task completes");
        if resp.status == 200 {
            winners.push(resp);
        } else if let Err(e) = super::check_error(&resp, 400, "invalid_grant") {
            wrong.push(e);
        }
    }
    assert!(wrong.is_empty(), "losers must get 400 invalid_grant: {wrong:#?}");
    assert_eq!(winners.len(), 1, "exactly one of {n} concurrent refreshes wins: {winners:#?}");
    winners.remove(0)
}
