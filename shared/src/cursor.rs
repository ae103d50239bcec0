//! Cursors: where a client is in an account's stream of events.
//!
//! A cursor is the server-assigned score of an event in microseconds, which is strictly
//! increasing within a key, encoded as an opaque URL-safe string so clients do not do arithmetic
//! on it.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("malformed cursor")]
pub struct MalformedCursor;

/// An event's position: its score in microseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cursor(u64);

/// Scores stay below 2^53 µs (year 2255) so they are exact in a Lua number and a Redis score.
const MAX_MICROS: u64 = (1 << 53) - 1;

impl Cursor {
    pub fn from_micros(micros: u64) -> Self {
        Self(micros)
    }

    pub fn micros(self) -> u64 {
        self.0
    }

    /// The event's timestamp in seconds, as its score reads in Redis.
    pub fn seconds(self) -> f64 {
        self.0 as f64 / 1e6
    }

    pub fn parse(text: &str) -> Result<Self, MalformedCursor> {
        if text.len() != 11 {
            return Err(MalformedCursor);
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| MalformedCursor)?;
        let bytes: [u8; 8] = bytes.try_into().map_err(|_| MalformedCursor)?;
        let micros = u64::from_be_bytes(bytes);
        if micros > MAX_MICROS {
            return Err(MalformedCursor);
        }
        Ok(Self(micros))
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode(self.0.to_be_bytes()))
    }
}

impl Serialize for Cursor {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cursor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Cursor::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trips(micros in 0..=MAX_MICROS) {
            let c = Cursor::from_micros(micros);
            prop_assert_eq!(Cursor::parse(&c.to_string()), Ok(c));
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,40}") {
            let _ = Cursor::parse(&text);
        }
    }

    #[test]
    fn malformed_cursors_are_refused() {
        for bad in [
            "",
            "abc",
            "AAAAAAAAAAAA",
            "AAAAAAAAAA=",
            "////////////",
            "_________w_",
            "{}",
            "AAAAAAAAAA!",
        ] {
            assert_eq!(Cursor::parse(bad), Err(MalformedCursor), "{bad:?}");
        }
        // Decodes to more than 2^53 µs.
        assert_eq!(Cursor::parse("__________8"), Err(MalformedCursor));
    }
}
