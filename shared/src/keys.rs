//! Key naming: the one place that knows how an account's Redis keys are spelled.
//!
//! The broadcast key is `bcast:{client}{account_id}` exactly as the seed has it
//! (`bcast:wp123456`). Every companion key uses the whole broadcast key as its Redis Cluster hash
//! tag (`{bcast:wp123456}:meta`), so all keys of one account share a slot and one script can
//! touch them all.

use std::fmt;

use thiserror::Error;

/// Why a client name, account id or event id was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InvalidName {
    #[error("client must be one of: {0}")]
    UnknownClient(String),
    #[error("account_id must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'")]
    AccountId,
    #[error("id must be 1-128 characters of A-Z, a-z, 0-9, '_', '.', ':' or '-'")]
    EventId,
}

/// The configured client names (`wp`, `api`, `app`, …).
///
/// Names are lowercase letters and none is a prefix of another, so `bcast:{client}{account_id}`
/// can be split back unambiguously.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientNames(Vec<String>);

impl ClientNames {
    /// Checks a configured list; the error says what is wrong with it.
    pub fn new<I, S>(names: I) -> Result<Self, String>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let names: Vec<String> = names.into_iter().map(Into::into).collect();
        if names.is_empty() {
            return Err("at least one client name is required".into());
        }
        for name in &names {
            if name.is_empty() || name.len() > 32 || !name.bytes().all(|b| b.is_ascii_lowercase()) {
                return Err(format!(
                    "client name {name:?} must be 1-32 lowercase letters"
                ));
            }
        }
        for (i, a) in names.iter().enumerate() {
            for (j, b) in names.iter().enumerate() {
                if i != j && b.starts_with(a.as_str()) {
                    return Err(format!(
                        "client name {a:?} is a prefix of {b:?}: keys would be ambiguous"
                    ));
                }
            }
        }
        Ok(Self(names))
    }

    /// Finds `name` among the configured clients.
    pub fn client(&self, name: &str) -> Result<Client, InvalidName> {
        self.0
            .iter()
            .find(|c| c.as_str() == name)
            .map(|c| Client(c.clone()))
            .ok_or_else(|| InvalidName::UnknownClient(self.0.join(", ")))
    }

    pub fn names(&self) -> &[String] {
        &self.0
    }
}

impl Default for ClientNames {
    fn default() -> Self {
        Self(vec!["wp".into(), "api".into(), "app".into()])
    }
}

/// A client name that is one of the configured ones.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Client(String);

impl Client {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An account id: 1–64 characters of `[A-Za-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccountId(String);

impl AccountId {
    pub fn parse(id: &str) -> Result<Self, InvalidName> {
        let ok = (1..=64).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(id.to_owned()))
        } else {
            Err(InvalidName::AccountId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An event's idempotency id: 1–128 characters of `[A-Za-z0-9_.:-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventId(String);

impl EventId {
    pub fn parse(id: &str) -> Result<Self, InvalidName> {
        let ok = (1..=128).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
        if ok {
            Ok(Self(id.to_owned()))
        } else {
            Err(InvalidName::EventId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One (client, account) pair: the unit that owns a broadcast key and everything around it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Account {
    client: Client,
    id: AccountId,
}

impl Account {
    pub fn new(client: Client, id: AccountId) -> Self {
        Self { client, id }
    }

    /// Validates both parts against the configured clients.
    pub fn parse(clients: &ClientNames, client: &str, id: &str) -> Result<Self, InvalidName> {
        Ok(Self::new(clients.client(client)?, AccountId::parse(id)?))
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn id(&self) -> &AccountId {
        &self.id
    }

    /// `bcast:wp123456`: the sorted set of events, the seed's key.
    pub fn events_key(&self) -> String {
        format!("bcast:{}{}", self.client.0, self.id.0)
    }

    fn companion(&self, suffix: &str) -> String {
        format!("{{bcast:{}{}}}:{suffix}", self.client.0, self.id.0)
    }

    /// Hash with `created`, `last` and `dropped` (µs): what makes `missed` exact.
    pub fn meta_key(&self) -> String {
        self.companion("meta")
    }

    /// Sorted set of event ids scored by the µs of the event that first used them.
    pub fn ids_key(&self) -> String {
        self.companion("ids")
    }

    /// Hash of one session: key hashes, rotation state, creation time, revocation generation.
    pub fn session_key(&self, session: &SessionId) -> String {
        self.companion(&format!("session:{session}"))
    }

    /// List of one session's recent request times (ms), newest first: its rate limit window.
    pub fn rate_key(&self, session: &SessionId) -> String {
        self.companion(&format!("rate:{session}"))
    }

    /// Counter bumped by "revoke every session"; a session minted under an older value is dead.
    pub fn generation_key(&self) -> String {
        self.companion("generation")
    }

    /// Sorted set of session ids scored by last-seen time (ms).
    pub fn presence_key(&self) -> String {
        self.companion("presence")
    }

    /// Sorted set of login token `jti`s already used, scored by their `exp` plus a minute (tokens are accepted a few seconds past it).
    pub fn used_tokens_key(&self) -> String {
        self.companion("jti")
    }
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.client.0, self.id.0)
    }
}

/// A session's random id (128 bits, hex). Not secret on its own, but only ever handed out inside
/// client keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId(pub [u8; 16]);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_seed_and_share_one_hash_tag() {
        let clients = ClientNames::default();
        let account = Account::parse(&clients, "wp", "123456").unwrap();
        assert_eq!(account.events_key(), "bcast:wp123456");
        assert_eq!(account.meta_key(), "{bcast:wp123456}:meta");
        let sid = SessionId([0xab; 16]);
        assert_eq!(
            account.session_key(&sid),
            format!("{{bcast:wp123456}}:session:{}", "ab".repeat(16))
        );
    }

    #[test]
    fn client_lists_with_prefixes_are_refused() {
        assert!(ClientNames::new(["wp", "wpx"]).is_err());
        assert!(ClientNames::new(["wp", "WP2"]).is_err());
        assert!(ClientNames::new(Vec::<String>::new()).is_err());
        assert!(ClientNames::new(["wp", "api", "app"]).is_ok());
    }

    #[test]
    fn unknown_clients_and_bad_accounts_are_refused() {
        let clients = ClientNames::default();
        assert!(Account::parse(&clients, "web", "1").is_err());
        assert!(Account::parse(&clients, "wp", "").is_err());
        assert!(Account::parse(&clients, "wp", "a{b}").is_err());
        assert!(Account::parse(&clients, "wp", &"a".repeat(65)).is_err());
        assert!(Account::parse(&clients, "wp", &"a".repeat(64)).is_ok());
    }
}
