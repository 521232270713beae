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
    use crate::store::records::{RefreshRecord, RefreshState};

    #[test]
    fn compact_round_trip() {
        let record = RefreshRecord {
            family_id: [7; 16],
            client_id: "oa2-client-id_x".into(),
            issued_at: 10,
            expires_at: 20,
            state: RefreshState::Rotated { at: 15, successor: [9; 32] },
        };
        let bytes = encode_compact(&record).unwrap();
        assert_eq!(decode_compact::<RefreshRecord>(&bytes).unwrap(), record);
    }

    #[test]
    fn garbage_is_corrupt_not_a_panic() {
        assert!(matches!(decode_compact::<RefreshRecord>(&[]), Err(StoreError::Corrupt(_))));
        assert!(matches!(decode_compact::<RefreshRecord>(&[1, 255, 255]), Err(StoreError::Corrupt(_))));
        assert!(matches!(decode_json::<RefreshRecord>(b"[]"), Err(StoreError::Corrupt(_))));
    }
}
