//! The `Authorization: Basic` parser on arbitrary bytes: never panics, and
//! what it accepts has a non-empty client ID.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_server::client_auth::AuthorizationHeader;
use tessera_server::http::basic::parse;

fuzz_target!(|data: &[u8]| {
    if let AuthorizationHeader::Basic(credentials) = parse(data) {
        assert!(!credentials.client_id.is_empty());
    }
});
