//! The shapes of the identifiers and secrets Tessera hands out.
//!
//! Every random string is drawn from the 64-character URL-safe alphabet
//! `[A-Za-z0-9_-]`, six bits a character, so 40 characters carry 240 bits.

/// Every client ID starts with this.
pub const CLIENT_ID_PREFIX: &str = "oa2-client-id_";
/// Random characters after [`CLIENT_ID_PREFIX`].
pub const CLIENT_ID_RANDOM_LEN: usize = 32;
/// Length of a client secret.
pub const CLIENT_SECRET_LEN: usize = 40;
/// Length of a refresh token.
pub const REFRESH_TOKEN_LEN: usize = 40;

/// Whether every byte of `s` is in `[A-Za-z0-9_-]`.
pub fn is_url_safe(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether `s` has the shape of a Tessera client ID.
pub fn is_client_id(s: &str) -> bool {
    s.strip_prefix(CLIENT_ID_PREFIX).is_some_and(|rest| rest.len() == CLIENT_ID_RANDOM_LEN && is_url_safe(rest))
}

/// Whether `s` has the shape of a refresh token.
pub fn is_refresh_token(s: &str) -> bool {
    s.len() == REFRESH_TOKEN_LEN && is_url_safe(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_id_shape() {
        assert!(is_client_id("oa2-client-id_zmNtW-D0Toqpz4AZnBLCIlklBrz9ynU-"));
        assert!(!is_client_id("oa2-client-id_zmNtW-D0Toqpz4AZnBLCIlklBrz9ynU"));
        assert!(!is_client_id("oa2-client-id_zmNtW-D0Toqpz4AZnBLCIlklBrz9yn!-"));
        assert!(!is_client_id("zmNtW-D0Toqpz4AZnBLCIlklBrz9ynU-"));
    }

    #[test]
    fn refresh_token_shape() {
        assert!(is_refresh_token("Esiu5g_OVc0ZxoH_F3X-4-lIoMvcU3yJjBN4QoQq"));
        assert!(!is_refresh_token("Esiu5g_OVc0ZxoH_F3X-4-lIoMvcU3yJjBN4QoQ"));
        assert!(!is_refresh_token("Esiu5g_OVc0ZxoH_F3X-4-lIoMvcU3yJjBN4QoQ="));
    }
}
