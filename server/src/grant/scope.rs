//! Scopes (RFC 6749 §3.3): space-separated tokens of printable ASCII
//! without `"` or `\`.

use super::error::TokenError;

/// A scope string longer than this is refused before it is split.
pub const MAX_SCOPE_LEN: usize = 1024;

/// Whether `token` is a valid scope-token.
pub fn is_scope_token(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}

/// Splits a requested scope into its tokens, without repeats, in order.
///
/// # Errors
/// [`TokenError::InvalidScope`] if it is too long, empty or has an invalid token.
pub fn parse(scope: &str) -> Result<Vec<String>, TokenError> {
    if scope.len() > MAX_SCOPE_LEN {
        return Err(TokenError::InvalidScope("scope is too long"));
    }
    let mut tokens: Vec<String> = Vec::new();
    for token in scope.split(' ').filter(|t| !t.is_empty()) {
        if !is_scope_token(token) {
            return Err(TokenError::InvalidScope("scope is malformed"));
        }
        if !tokens.iter().any(|t| t == token) {
            tokens.push(token.to_owned());
        }
    }
    if tokens.is_empty() {
        return Err(TokenError::InvalidScope("scope is empty"));
    }
    Ok(tokens)
}

/// The scope to grant: what was requested if every part of it is within
/// `allowed`, or all of `allowed` when nothing was requested.
///
/// # Errors
/// [`TokenError::InvalidScope`] when `requested` asks for anything outside `allowed`.
pub fn grant(allowed: &[String], requested: Option<&[String]>) -> Result<Vec<String>, TokenError> {
    match requested {
        None => Ok(allowed.to_vec()),
        Some(requested) if is_subset(requested, allowed) => Ok(requested.to_vec()),
        Some(_) => Err(TokenError::InvalidScope("the requested scope is not allowed for this client")),
    }
}

/// Whether every scope in `part` is in `whole`.
pub fn is_subset(part: &[String], whole: &[String]) -> bool {
    part.iter().all(|s| whole.contains(s))
}

/// The `scope` claim and response field: the tokens joined by spaces, or
/// nothing for an unscoped grant.
pub fn to_claim(scopes: &[String]) -> Option<String> {
    (!scopes.is_empty()).then(|| scopes.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parse_splits_and_dedups() {
        assert_eq!(parse("read  write read").unwrap(), v(&["read", "write"]));
    }

    #[test]
    fn parse_refuses_bad_tokens() {
        for bad in ["a\"b", "a\\b", "caf\u{e9}", "   ", "a\tb"] {
            assert!(matches!(parse(bad), Err(TokenError::InvalidScope(_))), "{bad:?}");
        }
        assert!(parse(&"a".repeat(MAX_SCOPE_LEN + 1)).is_err());
    }

    #[test]
    fn grant_defaults_to_everything_allowed() {
        assert_eq!(grant(&v(&["a", "b"]), None).unwrap(), v(&["a", "b"]));
        assert_eq!(grant(&[], None).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn grant_allows_subsets_only() {
        assert_eq!(grant(&v(&["a", "b"]), Some(&v(&["b"]))).unwrap(), v(&["b"]));
        assert!(matches!(grant(&v(&["a"]), Some(&v(&["a", "b"]))), Err(TokenError::InvalidScope(_))));
        assert!(matches!(grant(&[], Some(&v(&["a"]))), Err(TokenError::InvalidScope(_))));
    }

    #[test]
    fn claim_is_absent_for_unscoped_grants() {
        assert_eq!(to_claim(&[]), None);
        assert_eq!(to_claim(&v(&["a", "b"])).as_deref(), Some("a b"));
    }
}
