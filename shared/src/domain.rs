//! The product's types: events, pages of events, sessions and presence, and the rules that do
//! not depend on Redis (when a page has `missed` events).

use serde::Serialize;
use serde_json::value::RawValue;

use crate::client_key::ClientKey;
use crate::cursor::Cursor;
use crate::keys::{Account, EventId};

/// The most events one publish request may carry.
pub const MAX_BATCH: usize = 100;

/// An event a backend wants to publish.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub account: Account,
    /// Idempotency id; the server makes one up when absent.
    pub id: Option<EventId>,
    pub data: Box<RawValue>,
}

/// What publishing one event did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Published {
    /// The Redis key it went to (`bcast:wp123456`).
    pub key: String,
    pub id: String,
    pub cursor: Cursor,
    /// True when an event with this id was already stored within the TTL; `cursor` is then the
    /// original's.
    pub duplicate: bool,
}

/// A stored event as clients see it.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub id: String,
    pub cursor: Cursor,
    /// The score: Unix seconds with microseconds.
    pub ts: f64,
    pub data: Box<RawValue>,
}

/// The events after a cursor.
#[derive(Debug, Clone, Serialize)]
pub struct Page {
    pub events: Vec<Event>,
    /// Where to continue: the last event's cursor, else the one given.
    pub cursor: Option<Cursor>,
    /// The limit cut the answer; ask again with `cursor`.
    pub more: bool,
    /// At least one event newer than the given cursor is no longer retained.
    pub missed: bool,
}

/// What Redis remembers of a key beyond its events, and what a read found, in µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    /// The first event of the metadata's lifetime; `None` when there is no metadata.
    pub created: Option<u64>,
    /// The newest event ever published.
    pub last: Option<u64>,
    /// The newest event trimmed or aged out by a publish.
    pub dropped: Option<u64>,
    /// Whether the events key exists at all (it expires a TTL after the last publish).
    pub key_exists: bool,
    /// The newest event still in the key but older than the TTL.
    pub expired: Option<u64>,
    /// An event at or before the reader's cursor is still retained.
    pub since_retained: bool,
}

impl Retention {
    /// Whether an event newer than `since` is gone. Events are only ever lost oldest first
    /// (trimmed, aged out, or the key expired): while an event at or before `since` is
    /// retained nothing newer can be lost, and otherwise it is enough to know the newest lost
    /// one. When the metadata does not reach back to `since` the answer is conservatively true.
    pub fn missed_since(&self, since: Option<Cursor>) -> bool {
        let Some(since) = since.map(Cursor::micros) else {
            return false;
        };
        if self.since_retained {
            return false;
        }
        let Some(created) = self.created else {
            return true;
        };
        if since < created {
            return true;
        }
        let gone_with_key = if self.key_exists { None } else { self.last };
        let newest_lost = [self.dropped, self.expired, gone_with_key]
            .into_iter()
            .flatten()
            .max();
        newest_lost.is_some_and(|lost| lost > since)
    }
}

/// A client key handed back to the client, and how long it lives.
#[derive(Debug, Clone)]
pub struct Grant {
    pub client_key: ClientKey,
    pub expires_in: u64,
}

/// A new session.
#[derive(Debug, Clone)]
pub struct Login {
    pub grant: Grant,
    /// The newest event's cursor at login.
    pub cursor: Option<Cursor>,
}

/// What a heartbeat learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pulse {
    pub latest: Option<Cursor>,
    /// Retained events newer than the given cursor.
    pub pending: u64,
}

/// One session seen within the presence timeout.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeenSession {
    /// A stable label of the session (not its id, which is part of its client keys).
    pub session: String,
    /// Unix seconds.
    pub last_seen: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Presence {
    pub online: usize,
    pub sessions: Vec<SeenSession>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(us: u64) -> Option<Cursor> {
        Some(Cursor::from_micros(us))
    }

    #[test]
    fn missed_is_exact_within_the_metadata() {
        let kept = Retention {
            created: Some(100),
            last: Some(500),
            dropped: Some(300),
            key_exists: true,
            expired: None,
            since_retained: false,
        };
        assert!(!kept.missed_since(None));
        assert!(kept.missed_since(c(299)), "event 300 was trimmed");
        assert!(!kept.missed_since(c(300)), "nothing after 300 was lost");
        assert!(!kept.missed_since(c(900)));
        assert!(kept.missed_since(c(50)), "older than the metadata");

        let aged = Retention {
            expired: Some(400),
            ..kept
        };
        assert!(aged.missed_since(c(350)));
        assert!(!aged.missed_since(c(400)));

        let key_gone = Retention {
            key_exists: false,
            ..kept
        };
        assert!(key_gone.missed_since(c(499)));
        assert!(!key_gone.missed_since(c(500)));

        assert!(Retention::default().missed_since(c(1)));
        let anchored = Retention {
            since_retained: true,
            ..Retention::default()
        };
        assert!(
            !anchored.missed_since(c(1)),
            "an event at the cursor is still there"
        );
    }
}
