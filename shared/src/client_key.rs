//! Client keys: the bearer secret a client presents on every request.
//!
//! A key is opaque to clients, but the server can read from it which account and session it
//! belongs to, so it knows every Redis key (all in the account's slot) before its first round
//! trip. Layout before URL-safe base64: version, client, account id, session id (128 random
//! bits), secret (256 random bits). Redis keeps only a hash of the secret.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::rngs::OsRng;
use rand::TryRngCore;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::keys::{Account, AccountId, ClientNames, SessionId};

const VERSION: u8 = 1;
const SECRET_LEN: usize = 32;
const SESSION_LEN: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("malformed client key")]
pub struct MalformedClientKey;

/// `N` bytes from the OS CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The OS generator failing is not something a request can cause or recover from.
    OsRng
        .try_fill_bytes(&mut bytes)
        .unwrap_or_else(|e| panic!("OS random number generator failed: {e}"));
    bytes
}

/// A client key. `Debug` never shows the secret; [`ClientKey::reveal`] is the only way out.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientKey {
    account: Account,
    session: SessionId,
    secret: [u8; SECRET_LEN],
}

impl ClientKey {
    /// The first key of a new session.
    pub fn new_session(account: Account) -> Self {
        Self {
            account,
            session: SessionId(random_bytes()),
            secret: random_bytes(),
        }
    }

    pub fn parse(text: &str, clients: &ClientNames) -> Result<Self, MalformedClientKey> {
        // 1 + 1 + 32 + 1 + 64 + 16 + 32 bytes at most.
        if text.len() > 200 {
            return Err(MalformedClientKey);
        }
        let raw = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| MalformedClientKey)?;
        let mut rest = raw.as_slice();
        let mut take = |n: usize| -> Result<&[u8], MalformedClientKey> {
            if rest.len() < n {
                return Err(MalformedClientKey);
            }
            let (head, tail) = rest.split_at(n);
            rest = tail;
            Ok(head)
        };
        if take(1)? != [VERSION] {
            return Err(MalformedClientKey);
        }
        let client_len = take(1)?[0] as usize;
        let client = std::str::from_utf8(take(client_len)?).map_err(|_| MalformedClientKey)?;
        let client = clients.client(client).map_err(|_| MalformedClientKey)?;
        let account_len = take(1)?[0] as usize;
        let account = std::str::from_utf8(take(account_len)?).map_err(|_| MalformedClientKey)?;
        let account = AccountId::parse(account).map_err(|_| MalformedClientKey)?;
        let session = SessionId(
            take(SESSION_LEN)?
                .try_into()
                .map_err(|_| MalformedClientKey)?,
        );
        let secret = take(SECRET_LEN)?
            .try_into()
            .map_err(|_| MalformedClientKey)?;
        if !rest.is_empty() {
            return Err(MalformedClientKey);
        }
        Ok(Self {
            account: Account::new(client, account),
            session,
            secret,
        })
    }

    /// Whether `text` has the shape of a client key, whatever its client or validity: to
    /// refuse keys where they must not travel.
    pub fn looks_like(text: &str) -> bool {
        (60..=200).contains(&text.len())
            && URL_SAFE_NO_PAD
                .decode(text)
                .is_ok_and(|raw| raw.first() == Some(&VERSION))
    }

    pub fn account(&self) -> &Account {
        &self.account
    }

    pub fn session(&self) -> SessionId {
        self.session
    }

    /// The key as the client sees it. Never log this.
    pub fn reveal(&self) -> String {
        let client = self.account.client().as_str().as_bytes();
        let account = self.account.id().as_str().as_bytes();
        let mut raw =
            Vec::with_capacity(3 + client.len() + account.len() + SESSION_LEN + SECRET_LEN);
        raw.push(VERSION);
        raw.push(client.len() as u8);
        raw.extend_from_slice(client);
        raw.push(account.len() as u8);
        raw.extend_from_slice(account);
        raw.extend_from_slice(&self.session.0);
        raw.extend_from_slice(&self.secret);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// What Redis stores instead of the key: SHA-256 of the secret, hex. The secret has 256
    /// random bits, so a fast hash is enough.
    pub fn hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"bcast.client-key.v1");
        h.update(self.secret);
        hex::encode(h.finalize())
    }

    /// The key that follows this one, derived from this key's secret and a random rotation
    /// nonce. Redis keeps the nonce (so a retry inside the grace period gets the same
    /// successor) but not this secret, so Redis alone cannot produce a valid key.
    pub fn successor(&self, nonce: &[u8; SECRET_LEN]) -> Self {
        let mut h = Sha256::new();
        h.update(b"bcast.rotate.v1");
        h.update(self.secret);
        h.update(nonce);
        Self {
            account: self.account.clone(),
            session: self.session,
            secret: h.finalize().into(),
        }
    }

    /// The secret in base64 and hex, for tests that scan Redis for leaks.
    #[doc(hidden)]
    pub fn secret_encodings(&self) -> [String; 2] {
        [
            URL_SAFE_NO_PAD.encode(self.secret),
            hex::encode(self.secret),
        ]
    }
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientKey")
            .field("account", &self.account)
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn account() -> Account {
        Account::parse(&ClientNames::default(), "wp", "123456").unwrap()
    }

    #[test]
    fn round_trips_and_hides_the_secret() {
        let key = ClientKey::new_session(account());
        let text = key.reveal();
        assert!(text.len() >= 43, "at least 256 bits");
        assert_eq!(
            ClientKey::parse(&text, &ClientNames::default()),
            Ok(key.clone())
        );
        assert!(!format!("{key:?}").contains(&text));
        assert_ne!(key.hash(), ClientKey::new_session(account()).hash());
        assert!(ClientKey::looks_like(&text));
        assert!(!ClientKey::looks_like("AAXzQ9xq1yA"));
    }

    #[test]
    fn successors_are_deterministic_per_nonce() {
        let key = ClientKey::new_session(account());
        let nonce = random_bytes();
        assert_eq!(key.successor(&nonce), key.successor(&nonce));
        assert_ne!(key.successor(&nonce), key.successor(&random_bytes()));
        assert_eq!(key.successor(&nonce).session(), key.session());
    }

    #[test]
    fn tampered_keys_are_refused() {
        let clients = ClientNames::default();
        let text = ClientKey::new_session(account()).reveal();
        assert!(ClientKey::parse(&text[..text.len() - 2], &clients).is_err());
        assert!(ClientKey::parse(&format!("{text}AA"), &clients).is_err());
        assert!(ClientKey::parse("", &clients).is_err());
        let other = ClientNames::new(["web"]).unwrap();
        assert!(ClientKey::parse(&text, &other).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "[A-Za-z0-9_-]{0,200}") {
            let _ = ClientKey::parse(&text, &ClientNames::default());
        }

        #[test]
        fn arbitrary_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..150)) {
            let _ = ClientKey::parse(&URL_SAFE_NO_PAD.encode(raw), &ClientNames::default());
        }
    }
}
