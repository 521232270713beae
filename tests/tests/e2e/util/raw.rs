//! Raw TCP: requests built byte by byte and a small HTTP/1.1 response
//! reader, for input no well-behaved client library would send.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

use super::{HTTP_TIMEOUT, Resp};

/// A request built by hand: request line, `Host`, `Connection: close`,
/// the given headers, and `Content-Length` when `body` is not empty and no
/// length or transfer coding is among the headers.
pub fn raw_request(method: &str, target: &str, addr: SocketAddr, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n").into_bytes();
    for (k, v) in headers {
        req.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    let framed = headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding"));
    if !body.is_empty() && !framed {
        req.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    req.extend_from_slice(body);
    req
}

/// Writes `request` on a fresh connection and reads one response.
///
/// A write error is tolerated (the server may answer before reading a body
/// it refuses); what counts is that a well-formed response comes back.
///
/// # Errors
/// No well-formed response arrived within [`HTTP_TIMEOUT`].
pub fn raw_exchange(addr: SocketAddr, request: &[u8]) -> Result<Resp, String> {
    let mut stream = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(HTTP_TIMEOUT)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(HTTP_TIMEOUT)).map_err(|e| e.to_string())?;
    let write_error = stream.write_all(request).and_then(|()| stream.flush()).err();
    read_response(&mut stream).map_err(|e| match write_error {
        Some(w) => format!("{e} (writing the request failed too: {w})"),
        None => e,
    })
}

/// Reads one HTTP/1.1 response (skipping 1xx) from `stream`.
///
/// # Errors
/// EOF, a reset or the timeout before a complete, parsable response.
pub fn read_response(stream: &mut impl Read) -> Result<Resp, String> {
    const MAX: usize = 4 << 20;
    let deadline = Instant::now() + HTTP_TIMEOUT;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match parse_response(&buf) {
            Parsed::Complete(resp, used) if (100..200).contains(&resp.status) => {
                buf.drain(..used);
                continue;
            }
            Parsed::Complete(resp, _) => return Ok(resp),
            Parsed::Invalid(e) => {
                return Err(format!("malformed response ({e}): {:?}", String::from_utf8_lossy(&buf)));
            }
            Parsed::Partial => {}
        }
        if Instant::now() > deadline || buf.len() > MAX {
            return Err(format!("no complete response in time: {:?}", String::from_utf8_lossy(&buf)));
        }
        match stream.read(&mut chunk) {
            Ok(0) => {
                // EOF: a body without framing ends here.
                return match parse_response_at_eof(&buf) {
                    Some(resp) => Ok(resp),
                    None => Err(format!(
                        "connection closed before a complete response: {:?}",
                        String::from_utf8_lossy(&buf)
                    )),
                };
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => {
                return match parse_response_at_eof(&buf) {
                    Some(resp) => Ok(resp),
                    None => Err(format!("read error {e} after {:?}", String::from_utf8_lossy(&buf))),
                };
            }
        }
    }
}

enum Parsed {
    Complete(Resp, usize),
    Partial,
    Invalid(String),
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A response head: status, headers, and its length in bytes.
type Head = (u16, Vec<(String, String)>, usize);

fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| "the head is not UTF-8".to_owned())?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut words = status_line.splitn(3, ' ');
    let version = words.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(format!("status line {status_line:?}"));
    }
    let status: u16 = words
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|s| (100..600).contains(s))
        .ok_or_else(|| format!("status line {status_line:?}"))?;
    let mut headers = Vec::new();
    for line in lines {
        let (k, v) = line.split_once(':').ok_or_else(|| format!("header line {line:?}"))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    Ok(Some((status, headers, end + 4)))
}

fn dechunk(mut rest: &[u8]) -> Result<Option<(Vec<u8>, usize)>, String> {
    let total = rest.len();
    let mut body = Vec::new();
    loop {
        let Some(line_end) = find(rest, b"\r\n") else {
            return Ok(None);
        };
        let size_line = std::str::from_utf8(&rest[..line_end]).map_err(|_| "chunk size not UTF-8".to_owned())?;
        let size_hex = size_line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| format!("chunk size {size_line:?}"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            // Trailers end with an empty line.
            let Some(end) = find(rest, b"\r\n") else {
                return Ok(None);
            };
            if end == 0 {
                return Ok(Some((body, total - rest.len() + 2)));
            }
            let Some(trailer_end) = find(rest, b"\r\n\r\n") else {
                return Ok(None);
            };
            return Ok(Some((body, total - rest.len() + trailer_end + 4)));
        }
        if rest.len() < size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

fn parse_response(buf: &[u8]) -> Parsed {
    let (status, headers, head_len) = match parse_head(buf) {
        Ok(Some(head)) => head,
        Ok(None) => return Parsed::Partial,
        Err(e) => return Parsed::Invalid(e),
    };
    let resp = |body: Vec<u8>| Resp { status, headers: headers.clone(), body };
    let rest = &buf[head_len..];
    if (100..200).contains(&status) || status == 204 || status == 304 {
        return Parsed::Complete(resp(Vec::new()), head_len);
    }
    let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    if header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        return match dechunk(rest) {
            Ok(Some((body, used))) => Parsed::Complete(resp(body), head_len + used),
            Ok(None) => Parsed::Partial,
            Err(e) => Parsed::Invalid(e),
        };
    }
    if let Some(len) = header("content-length") {
        let Ok(len) = len.parse::<usize>() else {
            return Parsed::Invalid(format!("Content-Length {len:?}"));
        };
        return if rest.len() >= len {
            Parsed::Complete(resp(rest[..len].to_vec()), head_len + len)
        } else {
            Parsed::Partial
        };
    }
    Parsed::Partial
}

fn parse_response_at_eof(buf: &[u8]) -> Option<Resp> {
    match parse_response(buf) {
        Parsed::Complete(resp, _) => Some(resp),
        Parsed::Invalid(_) => None,
        Parsed::Partial => {
            // Only a body delimited by the connection's end is complete now.
            let (status, headers, head_len) = parse_head(buf).ok()??;
            let framed = headers.iter().any(|(k, _)| k == "content-length" || k == "transfer-encoding");
            (!framed).then(|| Resp { status, headers, body: buf[head_len..].to_vec() })
        }
    }
}

/// Reads the interim "100 Continue" response to a request sent with
/// `Expect: 100-continue`. The server sends it when it starts reading the
/// body, so once it arrives the server has taken the whole request head:
/// an event to wait for instead of a guessed pause.
///
/// # Errors
/// A description if the connection ends, times out, or answers otherwise.
pub fn await_continue(conn: &mut TcpStream) -> Result<(), String> {
    conn.set_read_timeout(Some(HTTP_TIMEOUT)).map_err(|e| e.to_string())?;
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !seen.ends_with(b"\r\n\r\n") {
        if seen.len() > 256 {
            return Err(format!("no interim response: {:?}", String::from_utf8_lossy(&seen)));
        }
        conn.read_exact(&mut byte).map_err(|e| format!("{e} after {:?}", String::from_utf8_lossy(&seen)))?;
        seen.push(byte[0]);
    }
    if seen.starts_with(b"HTTP/1.1 100 ") {
        Ok(())
    } else {
        Err(format!("a final answer instead of 100 Continue: {:?}", String::from_utf8_lossy(&seen)))
    }
}
