//! The journal's on-disk record: what one committed change set looks like
//! in a segment file, and how a segment is read back.
//!
//! A record is `length (u32 LE) ++ crc32 of the payload (u32 LE) ++
//! payload`, the payload being the postcard encoding of the changes. A
//! crash can leave the last record of the newest segment torn; the reader
//! reports where the valid records end so the caller can tell a torn tail
//! (expected) from damage in the middle of the journal (not).

use serde::{Deserialize, Serialize};

use crate::store::StoreError;

/// Bytes before each payload: its length and its checksum.
const HEADER_LEN: usize = 8;

/// A payload larger than this is damage, not a record: the biggest change
/// set the store writes (a rotation) is a few hundred bytes, and the bound
/// keeps a corrupt length from asking for gigabytes.
const MAX_PAYLOAD: usize = 16 * 1024 * 1024;

/// The sled trees whose writes go through the journal: every tree the
/// store writes.
///
/// On disk a tree is its explicit code (one byte), never the variant's
/// position: reordering or adding variants cannot make a journal replay
/// into the wrong tree. Codes 0 and 3 are those the variant order gave
/// before they were explicit. Codes 1 and 2 (the per-token trees of
/// storage format 1) are retired: a data dir of that format is refused
/// before its journal is read ([`crate::store::sled`]'s `format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "u8", try_from = "u8")]
pub enum TreeId {
    Families,
    ClientFamilies,
    Meta,
    Clients,
    ClientLastUsed,
    Keys,
    Audit,
    DeniedJti,
    DeniedExpiry,
    /// private_key_jwt replay set: client ID ++ 0 ++ SHA-256 of the `jti`.
    AssertionJti,
    /// Its purge index: expiry (u64 BE) ++ the `AssertionJti` key.
    AssertionExpiry,
    /// Families by the day their current token expires: day (u32 BE) ++
    /// family ID, for the purge.
    FamilyExpiry,
}

impl TreeId {
    /// Every tree, each once.
    pub const ALL: [Self; 12] = [
        Self::Families,
        Self::ClientFamilies,
        Self::FamilyExpiry,
        Self::Meta,
        Self::Clients,
        Self::ClientLastUsed,
        Self::Keys,
        Self::Audit,
        Self::DeniedJti,
        Self::DeniedExpiry,
        Self::AssertionJti,
        Self::AssertionExpiry,
    ];

    /// Whether the journal applies this tree's changes to sled at the
    /// checkpoint of their segment, rather than once they are synced.
    ///
    /// These are the refresh-token family records and their expiry index:
    /// a family start writes one key in each, and at a client's cap
    /// removes one of each, and most of those writes are soon overwritten
    /// or undone (a rotation overwrites the family; the cap retires a
    /// family a busy client started moments before). Held until the
    /// checkpoint, each key reaches sled once per segment, and often not
    /// at all. Everything that reads them goes through the journal's
    /// overlay ([`super::View`], [`super::Journal::get`] and the other
    /// reads of [`super::Journal`]); the other trees are read from sled
    /// directly too.
    ///
    /// `client_families` is applied at once although it churns the same
    /// way: the cap reads a client's oldest families from its start, and
    /// the removals held back would all lie in that path, to be stepped
    /// over at every read.
    #[must_use]
    pub const fn applied_at_checkpoint(self) -> bool {
        matches!(self, Self::Families | Self::FamilyExpiry)
    }

    /// The sled tree's name in the database.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Families => "families",
            Self::ClientFamilies => "client_families",
            Self::FamilyExpiry => "family_expiry",
            Self::Meta => "meta",
            Self::Clients => "clients",
            Self::ClientLastUsed => "client_last_used",
            Self::Keys => "keys",
            Self::Audit => "audit",
            Self::DeniedJti => "denied_jti",
            Self::DeniedExpiry => "denied_expiry",
            Self::AssertionJti => "assertion_jti",
            Self::AssertionExpiry => "assertion_expiry",
        }
    }
}

impl From<TreeId> for u8 {
    /// The code on disk. Codes are never reused.
    fn from(tree: TreeId) -> Self {
        match tree {
            TreeId::Families => 0,
            TreeId::ClientFamilies => 3,
            TreeId::Meta => 4,
            TreeId::Clients => 5,
            TreeId::ClientLastUsed => 6,
            TreeId::Keys => 7,
            TreeId::Audit => 8,
            TreeId::DeniedJti => 9,
            TreeId::DeniedExpiry => 10,
            TreeId::AssertionJti => 11,
            TreeId::AssertionExpiry => 12,
            TreeId::FamilyExpiry => 16,
        }
    }
}

/// A journal record names a tree code this build does not know.
#[derive(Debug, thiserror::Error)]
#[error("unknown journal tree code {0}")]
pub struct UnknownTree(u8);

impl TryFrom<u8> for TreeId {
    type Error = UnknownTree;

    fn try_from(code: u8) -> Result<Self, UnknownTree> {
        match code {
            0 => Ok(Self::Families),
            3 => Ok(Self::ClientFamilies),
            4 => Ok(Self::Meta),
            5 => Ok(Self::Clients),
            6 => Ok(Self::ClientLastUsed),
            7 => Ok(Self::Keys),
            8 => Ok(Self::Audit),
            9 => Ok(Self::DeniedJti),
            10 => Ok(Self::DeniedExpiry),
            11 => Ok(Self::AssertionJti),
            12 => Ok(Self::AssertionExpiry),
            16 => Ok(Self::FamilyExpiry),
            unknown => Err(UnknownTree(unknown)),
        }
    }
}

/// One write to one tree: `None` removes the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub tree: TreeId,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

/// Appends the record for `changes` to `out`.
///
/// # Errors
/// [`StoreError::Backend`] if the changes cannot be encoded.
pub fn encode(changes: &[Change], out: &mut Vec<u8>) -> Result<(), StoreError> {
    let payload =
        postcard::to_allocvec(changes).map_err(|e| StoreError::backend("cannot encode a journal record", e))?;
    if payload.len() > MAX_PAYLOAD {
        return Err(StoreError::internal("journal", "a journal record is over its size bound"));
    }
    let length =
        u32::try_from(payload.len()).map_err(|_| StoreError::internal("journal", "journal record too long"))?;
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(())
}

/// What a segment held.
#[derive(Debug, Default)]
pub struct Segment {
    /// Every complete, intact record, oldest first.
    pub records: Vec<Vec<Change>>,
    /// Bytes after the last intact record (0 for a clean segment): a torn
    /// write if this is the newest segment, damage otherwise.
    pub trailing_bytes: usize,
}

/// Reads the records of one segment's bytes, stopping at the first one
/// that is incomplete or fails its checksum.
#[must_use]
pub fn decode_segment(bytes: &[u8]) -> Segment {
    let mut segment = Segment::default();
    let mut rest = bytes;
    while let Some(changes) = next_record(&mut rest) {
        segment.records.push(changes);
    }
    segment.trailing_bytes = rest.len();
    segment
}

/// Takes one intact record off the front of `rest`, or leaves `rest`
/// untouched and returns `None`.
fn next_record(rest: &mut &[u8]) -> Option<Vec<Change>> {
    let header = rest.get(..HEADER_LEN)?;
    let length = usize::try_from(u32::from_le_bytes(header.get(..4)?.try_into().ok()?)).ok()?;
    let checksum = u32::from_le_bytes(header.get(4..)?.try_into().ok()?);
    if length > MAX_PAYLOAD {
        return None;
    }
    let payload = rest.get(HEADER_LEN..HEADER_LEN.checked_add(length)?)?;
    if crc32fast::hash(payload) != checksum {
        return None;
    }
    let changes = postcard::from_bytes(payload).ok()?;
    *rest = rest.get(HEADER_LEN + length..)?;
    Some(changes)
}

#[cfg(test)]
mod tests;
