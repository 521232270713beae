//! Encoding of stored records.
//!
//! Refresh tokens and families are numerous, so they use postcard (compact,
//! binary); clients and keys are few and read by people debugging, so they
//! use JSON. Each encoding starts with a format byte so a later version can
//! migrate records in place.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StoreError;

const POSTCARD_V1: u8 = 1;
const JSON_V1: u8 = b'{';

/// Encodes a numerous record compactly.
pub fn encode_compact<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![POSTCARD_V1];
    postcard::to_io(value, &mut out).map_err(|e| StoreError::Corrupt(format!("encoding: {e}")))?;
    Ok(out)
}

/// Decodes what [`encode_compact`] wrote.
pub fn decode_compact<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&POSTCARD_V1, rest)) => {
            postcard::from_bytes(rest).map_err(|e| StoreError::Corrupt(format!("decoding: {e}")))
        }
        _ => Err(StoreError::Corrupt("unknown record format".into())),
    }
}

/// Encodes a record as JSON (its first byte, `{`, is the format byte).
pub fn encode_json<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(format!("encoding: {e}")))
}

/// Decodes what [`encode_json`] wrote.
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    if bytes.first() != Some(&JSON_V1) {
        return Err(StoreError::Corrupt("unknown record format".into()));
    }
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("decoding: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::records::{FamilyRecord, PreviousToken};

    fn record() -> FamilyRecord {
        FamilyRecord {
            generation: 8_640,
            previous: Some(PreviousToken { generation: 8_639, digest: [4; 32], rotated_at: 1_700_000_000 }),
            dpop_jkt: Some([5; 32]),
            client_epoch: 2,
            ..crate::store::conformance::family(7, "oa2-client-id_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 1_700_000_000, 100)
        }
    }

    #[test]
    fn compact_round_trip() {
        let bytes = encode_compact(&record()).unwrap();
        assert_eq!(decode_compact::<FamilyRecord>(&bytes).unwrap(), record());
        // Issue 12: a family, bound and mid-grace, is one small record.
        assert!(bytes.len() < 200, "{} bytes", bytes.len());
    }

    #[test]
    fn garbage_is_corrupt_not_a_panic() {
        assert!(matches!(decode_compact::<FamilyRecord>(&[]), Err(StoreError::Corrupt(_))));
        assert!(matches!(decode_compact::<FamilyRecord>(&[1, 255, 255]), Err(StoreError::Corrupt(_))));
        assert!(matches!(decode_json::<FamilyRecord>(b"[]"), Err(StoreError::Corrupt(_))));
    }
}
