//! The strict form-urlencoded decoder on arbitrary bytes: never panics,
//! keeps its bounds, and whatever it accepts is valid UTF-8 no longer than
//! it was as sent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_server::grant::request::Source;
use tessera_server::http::params::{decode_bounded, decode_component};

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    if decode_bounded(data, Source::Query, 64, 256, &mut out).is_ok() {
        for param in &out {
            assert!(param.name.len() + param.value.len() <= 256);
        }
    }
    assert!(out.len() <= 64);
    if let Ok(decoded) = decode_component(data) {
        assert!(decoded.len() <= data.len());
    }
});
