//! The `aud` of an access token: one of the client's audiences, picked by
//! the RFC 8707 `resource` parameter, or the default.

use super::error::TokenError;

/// The audience a token is issued for. A client with audiences gets its
/// first one by default and may pick any of them with `resource`; a client
/// without gets `server_audience`, which is then the only `resource` it may
/// name. Values are compared exactly, as `aud` is by resource servers.
///
/// # Errors
/// [`TokenError::InvalidTarget`] for a `resource` that is not one of them.
pub fn select<'a>(
    client_audiences: &'a [String],
    server_audience: &'a str,
    resource: Option<&str>,
) -> Result<&'a str, TokenError> {
    let allowed = || client_audiences.iter().map(String::as_str);
    let default = allowed().next().unwrap_or(server_audience);
    match resource {
        None => Ok(default),
        Some(resource) if client_audiences.is_empty() => {
            if resource == server_audience {
                Ok(server_audience)
            } else {
                Err(TokenError::InvalidTarget)
            }
        }
        Some(resource) => allowed().find(|audience| *audience == resource).ok_or(TokenError::InvalidTarget),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: &str = "https://issuer.test";

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_default_is_the_first_audience_or_the_servers() {
        assert_eq!(select(&list(&["https://a", "https://b"]), SERVER, None).unwrap(), "https://a");
        assert_eq!(select(&[], SERVER, None).unwrap(), SERVER);
    }

    #[test]
    fn resource_picks_one_of_the_clients_audiences() {
        let audiences = list(&["https://a", "https://b"]);
        assert_eq!(select(&audiences, SERVER, Some("https://b")).unwrap(), "https://b");
        assert_eq!(select(&[], SERVER, Some(SERVER)).unwrap(), SERVER);
    }

    #[test]
    fn any_other_resource_is_invalid_target() {
        let audiences = list(&["https://a"]);
        for foreign in ["https://c", "https://a/", "HTTPS://a", SERVER, ""] {
            assert!(matches!(select(&audiences, SERVER, Some(foreign)), Err(TokenError::InvalidTarget)), "{foreign}");
        }
        assert!(matches!(select(&[], SERVER, Some("https://a")), Err(TokenError::InvalidTarget)));
    }
}
