//! The `Authorization: Basic` header of client_secret_basic
//! (RFC 6749 §2.3.1, RFC 7617).

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};

use super::params::decode_component;
use crate::client_auth::{AuthorizationHeader, ClientCredentials};

/// Longer headers are refused before decoding: real credentials are about
/// 120 characters.
const MAX_HEADER_LEN: usize = 1024;

/// Standard base64, with or without padding (some clients drop it).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Reads the value of an `Authorization` header.
pub fn parse(value: &[u8]) -> AuthorizationHeader {
    parse_basic(value).map_or(AuthorizationHeader::Malformed, AuthorizationHeader::Basic)
}

fn parse_basic(value: &[u8]) -> Option<ClientCredentials> {
    if value.len() > MAX_HEADER_LEN {
        return None;
    }
    let space = value.iter().position(|b| *b == b' ')?;
    let (scheme, encoded) = (&value[..space], value[space..].trim_ascii());
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let decoded = BASE64.decode(encoded).ok()?;
    let colon = decoded.iter().position(|b| *b == b':')?;
    // RFC 6749 §2.3.1: both parts are form-urlencoded before base64.
    let client_id = decode_component(&decoded[..colon]).ok()?;
    let client_secret = decode_component(&decoded[colon + 1..]).ok()?;
    if client_id.is_empty() {
        return None;
    }
    Some(ClientCredentials { client_id, client_secret })
}

/// Encodes credentials the way curl's `-u` does, for tests.
#[cfg(test)]
pub fn encode(client_id: &str, client_secret: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{client_id}:{client_secret}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn creds(id: &str, secret: &str) -> AuthorizationHeader {
        AuthorizationHeader::Basic(ClientCredentials { client_id: id.into(), client_secret: secret.into() })
    }

    #[test]
    fn curl_style_header() {
        let header =
            encode("oa2-client-id_zmNtW-D0Toqpz4AZnBLCIlklBrz9ynU-", "5uC5Y4Mcvdl5rB56rBmxnvB4DZgiIpcyTPbOoEWp");
        assert_eq!(
            parse(header.as_bytes()),
            creds("oa2-client-id_zmNtW-D0Toqpz4AZnBLCIlklBrz9ynU-", "5uC5Y4Mcvdl5rB56rBmxnvB4DZgiIpcyTPbOoEWp")
        );
    }

    #[test]
    fn scheme_is_case_insensitive_and_padding_optional() {
        assert_eq!(parse(b"basic YTpi"), creds("a", "b"));
        assert_eq!(parse(b"BASIC   YTpi  "), creds("a", "b"));
        assert_eq!(parse(b"Basic YTpiYw"), creds("a", "bc"));
        assert_eq!(parse(b"Basic YTpiYw=="), creds("a", "bc"));
    }

    #[test]
    fn parts_are_form_urlencoded() {
        assert_eq!(parse(encode("a%3Ab", "c+d%25").as_bytes()), creds("a:b", "c d%"));
        // The secret may contain a colon; only the first one splits.
        assert_eq!(parse(encode("a", "b:c").as_bytes()), creds("a", "b:c"));
    }

    #[test]
    fn malformed_headers() {
        for bad in [
            &b"Bearer abc"[..],
            b"Basic",
            b"Basic !!!!",
            b"Basic YWI=",     // "ab": no colon
            b"Basic OmI=",     // ":b": empty client ID
            b"Basic /w==",     // 0xff: not UTF-8
            b"Basic JXp6OmI=", // "%zz:b": bad percent-encoding
            b"Digest username=\"a\"",
        ] {
            assert_eq!(parse(bad), AuthorizationHeader::Malformed, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(parse(format!("Basic {}", "A".repeat(2000)).as_bytes()), AuthorizationHeader::Malformed);
    }

    proptest! {
        #[test]
        fn any_header_bytes_parse_without_panicking(value in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(&value);
        }

        #[test]
        fn any_url_safe_credentials_round_trip(id in "[A-Za-z0-9_-]{1,60}", secret in "[A-Za-z0-9_-]{0,60}") {
            prop_assert_eq!(parse(encode(&id, &secret).as_bytes()), creds(&id, &secret));
        }
    }
}
