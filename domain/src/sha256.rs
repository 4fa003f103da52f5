//! A SHA-256 digest: what names a checkpoint, a kept model and an upload's content.
//!
//! Text from outside (a header, a record) becomes a [`Sha256`] once, where it enters
//! ([`str::parse`]); from there on a digest cannot be a malformed string, and it prints as
//! the 64 lowercase hex digits files and messages use.
//!
//! ```
//! use ltsweep_domain::Sha256;
//!
//! let digest = Sha256::of(b"abc");
//! assert_eq!(
//!     digest.to_string(),
//!     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
//! );
//! assert_eq!(digest.to_string().to_uppercase().parse::<Sha256>(), Ok(digest));
//! assert!("not a digest".parse::<Sha256>().is_err());
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Digest;

/// The 32 bytes of a SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sha256([u8; 32]);

impl Sha256 {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(sha2::Sha256::digest(bytes).into())
    }
}

/// Text that is not 64 hex digits.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a SHA-256: give it as 64 hex digits")]
pub struct NotSha256;

impl FromStr for Sha256 {
    type Err = NotSha256;

    /// 64 hex digits, either case.
    fn from_str(text: &str) -> Result<Self, NotSha256> {
        let text = text.as_bytes();
        if text.len() != 64 {
            return Err(NotSha256);
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(text.chunks_exact(2)) {
            let digit = |c: u8| (c as char).to_digit(16).ok_or(NotSha256);
            *byte = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
        }
        Ok(Self(bytes))
    }
}

/// Lowercase hex, 64 digits.
impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({self})")
    }
}

/// As its hex text, so stored records keep the form they had as strings.
impl Serialize for Sha256 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Sha256 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A digest computed a piece at a time, as chunks arrive.
#[derive(Clone, Debug, Default)]
pub struct Sha256Hasher(sha2::Sha256);

impl Sha256Hasher {
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub fn finish(self) -> Sha256 {
        Sha256(self.0.finalize().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_round_trip_through_their_text_and_json() {
        let digest = Sha256::of(b"");
        let text = digest.to_string();
        assert_eq!(
            text,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(text.parse::<Sha256>(), Ok(digest));
        let json = serde_json::to_string(&digest).unwrap();
        assert_eq!(json, format!("\"{text}\""));
        assert_eq!(serde_json::from_str::<Sha256>(&json).unwrap(), digest);
        assert!(serde_json::from_str::<Sha256>("\"abc\"").is_err());
    }

    #[test]
    fn only_64_hex_digits_parse() {
        assert!("AB".repeat(32).parse::<Sha256>().is_ok());
        for bad in ["", "xyz", &"a".repeat(63), &"a".repeat(65), &"g".repeat(64)] {
            assert_eq!(bad.parse::<Sha256>(), Err(NotSha256), "{bad:?}");
        }
        // Multi-byte characters of the right byte length are not digits either.
        assert_eq!("é".repeat(32).parse::<Sha256>(), Err(NotSha256));
    }

    #[test]
    fn a_digest_hashed_in_pieces_is_the_digest_of_the_whole() {
        let mut hasher = Sha256Hasher::default();
        hasher.update(b"ab");
        hasher.update(b"c");
        assert_eq!(hasher.finish(), Sha256::of(b"abc"));
    }
}
