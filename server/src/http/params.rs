//! A strict `application/x-www-form-urlencoded` decoder for query strings
//! and form bodies.
//!
//! Lenient decoders pass a bad `%` sequence through and replace invalid
//! UTF-8 with U+FFFD, so a mangled secret would be compared instead of
//! refused; this one refuses both.

use crate::grant::request::{Param, Source};

/// Why parameters could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// A `%` not followed by two hex digits.
    #[error("{}", self.description())]
    BadPercentEncoding,
    /// A decoded name or value is not UTF-8.
    #[error("{}", self.description())]
    NotUtf8,
    /// More parameters than allowed.
    #[error("{}", self.description())]
    TooMany,
    /// One `name=value` pair longer than allowed.
    #[error("{}", self.description())]
    TooLong,
}

/// Decodes `input` and appends its pairs to `out`, which may already hold
/// pairs from elsewhere; `max` bounds the total.
///
/// # Errors
/// [`ParamError`] on the first bad pair or when `out` would exceed `max`.
pub fn decode_into(input: &[u8], source: Source, max: usize, out: &mut Vec<Param>) -> Result<(), ParamError> {
    decode_bounded(input, source, max, usize::MAX, out)
}

/// [`decode_into`] that also refuses any `name=value` pair longer than
/// `max_pair_bytes` as sent (before decoding), so one huge value cannot make
/// the server decode, compare or hash it.
///
/// # Errors
/// [`ParamError`] on the first bad or overlong pair or when `out` would
/// exceed `max`.
pub fn decode_bounded(
    input: &[u8],
    source: Source,
    max: usize,
    max_pair_bytes: usize,
    out: &mut Vec<Param>,
) -> Result<(), ParamError> {
    for pair in input.split(|b| *b == b'&').filter(|pair| !pair.is_empty()) {
        if out.len() >= max {
            return Err(ParamError::TooMany);
        }
        if pair.len() > max_pair_bytes {
            return Err(ParamError::TooLong);
        }
        let (name, value) = match pair.iter().position(|b| *b == b'=') {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &[][..]),
        };
        out.push(Param { name: decode_component(name)?, value: decode_component(value)?, source });
    }
    Ok(())
}

/// Decodes one form-urlencoded component: `+` is a space, `%XX` a byte.
///
/// # Errors
/// [`ParamError::BadPercentEncoding`] or [`ParamError::NotUtf8`].
pub fn decode_component(input: &[u8]) -> Result<String, ParamError> {
    let mut bytes = Vec::with_capacity(input.len());
    let mut rest = input;
    while let Some((&b, tail)) = rest.split_first() {
        match b {
            b'+' => {
                bytes.push(b' ');
                rest = tail;
            }
            b'%' => {
                let [hi, lo, tail @ ..] = tail else { return Err(ParamError::BadPercentEncoding) };
                let (Some(hi), Some(lo)) = (hex(*hi), hex(*lo)) else { return Err(ParamError::BadPercentEncoding) };
                bytes.push(hi << 4 | lo);
                rest = tail;
            }
            _ => {
                bytes.push(b);
                rest = tail;
            }
        }
    }
    String::from_utf8(bytes).map_err(|_| ParamError::NotUtf8)
}

impl ParamError {
    /// The `error_description` for it.
    pub fn description(self) -> &'static str {
        match self {
            Self::BadPercentEncoding => "the request has a malformed percent-encoding",
            Self::NotUtf8 => "the request has a parameter that is not UTF-8",
            Self::TooMany => "the request has too many parameters",
            Self::TooLong => "the request has a parameter that is too long",
        }
    }
}

fn hex(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
