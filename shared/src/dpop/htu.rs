//! The `htu` comparison of RFC 9449 §4.3: the URI of the request, without
//! its query and fragment, compared after the syntax-based normalisation of
//! RFC 3986 §6.2.2 and the scheme-based one of §6.2.3 (case of the scheme
//! and host, percent-encoding, dot segments, default port, empty path).

/// Longer URIs are refused unread.
const MAX_URI_LEN: usize = 2048;

/// The normalised form of `uri` without query and fragment, or `None` if it
/// is not an absolute `scheme://authority[/path]` URI.
pub fn normalise(uri: &str) -> Option<String> {
    if uri.len() > MAX_URI_LEN {
        return None;
    }
    let uri = uri.split('#').next().unwrap_or_default();
    let uri = uri.split('?').next().unwrap_or_default();
    let (scheme, rest) = uri.split_once("://")?;
    let scheme_ok = scheme.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    if !scheme_ok {
        return None;
    }
    let scheme = scheme.to_ascii_lowercase();
    let (authority, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, ""),
    };
    let authority = normalise_authority(&scheme, authority)?;
    let path = if path.is_empty() { "/".to_owned() } else { remove_dot_segments(&normalise_percent(path)?) };
    Some(format!("{scheme}://{authority}{path}"))
}

fn normalise_authority(scheme: &str, authority: &str) -> Option<String> {
    // Credentials in the URI are never part of an htu Tessera accepts.
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (host, rest) = authority.split_at(end + 1);
        (host, if rest.is_empty() { None } else { Some(rest.strip_prefix(':')?) })
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() || !host.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let host = normalise_percent(&host.to_ascii_lowercase())?;
    let default_port = match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    };
    match port {
        None | Some("") => Some(host),
        Some(port) => {
            if !port.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let port: u16 = port.parse().ok()?;
            if Some(port) == default_port { Some(host) } else { Some(format!("{host}:{port}")) }
        }
    }
}

/// Decodes percent-encoded unreserved characters and upper-cases the hex
/// digits of the others (RFC 3986 §6.2.2.1, §6.2.2.2).
fn normalise_percent(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let high = (hex[0] as char).to_digit(16)?;
            let low = (hex[1] as char).to_digit(16)?;
            let value = u8::try_from(high * 16 + low).ok()?;
            if value.is_ascii_alphanumeric() || b"-._~".contains(&value) {
                out.push(value as char);
            } else {
                out.push('%');
                out.push(hex[0].to_ascii_uppercase() as char);
                out.push(hex[1].to_ascii_uppercase() as char);
            }
            i += 3;
        } else if b.is_ascii_graphic() {
            out.push(b as char);
            i += 1;
        } else {
            return None;
        }
    }
    Some(out)
}

/// RFC 3986 §5.2.4 for an absolute path.
fn remove_dot_segments(path: &str) -> String {
    let mut output: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." => {
                if i == last {
                    output.push("");
                }
            }
            ".." => {
                output.pop();
                if i == last {
                    output.push("");
                }
            }
            other => output.push(other),
        }
    }
    format!("/{}", output.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equivalent_uris_normalise_alike() {
        let base = normalise("https://server.example.com/token").expect("valid");
        for same in [
            "HTTPS://Server.Example.COM/token",
            "https://server.example.com:443/token",
            "https://server.example.com/token?x=1#frag",
            "https://server.example.com/%74oken",
            "https://server.example.com/a/../token",
            "https://server.example.com/./token",
        ] {
            assert_eq!(normalise(same).as_deref(), Some(base.as_str()), "{same}");
        }
        assert_eq!(normalise("http://127.0.0.1:80").as_deref(), Some("http://127.0.0.1/"));
        assert_eq!(normalise("http://127.0.0.1:8080/a%2fb").as_deref(), Some("http://127.0.0.1:8080/a%2Fb"));
        assert_eq!(normalise("http://[::1]:8080/x").as_deref(), Some("http://[::1]:8080/x"));
    }

    #[test]
    fn different_uris_stay_different() {
        let base = normalise("https://server.example.com/token");
        for other in [
            "http://server.example.com/token",
            "https://server.example.com:8443/token",
            "https://server.example.com/Token",
            "https://other.example.com/token",
            "https://server.example.com/token/",
        ] {
            assert_ne!(normalise(other), base, "{other}");
        }
    }

    #[test]
    fn non_uris_are_refused() {
        for bad in ["", "/token", "token", "https://", "https://user@host/", "https://h/%zz", "https://h:x/", "1a://h/"]
        {
            assert_eq!(normalise(bad), None, "{bad}");
        }
        assert_eq!(normalise(&format!("https://h/{}", "a".repeat(MAX_URI_LEN))), None);
    }
}
