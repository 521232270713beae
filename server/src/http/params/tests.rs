use super::*;
use proptest::prelude::*;

fn decode(input: &str) -> Result<Vec<(String, String)>, ParamError> {
    let mut out = Vec::new();
    decode_into(input.as_bytes(), Source::Query, 64, &mut out)?;
    Ok(out.into_iter().map(|p| (p.name, p.value)).collect())
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
}

#[test]
fn blynk_query() {
    assert_eq!(
        decode("grant_type=refresh_token&refresh_token=Esiu5g_OVc0ZxoH_F3X-4-lIoMvcU3yJjBN4QoQq").unwrap(),
        pairs(&[("grant_type", "refresh_token"), ("refresh_token", "Esiu5g_OVc0ZxoH_F3X-4-lIoMvcU3yJjBN4QoQq")])
    );
}

#[test]
fn plus_percent_and_empty_pieces() {
    assert_eq!(decode("scope=a+b%20c&&x&y=").unwrap(), pairs(&[("scope", "a b c"), ("x", ""), ("y", "")]));
    assert_eq!(decode("a=%3D%26%2b").unwrap(), pairs(&[("a", "=&+")]));
    assert_eq!(decode("a=b=c").unwrap(), pairs(&[("a", "b=c")]));
    assert_eq!(decode("").unwrap(), pairs(&[]));
}

#[test]
fn bad_percent_encoding_is_refused() {
    for bad in ["a=%", "a=%2", "a=%zz", "a=%%41", "%g0=1"] {
        assert_eq!(decode(bad), Err(ParamError::BadPercentEncoding), "{bad}");
    }
}

#[test]
fn non_utf8_is_refused() {
    assert_eq!(decode("a=%ff"), Err(ParamError::NotUtf8));
    assert_eq!(decode("a=%c3"), Err(ParamError::NotUtf8));
    assert_eq!(decode("a=%c3%a9").unwrap(), pairs(&[("a", "\u{e9}")]));
}

#[test]
fn the_bound_counts_pairs_from_every_source() {
    let mut out = Vec::new();
    decode_into(b"a=1&b=2", Source::Query, 3, &mut out).unwrap();
    assert_eq!(decode_into(b"c=3&d=4", Source::Body, 3, &mut out), Err(ParamError::TooMany));
}

#[test]
fn a_pair_longer_than_the_bound_is_refused_as_sent() {
    let mut out = Vec::new();
    // 8 bytes as sent, although "%41" decodes to one byte.
    decode_bounded(b"a=%41%41", Source::Query, 10, 8, &mut out).unwrap();
    assert_eq!(decode_bounded(b"b=%41%41%41", Source::Query, 10, 8, &mut out), Err(ParamError::TooLong));
    assert_eq!(out.len(), 1);
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => (b as char).to_string(),
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

proptest! {
    #[test]
    fn any_bytes_decode_or_fail_cleanly(input in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut out = Vec::new();
        let _ = decode_into(&input, Source::Body, 64, &mut out);
        prop_assert!(out.len() <= 64);
    }

    #[test]
    fn bounded_decoding_keeps_every_bound(input in proptest::collection::vec(any::<u8>(), 0..512), max_len in 1usize..64) {
        let mut out = Vec::new();
        if decode_bounded(&input, Source::Query, 16, max_len, &mut out).is_ok() {
            for p in &out {
                // A decoded pair is never longer than it was as sent.
                prop_assert!(p.name.len() + p.value.len() <= max_len);
            }
        }
        prop_assert!(out.len() <= 16);
    }

    #[test]
    fn encoding_round_trips(name in "[a-z_]{1,12}", value in any::<String>()) {
        let input = format!("{}={}", encode(&name), encode(&value));
        prop_assert_eq!(decode(&input).unwrap(), vec![(name, value)]);
    }
}
